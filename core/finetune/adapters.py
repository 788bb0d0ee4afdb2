"""Saved LoRA adapters: writing one atomically with its model card, and the library of them.

An adapter folder holds ``adapter_config.json`` and
``adapter_model.safetensors`` (what peft loads), a ``README.md`` model card
for people, and ``training.json`` with the same facts for programs. It is
written under a temporary name and renamed into place, so a folder called
``adapter`` is always complete.

A finished job *is* a saved adapter: ``<jobs>/<name>/adapter``. Renaming or
deleting an adapter renames or deletes its job (its curve and log go with
it), and is refused while that job is still running. ``saved_adapter`` is
the one place a saved adapter's name becomes its folder, as the typed
``AdapterRef`` that travels to the model's cache key.
"""

from __future__ import annotations

import io
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.adapter_host import ADAPTER_FILES, AdapterRef, is_adapter_dir
from core.errors import InvalidInput
from core.finetune.jobs import ADAPTER_SUBDIR, jobs_root
from core.jobs.files import folder_replaced_atomically, read_json, write_json_atomic
from core.jobs.folder import read_job
from core.jobs.outputs import SavedOutput
from core.jobs.paths import child_folder


def _fmt(value: Any, spec: str = ".4f") -> str:
    return "—" if value is None else format(value, spec)


def model_card(info: dict[str, Any]) -> str:
    """A short README: what the adapter was trained on, how, and what it did to the loss."""
    hp = info["hyperparameters"]
    steps = f"{info['steps']} of {info['max_steps']}" + (" (stopped early: partial)" if info["partial"] else "")
    return f"""---
library_name: peft
base_model: {info["base_model"]}
tags: [lora, llm-lab]
---

# LoRA adapter for {info["base_model_display"]}

Trained with LLM Lab on `{info["dataset"]}` ({info["train_examples"]} training / {info["eval_examples"]} held-out
examples). The loss counted only the completion tokens; prompts were wrapped in the model's chat template
where it has one.

| | |
|---|---|
| Base model | {info["base_model_display"]} (`{info["base_model"]}`) |
| Dataset | {info["dataset"]} |
| Steps | {steps} |
| Eval loss | {_fmt(info["eval_loss_before"])} before → {_fmt(info["eval_loss_after"])} after |
| Train loss | {_fmt(info["train_loss_first"])} first step → {_fmt(info["train_loss_last"])} last step |
| LoRA | r {hp["r"]}, alpha {hp["alpha"]:g}, dropout {hp["dropout"]:g}, on {", ".join(hp["target_modules"])} |
| Optimiser | lr {hp["learning_rate"]:g}, batch {hp["batch_size"]}, max length {hp["max_length"]}, seed {hp["seed"]} |
| Precision / device | {info["precision"]} on {info["device"]} |
| Date | {info["date"]} |
| Duration | {info["seconds"]:.0f} s ({_fmt(info["train_tokens_per_second"], ",.0f")} training tokens/s) |

Load it with peft: `PeftModel.from_pretrained(base_model, "<this folder>")`.
"""


def save_adapter(model: Any, target: Path, info: dict[str, Any]) -> Path:
    """Save a peft model's adapter to ``target`` atomically, with its card and ``training.json``."""
    target = Path(target)
    with folder_replaced_atomically(target) as tmp:
        model.save_pretrained(str(tmp), safe_serialization=True)
        # Name the base as LLM Lab does ('embedded'), not by the cache folder it was loaded from.
        peft_config = read_json(tmp / "adapter_config.json")
        write_json_atomic(tmp / "adapter_config.json", {**peft_config, "base_model_name_or_path": info["base_model"]})
        (tmp / "README.md").write_text(model_card(info), encoding="utf-8")  # replaces peft's template card
        write_json_atomic(tmp / "training.json", info)
    return target


