"""What a pretraining job is asked to do: one dataclass whose defaults train visibly in about a minute.

The defaults are sized for two CPU cores: a 2-layer, 128-wide Llama with 4
heads reading 64 characters (about 0.4M parameters), 300 steps of 16 random
windows of Python's documentation, at a learning rate tiny models tolerate
(small models want larger rates than big ones). A sample of text is written
every 50 steps, so a learner sees noise turn into words.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.checks import check_seed, config_from_dict, number, whole
from core.errors import InvalidInput
from core.json_records import JsonRecord
from core.pretrain.architecture import TinyModelSize
from core.pretrain.corpus import DEFAULT_CORPUS
from core.pretrain.tokenizer import CHAR, TOKENIZERS

DEVICES = ("auto", "cpu", "cuda")
MAX_STEPS_LIMIT = 1_000_000
MAX_SAMPLE_CHARS = 1000


@dataclass
class PretrainConfig(JsonRecord):
    """Everything that decides a pretraining run; saved as the job's ``config.json``."""

    corpus: str = DEFAULT_CORPUS  # a built-in corpus's name, or a path to a UTF-8 .txt file
    tokenizer: str = CHAR  # 'char' (one token per character) or 'model' (the embedded model's tokens)
    layers: int = 2  # transformer blocks
    d_model: int = 128  # width of the residual stream
    heads: int = 4  # attention heads per layer (must divide d_model)
    context: int = 64  # tokens the model reads at once; training windows have this length
    max_steps: int = 300  # optimizer steps
    batch_size: int = 16  # windows per step
    learning_rate: float = 3e-3  # peak rate; it warms up over the first 5% of steps, then decays (cosine)
    sample_every: int = 50  # steps between text samples (and held-out loss points); 0: only at the start and end
    sample_prompt: str = ""  # every sample continues it ('': the corpus's first word), so only learning differs
    sample_chars: int = 100  # characters per sample
    eval_fraction: float = 0.1  # the end of the corpus, held out to measure the loss on unseen text
    seed: int = 0  # initial weights, the windows drawn and the samples all follow it
    device: str = "auto"  # 'auto' (CUDA if present), 'cpu' or 'cuda'

    @property
    def size(self) -> TinyModelSize:
        return TinyModelSize(self.layers, self.d_model, self.heads, self.context)

    def validate(self) -> PretrainConfig:
        """Check every field, raising ``InvalidInput`` with a sentence naming the field."""
        if not isinstance(self.corpus, str) or not self.corpus.strip():
            raise InvalidInput("Choose a corpus: a built-in name or a .txt file.")
        if self.tokenizer not in TOKENIZERS:
            raise InvalidInput(f"Unknown tokenizer {self.tokenizer!r}: choose {' or '.join(TOKENIZERS)}.")
        self.size.validate()
        whole(self.max_steps, "The number of steps", 1, MAX_STEPS_LIMIT)
        whole(self.batch_size, "The batch size", 1, 4096)
        number(self.learning_rate, "The learning rate", 0, 1, low_open=True)
        whole(self.sample_every, "The steps between samples", 0, MAX_STEPS_LIMIT)
        if not isinstance(self.sample_prompt, str) or len(self.sample_prompt) > MAX_SAMPLE_CHARS:
            raise InvalidInput(f"The sample prompt must be text of at most {MAX_SAMPLE_CHARS} characters.")
        whole(self.sample_chars, "The characters per sample", 1, MAX_SAMPLE_CHARS)
        number(self.eval_fraction, "The held-out fraction", 0, 0.5, low_open=True)
        check_seed(self.seed)
        if self.device not in DEVICES:
            raise InvalidInput(f"Unknown device {self.device!r}: choose one of {', '.join(DEVICES)}.")
        return self

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.context

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PretrainConfig:
        """Build and validate a config; unknown keys are refused so a typo is not silently ignored."""
        return config_from_dict(cls, data, "pretraining")
