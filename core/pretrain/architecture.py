"""The shape of a tiny model, its parameter count before it exists, and the memory training it takes.

A tiny model is a standard Llama (transformers' ``LlamaForCausalLM``, the
architecture of SmolLM2 and Llama itself) with few layers and a narrow
width, so it saves, loads and runs like any other model. Its parameters can
be counted from the shape alone, which lets a page update the count as a
slider moves without building anything::

    embeddings      vocab x width                  (shared with the output layer: tied)
    per layer       attention  4 x width^2         (query, key, value, output projections)
                    MLP        3 x width x mlp     (gate, up and down projections, SwiGLU)
                    norms      2 x width           (RMSNorm before attention and before the MLP)
    final norm      width

The MLP's hidden width is 8/3 of the model's width (rounded up to a
multiple of 16), as in Llama: its three matrices then hold about as many
parameters as a classic 4x MLP's two. Tests check the formula against the
tensors of a built model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from core.errors import InvalidInput
from core.json_records import JsonRecord

BYTES_PER_FLOAT = 4  # tiny models train in float32
# Adam keeps two moments per weight: weights, gradients and moments are 4 floats per parameter.
FLOATS_PER_TRAINED_PARAMETER = 4
PROCESS_OVERHEAD_BYTES = 600_000_000  # Python, torch and transformers in the job process, before any model
MEMORY_SHARE_ALLOWED = 0.8  # of the memory free now: leave room for the app and everything else
LIMITS = {"layers": (1, 64), "d_model": (8, 8192), "heads": (1, 128), "context": (4, 8192)}


def mlp_width(d_model: int) -> int:
    """Llama's SwiGLU hidden width: 8/3 of the model's, rounded up to a multiple of 16."""
    return 16 * math.ceil(8 * d_model / 3 / 16)


@dataclass(frozen=True)
class TinyModelSize(JsonRecord):
    """How big a tiny model is: depth, width, attention heads and how many tokens it reads at once."""

    layers: int = 2  # transformer blocks stacked on each other
    d_model: int = 128  # the width: numbers per token on the residual stream
    heads: int = 4  # attention heads per layer; each looks at d_model / heads of the width
    context: int = 64  # the most tokens the model reads at once (its context window)

    def validate(self) -> TinyModelSize:
        """Check the shape is one a transformer can have, saying which setting is wrong."""
        names = {"layers": "layers", "d_model": "width", "heads": "attention heads", "context": "context length"}
        for field_name, (low, high) in LIMITS.items():
            value = getattr(self, field_name)
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise InvalidInput(
                    f"The number of {names[field_name]} must be a whole number from {low:,} to {high:,}; got {value!r}."
                )
        if self.d_model % self.heads:
            nearest = self.heads * max(2, self.d_model // self.heads // 2 * 2)  # a multiple with even heads
            raise InvalidInput(
                f"A width of {self.d_model} cannot be split evenly into {self.heads} attention heads "
                f"({self.d_model} / {self.heads} = {self.d_model / self.heads:g}). "
                f"Choose a width that is a multiple of {self.heads}, e.g. {nearest}."
            )
        if self.head_width % 2:
            raise InvalidInput(
                f"Each attention head would be {self.head_width} wide ({self.d_model} / {self.heads}); it must be "
                "even, because rotary position embeddings turn a head's numbers in pairs. Change the width or heads."
            )
        return self

    @property
    def head_width(self) -> int:
        return self.d_model // self.heads


def llama_config(size: TinyModelSize, tokenizer: Any) -> Any:
    """The transformers ``LlamaConfig`` for ``size`` with ``tokenizer``'s vocabulary and special tokens."""
    from transformers import LlamaConfig

    size.validate()
    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=size.d_model,
        intermediate_size=mlp_width(size.d_model),
        num_hidden_layers=size.layers,
        num_attention_heads=size.heads,
        num_key_value_heads=size.heads,  # plain multi-head attention: every head has its own keys and values
        max_position_embeddings=size.context,
        tie_word_embeddings=True,  # the output layer reuses the embedding table, as SmolLM2 does
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


