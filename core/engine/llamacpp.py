"""llama.cpp in this process: a GGUF model's full-vocabulary logits, behind the batching engine's interface.

On a CPU, generating a token reads every weight once, so speed is bytes:
the float32 model reads 540 MB a token, llama.cpp's 4-bit GGUF about 90 MB,
with kernels made for it (measured on the 2-core machine: about 4x torch's
tokens/s). llama-cpp-python exposes llama.cpp's C API, whose logits are the
whole vocabulary's, so the explorer, generation and scoring keep every
number they show; they only come from another engine.

``LlamaCppEngine`` answers ``forward(ids, past, last_only)`` like
``core.engine.worker.Engine``: a worker thread takes every request waiting
and runs them as one ``llama_decode`` (one row per new token, each request
its own sequence in one context), so a class's decode steps share a pass.
Keys and values live inside llama.cpp's context, in *slots* (sequence ids),
each remembering the tokens it holds. A caller's cache is a ``LlamaHandle``:
just the token ids, immutable, so it never goes stale: a pass continues the
slot sharing the longest prefix with its text (cut back to that prefix), and
re-reads from the start only if no slot has it any more. A slot's tokens
that need logits (every position, for scoring) are always decoded again,
since llama.cpp keeps no logits for a prefix.

The context keeps llama.cpp's own defaults (flash attention on for a CPU,
f16 keys and values) but computes at most ``UBATCH`` rows at a time, so its
numbers are llama.cpp's (``llama_cpp.Llama(flash_attn=True, n_ubatch=32)``
gives the same bits, ``tests/test_llamacpp.py``) and the same whether a text
is read in one pass, a token at a time, or beside other sessions' texts.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.engine.queue import PassQueue

SLOTS = int(os.environ.get("LLM_LAB_LLAMACPP_SLOTS", "32"))  # sequences in the context: a class's streams
CONTEXT = int(os.environ.get("LLM_LAB_LLAMACPP_CTX", "8192"))  # key/value cells shared by every slot
BATCH = 256  # tokens per llama_decode; also bounds the logits buffer (256 x vocabulary floats)
# Rows per step of the computation. From 64 rows on, llama.cpp's CPU matrix products take another path (measured:
# logits up to 1.3 apart), so a token's numbers would depend on how many other tokens, of its text or of other
# sessions, shared its pass. Below 64 they are the same bits however a text is split or batched.
UBATCH = 32
IDLE_STOP_S = 30.0  # the worker thread stops after this long without requests
WAVE_WAIT_S = 0.01  # how long a round waits for the rest of the last round's streams to come back


def llamacpp_missing() -> str | None:
    """Why llama.cpp cannot run in this process (None when it can): the sentence a page or the CLI shows."""
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return (
            "llama-cpp-python is not installed (pip install -r requirements-llamacpp.txt; it compiles llama.cpp, "
            "a few minutes once)."
        )
    return None


@dataclass(frozen=True, eq=False)
class LlamaHandle:
    """A cache from this engine: the token ids read so far (their keys and values sit in a slot, while it lasts)."""

    ids: tuple[int, ...]


@dataclass(eq=False)
class _Slot:
    seq: int  # llama.cpp's sequence id
    ids: list[int] = field(default_factory=list)  # the tokens whose keys and values it holds, from position 0
    used: float = 0.0


@dataclass(eq=False)
class _Request:
    ids: list[int]  # everything the logits depend on: the past's ids, then the new ones
    new: int  # how many of ``ids`` are new (those get logits unless last_only)
    last_only: bool
    future: Future = field(default_factory=Future)

    @property
    def first_output(self) -> int:
        """The first position whose logits the caller wants."""
        return len(self.ids) - 1 if self.last_only else len(self.ids) - self.new


@dataclass
class LlamaCppStats:
    """What the engine did, for benchmarks and tests."""

    rounds: int = 0
    requests: int = 0
    decoded_tokens: int = 0  # tokens run through the model
    reused_tokens: int = 0  # tokens a slot already held
    seconds_decode: float = 0.0


class LlamaCppEngine(PassQueue[_Request, LlamaHandle]):
    """One GGUF model and one llama.cpp context, shared by every session; passes batched by a worker thread."""

    worker_name = "llm-lab-llamacpp"
    idle_stop_s = IDLE_STOP_S

    def __init__(self, gguf: Path, threads: int, slots: int = SLOTS, context: int = CONTEXT) -> None:
        import llama_cpp

        super().__init__()
        logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)  # llama.cpp's loading chatter, on stderr
        llama_cpp.llama_backend_init()
        params = llama_cpp.llama_model_default_params()
        self._model = llama_cpp.llama_model_load_from_file(str(gguf).encode(), params)
        if not self._model:
            raise ValueError(f"llama.cpp could not load {gguf.name}")
        vocab = llama_cpp.llama_model_get_vocab(self._model)
        self.n_vocab = int(llama_cpp.llama_vocab_n_tokens(vocab))
        self.context = context
        cp = llama_cpp.llama_context_default_params()
        cp.n_ctx = self.context
        cp.n_batch, cp.n_ubatch = BATCH, UBATCH
        cp.n_seq_max = min(slots, int(llama_cpp.llama_max_parallel_sequences()))
        cp.kv_unified = True  # one pool of cells: a slot takes what its text needs, not n_ctx / slots
        cp.n_threads = cp.n_threads_batch = threads
        # Flash attention on: without it a single-token step takes another path than a pass over many tokens
        # (measured: logits up to 0.97 apart from the 11th token on), and a generated token's distribution
        # would not be the one the score page shows for the same text. With it, every split gives the same bits.
        cp.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED
        cp.no_perf = True
        self._ctx = llama_cpp.llama_init_from_model(self._model, cp)
        if not self._ctx:
            llama_cpp.llama_model_free(self._model)
            raise ValueError("llama.cpp could not make a context")
        self._memory = llama_cpp.llama_get_memory(self._ctx)
        self._batch = llama_cpp.llama_batch_init(BATCH, 0, 1)
        self._lib = llama_cpp
        self.threads = threads
        self.quantization = _file_type(llama_cpp, int(llama_cpp.llama_model_ftype(self._model)))
        self.slots = [_Slot(seq) for seq in range(cp.n_seq_max)]
        self.stats = LlamaCppStats()
        self._context_lock = threading.Lock()  # guards the context and the slots: one pass at a time
        self._last_round = 0  # requests in the last round: a decode wave's streams come back about that many
        self._clock = itertools.count()

    def __del__(self) -> None:
        lib = getattr(self, "_lib", None)
        if lib is not None:
            lib.llama_batch_free(self._batch)
            lib.llama_free(self._ctx)
            lib.llama_model_free(self._model)

    # ------------------------------------------------------------------ caller side

    def submit(self, ids: Sequence[int], past: LlamaHandle | None, last_only: bool, adapter: Any = None) -> Future:
        """Queue one pass; the Future gives ``(float32 logits [len(ids) or 1, vocab], LlamaHandle)``."""
        if adapter is not None:
            raise ValueError("llama.cpp runs the base model only: an adapter needs the torch engine")
        if past is not None and not isinstance(past, LlamaHandle):
            raise TypeError("past must be a LlamaHandle this engine returned")
        new = [int(i) for i in ids]
        if not new:
            raise ValueError("a forward pass needs at least one new token")
        request = _Request([*(past.ids if past is not None else ()), *new], len(new), bool(last_only))
        self._enqueue(request)
        return request.future

    def forget(self) -> None:
        """Empty every slot (benchmarks: the next pass reads its whole text, as a new session's would)."""
        with self._context_lock:
            self._empty_slots()

    def _empty_slots(self) -> None:
        for slot in self.slots:
            self._lib.llama_memory_seq_rm(self._memory, slot.seq, -1, -1)
            slot.ids = []

    # ------------------------------------------------------------------ worker side

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._wait_for_requests():
                    return
                batch = self._pending[: len(self.slots)]  # oldest first, one slot each
                del self._pending[: len(batch)]
                self._last_round = len(batch)
            live = [r for r in batch if r.future.set_running_or_notify_cancel()]
            if not live:
                continue
            with self._context_lock:
                try:
                    results = self._round(live)
                except Exception as exc:  # the slots' state is unknown now: empty them all
                    self._empty_slots()
                    for r in live:
                        r.future.set_exception(exc)
                    continue
            for r, result in zip(live, results, strict=True):
                r.future.set_result(result)

    def _wait_for_wave(self) -> None:
        """With the queue's lock held: wait a moment for as many requests as the last round had.

        The streams of a class's Generate come back one by one as their results
        are handed out; a round started on the first would leave the rest to
        the next, and the streams settle into small rounds that leapfrog each
        other. A lone stream (a last round of one) never waits.
        """
        deadline = time.perf_counter() + WAVE_WAIT_S
        while self._last_round > 1 and len(self._pending) < self._last_round:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return
            self._cond.wait(remaining)

    def _round(self, batch: list[_Request]) -> list[tuple[torch.Tensor, LlamaHandle]]:
        """Every request of ``batch`` in as few ``llama_decode`` calls as fit (the context's lock held)."""
        started = time.perf_counter()
        rows: list[tuple[int, int, int, bool, int]] = []  # (token, position, sequence, wants logits, request)
        outputs: list[torch.Tensor] = []
        free = list(self.slots)
        for index, r in enumerate(batch):
            slot, reuse = self._pick(free, r)
            free.remove(slot)
            self._lib.llama_memory_seq_rm(self._memory, slot.seq, reuse, -1)
            slot.ids = r.ids  # what it will hold once the rows below are decoded
            slot.used = next(self._clock)
            rows += [(r.ids[p], p, slot.seq, p >= r.first_output, index) for p in range(reuse, len(r.ids))]
            outputs.append(torch.empty((len(r.ids) - r.first_output, self.n_vocab), dtype=torch.float32))
            self.stats.reused_tokens += reuse
        filled = [0] * len(batch)
        for start in range(0, len(rows), BATCH):
            chunk = rows[start : start + BATCH]
            self._decode(chunk, keep={slot.seq for slot in self.slots if slot not in free})
            wanted = [row[4] for row in chunk if row[3]]
            if wanted:
                pointer = self._lib.llama_get_logits(self._ctx)
                logits = np.ctypeslib.as_array(pointer, shape=(len(wanted), self.n_vocab))
                for i, index in enumerate(wanted):
                    outputs[index][filled[index]] = torch.from_numpy(logits[i])
                    filled[index] += 1
        self.stats.rounds += 1
        self.stats.requests += len(batch)
        self.stats.decoded_tokens += len(rows)
        self.stats.seconds_decode += time.perf_counter() - started
        return [(out, LlamaHandle(tuple(r.ids))) for out, r in zip(outputs, batch, strict=True)]

    def _pick(self, free: list[_Slot], r: _Request) -> tuple[_Slot, int]:
        """The free slot sharing the longest prefix with ``r`` (else the least recently used) and how much of it serves.

        At most the positions before ``r``'s first wanted logits serve: those must be decoded.
        """
        best, best_common = None, -1
        for slot in free:
            common = _common_prefix(slot.ids, r.ids)
            if common > best_common or (common == best_common and best is not None and slot.used < best.used):
                best, best_common = slot, common
        assert best is not None
        return best, min(best_common, r.first_output)

    def _decode(self, rows: list[tuple[int, int, int, bool, int]], keep: set[int]) -> None:
        """One ``llama_decode``; out of cells, it empties the least recently used slots outside ``keep`` and retries."""
        b = self._batch
        for i, (token, position, seq, wants, _) in enumerate(rows):
            b.token[i] = token
            b.pos[i] = position
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = seq
            b.logits[i] = wants
        b.n_tokens = len(rows)
        while True:
            code = self._lib.llama_decode(self._ctx, b)
            if code == 0:
                return
            idle = sorted((s for s in self.slots if s.seq not in keep and s.ids), key=lambda s: s.used)
            if code != 1 or not idle:  # 1: no room for the batch's keys and values
                raise RuntimeError(f"llama.cpp could not run this pass (llama_decode returned {code})")
            self._lib.llama_memory_seq_rm(self._memory, idle[0].seq, -1, -1)
            idle[0].ids = []


def _common_prefix(a: list[int], b: list[int]) -> int:
    """How many leading tokens ``a`` and ``b`` share; list slices compare in C, so a long text costs microseconds."""
    n = min(len(a), len(b))
    if a[:n] == b[:n]:  # the usual case: a stream continuing its own slot
        return n
    low, high = 0, n  # a[:low] == b[:low], a[:high] != b[:high]
    while high - low > 1:
        middle = (low + high) // 2
        if a[:middle] == b[:middle]:
            low = middle
        else:
            high = middle
    return low


def _file_type(llama_cpp: Any, ftype: int) -> str:
    """``Q4_1`` for LLAMA_FTYPE_MOSTLY_Q4_1: how the GGUF stores its weights, as llama.cpp names it."""
    for name in dir(llama_cpp):
        if name.startswith("LLAMA_FTYPE_") and getattr(llama_cpp, name) == ftype:
            return name.removeprefix("LLAMA_FTYPE_").removeprefix("MOSTLY_").removeprefix("ALL_")
    return f"type {ftype}"
