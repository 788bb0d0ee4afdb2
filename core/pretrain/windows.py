"""Cutting a corpus into what training reads: tokens, random windows, and a held-out tail.

As in nanoGPT, every training example is a window of ``context`` tokens
starting anywhere in the training part of the corpus; its labels are its own
tokens (the model shifts them by one: each position predicts the next). The
end of the corpus is held out and cut into fixed windows, to measure the loss
on text the model never trained on. Where a window starts follows the seed
and the example's index, so a run can be repeated exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from core.errors import InvalidInput
from core.models import resolve_device
from core.pretrain.architecture import MemoryEstimate, check_fits_in_memory
from core.pretrain.config import PretrainConfig
from core.pretrain.tokenizer import make_tokenizer

MIN_TRAINING_CONTEXTS = 4  # fewer, and every window would be almost the same text
MAX_HELD_OUT_WINDOWS = 32  # enough for a steady loss, few enough to measure it in a blink


@dataclass(frozen=True)
class TokenSplit:
    """A corpus's token ids: the part to train on, and the held-out tail."""

    train: torch.Tensor  # int64, 1-D
    held_out: torch.Tensor

    @property
    def total(self) -> int:
        return len(self.train) + len(self.held_out)


def tokens_needed(context: int, eval_fraction: float) -> int:
    """The fewest tokens a corpus may have for windows of ``context`` tokens."""
    return max(math.ceil(context / eval_fraction), math.ceil(MIN_TRAINING_CONTEXTS * context / (1 - eval_fraction)))


def split_tokens(ids: list[int], context: int, eval_fraction: float) -> TokenSplit:
    """Hold out the last ``eval_fraction`` of ``ids``; refuse a corpus too short for the context."""
    n_held_out = int(len(ids) * eval_fraction)
    if n_held_out < context or len(ids) - n_held_out < MIN_TRAINING_CONTEXTS * context:
        need = tokens_needed(context, eval_fraction)
        raise InvalidInput(
            f"The corpus has {len(ids):,} tokens: too short for a context of {context:,}. Training needs at least "
            f"{need:,} ({eval_fraction:.0%} of them held out, at least one whole window, and the rest at least "
            f"{MIN_TRAINING_CONTEXTS} windows to draw from). Use a longer text or a shorter context."
        )
    tensor = torch.tensor(ids, dtype=torch.long)
    return TokenSplit(train=tensor[: len(ids) - n_held_out], held_out=tensor[len(ids) - n_held_out :])


class RandomWindows(torch.utils.data.Dataset):
    """``count`` windows of ``context`` tokens at seeded random places in ``ids``."""

    def __init__(self, ids: torch.Tensor, context: int, count: int, seed: int) -> None:
        self.ids, self.context, self.count, self.seed = ids, context, count, seed

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        start = int(np.random.default_rng([self.seed, index]).integers(0, len(self.ids) - self.context + 1))
        window = self.ids[start : start + self.context]
        return {"input_ids": window, "labels": window}


def held_out_windows(
    ids: torch.Tensor, context: int, limit: int = MAX_HELD_OUT_WINDOWS
) -> list[dict[str, torch.Tensor]]:
    """The held-out tail as back-to-back windows (at most ``limit``), the same ones at every evaluation."""
    count = min(limit, len(ids) // context)
    return [
        {"input_ids": ids[i * context : (i + 1) * context], "labels": ids[i * context : (i + 1) * context]}
        for i in range(count)
    ]


@dataclass(frozen=True)
class PreparedCorpus:
    """A corpus tokenized and split for one config: what the job trains on, checked to be enough."""

    tokenizer: Any
    split: TokenSplit
    memory: MemoryEstimate


def prepare_corpus(config: PretrainConfig, text: str) -> PreparedCorpus:
    """Tokenize ``text``, split it, and check the model fits in memory; ``InvalidInput`` says what does not fit."""
    config.validate()
    tokenizer = make_tokenizer(config.tokenizer, text, config.context)
    # verbose=False: the whole corpus is longer than one context on purpose, no warning needed
    ids = tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
    split = split_tokens(ids, config.context, config.eval_fraction)
    memory = check_fits_in_memory(config.size, len(tokenizer), config.batch_size, resolve_device(config.device))
    return PreparedCorpus(tokenizer, split, memory)
