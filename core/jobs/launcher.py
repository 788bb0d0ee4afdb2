"""Starting a job as its own process, and the life every job leads there.

A page must never do long work inside its server (a rerun, a second session
or a crash would take the job with it), so ``start_job_process`` checks and
writes the job's folder, then spawns ``python -m core <kind> --job-dir
<folder>`` in a new session, its output going to the job's log file. The
page then only reads the folder. ``run_in_job_folder`` gives every kind the
same life in its process: the machine's lock, the status, stop requests, a
recorded failure, a lower priority when started from a page.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import TypeVar

import psutil

from core.errors import InvalidInput, LabError
from core.jobs.folder import JobFolder, JobKind
from core.jobs.lock import claim_lock, release_lock
from core.jobs.paths import REPO_ROOT
from core.jobs.processes import ProcessId, lower_priority, remember
from core.jobs.stop import StopRequest

T = TypeVar("T")


def start_job_process(kind: JobKind, job_dir: Path, prepare: Callable[[Path], JobFolder]) -> Path:
    """Claim the machine's lock for ``job_dir``, let ``prepare`` check and write the folder, start the process.

    ``job_dir`` was just claimed (created empty) by the caller. If anything
    fails (``JobBusy``, a bad input found by ``prepare``), nothing is left
    behind: the folder is removed and the lock released, never another job's.
    """
    me = ProcessId.current()
    try:
        claim_lock(job_dir, me, kind)  # before the slower checks, so "busy" comes at once
        spawn_job_process(prepare(job_dir), kind)
    except BaseException:
        release_lock(job_dir, me)
        shutil.rmtree(job_dir, ignore_errors=True)
        with suppress(OSError):  # the kind's root too, if this start was to be its first job
            job_dir.parent.rmdir()
        raise
    return job_dir


def spawn_job_process(folder: JobFolder, kind: JobKind) -> ProcessId:
    """Start ``python -m core <kind's command> --job-dir <folder>`` in its own session and hand it the lock.

    The caller holds the lock for ``folder`` already (and releases it if this raises).
    """
    with folder.log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "core", *kind.command, "--job-dir", str(folder.path.resolve())],
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a page's rerun or Ctrl-C must not reach the job
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    remember(process)
    try:
        child = ProcessId.of(process.pid)
    except psutil.NoSuchProcess:  # already gone: readers will see it as dead
        child = ProcessId(process.pid, 0.0)
    folder.set_process(child)
    claim_lock(folder.path, child, kind)
    return child


def _disk_full(exc: BaseException) -> bool:
    """Out of space, or over a size limit (safetensors reports the OS error only in its message)."""
    return any(os.strerror(code) in str(exc) for code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG))


def failure_message(exc: BaseException) -> str:
    """What status.json says about a job that failed with ``exc``."""
    if isinstance(exc, LabError):
        return str(exc)
    if isinstance(exc, KeyboardInterrupt):
        return "Interrupted before the result could be saved."
    if _disk_full(exc):
        return (
            f"The disk is full, so the job could not write its files ({type(exc).__name__}: {exc}). "
            "Free some space (delete adapters or saved models you no longer need) and start the job again."
        )
    return f"{type(exc).__name__}: {exc}"


def run_in_job_folder(
    folder: JobFolder,
    kind: JobKind,
    work: Callable[[StopRequest, float], T],
    main: bool = True,
) -> T:
    """Run ``work(stop, started)`` as the job in ``folder``, in this process; return what it returns.

    ``main``: the one process of a run, or rank 0 of a multi-process one
    (the others neither lock nor write). ``work`` writes the final status
    itself; a failure is recorded in status.json before the exception goes on.
    """
    if not folder.exists():
        raise InvalidInput(f"{folder.name!r} is not a {kind.title} job folder (it has no config.json).")
    if main and folder.status().get("status") != "queued":
        raise InvalidInput(
            f"The job {folder.name!r} has already run ({folder.status().get('status')}): start a new one."
        )
    started = time.time()
    recorded = folder.process()
    me = ProcessId.current()
    try:
        if recorded is not None and recorded.pid == os.getpid():
            # Started from a page (the launcher recorded this process): the job still takes every idle
            # core, at a lower priority, so the app's answers to a class come first. A job run in the
            # foreground (the CLI, a test) keeps the priority its caller chose.
            lower_priority()
        if main:
            claim_lock(folder.path, me, kind)
            folder.set_process(me)
        folder.update_status(status="running", phase="loading", started_at=started, error=None)
        with StopRequest(folder) as stop:
            return work(stop, started)
    except BaseException as exc:
        folder.finish("failed", error=failure_message(exc))
        raise
    finally:
        if main:
            release_lock(folder.path, me)
