"""A bounded, thread-safe memo of computed results.

The same model, adapter and token ids always give the same logits, so a
repeated request (a rerun of a page, a second student asking the same thing)
is answered without a forward pass. ``hits`` and ``misses`` are counted so
tests can assert a hit rather than time one.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class ResultCache(Generic[V]):
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.hits = 0
        self.misses = 0
        self._items: OrderedDict[Hashable, V] = OrderedDict()
        self._lock = threading.Lock()

    def get_or_compute(self, key: Hashable, compute: Callable[[], V]) -> V:
        with self._lock:
            if key in self._items:
                self.hits += 1
                self._items.move_to_end(key)
                return self._items[key]
            self.misses += 1
        value = compute()  # outside the lock: a slow forward must not block other keys
        self.put(key, value)
        return value

    def peek(self, key: Hashable) -> V | None:
        """The value stored under ``key``, or None; counts as neither a hit nor a miss (a fast path looking)."""
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: Hashable, value: V) -> None:
        """Store a value computed elsewhere (e.g. as a by-product of a larger pass)."""
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.hits = self.misses = 0