def saved_adapter(name: str, scale: float = 1.0, root: Path | None = None) -> AdapterRef:
    """The adapter saved under ``name`` (its job's name), at strength ``scale``."""
    job_dir = child_folder(root or jobs_root(), name, "adapter name")
    if not is_adapter_dir(job_dir / ADAPTER_SUBDIR):
        raise InvalidInput(f"There is no saved adapter called {job_dir.name!r}: it may have been renamed or deleted.")
    return AdapterRef.at(job_dir / ADAPTER_SUBDIR, job_dir.name, scale)


def resolve_adapter(spec: str | Path, root: Path | None = None) -> AdapterRef:
    """The adapter meant by ``spec`` on the command line: an adapter folder, a job folder, or a saved name."""
    path = Path(spec).expanduser()
    if is_adapter_dir(path):  # an adapter folder; a job's own is named after its job
        resolved = path.resolve()
        return AdapterRef.at(path, resolved.parent.name if resolved.name == ADAPTER_SUBDIR else resolved.name)
    if is_adapter_dir(path / ADAPTER_SUBDIR):  # a job folder
        return AdapterRef.at(path / ADAPTER_SUBDIR, path.resolve().name)
    if path.exists():
        raise InvalidInput(
            f"{spec} holds no LoRA adapter: it needs {' and '.join(ADAPTER_FILES)} "
            f"(or an {ADAPTER_SUBDIR}/ folder with them)."
        )
    if len(path.parts) > 1 or str(spec).startswith((".", "~")):
        raise InvalidInput(f"There is no adapter folder at {spec}: check the path, or give a saved adapter's name.")
    _existing_job(str(spec), root)
    return saved_adapter(str(spec), root=root)


@dataclass(frozen=True)
class AdapterInfo(SavedOutput):
    """A saved adapter as the adapters list shows it: ``path`` is the adapter folder, inside its job's.

    Its training.json holds the base model, dataset, losses, hyperparameters and date.
    """

    job_dir: Path

    def ref(self, scale: float = 1.0) -> AdapterRef:
        return AdapterRef.at(self.path, self.name, scale)


def list_adapters(root: Path | None = None) -> list[AdapterInfo]:
    """Every saved adapter under ``root``, newest first."""
    root = root or jobs_root()
    if not root.is_dir():
        return []
    found = []
    for job_dir in root.iterdir():
        adapter = job_dir / ADAPTER_SUBDIR
        if job_dir.name.startswith(".") or not is_adapter_dir(adapter):
            continue
        found.append(AdapterInfo.read(job_dir.name, adapter, job_dir=job_dir))
    return sorted(found, key=lambda a: (a.path / "adapter_model.safetensors").stat().st_mtime, reverse=True)


def _existing_job(name: str, root: Path | None) -> Path:
    job_dir = child_folder(root or jobs_root(), name, "adapter name")
    if not job_dir.is_dir():
        raise InvalidInput(f"There is no adapter called {name!r}.")
    if (job_dir / "status.json").is_file() and read_job(job_dir, with_metrics=False).active:
        raise InvalidInput(f"{name!r} is still training: cancel it or wait for it to finish first.")
    return job_dir


def rename_adapter(name: str, new_name: str, root: Path | None = None) -> Path:
    """Rename an adapter (and its job); returns the new adapter folder."""
    job_dir = _existing_job(name, root)
    target = child_folder(job_dir.parent, new_name, "new name")
    if target.exists():
        raise InvalidInput(f"An adapter called {target.name!r} already exists: choose another name.")
    job_dir.rename(target)
    return target / ADAPTER_SUBDIR


def delete_adapter(name: str, root: Path | None = None) -> None:
    """Delete an adapter and its job folder."""
    shutil.rmtree(_existing_job(name, root))


def zip_adapter(name: str, root: Path | None = None) -> bytes:
    """The adapter's files as a zip (``<name>/adapter_config.json`` ...), ready for a download button."""
    adapter = saved_adapter(name, root=root).folder
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(adapter.iterdir()):
            if file.is_file():
                archive.write(file, f"{name}/{file.name}")
    return buffer.getvalue()
