"""LoRA adapters living on one shared base model, switched on per call.

A page that compares a base model with three adapters must not hold four
copies of the base (540 MB each for SmolLM2 in float32). peft can inject
several adapters into one model and choose, per forward pass, which one is
active, at what strength, or none. That choice is state on the shared
model, so it is made inside the model's lock, right before each pass
(``LoadedModel.using``): a session asking for the base model can never run
with another session's adapter on.

The base model itself is wrapped only once the first adapter is asked for;
until then nothing here touches it. peft is imported only then, too.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import InvalidInput, ModelLoadError

MAX_ADAPTERS_IN_MEMORY = int(os.environ.get("LLM_LAB_MAX_ADAPTERS", "4"))  # per base model; a LoRA is a few MB


ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")  # what peft loads; never pickles


def is_adapter_dir(path: Path) -> bool:
    return all((Path(path) / f).is_file() for f in ADAPTER_FILES)


@dataclass(frozen=True)
class AdapterRef:
    """Which adapter a view of the base model runs with, and how strongly: an adapter's identity.

    It travels unchanged from the page that chose it to the caches' keys
    (``ModelKey.adapter``). ``version`` tells a re-trained adapter in the same
    folder from the old one (the weights' modification time). ``scale``
    multiplies the LoRA update: 0 is the base model exactly, 1 the adapter as
    trained. ``label`` is how people name it (a saved adapter's name).
    """

    folder: Path
    version: int
    label: str
    scale: float = 1.0

    @classmethod
    def at(cls, folder: Path | str, label: str, scale: float = 1.0) -> AdapterRef:
        """The adapter saved in ``folder``, checked to be one, at strength ``scale``."""
        folder = Path(folder).expanduser().resolve()
        if not is_adapter_dir(folder):
            raise InvalidInput(
                f"{label!r} is not a LoRA adapter folder: it needs {' and '.join(ADAPTER_FILES)} "
                "(weights in pickle files are not loaded)."
            )
        return cls(folder, (folder / ADAPTER_FILES[1]).stat().st_mtime_ns, label).scaled(scale)

    def scaled(self, scale: float) -> AdapterRef:
        """The same adapter at another strength."""
        if isinstance(scale, bool) or not isinstance(scale, int | float) or not 0.0 <= scale <= 1.0:
            raise InvalidInput(f"The adapter strength must be between 0 and 1; got {scale!r}.")
        return dataclasses.replace(self, scale=float(scale))

    @property
    def title(self) -> str:
        """The label, with the strength when it is not 1."""
        return self.label if self.scale == 1.0 else f"{self.label} × {self.scale:g}"

    @property
    def slot(self) -> str:
        """The name peft knows this adapter by (module dict keys may not contain dots)."""
        return "lab_" + hashlib.sha1(f"{self.folder}@{self.version}".encode()).hexdigest()[:16]

    def parameters(self) -> int:
        """How many numbers the adapter adds, read from its weights file's header."""
        from safetensors import safe_open

        total = 0
        with safe_open(str(self.folder / ADAPTER_FILES[1]), framework="pt") as weights:
            for name in weights.keys():  # noqa: SIM118 (safe_open is not a mapping)
                count = 1
                for size in weights.get_slice(name).get_shape():
                    count *= size
                total += count
        return total


@dataclass(eq=False)
class AdapterHost:
    """The adapters injected into one base model, least recently used first.

    Only ``LoadedModel.using`` calls ``apply``, with the model's lock held.
    """

    capacity: int = MAX_ADAPTERS_IN_MEMORY
    peft_model: Any = None
    slots: OrderedDict[str, AdapterRef] = field(default_factory=OrderedDict)
    loads: int = 0  # adapters read from disk so far (tests check that switching does not reload)

    def apply(self, model: Any, adapter: AdapterRef | None) -> None:
        """Make the next pass over ``model`` run with ``adapter`` on (or none)."""
        if adapter is None:
            if self.peft_model is not None:
                self.peft_model.base_model.disable_adapter_layers()
            return
        if adapter.slot not in self.slots:
            self._load(model, adapter)
        self.slots.move_to_end(adapter.slot)
        while len(self.slots) > self.capacity:  # the least recently used leave; the one asked for stays
            self._forget(next(iter(self.slots)))
        tuner = self.peft_model.base_model
        tuner.enable_adapter_layers()
        tuner.set_adapter(adapter.slot, inference_mode=True)
        for module in tuner.model.modules():
            if hasattr(module, "set_scale") and adapter.slot in getattr(module, "scaling", {}):
                module.set_scale(adapter.slot, adapter.scale)

    def _load(self, model: Any, adapter: AdapterRef) -> None:
        from peft import LoraConfig, PeftModel

        try:
            if self.peft_model is None:
                config = LoraConfig.from_pretrained(str(adapter.folder))
                config.inference_mode = True
                # Kept before the weights load, so a failure below can still be switched off.
                self.peft_model = PeftModel(model, config, adapter_name=adapter.slot)
            self.peft_model.load_adapter(str(adapter.folder), adapter_name=adapter.slot, is_trainable=False)
        except Exception as exc:  # peft raises many types for a mismatched or broken adapter
            self._forget(adapter.slot)
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelLoadError(f"The adapter {adapter.label!r} does not fit this model: {first}") from exc
        self.peft_model.eval()
        self.loads += 1
        self.slots[adapter.slot] = adapter

    def _forget(self, slot: str) -> None:
        """Take ``slot``'s layers out of the model (a half-loaded adapter too)."""
        self.slots.pop(slot, None)
        if self.peft_model is None or slot not in self.peft_model.peft_config:
            return
        if len(self.peft_model.peft_config) == 1:  # peft cannot delete its last adapter: switch it off instead
            self.peft_model.base_model.disable_adapter_layers()
            return
        with warnings.catch_warnings():  # "was active, now deleted": the next pass sets its own adapter anyway
            warnings.simplefilter("ignore", UserWarning)
            self.peft_model.delete_adapter(slot)
