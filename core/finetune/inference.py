"""Using a saved adapter: a view of the shared base model with the LoRA switched on.

``load_adapter`` gives a ``LoadedModel`` that shares the base's weights, lock
and caches of adapters (``core.adapter_host``) and differs only in which
adapter its passes run with. Every core function (next-token distributions,
scoring, step-by-step generation) works on it unchanged, and a second
adapter costs a few MB, not a second copy of the base. Only safetensors
weights are read, never pickles.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from safetensors import safe_open

from core.adapter_host import AdapterRef
from core.distributions import NextTokenDistribution, next_token_distribution
from core.errors import InvalidInput
from core.finetune.adapters import is_adapter_dir
from core.models import LoadedModel, ModelKey

WEIGHTS_FILE = "adapter_model.safetensors"


def adapter_name(adapter_dir: Path) -> str:
    """How a page names an adapter: its job's name for ``<job>/adapter``, else its folder's."""
    adapter_dir = Path(adapter_dir)
    return adapter_dir.parent.name if adapter_dir.name == "adapter" else adapter_dir.name


def _lora_parameters(adapter_dir: Path) -> int:
    """How many numbers the adapter adds, read from its weights file's header."""
    total = 0
    with safe_open(str(adapter_dir / WEIGHTS_FILE), framework="pt") as weights:
        for name in weights.keys():  # noqa: SIM118 (safe_open is not a mapping)
            count = 1
            for size in weights.get_slice(name).get_shape():
                count *= size
            total += count
    return total


def load_adapter(base: LoadedModel, adapter_dir: Path | str, scale: float = 1.0) -> LoadedModel:
    """``base`` with the LoRA adapter in ``adapter_dir`` on, at ``scale`` (0: none of it, 1: as trained).

    The adapter is read into the base model once (``ModelLoadError`` if it
    does not fit); later views of it only switch it on.
    """
    if base.adapter is not None:
        raise InvalidInput("An adapter goes on a base model, not on another adapter.")
    if not isinstance(scale, int | float) or not 0.0 <= scale <= 1.0:
        raise InvalidInput(f"The adapter strength must be between 0 and 1; got {scale!r}.")
    adapter_dir = Path(adapter_dir).expanduser().resolve()
    if not is_adapter_dir(adapter_dir):
        raise InvalidInput(
            f"{adapter_dir} is not a LoRA adapter folder: it needs adapter_config.json and "
            f"{WEIGHTS_FILE} (weights in pickle files are not loaded)."
        )
    label = adapter_name(adapter_dir)
    ref = AdapterRef(adapter_dir, (adapter_dir / WEIGHTS_FILE).stat().st_mtime_ns, label, float(scale))
    strength = "" if scale == 1.0 else f" × {scale:g}"
    view = dataclasses.replace(
        base,
        key=ModelKey(f"{base.key.name}+{ref.slot}{strength}", base.key.dtype, base.key.device),
        display_name=f"{base.display_name} + {label}{strength}",
        n_parameters=base.n_parameters + _lora_parameters(adapter_dir),
        forward_calls=0,
        adapter=ref,
    )
    with view.using():  # reads the weights now, so a misfit is reported here, not at the first pass
        pass
    return view


def adapter_next_token_distribution(
    base: LoadedModel, adapter_dir: Path | str, prompt_ids: list[int], scale: float = 1.0
) -> NextTokenDistribution:
    """The next-token distribution after ``prompt_ids`` with the adapter on at ``scale`` (memoised)."""
    return next_token_distribution(load_adapter(base, adapter_dir, scale), prompt_ids)
