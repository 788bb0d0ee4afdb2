"""What a fine-tuning job is asked to do: one dataclass with CPU-friendly defaults.

The defaults are sized for the embedded 135M model on two CPU cores: a
rank-8 LoRA on the attention's query and value projections, a learning rate
at the high end of the usual LoRA range (short runs need it), small batches
of short examples, and a few dozen steps, enough for a clear effect on the
built-in datasets in a minute or two.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.checks import check_seed, config_from_dict, number, whole
from core.embedded import EMBEDDED_MODEL
from core.errors import InvalidInput
from core.json_records import JsonRecord

PRECISIONS = ("auto", "float32", "bfloat16", "float16")
DEVICES = ("auto", "cpu", "cuda")
MAX_STEPS_LIMIT = 100_000
MAX_LENGTH_LIMIT = 4096


@dataclass
class FinetuneConfig(JsonRecord):
    """Everything that decides a LoRA fine-tuning run; saved as the job's ``config.json``."""

    dataset: str = "sentiment"  # a built-in dataset's name, or a path to a .csv / .jsonl file
    model: str = EMBEDDED_MODEL  # 'embedded', a .gguf file, a Hugging Face id or a local folder
    max_steps: int | None = 40  # optimizer steps; None to train for `epochs` instead
    epochs: float | None = None  # passes over the training split (only when max_steps is None)
    learning_rate: float = 1e-3  # LoRA tolerates rates ~10x a full fine-tune's; short runs need them
    batch_size: int = 4  # examples per step; more is smoother but each step is slower on a CPU
    max_length: int = 128  # tokens per example, prompt + completion; longer rows are refused, not cut
    r: int = 8  # LoRA rank: size of the low-rank update; 4-16 is plenty for a small behaviour change
    alpha: float = 16  # LoRA scale; the update is multiplied by alpha / r
    dropout: float = 0.05  # dropout on the LoRA branch, a little regularisation for tiny datasets
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])  # layers that get adapters
    seed: int = 0  # shuffling, LoRA initialisation and dropout all follow it
    eval_fraction: float = 0.2  # share of an uploaded file held out for evaluation (built-ins ship a split)
    evals_during_training: int = 4  # eval-loss points on the live curve between the before and after ones
    precision: str = "auto"  # 'auto': bfloat16/float16 mixed precision on a GPU that has it, float32 on a CPU
    device: str = "auto"  # 'auto' (CUDA if present), 'cpu' or 'cuda'

    def validate(self) -> FinetuneConfig:
        """Check every field, raising ``InvalidInput`` with a sentence naming the field."""
        if not isinstance(self.dataset, str) or not self.dataset.strip():
            raise InvalidInput("Choose a dataset: a built-in name or a .csv / .jsonl file.")
        if not isinstance(self.model, str) or not self.model.strip():
            raise InvalidInput("The model name is empty: use 'embedded', a Hugging Face id or a local folder.")
        if (self.max_steps is None) == (self.epochs is None):
            raise InvalidInput("Set either a number of steps or a number of epochs, not both and not neither.")
        if self.max_steps is not None:
            whole(self.max_steps, "The number of steps", 1, MAX_STEPS_LIMIT)
        if self.epochs is not None:
            number(self.epochs, "The number of epochs", 0, 100, low_open=True)
        number(self.learning_rate, "The learning rate", 0, 1, low_open=True)
        whole(self.batch_size, "The batch size", 1, 512)
        whole(self.max_length, "The maximum length", 8, MAX_LENGTH_LIMIT)
        whole(self.r, "The LoRA rank r", 1, 1024)
        number(self.alpha, "LoRA alpha", 0, 10_000, low_open=True)
        number(self.dropout, "The LoRA dropout", 0, 1, high_open=True)
        check_seed(self.seed)
        number(self.eval_fraction, "The evaluation fraction", 0, 0.5, low_open=True)
        whole(self.evals_during_training, "The number of evaluations during training", 0, 100)
        if (
            not isinstance(self.target_modules, list | tuple)
            or not self.target_modules
            or not all(isinstance(m, str) and m.strip() for m in self.target_modules)
        ):
            raise InvalidInput("Name at least one target module for LoRA, e.g. q_proj and v_proj.")
        self.target_modules = [m.strip() for m in self.target_modules]
        if self.precision not in PRECISIONS:
            raise InvalidInput(f"Unknown precision {self.precision!r}: choose one of {', '.join(PRECISIONS)}.")
        if self.device not in DEVICES:
            raise InvalidInput(f"Unknown device {self.device!r}: choose one of {', '.join(DEVICES)}.")
        return self

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FinetuneConfig:
        """Build and validate a config; unknown keys are refused so a typo is not silently ignored."""
        return config_from_dict(cls, data, "fine-tuning")
