"""Is the process that claimed a job (or the lock) still alive?

A job that is killed cannot write its own obituary, so readers check the pid
it left behind. A bare pid is not enough: pids get reused, and a dead child
of the page's process lingers as a zombie until it is reaped. So a process
is identified by its pid *and* its start time, and zombies count as dead.
Children started here are kept (``remember``) and reaped on every check.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from typing import Any

import psutil

from core.json_records import JsonRecord

_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class ProcessId(JsonRecord):
    """A pid plus the process's start time, which together never repeat."""

    pid: int
    started: float

    @classmethod
    def of(cls, pid: int) -> ProcessId:
        return cls(pid, psutil.Process(pid).create_time())

    @classmethod
    def current(cls) -> ProcessId:
        return cls.of(os.getpid())

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ProcessId | None:
        try:
            return cls(int(data["pid"]), float(data["started"])) if data else None
        except (KeyError, TypeError, ValueError):
            return None

    def alive(self) -> bool:
        reap_children()
        try:
            process = psutil.Process(self.pid)
            return abs(process.create_time() - self.started) < 0.01 and process.status() != psutil.STATUS_ZOMBIE
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return False


JOB_NICENESS = 10


def lower_priority(niceness: int = JOB_NICENESS) -> None:
    """Run this process at ``niceness`` (Unix nice value) at least; calling it again changes nothing."""
    if hasattr(os, "nice"):  # Unix; elsewhere jobs keep the normal priority
        os.nice(max(0, niceness - os.nice(0)))


def remember(process: subprocess.Popen[bytes]) -> None:
    """Keep a child started here so it can be reaped once it exits."""
    _CHILDREN[process.pid] = process


def reap_children() -> None:
    for pid, process in list(_CHILDREN.items()):
        if process.poll() is not None:
            del _CHILDREN[pid]
