"""Saved tiny models: writing one atomically with its model card, and the library of them.

A saved tiny model is a plain transformers folder (``config.json``,
``model.safetensors``, ``generation_config.json``, the tokenizer's files)
plus a ``README.md`` model card for people and ``training.json`` with the
same facts for programs. Any tool loads it with
``AutoModelForCausalLM.from_pretrained(folder)``; LLM Lab with
``load_model(folder)`` or ``--model folder``. It is written under a
temporary name and renamed into place, so a model folder is always complete.

Models started from the page live in ``<data>/pretrain/models/<name>/`` (the
folder's name is the name the explorer shows); the job that trained one
lives in ``<data>/pretrain/jobs/<name>/``.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import InvalidInput
from core.jobs.files import folder_replaced_atomically, write_json_atomic
from core.jobs.folder import JobKind, read_job
from core.jobs.outputs import SavedOutput
from core.jobs.paths import child_folder, data_root
from core.pretrain.sizes import scientific

PRETRAIN = JobKind("pretrain", "pretraining", ("pretrain",))

MODEL_FILES = ("config.json", "model.safetensors", "tokenizer.json")


def pretrain_root() -> Path:
    return data_root() / "pretrain"


def models_root() -> Path:
    """The folder holding one sub-folder per saved tiny model."""
    return pretrain_root() / "models"


def jobs_root() -> Path:
    """The folder holding one sub-folder per pretraining job."""
    return pretrain_root() / "jobs"


def _fmt(value: Any, spec: str = ".3f") -> str:
    return "—" if value is None else format(value, spec)


def model_card(name: str, info: dict[str, Any]) -> str:
    """A short README: what the model read, its shape, and what training did to its loss."""
    size = info["size"]
    training = info["training"]
    steps = f"{info['steps']} of {info['max_steps']}" + (" (stopped early: partial)" if info["partial"] else "")
    samples = info.get("samples") or []
    last_sample = samples[-1]["prompt"] + samples[-1]["text"] if samples else ""
    return f"""---
library_name: transformers
tags: [llm-lab, pretrained-from-scratch, tiny]
---

# {name}: a tiny Llama pretrained from scratch with LLM Lab

{info["parameters"]:,} parameters, trained from random weights on `{info["corpus"]}`
({info["corpus_characters"]:,} characters, {info["corpus_tokens"]:,} tokens) with no labels but the text itself:
every position was asked to predict the next token.

| | |
|---|---|
| Architecture | LlamaForCausalLM: {size["layers"]} layers, width {size["d_model"]}, {size["heads"]} heads |
| Context | {size["context"]} tokens |
| Tokenizer | {info["tokenizer"]} ({info["vocabulary"]:,} tokens) |
| Steps | {steps} |
| Optimiser | AdamW, batch {training["batch_size"]}, learning rate {training["learning_rate"]:g} |
| Seed | {training["seed"]} |
| Training loss | {_fmt(info["loss_first"])} first step → {_fmt(info["loss_last"])} last step |
| Held-out loss | {_fmt(info["eval_loss_before"])} before → {_fmt(info["eval_loss_after"])} after |
| Tokens seen | {info["tokens_seen"]:,} ({info["tokens_seen"] / info["parameters"]:.2f} per parameter) |
| Compute | about {scientific(info["training_flops"], 1)} FLOPs (6 × parameters × tokens) |
| Device | {info["device"]}, {info.get("seconds", 0):.0f} s |
| Date | {info["date"]} |

Its last sample, at temperature 0.8:

```
{last_sample}
```

Load it with transformers: `AutoModelForCausalLM.from_pretrained("<this folder>")`.
"""


def save_tiny_model(model: Any, tokenizer: Any, target: Path, info: dict[str, Any]) -> Path:
    """Save model and tokenizer to ``target`` atomically (safetensors), with the card and ``training.json``."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with folder_replaced_atomically(target) as tmp:
        model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        (tmp / "README.md").write_text(model_card(target.name, info), encoding="utf-8")
        write_json_atomic(tmp / "training.json", info)
    return target


def is_tiny_model_dir(path: Path) -> bool:
    return all((Path(path) / f).is_file() for f in MODEL_FILES)


@dataclass(frozen=True)
class TinyModelInfo(SavedOutput):
    """A saved tiny model as the library lists it: ``path`` is what load_model and --model take.

    Its training.json holds the corpus, size, losses and samples.
    """

    @property
    def parameters(self) -> int | None:
        return self.training.get("parameters")


def list_tiny_models(root: Path | None = None) -> list[TinyModelInfo]:
    """Every saved tiny model under ``root``, newest first."""
    root = root or models_root()
    if not root.is_dir():
        return []
    found = [
        TinyModelInfo.read(p.name, p) for p in root.iterdir() if not p.name.startswith(".") and is_tiny_model_dir(p)
    ]
    return sorted(found, key=lambda m: (m.path / "model.safetensors").stat().st_mtime, reverse=True)


def delete_tiny_model(name: str) -> None:
    """Delete a saved tiny model and the job that trained it (refused while that job runs)."""
    model_dir = child_folder(models_root(), name, "model name")
    job_dir = child_folder(jobs_root(), name, "model name")
    if not model_dir.is_dir():
        raise InvalidInput(f"There is no saved tiny model called {name!r}.")
    if (job_dir / "status.json").is_file() and read_job(job_dir, with_metrics=False).active:
        raise InvalidInput(f"{name!r} is still training: cancel it or wait for it to finish first.")
    shutil.rmtree(model_dir)
    shutil.rmtree(job_dir, ignore_errors=True)