@dataclass(frozen=True)
class ParameterCount:
    """Parameters of a tiny model by what they do, from its shape (no model built)."""

    embeddings: int
    attention: int  # all layers
    mlp: int  # all layers
    norms: int  # all layers, and the final norm
    per_layer: int

    @property
    def total(self) -> int:
        return self.embeddings + self.attention + self.mlp + self.norms


def parameter_count(size: TinyModelSize, vocab_size: int) -> ParameterCount:
    """Count the parameters of the Llama ``llama_config`` builds, one tensor at a time (tied embeddings once)."""
    d = size.d_model
    attention, mlp, norms = 4 * d * d, 3 * d * mlp_width(d), 2 * d
    return ParameterCount(
        embeddings=vocab_size * d,
        attention=size.layers * attention,
        mlp=size.layers * mlp,
        norms=size.layers * norms + d,
        per_layer=attention + mlp + norms,
    )


@dataclass(frozen=True)
class MemoryEstimate:
    """Roughly how much memory training takes, and how much there is."""

    parameters_bytes: int  # weights, gradients and Adam's two moments
    activations_bytes: int  # what the forward pass keeps for the backward pass, logits included
    overhead_bytes: int  # the job process itself
    available_bytes: int  # free memory on the device that will train

    @property
    def total_bytes(self) -> int:
        return self.parameters_bytes + self.activations_bytes + self.overhead_bytes

    @property
    def fits(self) -> bool:
        return self.total_bytes <= MEMORY_SHARE_ALLOWED * self.available_bytes


def _available_bytes(device: str) -> int:
    if device.startswith("cuda"):
        import torch

        return int(torch.cuda.mem_get_info()[0])
    import psutil

    return int(psutil.virtual_memory().available)


def training_memory(size: TinyModelSize, vocab_size: int, batch_size: int, device: str = "cpu") -> MemoryEstimate:
    """Estimate the memory of float32 training with Adam: a rough figure, good to a factor of two.

    Per layer and token the forward pass keeps about ten width-sized vectors
    (norms, query/key/value, attention output, residuals), four MLP-sized
    ones and two rows of attention weights per head; the logits and their
    gradient add three vocabulary-sized rows per token.
    """
    d, tokens = size.d_model, batch_size * size.context
    per_token_layer = 10 * d + 4 * mlp_width(d) + 2 * size.heads * size.context
    activations = tokens * (size.layers * per_token_layer + 2 * d + 3 * vocab_size)
    return MemoryEstimate(
        parameters_bytes=FLOATS_PER_TRAINED_PARAMETER * BYTES_PER_FLOAT * parameter_count(size, vocab_size).total,
        activations_bytes=BYTES_PER_FLOAT * activations,
        overhead_bytes=PROCESS_OVERHEAD_BYTES,
        available_bytes=_available_bytes(device),
    )


def check_fits_in_memory(size: TinyModelSize, vocab_size: int, batch_size: int, device: str = "cpu") -> MemoryEstimate:
    """The estimate, or ``InvalidInput`` when training would not fit in the memory free now."""
    estimate = training_memory(size, vocab_size, batch_size, device)
    if not estimate.fits:
        params = parameter_count(size, vocab_size).total
        raise InvalidInput(
            f"A model of {params:,} parameters would need about {gigabytes(estimate.total_bytes)} to train "
            f"(batch {batch_size}, context {size.context}), but only {gigabytes(estimate.available_bytes)} "
            "of memory is free. Choose fewer layers, a smaller width, a shorter context or a smaller batch."
        )
    return estimate


def gigabytes(n_bytes: float) -> str:
    """``1.2 GB`` or ``350 MB``: memory as a person reads it."""
    return f"{n_bytes / 1e9:,.1f} GB" if n_bytes >= 1e9 else f"{n_bytes / 1e6:,.0f} MB"
