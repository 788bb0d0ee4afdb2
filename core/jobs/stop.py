"""Asking a running job to stop after its current step.

A STOP file in the job's folder (what a page's Cancel writes), SIGTERM or
SIGINT all become the same request; the training loop checks it after every
step, so the job can still save what it has learned.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from core.errors import InvalidInput
from core.jobs.folder import JobFolder


class StopRequest:
    """A STOP file or a signal asks the job to stop after the current step.

    Used as a context manager, it turns SIGTERM and SIGINT into a request
    (restoring the previous handlers on exit); a second signal interrupts at
    once, for a job that must not wait for a slow step.
    """

    def __init__(self, folder: JobFolder) -> None:
        self.folder = folder
        self.signal_name: str | None = None
        self._previous: dict[int, Any] = {}

    def requested(self) -> bool:
        return self.signal_name is not None or self.folder.stop_requested()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signal_name is not None:
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(signum).name
        print(f"{self.signal_name} received: stopping after the current step.", file=sys.stderr, flush=True)

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():  # Python only allows handlers there
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


def any_rank(flag: bool, device: Any) -> bool:
    """True if ``flag`` is set on any process of a distributed run, so all ranks stop at the same step."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return flag
    value = torch.tensor(int(flag), device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def request_stop(job_dir: Path) -> None:
    """Ask the job in ``job_dir`` to stop after its current step; it saves what it has, marked partial."""
    folder = JobFolder(job_dir)
    if not folder.exists():
        raise InvalidInput(f"{folder.name!r} is not a job folder.")
    folder.request_stop()
