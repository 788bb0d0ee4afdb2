"""Adapter switching benchmark: views of one base model against plain peft, in one run.

The compare page asks the base model and several adapters in turn. LLM Lab
keeps one base model and switches adapters on it per forward pass
(``core.adapter_host``). Measured here, all medians in this one process:

1. the base model's forward with adapters injected but switched off, against
   a raw forward of a base model that never saw peft (the cost of the
   switched-off LoRA layers);
2. an adapter view's forward, against a plain ``PeftModel.from_pretrained``
   on a private copy of the base (the way the peft docs load an adapter);
3. alternating base / adapter / second adapter passes (what a comparison
   does), against the same number of passes on one plain model;
4. the memory each extra adapter costs: the adapter's own weights here,
   against a full copy of the base per adapter the plain way.

Usage: ``.venv/bin/python bench/adapters_bench.py [--repeats 9] [--json]``
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import torch  # noqa: E402

from core.bench.single import BENCH_PROMPT  # noqa: E402
from core.bench.timing import median_seconds  # noqa: E402
from core.finetune.adapters import resolve_adapter  # noqa: E402
from core.models import LoadedModel, ModelKey, _load_uncached  # noqa: E402


def _random_adapter(lm: LoadedModel, folder: Path, seed: int) -> Path:
    """A LoRA on q/v with random weights (both matrices), saved with safetensors."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    lora = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(copy.deepcopy(lm.model), lora).save_pretrained(str(folder))
    return folder


def _mb(tensors: Any) -> float:
    return sum(t.numel() * t.element_size() for t in tensors) / 2**20


def run(repeats: int) -> dict[str, Any]:
    from peft import PeftModel

    plain_base = _load_uncached(ModelKey("embedded"))  # never touched by peft
    shared = _load_uncached(ModelKey("embedded"))  # the one LLM Lab puts adapters on
    ids = shared.tokenizer(BENCH_PROMPT)["input_ids"]
    tensor = torch.tensor([ids])

    def raw(model: Any) -> Callable[[], None]:
        def forward() -> None:
            with torch.inference_mode():
                model(input_ids=tensor)

        return forward

    with tempfile.TemporaryDirectory(prefix="llm-lab-bench-") as tmp:
        first = _random_adapter(plain_base, Path(tmp) / "a", 1)
        second = _random_adapter(plain_base, Path(tmp) / "b", 2)
        views = [shared.with_adapter(resolve_adapter(first)), shared.with_adapter(resolve_adapter(second))]
        plain_peft = PeftModel.from_pretrained(copy.deepcopy(plain_base.model), str(first)).eval()

        raw_base_s = median_seconds(raw(plain_base.model), repeats)
        our_base_s = median_seconds(lambda: shared.forward(ids), repeats)
        plain_peft_s = median_seconds(raw(plain_peft), repeats)
        our_view_s = median_seconds(lambda: views[0].forward(ids), repeats)

        def alternating() -> None:
            for model in (shared, views[0], views[1]):
                model.forward(ids)

        def same_model_three_times() -> None:
            for _ in range(3):
                raw(plain_peft)()

        alternating_s = median_seconds(alternating, repeats)
        same_s = median_seconds(same_model_three_times, repeats)
        adapter_mb = _mb(p for n, p in plain_peft.named_parameters() if "lora_" in n)
        base_mb = _mb(plain_base.model.parameters())
    return {
        "torch_threads": torch.get_num_threads(),
        "prompt_tokens": len(ids),
        "raw_base_forward_s": raw_base_s,
        "base_with_adapters_off_s": our_base_s,
        "base_overhead_ratio": our_base_s / raw_base_s,
        "plain_peft_forward_s": plain_peft_s,
        "adapter_view_forward_s": our_view_s,
        "adapter_view_ratio": our_view_s / plain_peft_s,
        "alternating_three_s": alternating_s,
        "plain_peft_three_s": same_s,
        "alternating_ratio": alternating_s / same_s,
        "memory_per_adapter_mb": adapter_mb,
        "memory_per_adapter_plain_mb": base_mb + adapter_mb,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    report = run(args.repeats)
    if args.json:
        print(json.dumps(report))
        return
    print(f"{report['prompt_tokens']}-token prompt, {report['torch_threads']} threads, medians of {args.repeats}:")
    print(
        f"  base, adapters off  {report['base_with_adapters_off_s']:.3f} s vs raw forward "
        f"{report['raw_base_forward_s']:.3f} s   ratio {report['base_overhead_ratio']:.2f}"
    )
    print(
        f"  adapter view        {report['adapter_view_forward_s']:.3f} s vs plain peft "
        f"{report['plain_peft_forward_s']:.3f} s   ratio {report['adapter_view_ratio']:.2f}"
    )
    print(
        f"  base/a/b in turn    {report['alternating_three_s']:.3f} s vs 3 plain peft passes "
        f"{report['plain_peft_three_s']:.3f} s   ratio {report['alternating_ratio']:.2f}"
    )
    print(
        f"  memory per adapter  {report['memory_per_adapter_mb']:.1f} MB vs "
        f"{report['memory_per_adapter_plain_mb']:.0f} MB with a copy of the base each"
    )


if __name__ == "__main__":
    main()
