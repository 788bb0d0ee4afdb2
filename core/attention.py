"""Attention weights: which earlier tokens each token reads from, per layer and head.

Each attention head mixes the vectors of earlier positions into the current
one; its weights (a softmax, so each row sums to 1) say how much of each
earlier position it takes. A causal model never looks ahead, so everything
above the diagonal is zero.

Only the "eager" attention implementation ever forms that matrix: the fused
kernels (sdpa, flash) compute the mixture without it. ``eager_attention``
switches a model to eager for one pass and back, so the caller must hold the
model's lock (``with lm.using() as model``) for the whole switch.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from core.errors import InvalidInput

EAGER = "eager"


def transformers_model(model: Any) -> Any:
    """The transformers model under a peft wrapper (or the model itself)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


@contextmanager
def eager_attention(model: Any) -> Iterator[bool]:
    """Run ``model`` with eager attention inside the block, restoring its own implementation after.

    Yields whether the model now runs eager attention; a model whose code
    cannot switch (transformers says so in a warning) keeps its own and
    yields False.
    """
    inner = transformers_model(model)
    before = inner.config._attn_implementation
    if before != EAGER:
        inner.set_attn_implementation(EAGER)
    try:
        yield inner.config._attn_implementation == EAGER
    finally:
        if inner.config._attn_implementation != before:
            inner.set_attn_implementation(before)


@dataclass(eq=False)
class AttentionMaps:
    """Every head's attention weights for one prompt.

    ``weights`` has shape ``[n_layers, n_heads, n_positions, n_positions]``
    (float32, on the CPU): ``weights[l - 1, h - 1, i, j]`` is how much head
    ``h`` of layer ``l`` at position ``i`` takes from position ``j``. Layers
    and heads are numbered from 1, as the page and the CLI show them.
    """

    weights: torch.Tensor

    @property
    def n_layers(self) -> int:
        return int(self.weights.shape[0])

    @property
    def n_heads(self) -> int:
        return int(self.weights.shape[1])

    @property
    def n_positions(self) -> int:
        return int(self.weights.shape[2])

    def pattern(self, layer: int, head: int | None = None) -> torch.Tensor:
        """``[n_positions, n_positions]`` weights of one head, or their mean over heads when ``head`` is None."""
        if not 1 <= layer <= self.n_layers:
            raise InvalidInput(f"Layer {layer} does not exist: this model has layers 1 to {self.n_layers}.")
        if head is None:
            return self.weights[layer - 1].mean(dim=0)
        if not 1 <= head <= self.n_heads:
            raise InvalidInput(f"Head {head} does not exist: each layer has heads 1 to {self.n_heads}.")
        return self.weights[layer - 1, head - 1]


def attention_maps(attentions: tuple[torch.Tensor, ...]) -> AttentionMaps:
    """Stack a forward pass's ``attentions`` (one ``[1, heads, n, n]`` per layer) into ``AttentionMaps``."""
    return AttentionMaps(torch.stack([a[0].float().cpu() for a in attentions]))
