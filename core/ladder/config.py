"""What a scaling ladder is asked to do, and the rungs it climbs.

A ladder trains 3 to 5 tiny Llamas of growing size on the same text, each
for the same number of tokens, so that the only thing that differs between
them is the number of parameters. Every ladder spans the same two decades,
from about 17,000 to about 1.8 million parameters (for the ~100 characters
of an English text as the vocabulary): its rungs are the shapes nearest, on
a log scale, to sizes spread evenly between the two, so more rungs only fill
in between. Shapes keep between 16 and 64 of width per layer, and heads 16
wide (32 from a width of 128).

The defaults are sized for a 2-core laptop: one core trains (the app keeps
the other), 600 steps of 4 windows of 256 characters (614,400 tokens per
rung), and a ladder of 3 takes about 5 minutes, most of it on the largest
rung. Characters are the tokens: a ladder needs a vocabulary small enough
that the smallest rung is not all embedding table, and a context of 256
characters lets every rung read a whole item of the built-in tasks.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from core.checks import check_seed, config_from_dict, whole
from core.errors import InvalidInput
from core.json_records import JsonRecord
from core.pretrain.architecture import TinyModelSize, parameter_count
from core.pretrain.config import DEVICES, MAX_SAMPLE_CHARS, PretrainConfig
from core.pretrain.corpus import DEFAULT_CORPUS
from core.pretrain.tokenizer import CHAR

MIN_RUNGS, MAX_RUNGS = 3, 5
MAX_STEPS_PER_RUNG = 100_000
EVAL_FRACTION = 0.1  # the end of the corpus, held out: every rung and SmolLM2 are measured on it
SMALLEST, LARGEST = 17_000, 1_800_000  # parameters of the first and last rung (for ~100 characters)
SHAPE_VOCAB = 100  # the vocabulary shapes are chosen for, so every corpus gets the same shapes
WIDTHS = range(32, 257, 16)
MAX_LAYERS = 8
ASPECT = (16, 64)  # width per layer: neither a deep thin stack nor one wide layer
# Peak learning rate: small models need (and tolerate) larger ones. From a sweep on Python's documentation
# at the default budget (held-out loss, nats per character): ~17K parameters best at 1e-2 of 5e-3 / 1e-2 / 2e-2
# (2.32 / 2.30 / 2.57); ~170K flat from 2e-3 to 4.5e-3 (1.93 / 1.93 / 1.92); ~1.8M best at 1e-3 of
# 5e-4 / 1e-3 / 2e-3 / 5e-3 (1.80 / 1.73 / 1.87 / 2.35). So the rate falls as 1 / sqrt(parameters).
LR_SMALLEST, LR_EXPONENT = 1e-2, 0.5


def _head_width(d_model: int) -> int:
    return 32 if d_model >= 128 and d_model % 32 == 0 else 16


def candidate_sizes(context: int) -> list[tuple[int, TinyModelSize]]:
    """Every shape a rung may have, with its parameter count for ``SHAPE_VOCAB`` characters, smallest first."""
    sizes = [
        TinyModelSize(layers, d, d // _head_width(d), context)
        for d in WIDTHS
        for layers in range(1, MAX_LAYERS + 1)
        if ASPECT[0] <= d / layers <= ASPECT[1]
    ]
    return sorted(((parameter_count(size, SHAPE_VOCAB).total, size) for size in sizes), key=lambda c: c[0])


def rung_learning_rate(parameters: int) -> float:
    """The peak learning rate for a rung of ``parameters``, three significant digits."""
    return float(f"{LR_SMALLEST * (parameters / SMALLEST) ** -LR_EXPONENT:.3g}")


def rung_sizes(rungs: int, context: int) -> list[TinyModelSize]:
    """The shapes of a ladder of ``rungs``: nearest (on a log scale) to sizes spread evenly from SMALLEST to LARGEST."""
    candidates = candidate_sizes(context)
    targets = [SMALLEST * (LARGEST / SMALLEST) ** (i / (rungs - 1)) for i in range(rungs)]
    return [min(candidates, key=lambda c, t=t: abs(math.log(c[0] / t)))[1] for t in targets]


@dataclass(frozen=True)
class RungPlan:
    """One rung as planned: its number on this ladder (1 = smallest), its shape and its parameter count."""

    number: int
    size: TinyModelSize
    parameters: int
    learning_rate: float

    def row(self) -> dict[str, Any]:
        """The rung flat, as status.json's plan lists it and its result begins: number, shape, rate, parameters."""
        size = self.size
        return {
            "number": self.number,
            "layers": size.layers,
            "d_model": size.d_model,
            "heads": size.heads,
            "learning_rate": self.learning_rate,
            "parameters": self.parameters,
        }


@dataclass
class LadderConfig(JsonRecord):
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
        return [
            RungPlan(number, size, n := parameter_count(size, vocab_size).total, rung_learning_rate(n))
            for number, size in enumerate(rung_sizes(self.rungs, self.context), start=1)
        ]

    def rung_config(self, rung: RungPlan, sample_prompt: str) -> PretrainConfig:
        """The pretraining config one rung trains with: the ladder's data and budget, the rung's shape and rate.

        The rung's shape is the whole of its size (its context is the ladder's: ``rung_sizes``).
        """
        return PretrainConfig(
            corpus=self.corpus,
            tokenizer=CHAR,
            **asdict(rung.size),
            max_steps=self.steps,
            batch_size=self.batch_size,
            learning_rate=rung.learning_rate,
            sample_every=self.eval_every,
            sample_prompt=sample_prompt,
            sample_chars=self.sample_chars,
            eval_fraction=EVAL_FRACTION,
            seed=self.seed,
            device=self.device,
        ).validate()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LadderConfig:
        """Build and validate a config; unknown keys are refused so a typo is not silently ignored."""
        return config_from_dict(cls, data, "ladder")
