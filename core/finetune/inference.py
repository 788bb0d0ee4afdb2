"""Using a saved adapter: the base model with the LoRA switched on.

``load_adapter`` gives a ``LoadedModel`` whose model is a peft ``PeftModel``,
so every core function (next-token distributions, scoring, step-by-step
generation) works on it unchanged. The shared base model is never touched:
peft injects its layers into the model it is given, so it gets a private
copy of the base. Only safetensors weights are read, never pickles.
"""

from __future__ import annotations

import copy
from pathlib import Path

from core.distributions import DISTRIBUTION_CACHE, NextTokenDistribution
from core.errors import InvalidInput, ModelLoadError
from core.finetune.adapters import is_adapter_dir
from core.models import LoadedModel, ModelKey
from core.result_cache import ResultCache
from core.tokens import check_fits

ADAPTED_MODELS: ResultCache[LoadedModel] = ResultCache(capacity=2)  # each holds a full copy of its base


def adapter_name(adapter_dir: Path) -> str:
    """How a page names an adapter: its job's name for ``<job>/adapter``, else its folder's."""
    adapter_dir = Path(adapter_dir)
    return adapter_dir.parent.name if adapter_dir.name == "adapter" else adapter_dir.name


def _adapter_id(adapter_dir: Path) -> str:
    """The folder plus its weights' modification time: a re-trained adapter is a new one."""
    weights = adapter_dir / "adapter_model.safetensors"
    return f"{adapter_dir}@{weights.stat().st_mtime_ns}"


def load_adapter(base: LoadedModel, adapter_dir: Path | str) -> LoadedModel:
    """``base`` with the LoRA adapter in ``adapter_dir`` on (a private copy, cached)."""
    adapter_dir = Path(adapter_dir).expanduser().resolve()
    if not is_adapter_dir(adapter_dir):
        raise InvalidInput(
            f"{adapter_dir} is not a LoRA adapter folder: it needs adapter_config.json and "
            "adapter_model.safetensors (weights in pickle files are not loaded)."
        )
    key = (base.key, _adapter_id(adapter_dir))

    def load() -> LoadedModel:
        from peft import PeftModel

        with base.lock:
            private = copy.deepcopy(base.model)
        try:
            model = PeftModel.from_pretrained(private, str(adapter_dir), is_trainable=False)
        except Exception as exc:  # peft raises many types for a mismatched or broken adapter
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelLoadError(
                f"The adapter {adapter_name(adapter_dir)!r} does not fit {base.display_name}: {first}"
            ) from exc
        model.eval()
        return LoadedModel(
            key=ModelKey(f"{base.key.name}+{key[1]}", base.key.dtype, base.key.device),
            model=model,
            tokenizer=base.tokenizer,
            display_name=f"{base.display_name} + {adapter_name(adapter_dir)}",
            source=base.source,
            n_parameters=sum(p.numel() for p in model.parameters()),
            context_length=base.context_length,
        )

    return ADAPTED_MODELS.get_or_compute(key, load)


def adapter_next_token_distribution(
    base: LoadedModel, adapter_dir: Path | str, prompt_ids: list[int]
) -> NextTokenDistribution:
    """The next-token distribution after ``prompt_ids`` with the adapter on (memoised)."""
    adapted = load_adapter(base, adapter_dir)
    check_fits(adapted, len(prompt_ids))
    name = adapter_name(Path(adapter_dir))
    key = (base.key, adapted.key.name, tuple(prompt_ids))

    def compute() -> NextTokenDistribution:
        logits, _ = adapted.forward(list(prompt_ids), last_only=True)
        return NextTokenDistribution(adapted.display_name, tuple(prompt_ids), logits[-1], adapted.tokenizer, name)

    return DISTRIBUTION_CACHE.get_or_compute(key, compute)
