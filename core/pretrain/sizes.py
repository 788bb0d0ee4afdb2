"""What "large" means: a model's parameters by what they do, beside published models and the compute they took.

``parameter_breakdown`` counts any loaded model's parameters from its tensors,
each tensor once (a tied output layer shares the embedding table's tensor, so
it is not counted twice), sorted into embeddings, attention, MLP, norms and
LoRA adapters, in total and per layer.

``PUBLISHED_MODELS`` lists well-known models with their parameter counts and,
where the authors published it, the number of tokens they were trained on.
Two rules of thumb turn those into compute:

* training takes about **6 x N x D floating-point operations** for N
  parameters and D training tokens (2 N per token forward, 4 N backward;
  Kaplan et al. 2020, "Scaling Laws for Neural Language Models"). For GPT-3,
  6 x 175e9 x 300e9 = 3.15e23, the 3.14e23 its paper reports;
* for the best model a fixed compute budget can buy, train on about **20
  tokens per parameter** (Hoffmann et al. 2022, "Training Compute-Optimal
  Large Language Models", the Chinchilla paper). Recent small models are
  trained far past that, because a small model that knows more is cheaper to
  run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

FLOPS_PER_PARAMETER_TOKEN = 6  # Kaplan et al. 2020: C ~ 6 N D
CHINCHILLA_TOKENS_PER_PARAMETER = 20  # Hoffmann et al. 2022

KINDS = ("embeddings", "attention", "MLP", "norms", "LoRA adapter", "other")
_LAYER = re.compile(r"\.(?:layers|h|blocks|layer)\.(\d+)\.")


def parameter_kind(name: str) -> str:
    """What a parameter does, from its name in a transformers model (Llama, GPT-2 and kin, peft)."""
    lowered = name.lower()
    if "lora_" in lowered:
        return "LoRA adapter"
    if "norm" in lowered or ".ln_" in lowered:  # before attention: 'post_attention_layernorm' is a norm
        return "norms"
    if any(k in lowered for k in ("embed", "wte", "wpe", "lm_head")):
        return "embeddings"
    if "attn" in lowered or "attention" in lowered:
        return "attention"
    if "mlp" in lowered or "feed_forward" in lowered:
        return "MLP"
    return "other"


@dataclass(frozen=True)
class ParameterBreakdown:
    """A model's parameters by kind, in total and for each layer; every tensor counted once."""

    total: int
    by_kind: dict[str, int]  # kinds with at least one parameter, in KINDS order
    per_layer: list[dict[str, int]]  # layer index -> kind -> parameters
    tied_embeddings: bool  # the output layer reuses the embedding table
    tensors: int

    @property
    def outside_layers(self) -> dict[str, int]:
        """Parameters not in any layer (the embeddings, the final norm), by kind."""
        inside: dict[str, int] = {}
        for layer in self.per_layer:
            for kind, n in layer.items():
                inside[kind] = inside.get(kind, 0) + n
        return {k: n - inside.get(k, 0) for k, n in self.by_kind.items() if n - inside.get(k, 0)}


def is_adapter_tensor(name: str) -> bool:
    """A LoRA tensor peft put into a shared model (``core.adapter_host``): not the model's own."""
    return ".lora_" in f".{name}"


def parameter_breakdown(model: Any) -> ParameterBreakdown:
    """Count ``model``'s parameters by kind and layer from its tensors (``named_parameters`` lists shared ones once).

    Adapters switched on over the shared model are left out: they are a few MB on top of it, not the model.
    """
    by_kind: dict[str, int] = {}
    per_layer: dict[int, dict[str, int]] = {}
    tensors = 0
    for name, tensor in model.named_parameters():
        if is_adapter_tensor(name):
            continue
        kind, n = parameter_kind(name), tensor.numel()
        tensors += 1
        by_kind[kind] = by_kind.get(kind, 0) + n
        match = _LAYER.search(f".{name}")
        if match:
            layer = per_layer.setdefault(int(match.group(1)), {})
            layer[kind] = layer.get(kind, 0) + n
    output, inputs = model.get_output_embeddings(), model.get_input_embeddings()
    tied = output is not None and inputs is not None and output.weight is inputs.weight
    return ParameterBreakdown(
        total=sum(by_kind.values()),
        by_kind={k: by_kind[k] for k in KINDS if k in by_kind},
        per_layer=[per_layer[i] for i in sorted(per_layer)],
        tied_embeddings=tied,
        tensors=tensors,
    )


@dataclass(frozen=True)
class PublishedModel:
    """A well-known model's size as its authors published it."""

    name: str
    parameters: float
    training_tokens: float | None  # None where the authors did not say
    year: int
    source: str

    @property
    def training_flops(self) -> float | None:
        return None if self.training_tokens is None else training_flops(self.parameters, self.training_tokens)

    @property
    def tokens_per_parameter(self) -> float | None:
        return None if self.training_tokens is None else self.training_tokens / self.parameters


PUBLISHED_MODELS: tuple[PublishedModel, ...] = (
    PublishedModel("GPT-2 (small)", 124e6, None, 2019, "Radford et al. 2019 (first reported as 117M)"),
    PublishedModel("SmolLM2-135M", 135e6, 2e12, 2024, "Allal et al. 2025, SmolLM2 model card"),
    PublishedModel("GPT-2 XL", 1.5e9, None, 2019, "Radford et al. 2019"),
    PublishedModel("Llama 2 7B", 7e9, 2e12, 2023, "Touvron et al. 2023, Llama 2"),
    PublishedModel("Llama 3 8B", 8e9, 15e12, 2024, "Meta 2024, Llama 3 (over 15T tokens)"),
    PublishedModel("Chinchilla", 70e9, 1.4e12, 2022, "Hoffmann et al. 2022"),
    PublishedModel("Llama 2 70B", 70e9, 2e12, 2023, "Touvron et al. 2023, Llama 2"),
    PublishedModel("GPT-3", 175e9, 300e9, 2020, "Brown et al. 2020"),
    PublishedModel("Llama 3.1 405B", 405e9, 15.6e12, 2024, "Llama Team 2024, The Llama 3 Herd of Models"),
)


def training_flops(parameters: float, tokens: float) -> float:
    """About 6 x N x D floating-point operations to train N parameters on D tokens (Kaplan et al. 2020)."""
    return FLOPS_PER_PARAMETER_TOKEN * parameters * tokens


def compute_optimal_tokens(parameters: float) -> float:
    """Chinchilla's rule: about 20 training tokens per parameter (Hoffmann et al. 2022)."""
    return CHINCHILLA_TOKENS_PER_PARAMETER * parameters


def scientific(n: float, digits: int = 2) -> str:
    """``3.15e23``: a huge number with ``digits`` significant digits after the first, and no ``+``."""
    return f"{n:.{digits}e}".replace("e+", "e")


def short_count(n: float) -> str:
    """``135M``, ``1.5B``, ``15.6T``, ``3.1e23``: a count as a person says it."""
    for limit, suffix in ((1e15, None), (1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if n >= limit:
            if suffix is None:
                return scientific(n, 1)
            value = n / limit
            return f"{value:.3g}{suffix}" if value < 100 else f"{value:.0f}{suffix}"
    return f"{n:,.0f}"
