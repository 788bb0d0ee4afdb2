"""How the requests waiting for one model are cut into batches.

Rows of a batch are padded to the longest: a prompt of 60 tokens beside one
of 6 wastes 54 columns, but another pass reads every weight again, so
prompts are cut where the padding would cost more than that pass (a cost
model, ``Limits``); decode steps (one new token each) gain the most from
batching, so their pasts may differ more. A batch holds one
adapter setting, or several LoRA adapters mixed row by row (peft's
``adapter_names``) as long as each adapter appears at one strength and the
model's adapter host can hold them all at once.
"""

from __future__ import annotations

import time
from collections.abc import Hashable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from core.engine.kv import KVHandle


@dataclass(eq=False)
class Request:
    """One forward pass asked for: new ``ids`` after ``past``, with ``adapter`` on (None: the base model)."""

    ids: list[int]
    past: KVHandle | None
    last_only: bool
    adapter: Any  # an AdapterRef, or None
    future: Future = field(default_factory=Future)
    arrived: float = field(default_factory=time.perf_counter)
    seq: int = 0

    @property
    def q(self) -> int:
        return len(self.ids)

    @property
    def p(self) -> int:
        return self.past.length if self.past is not None else 0

    @property
    def setting(self) -> Hashable:
        return None if self.adapter is None else (self.adapter.slot, float(self.adapter.scale))

    @property
    def slot(self) -> str | None:
        return None if self.adapter is None else self.adapter.slot


@dataclass(frozen=True)
class Limits:
    """How big and how padded a batch may be.

    ``max_kv_tokens`` bounds a slab's memory (rows x columns x the model's
    bytes per token). New tokens are cut at the least cost (``_chunks``): a
    padded column costs what a real one does, and every extra pass costs
    ``pass_cost_tokens`` columns more. Measured on the 2-core machine (the
    embedded model, prompts of 20 tokens): 1, 4, 8 and 30 rows took 0.18,
    0.30, 0.44 and 1.49 s, ~2.4 ms a column in a big batch and ~0.15 s more
    for each pass of a few rows (the weights read again, small matrix
    products far from the arithmetic's peak). The old rule, padding within
    10 %, cut a class's 30 openings (17-23 tokens) into three passes where one
    was cheaper. Cached tokens cost only attention, so their padding is
    bounded loosely instead (``waste_kv``, ``slack_kv``): decode rows batch well.
    """

    max_rows: int = 64
    max_q_tokens: int = 4096
    max_kv_tokens: int = 8192
    pass_cost_tokens: int = 64
    waste_kv: float = 1.5
    slack_kv: int = 512
    adapters_at_once: int = 4  # the adapter host's capacity: a batch never needs more
    pack_new_tokens: int = 256  # a packed pass (see ``packed``) reads at most this many new tokens ...
    pack_past_tokens: int = 1024  # ... and copies at most this many cached ones into its row


def plan(requests: list[Request], limits: Limits, mix_adapters: bool = True) -> list[list[Request]]:
    """Cut the waiting requests into batches, the batch holding the oldest request first."""
    by_setting: dict[Hashable, list[Request]] = {}
    for r in sorted(requests, key=lambda r: r.seq):
        by_setting.setdefault(r.setting, []).append(r)
    if mix_adapters:
        open_pools: list[tuple[set[str], list[Request]]] = []
        for reqs in by_setting.values():
            slot = reqs[0].slot
            for slots, pool in open_pools:
                if slot is None or (slot not in slots and len(slots) < limits.adapters_at_once):
                    if slot is not None:
                        slots.add(slot)
                    pool.extend(reqs)
                    break
            else:
                open_pools.append(({slot} if slot else set(), list(reqs)))
        pools = [pool for _, pool in open_pools]
    else:
        pools = list(by_setting.values())
    batches = [chunk for pool in pools for chunk in _chunks(pool, limits)]
    batches.sort(key=lambda b: min(r.seq for r in b))
    return batches


def packed(batches: list[list[Request]], limits: Limits) -> list[Request] | None:
    """Decode steps and prompts waiting at once, as one packed pass; None when there is nothing to pack.

    Padded into one batch, a one-token step beside a 20-token prompt would pay
    for 20 columns; run apart, the steps wait for the prompts' pass, and each
    pass reads every weight again. Packed, the requests' new tokens sit one
    after another in a single row, each attending only to its own past and to
    itself (a block mask), so a class's Generate steps and new prompts share
    one pass. Only with one adapter setting (one row cannot mix adapters) and
    while the pasts copied into the row stay small; the oldest batch always
    goes in whole, so no request is overtaken.
    """
    oldest = batches[0]
    setting = oldest[0].setting
    if any(r.setting != setting for r in oldest):
        return None
    chosen: list[Request] = []
    new = past = 0
    for batch in batches:
        for r in batch:
            fits = new + r.q <= limits.pack_new_tokens and past + r.p <= limits.pack_past_tokens
            if r.setting == setting and fits:
                chosen.append(r)
                new, past = new + r.q, past + r.p
            elif batch is oldest:
                return None
    steps = any(r.q == 1 and r.p for r in chosen)
    if not steps or all(r.q == 1 for r in chosen):
        return None
    return chosen


def _chunks(reqs: list[Request], limits: Limits) -> list[list[Request]]:
    """The cut by shape with the least cost: padded new-token columns plus ``pass_cost_tokens`` a pass.

    Sorted by new tokens (then pasts), longest first, so each batch is a run
    of neighbours whose longest row sets its width; a dynamic programme over
    where the runs end finds the cheapest cut within the hard limits (rows,
    slab size, padding of the pasts). A lone request is always a batch.
    """
    rows = sorted(reqs, key=lambda r: (r.q, r.p), reverse=True)
    m = len(rows)
    best = [0] * (m + 1)  # best[i]: the least cost of rows[i:]
    end = [m] * (m + 1)  # ... whose first batch is rows[i:end[i]]
    for i in range(m - 1, -1, -1):
        best[i] = -1
        q, p_max, real_kv = rows[i].q, 0, 0
        for j in range(i, m):
            n = j - i + 1
            p_max, real_kv = max(p_max, rows[j].p), real_kv + rows[j].p + rows[j].q
            if n > 1 and (n > limits.max_rows or n * q > limits.max_q_tokens or n * (p_max + q) > limits.max_kv_tokens):
                break
            if n > 1 and n * (p_max + q) > limits.waste_kv * real_kv + limits.slack_kv:
                continue
            cost = limits.pass_cost_tokens + n * q + best[j + 1]
            if best[i] < 0 or cost < best[i]:
                best[i], end[i] = cost, j + 1
    chunks, i = [], 0
    while i < m:
        chunks.append(rows[i : end[i]])
        i = end[i]
    return chunks
