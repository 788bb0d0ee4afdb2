"""How close each engine's next-token distributions are to llama.cpp's own, on the same texts.

The rule of issue 16: the default path agrees with llama.cpp on every
next-token distribution: the same top-1 token, top-10 lists overlapping by
at least 9, no probability more than 0.05 apart. The reference is llama.cpp
with its own default settings (flash attention "auto", which is on for a
CPU) reading each text in one pass; the texts are 4 plain prompts and 4 chat
prompts, each followed by the reference's own greedy continuation, and every
position after the prompt counts. Two more rows show how far llama.cpp moves
from itself: with flash attention off (llama-cpp-python's ``Llama`` default),
reading the text in one pass, and a token at a time as it generates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from core.bench.engines import OPTIONS
from core.embedded import EMBEDDED_MODEL
from core.engine.llamacpp import llamacpp_missing
from core.models import LLAMACPP, TORCH, gguf_file, load_model, why_not_llamacpp
from core.tokens import encode_prompt

PROMPTS = (
    (False, "The capital of France is"),
    (False, "Once upon a time, in a small village by the sea,"),
    (False, 'def fibonacci(n):\n    """Return the n-th Fibonacci number."""\n'),
    (False, "Photosynthesis is the process by which plants"),
    (True, "What is the boiling point of water at sea level?"),
    (True, "Write a haiku about autumn leaves."),
    (True, "Explain in two sentences why the sky is blue."),
    (True, "Translate 'good morning' into French and Spanish."),
)
RULE_TOP = 10
RULE_OVERLAP = 0.9
RULE_MAX_DP = 0.05


@dataclass(frozen=True)
class Agreement:
    """One option's distributions against llama.cpp's, over every position measured."""

    runs_on: str
    engine: str
    dtype: str
    positions: int
    top1_same: float  # fraction of positions whose most likely token is llama.cpp's
    top10_overlap_min: float  # the worst position's share of llama.cpp's top 10 among its own top 10
    max_abs_dp: float  # the largest |p - p_llama.cpp| of any token at any position
    within_rule: float  # fraction of positions meeting all three parts of the rule


def agreement_with_llamacpp(model: str = EMBEDDED_MODEL, continuation: int = 16) -> list[Agreement] | str:
    """Each option's ``Agreement``, or the sentence saying why llama.cpp cannot be the reference."""
    why = why_not_llamacpp(model, "cpu")
    if why:
        return why
    import llama_cpp

    base = load_model(model, "float32", "cpu", engine=TORCH)
    path = str(gguf_file(model))
    llm = llama_cpp.Llama(model_path=path, n_ctx=1024, logits_all=True, flash_attn=True, verbose=False)
    off = llama_cpp.Llama(model_path=path, n_ctx=1024, logits_all=True, verbose=False)
    texts, starts, reference, off_pass, off_steps = [], [], [], [], []
    for chat, prompt in PROMPTS:
        ids = encode_prompt(base, prompt, chat=chat).ids
        start = len(ids) - 1
        llm.reset()
        llm.eval(ids)
        for _ in range(continuation):  # llama.cpp's own greedy continuation
            ids = [*ids, int(np.argmax(llm.scores[len(ids) - 1]))]
            llm.eval(ids[-1:])
        texts.append(ids)
        starts.append(start)
        reference.append(_rows(llm, ids, start, 0))
        off_pass.append(_rows(off, ids, start, 0))
        off_steps.append(_rows(off, ids, start, 1))
    rows_out = [
        _agreement("llama.cpp, flash attention off, one pass", LLAMACPP, "", off_pass, reference),
        _agreement("llama.cpp, flash attention off, a token at a time", LLAMACPP, "", off_steps, reference),
    ]
    for engine, dtype in OPTIONS:
        if engine == LLAMACPP and llamacpp_missing():
            continue
        lm = load_model(model, dtype, "cpu", engine=engine)
        ours = [lm.forward(ids)[0][start : len(ids) - 1] for ids, start in zip(texts, starts, strict=True)]
        rows_out.append(_agreement(lm.runs_on, engine, dtype, ours, reference))
    return rows_out


def _rows(llm: Any, ids: list[int], start: int, step: int) -> torch.Tensor:
    """Logits from position ``start`` to the last but one; ``ids`` read in one pass (step 0) or step at a time."""
    llm.reset()
    for first in range(0, len(ids), step or len(ids)):
        llm.eval(ids[first : first + (step or len(ids))])
    return torch.from_numpy(np.array(llm.scores[start : len(ids) - 1]))


def _agreement(
    runs_on: str, engine: str, dtype: str, ours: list[torch.Tensor], theirs: list[torch.Tensor]
) -> Agreement:
    p = torch.softmax(torch.cat(ours).double(), dim=-1)
    q = torch.softmax(torch.cat(theirs).double(), dim=-1)
    top1 = p.argmax(-1) == q.argmax(-1)
    mine, reference = torch.topk(p, RULE_TOP).indices, torch.topk(q, RULE_TOP).indices
    overlap = (mine[:, :, None] == reference[:, None, :]).any(-1).double().mean(-1)
    dp = (p - q).abs().max(-1).values
    within = top1 & (overlap >= RULE_OVERLAP) & (dp <= RULE_MAX_DP)
    return Agreement(
        runs_on,
        engine,
        dtype,
        positions=int(p.shape[0]),
        top1_same=float(top1.double().mean()),
        top10_overlap_min=float(overlap.min()),
        max_abs_dp=float(dp.max()),
        within_rule=float(within.double().mean()),
    )
