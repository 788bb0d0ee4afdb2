"""The torch engine in a process of its own, so a class's passes do not queue for the web server's GIL.

Streamlit runs every session's script as a thread of one process, and a
transformers forward pass is thousands of small torch calls, each giving up
Python's GIL and taking it back. With thirty sessions' scripts wanting the
GIL, the engine's worker waited for it at every call: on the 2-core machine
a one-token pass took 105 ms alone and 380 ms beside four threads doing
bursts of Python, and under a class of 30 the worker was busy 90 % of the
time while the process used 1.3 of its 2 cores. ``ProcessEngine`` runs the
same ``Engine`` (same batching, same numbers) in a child process whose GIL
is its own; the weights are shared with it, not copied (torch moves them to
shared memory when the model is handed over). Having its process to itself,
the engine there sizes each pass's threads (``PassThreads``): a small pass
leaves a core to the web server.

Only base-model passes go there: an adapter's passes stay on the engine in
this process, which can switch adapters on the weights it holds. A caller's
cache is a ``RemoteKV``: the child keeps the keys and values, the handle
here names them, and dropping the last handle here frees them there.
"""

from __future__ import annotations

import itertools
import os
import queue
import sys
import threading
import types
import weakref
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.multiprocessing  # registers the reductions that hand tensors over in shared memory)

from core.engine.queue import Passes
from core.errors import ModelLoadError

PROCESS_ENV = "LLM_LAB_ENGINE_PROCESS"  # "1": base-model passes run in a process of their own (a class server)
START_TIMEOUT_S = 120.0


def engine_process_wanted() -> bool:
    """Whether ``LLM_LAB_ENGINE_PROCESS`` asks for the engine in its own process (``make run HOST=...`` sets it)."""
    return os.environ.get(PROCESS_ENV, "").strip() == "1"


@dataclass(frozen=True, eq=False)
class RemoteStore:
    """One stream's keys and values in the child: what the prefix cache counts (``nbytes``) and shares by."""

    key: int
    nbytes: int


@dataclass(frozen=True, eq=False)
class RemoteKV:
    """A cache the child holds: the first ``length`` positions of ``store``, named ``handle`` there."""

    handle: int
    store: RemoteStore
    length: int


class ProcessEngine(Passes[RemoteKV]):
    """``Engine.submit``/``forward`` for a model's base passes, answered by a child process."""

    def __init__(self, model: Any, pad_id: int) -> None:
        context = torch.multiprocessing.get_context("spawn")  # fork would copy this process's threads' locks
        conn, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(child, model, pad_id), name="llm-lab-engine", daemon=True)
        main = sys.modules["__main__"]
        # A spawned child first re-runs the parent's main script (here Streamlit's command line, or pytest's);
        # an empty main module gives it nothing to re-run: it imports only what unpickling the model needs.
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            self._process.start()
        finally:
            sys.modules["__main__"] = main
        child.close()
        if not conn.poll(START_TIMEOUT_S) or conn.recv() != "ready":
            self._process.kill()
            raise ModelLoadError("The model's engine process did not start.")
        self._link = _Link(conn, self._process)
        self._ids = itertools.count(1)

    def submit(self, ids: Sequence[int], past: RemoteKV | None, last_only: bool, adapter: Any = None) -> Future:
        """Queue one pass; the Future gives ``(float32 logits [len(ids) or 1, vocab], RemoteKV)``."""
        return self.submit_many([(ids, past, last_only)], adapter)[0]

    def submit_many(
        self, requests: Sequence[tuple[Sequence[int], RemoteKV | None, bool]], adapter: Any = None
    ) -> list[Future]:
        """Queue several passes in one message: the child's engine finds them all waiting, as one wave."""
        if adapter is not None:
            raise ValueError("the engine process runs the base model only")
        passes = []
        for ids, past, last_only in requests:
            if past is not None and not isinstance(past, RemoteKV):
                raise TypeError("past must be a RemoteKV this engine returned")
            handle = None if past is None else past.handle
            passes.append((next(self._ids), [int(i) for i in ids], handle, bool(last_only)))
        futures: list[Future] = [Future() for _ in passes]
        with self._link.lock:
            self._link.futures.update((request, future) for (request, *_), future in zip(passes, futures, strict=True))
        self._link.send(("passes", passes))
        return futures


