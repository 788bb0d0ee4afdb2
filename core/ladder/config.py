"""What a scaling ladder is asked to do, and the rungs it climbs.

A ladder trains 3 to 5 tiny Llamas of growing size on the same text, each
for the same number of tokens, so that the only thing that differs between
them is the number of parameters. The rungs come from one fixed table of
five shapes, about 3.3 times bigger at every step, from about 17,000 to
about 1.8 million parameters (with the ~100 characters of an English text as
the vocabulary); a ladder of N rungs takes N of them spread evenly over the
table, so every ladder spans the same two decades of size and more rungs
only fill in between.

The defaults are sized for a 2-core laptop: one core trains (the app keeps
the other), 600 steps of 4 windows of 256 characters (614,400 tokens per
rung), and a ladder of 3 takes about 4 minutes, most of it on the largest
rung. Characters are the tokens: a ladder needs a vocabulary small enough
that the smallest rung is not all embedding table, and a context of 256
characters lets every rung read a whole item of the built-in tasks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from core.checks import check_seed, config_from_dict, whole
from core.errors import InvalidInput
from core.pretrain.architecture import TinyModelSize, parameter_count
from core.pretrain.config import DEVICES, MAX_SAMPLE_CHARS, PretrainConfig
from core.pretrain.corpus import DEFAULT_CORPUS
from core.pretrain.tokenizer import CHAR

MIN_RUNGS, MAX_RUNGS = 3, 5
MAX_STEPS_PER_RUNG = 100_000
EVAL_FRACTION = 0.1  # the end of the corpus, held out: every rung and SmolLM2 are measured on it


@dataclass(frozen=True)
class RungShape:
    """One rung of the table: a tiny Llama's shape and the peak learning rate it trains at.

    Smaller models tolerate (and need, to learn in few steps) larger learning
    rates; each rate here was the best of 1e-3 … 2e-2 for its shape on
    Python's documentation at the default budget.
    """

    layers: int
    d_model: int
    heads: int
    learning_rate: float

    def size(self, context: int) -> TinyModelSize:
        return TinyModelSize(self.layers, self.d_model, self.heads, context)


# About 3.3x more parameters per step; head widths of 16 to 32, as in small published models.
RUNG_TABLE: tuple[RungShape, ...] = (
    RungShape(1, 32, 2, 1e-2),  # ~17K parameters
    RungShape(2, 48, 2, 8e-3),  # ~61K
    RungShape(4, 64, 4, 6e-3),  # ~0.21M
    RungShape(3, 128, 4, 4e-3),  # ~0.62M
    RungShape(4, 192, 6, 3e-3),  # ~1.8M
)


def table_indices(rungs: int) -> list[int]:
    """Which rows of ``RUNG_TABLE`` a ladder of ``rungs`` climbs: spread evenly, always the first and the last."""
    last = len(RUNG_TABLE) - 1
    return [round(i * last / (rungs - 1)) for i in range(rungs)]


@dataclass(frozen=True)
class RungPlan:
    """One rung as planned: its number on this ladder (1 = smallest), its shape and its parameter count."""

    number: int
    shape: RungShape
    size: TinyModelSize
    parameters: int


@dataclass
class LadderConfig:
    """Everything that decides a ladder; saved as the job's ``config.json``."""

    corpus: str = DEFAULT_CORPUS  # a built-in corpus's name, or a path to a UTF-8 .txt file
    rungs: int = 3  # how many sizes, from 3 to 5, spread over RUNG_TABLE
    seed: int = 0  # initial weights and the windows drawn: the same windows, in the same order, for every rung
    steps: int = 600  # optimizer steps per rung: every rung reads steps x batch_size x context tokens
    batch_size: int = 4  # windows per step
    context: int = 256  # characters each rung reads at once
    eval_every: int = 100  # steps between held-out losses on the curves (0: only before and after)
    sample_prompt: str = ""  # what every rung's sample continues ('': the corpus's first word)
    sample_chars: int = 120  # characters per sample
    reference: bool = True  # also score SmolLM2-135M on the held-out text, for its bits per character
    reference_chars: int = 2000  # how much of the held-out text SmolLM2 scores (one pass, a few seconds)
    device: str = "auto"  # 'auto' (CUDA if present), 'cpu' or 'cuda'

    @property
    def tokens_per_rung(self) -> int:
        return self.steps * self.batch_size * self.context

    def validate(self) -> LadderConfig:
        """Check every field, raising ``InvalidInput`` with a sentence naming the field."""
        if not isinstance(self.corpus, str) or not self.corpus.strip():
            raise InvalidInput("Choose a corpus: a built-in name or a .txt file.")
        if not isinstance(self.rungs, int) or isinstance(self.rungs, bool) or not MIN_RUNGS <= self.rungs <= MAX_RUNGS:
            raise InvalidInput(
                f"A ladder has {MIN_RUNGS} to {MAX_RUNGS} rungs (fewer draw no line, more do not fit a lesson); "
                f"got {self.rungs!r}."
            )
        check_seed(self.seed)
        whole(self.steps, "The number of steps per rung", 1, MAX_STEPS_PER_RUNG)
        whole(self.batch_size, "The batch size", 1, 1024)
        whole(self.context, "The context length", 8, 4096)
        whole(self.eval_every, "The steps between held-out losses", 0, MAX_STEPS_PER_RUNG)
        if not isinstance(self.sample_prompt, str) or len(self.sample_prompt) > MAX_SAMPLE_CHARS:
            raise InvalidInput(f"The sample prompt must be text of at most {MAX_SAMPLE_CHARS} characters.")
        whole(self.sample_chars, "The characters per sample", 1, MAX_SAMPLE_CHARS)
        if not isinstance(self.reference, bool):
            raise InvalidInput("The reference setting must be true or false.")
        whole(self.reference_chars, "The characters SmolLM2 scores", 100, 20_000)
        if self.device not in DEVICES:
            raise InvalidInput(f"Unknown device {self.device!r}: choose one of {', '.join(DEVICES)}.")
        return self

    def plan(self, vocab_size: int) -> list[RungPlan]:
        """The rungs, smallest first, with their parameter counts for a vocabulary of ``vocab_size``."""
        self.validate()
        plans = []
        for number, index in enumerate(table_indices(self.rungs), start=1):
            shape = RUNG_TABLE[index]
            size = shape.size(self.context).validate()
            plans.append(RungPlan(number, shape, size, parameter_count(size, vocab_size).total))
        return plans

    def rung_config(self, rung: RungPlan, sample_prompt: str) -> PretrainConfig:
        """The pretraining config one rung trains with: the ladder's data and budget, the rung's shape and rate."""
        return PretrainConfig(
            corpus=self.corpus,
            tokenizer=CHAR,
            layers=rung.size.layers,
            d_model=rung.size.d_model,
            heads=rung.size.heads,
            context=self.context,
            max_steps=self.steps,
            batch_size=self.batch_size,
            learning_rate=rung.shape.learning_rate,
            sample_every=self.eval_every,
            sample_prompt=sample_prompt,
            sample_chars=self.sample_chars,
            eval_fraction=EVAL_FRACTION,
            seed=self.seed,
            device=self.device,
        ).validate()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LadderConfig:
        """Build and validate a config; unknown keys are refused so a typo is not silently ignored."""
        return config_from_dict(cls, data, "ladder")
