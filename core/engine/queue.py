"""The queue both engines share: forward passes wait on it for the one worker thread that runs them.

A caller's pass is a request with a Future; the worker thread starts with
the first request and stops after ``idle_stop_s`` without one (an engine
then frees what it kept for the next pass). What the worker does with the
requests waiting is each engine's own: the torch ``Engine`` cuts them into
padded batches, the llama.cpp engine runs a round of one per slot.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from concurrent.futures import Future
from contextlib import AbstractContextManager, nullcontext
from typing import Any, ClassVar, Generic, TypeVar

import torch

Queued = TypeVar("Queued")  # an engine's request: it carries the Future its caller waits on
Handle = TypeVar("Handle")  # an engine's cache handle, handed back with the logits


class Passes(ABC, Generic[Handle]):
    """What every engine offers its callers: ``submit`` one pass, several at one moment, or one waited for.

    The engines here (``PassQueue``) hold their queue's lock while several are
    queued (``at_one_moment``); the engine process sends them in one message.
    """

    @abstractmethod
    def submit(self, ids: Sequence[int], past: Handle | None, last_only: bool, adapter: Any = None) -> Future:
        """Queue one pass; the Future gives ``(float32 logits, Handle)``."""

    def submit_many(
        self, requests: Sequence[tuple[Sequence[int], Handle | None, bool]], adapter: Any = None
    ) -> list[Future]:
        """Queue several passes ``(ids, past, last_only)`` at one moment, so that they can share batches."""
        with self.at_one_moment():
            return [self.submit(ids, past, last_only, adapter) for ids, past, last_only in requests]

    def forward(
        self, ids: Sequence[int], past: Handle | None, last_only: bool, adapter: Any = None
    ) -> tuple[torch.Tensor, Handle]:
        """One pass, waited for: what ``LoadedModel.forward`` calls."""
        return self.submit(ids, past, last_only, adapter).result()

    def at_one_moment(self) -> AbstractContextManager[Any]:
        """Held while ``submit_many`` queues its passes (nothing by default: they go one after another)."""
        return nullcontext()


class PassQueue(Passes[Handle], Generic[Queued, Handle]):
    """Requests for one worker thread, started by the first and stopped after ``idle_stop_s`` without any."""

    worker_name: ClassVar[str]
    idle_stop_s: ClassVar[float]

    def __init__(self) -> None:
        self._pending: list[Queued] = []
        self._cond = threading.Condition()  # guards the queue and the worker
        self._worker: threading.Thread | None = None

    def at_one_moment(self) -> AbstractContextManager[Any]:
        return self._cond  # the worker cannot take the queue until every pass is on it

    def _enqueue(self, request: Queued) -> None:
        """Put ``request`` on the queue and wake the worker, starting it if none runs."""
        with self._cond:
            self._on_queue(request)
            self._pending.append(request)
            if self._worker is None:
                self._worker = threading.Thread(target=self._run, name=self.worker_name, daemon=True)
                self._worker.start()
            self._cond.notify()

    def _on_queue(self, request: Queued) -> None:
        """With the queue's lock held, as ``request`` joins the queue (the torch engine numbers it here)."""

    def _wait_for_requests(self) -> bool:
        """With the queue's lock held: wait for requests, then for the rest of a wave; False once the worker stops."""
        while not self._pending:
            if not self._cond.wait(timeout=self.idle_stop_s) and not self._pending:
                self._on_idle()
                self._worker = None
                return False
        self._wait_for_wave()
        return True

    def _on_idle(self) -> None:
        """With the queue's lock held, as the idle worker stops: free what was kept for the next pass."""

    @abstractmethod
    def _run(self) -> None:
        """The worker thread: take the waiting requests (``_wait_for_requests``) and answer them, until idle."""

    @abstractmethod
    def _wait_for_wave(self) -> None:
        """With the queue's lock held: wait a moment for the streams of the last wave to come back."""
