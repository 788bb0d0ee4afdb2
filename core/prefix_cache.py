"""The model's keys and values for texts it has just read, kept so the next token costs one step, not a re-read.

A student sees the distribution after a prompt, then presses Generate: the
first new token needs the keys and values of the whole prompt, which the
distribution's pass has just computed. A steered path grows one token at a
time the same way. So every pass's cache (a ``KVHandle`` from the batching
engine, which never changes once handed out) is kept here under (model and
adapter, token ids), and a pass over ids whose prefix is here reads only the
new tokens. The memo is bounded by the bytes of the caches it keeps (a
stream's successive handles share one store, counted once), least recently
used first out.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import Any

from core.engine.kv import KVHandle
from core.engine.process import RemoteKV

BUDGET_BYTES = int(os.environ.get("LLM_LAB_PREFIX_CACHE_MB", "96")) * 2**20
LOOKBACK = 8  # how many tokens shorter a kept prefix may be (a steered path grows one token at a time)


class PrefixCache:
    """(model key, ids) → the cache after those ids; bounded by the bytes of the distinct stores held."""

    def __init__(self, budget_bytes: int = BUDGET_BYTES) -> None:
        self.budget_bytes = budget_bytes
        self.hits = 0
        self._items: OrderedDict[tuple[Hashable, tuple[int, ...]], KVHandle] = OrderedDict()
        self._users: dict[int, int] = {}  # id(store) -> entries holding it
        self._bytes = 0
        self._lock = threading.Lock()

    def put(self, model_key: Hashable, ids: Sequence[int], handle: Any) -> None:
        """Keep ``handle`` (the cache after ``ids``); anything but an engine's handle is not kept."""
        if not isinstance(handle, KVHandle | RemoteKV):
            return
        key = (model_key, tuple(ids))
        with self._lock:
            if key in self._items:
                self._release(self._items.pop(key))
            self._items[key] = handle
            store = id(handle.store)
            self._users[store] = self._users.get(store, 0) + 1
            if self._users[store] == 1:
                self._bytes += handle.store.nbytes
            while self._bytes > self.budget_bytes and len(self._items) > 1:
                self._release(self._items.popitem(last=False)[1])

    def longest(self, model_key: Hashable, ids: Sequence[int], proper: bool = True) -> tuple[KVHandle | None, int]:
        """The kept cache for the longest prefix of ``ids`` (at most ``LOOKBACK`` shorter), and its length.

        ``proper``: shorter than ``ids`` (a pass needs at least one new token, whose logits it gives);
        else ``ids`` itself counts too (a caller that will only read further tokens after it).
        """
        ids = tuple(ids)
        longest_cut = len(ids) - 1 if proper else len(ids)
        with self._lock:
            for cut in range(longest_cut, max(0, longest_cut - LOOKBACK), -1):
                handle = self._items.get((model_key, ids[:cut]))
                if handle is not None:
                    self._items.move_to_end((model_key, ids[:cut]))
                    self.hits += 1
                    return handle, cut
        return None, 0

    def forget(self, belongs: Callable[[Hashable], bool]) -> None:
        """Drop every kept cache whose model key ``belongs``: a model that left memory (its handles hold it)."""
        with self._lock:
            for key in [key for key in self._items if belongs(key[0])]:
                self._release(self._items.pop(key))

    def _release(self, handle: KVHandle) -> None:
        store = id(handle.store)
        self._users[store] -= 1
        if self._users[store] == 0:
            del self._users[store]
            self._bytes -= handle.store.nbytes

    @property
    def bytes_held(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._users.clear()
            self._bytes = 0
            self.hits = 0