class _Link:
    """The parent's end of the pipe, and the passes waiting on it.

    The engine and every cache handle it gave out hold the link; when the last
    of them goes, the link's finalizer closes the pipe and the child ends (an
    evicted model's engine process goes with it). The thread that reads the
    replies holds the link only weakly: holding it, the thread kept every
    engine process alive for as long as the server ran.
    """

    def __init__(self, conn: Any, process: Any) -> None:
        self.conn = conn
        self.futures: dict[int, Future] = {}
        self.stores: weakref.WeakValueDictionary[int, RemoteStore] = weakref.WeakValueDictionary()
        self.lock = threading.Lock()  # guards futures and stores
        self._send_lock = threading.Lock()
        weakref.finalize(self, _close, conn, process)
        reader = threading.Thread(target=_read_replies, args=(conn, weakref.ref(self)), daemon=True)
        reader.name = "llm-lab-engine-replies"
        reader.start()

    def send(self, message: tuple) -> None:
        try:
            with self._send_lock:
                self.conn.send(message)
        except (OSError, ValueError) as exc:  # the child is gone: say so to whoever waits
            self.fail(exc)

    def free(self, handle: int) -> None:
        if not self.conn.closed:
            self.send(("free", handle))

    def answer(self, request: int, logits: Any, handle: int | None, store: int, nbytes: int, length: int) -> None:
        """One reply: the waiting pass's logits and a handle on the cache the child keeps (or its error)."""
        with self.lock:
            future = self.futures.pop(request, None)
            if handle is not None:
                shared = self.stores.get(store)
                if shared is None:
                    shared = self.stores[store] = RemoteStore(store, nbytes)
        if future is None:
            return
        if handle is None:
            future.set_exception(RuntimeError(logits))
            return
        kv = RemoteKV(handle, shared, length)
        weakref.finalize(kv, self.free, handle).atexit = False  # at exit the child goes with its pipe
        future.set_result((torch.from_numpy(logits), kv))

    def fail(self, exc: BaseException) -> None:
        with self.lock:
            waiting, self.futures = self.futures, {}
        for future in waiting.values():
            future.set_exception(RuntimeError(f"The model's engine process stopped ({exc.__class__.__name__})."))


def _read_replies(conn: Any, link: weakref.ref[_Link]) -> None:
    while True:
        try:
            reply = conn.recv()
        except (EOFError, OSError) as exc:
            alive = link()
            if alive is not None:
                alive.fail(exc)
            return
        alive = link()
        if alive is None:
            return
        alive.answer(*reply)
        del alive


def _close(conn: Any, process: Any) -> None:
    conn.close()
    process.join(timeout=5)
    if process.is_alive():
        process.kill()


def _serve(conn: Any, model: Any, pad_id: int) -> None:
    """The child: an ``Engine`` over the shared weights, fed from ``conn``; it ends when the parent goes."""
    from core.engine.worker import Engine, PassThreads

    torch.set_grad_enabled(False)
    engine = Engine(model, threading.RLock(), None, pad_id=pad_id, threads=PassThreads.leaving_one_core())
    handles: dict[int, Any] = {}
    serial = itertools.count(1)
    replies: queue.SimpleQueue = queue.SimpleQueue()

    def send_replies() -> None:  # its own thread, so the engine's worker never waits on the pipe
        while True:
            reply = replies.get()
            if reply is None:
                return
            conn.send(reply)

    def answer(request: int, future: Future) -> None:
        try:
            logits, kv = future.result()
        except Exception as exc:
            replies.put((request, f"{exc.__class__.__name__}: {exc}", None, None, None, None))
            return
        handle = next(serial)
        handles[handle] = kv
        store = kv.store
        replies.put((request, np.ascontiguousarray(logits.numpy()), handle, id(store), store.nbytes, kv.length))

    sender = threading.Thread(target=send_replies, daemon=True)
    sender.start()
    assert engine.supported
    conn.send("ready")
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            break
        if message[0] == "free":
            handles.pop(message[1], None)
            continue
        with engine.at_one_moment():  # a wave sent at once is queued at once
            for request, ids, past, last_only in message[1]:
                try:
                    future = engine.submit(ids, handles[past] if past is not None else None, last_only)
                except Exception as exc:
                    replies.put((request, f"{exc.__class__.__name__}: {exc}", None, None, None, None))
                    continue
                future.add_done_callback(lambda f, request=request: answer(request, f))
    replies.put(None)
