"""Real LoRA adapters saved in job folders, for tests that need one without training it."""

from __future__ import annotations

import torch

from core.datasets import load_dataset
from core.finetune import FinetuneConfig, jobs_root
from core.finetune.adapters import save_adapter
from core.finetune.jobs import ADAPTER_SUBDIR, create_job
from core.jobs.folder import JobFolder
from core.models import LoadedModel, _load_uncached


def saved_adapter_job(lm: LoadedModel, name: str, random_weights: bool = False, seed: int = 0) -> JobFolder:
    """A finished job called ``name`` holding a LoRA adapter for ``lm``.

    peft starts LoRA with B = 0, so a fresh adapter changes nothing;
    ``random_weights`` draws B too (from ``seed``), so the adapter visibly
    changes the model's distributions.
    """
    from peft import LoraConfig, get_peft_model

    folder = create_job(FinetuneConfig(), jobs_root() / name, load_dataset("sentiment"))
    folder.update_status(status="done", phase="finished")
    torch.manual_seed(seed)
    lora = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=not random_weights)
    # A fresh copy of the base: the shared one may already carry other adapters' layers.
    model = get_peft_model(_load_uncached(lm.key).model, lora)
    info = {
        "base_model": "embedded",
        "base_model_display": lm.display_name,
        "dataset": "sentiment",
        "train_examples": 100,
        "eval_examples": 24,
        "hyperparameters": FinetuneConfig().to_json(),
        "steps": 0,
        "max_steps": 40,
        "partial": True,
        "train_loss_first": None,
        "train_loss_last": None,
        "eval_loss_before": 2.0,
        "eval_loss_after": None,
        "train_tokens_per_second": None,
        "precision": "float32",
        "device": "cpu",
        "date": "2025-01-01 00:00 UTC",
        "seconds": 1.0,
    }
    save_adapter(model, folder.path / ADAPTER_SUBDIR, info)
    return folder
