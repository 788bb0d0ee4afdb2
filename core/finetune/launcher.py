"""Starting a job as its own process, one at a time per machine, running it there, and asking it to stop.

A page must never train inside its server (a rerun, a second session or a
crash would take the job with it), so ``start_job`` writes the job folder and
spawns ``python -m core finetune --job-dir <folder>`` in a new session, its
output going to the job's log file. The page then only reads the folder.
Pretraining (``core.pretrain``) is a job of another kind on the same
machinery: ``spawn_job_process`` starts ``python -m core pretrain --job-dir``,
and ``run_in_job_folder`` gives either kind the same life in its process
(lock, status, stop requests, a recorded failure, a lower priority when started from a page).

One job at a time, of any kind: training takes every core, and two jobs would
each take twice as long. The lock is a small JSON file naming the job, its
kind and its process (pid and start time). It is created atomically (a
complete temp file, hard-linked into place, which fails if a lock exists),
and a lock whose process is dead is stale and taken over.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from core.errors import InvalidInput, LabError
from core.finetune.config import FinetuneConfig
from core.finetune.datasets import FinetuneDataset, load_dataset
from core.finetune.formatting import encode_examples
from core.finetune.jobfolder import FINETUNE, KIND_NAMES, JobFolder, create_job, read_json
from core.finetune.paths import REPO_ROOT, check_name, jobs_root, lock_path, new_job_name
from core.finetune.processes import ProcessId, lower_priority, remember

if TYPE_CHECKING:
    from core.finetune.callback import StopRequest


class JobBusy(InvalidInput):
    """Another training job holds this machine's lock."""


def _lock_record(job_dir: Path, process: ProcessId, kind: str) -> dict[str, object]:
    return {"job": str(job_dir.resolve()), "kind": kind, **process.to_dict()}


def running_job(kind: str | None = FINETUNE) -> Path | None:
    """The folder of the job of ``kind`` (None: any kind) that holds this machine's lock, if its process is alive."""
    held = read_json(lock_path())
    process = ProcessId.from_dict(held)
    if process is None or not process.alive():
        return None
    if kind is not None and held.get("kind", FINETUNE) != kind:
        return None
    return Path(held["job"])


def claim_lock(job_dir: Path, process: ProcessId, kind: str = FINETUNE) -> None:
    """Make ``process`` the holder of the machine's lock for ``job_dir``, or raise ``JobBusy``.

    A lock already naming ``job_dir`` is handed over (the launcher claims it
    for the job, then the job's own process takes it); a stale lock is taken.
    """
    path = lock_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    record = _lock_record(job_dir, process, kind)
    fd, tmp = tempfile.mkstemp(prefix=".lock.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(record, f)
        try:
            os.link(tmp, path)  # atomic, and fails if any lock exists
            return
        except FileExistsError:
            pass
        held = read_json(path) or {}
        holder = ProcessId.from_dict(held)
        if held.get("job") != record["job"] and holder is not None and holder.alive():
            name = Path(str(held.get("job"))).name
            what = KIND_NAMES.get(held.get("kind", FINETUNE), "training")
            raise JobBusy(
                f"Another {what} job ({name}) is running on this machine, and only one runs at a time. "
                "Wait for it to finish, or cancel it first."
            )
        os.replace(tmp, path)  # our own job's lock, or a stale one
    finally:
        Path(tmp).unlink(missing_ok=True)


def release_lock(job_dir: Path) -> None:
    """Remove the lock if it is ``job_dir``'s (never another job's)."""
    held = read_json(lock_path())
    if held and held.get("job") == str(Path(job_dir).resolve()):
        lock_path().unlink(missing_ok=True)


def start_job(
    config: FinetuneConfig,
    dataset: FinetuneDataset | None = None,
    root: Path | None = None,
    name: str | None = None,
) -> Path:
    """Check everything, write a job folder under ``root`` and start the job process; return the folder.

    Raises ``InvalidInput`` (nothing started) for a bad config, dataset or
    model, and ``JobBusy`` while another job runs. ``dataset`` is an upload
    already parsed for its preview; otherwise ``config.dataset`` is loaded.
    """
    from core.models import load_model

    config.validate()
    dataset = dataset or load_dataset(config.dataset, config.eval_fraction, config.seed)
    root = Path(root or jobs_root())
    job_dir = root / (check_name(name, "job name") if name else new_job_name(dataset.name, root))
    if job_dir.exists():
        raise InvalidInput(f"A job called {job_dir.name!r} already exists: choose another name.")
    claim_lock(job_dir, ProcessId.current())  # before the slower checks, so "busy" comes at once
    try:
        tokenizer = load_model(config.model).tokenizer  # also proves the model loads before a job is started
        encode_examples(tokenizer, dataset.train, config.max_length, "training")
        encode_examples(tokenizer, dataset.eval, config.max_length, "evaluation")
        root.mkdir(parents=True, exist_ok=True)
        spawn_job_process(create_job(config, job_dir, dataset), FINETUNE)
    except BaseException:
        release_lock(job_dir)
        raise
    return job_dir


def spawn_job_process(folder: JobFolder, kind: str) -> ProcessId:
    """Start ``python -m core <kind> --job-dir <folder>`` in its own session and hand it the lock.

    The caller holds the lock for ``folder`` already (and releases it if this raises).
    """
    with folder.log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "core", kind, "--job-dir", str(folder.path.resolve())],
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


def run_in_job_folder(
    folder: JobFolder,
    kind: str,
    work: Callable[[StopRequest, float], dict[str, Any]],
    main: bool = True,
) -> dict[str, Any]:
    """Run ``work(stop, started)`` as the job in ``folder``, in this process; return what it returns.

    The life every kind of job shares: take the machine's lock (``main``: the
    one process of a run, or rank 0 of a multi-process one), record the
    process and the ``running`` status, turn SIGTERM/SIGINT and a STOP file
    into a stop request, and record any failure in status.json before the
    exception goes on; a job started by ``spawn_job_process`` also lowers
    its priority. ``work`` writes the final status itself.
    """
    from core.finetune.callback import StopRequest

    if not folder.exists():
        raise InvalidInput(f"{folder.path} is not a {KIND_NAMES[kind]} job folder (it has no config.json).")
    if main and folder.status().get("status") != "queued":
        raise InvalidInput(
            f"The job in {folder.path} has already run ({folder.status().get('status')}): start a new one."
        )
    started = time.time()
    recorded = folder.process()
    try:
        if recorded is not None and recorded.pid == os.getpid():
            # Started from a page (the launcher recorded this process): training still takes every idle
            # core at a lower priority, but the app's answers to a class come first. A job run in the
            # foreground (the CLI, a test) keeps the priority its caller chose.
            lower_priority()
        if main:
            me = ProcessId.current()
            claim_lock(folder.path, me, kind)
            folder.set_process(me)
        folder.update_status(status="running", phase="loading", started_at=started, error=None)
        with StopRequest(folder) as stop:
            return work(stop, started)
    except BaseException as exc:
        if isinstance(exc, LabError):
            error = str(exc)
        elif isinstance(exc, KeyboardInterrupt):
            error = "Interrupted before the result could be saved."
        elif _disk_full(exc):
            error = (
                f"The disk is full, so the job could not write its files ({type(exc).__name__}: {exc}). "
                "Free some space (delete adapters or saved models you no longer need) and start the job again."
            )
        else:
            error = f"{type(exc).__name__}: {exc}"
        folder.update_status(status="failed", phase="finished", error=error, finished_at=time.time())
        raise
    finally:
        if main:
            release_lock(folder.path)


def request_stop(job_dir: Path) -> None:
    """Ask the job to stop after its current step; it saves what it has, marked partial."""
    folder = JobFolder(job_dir)
    if not folder.exists():
        raise InvalidInput(f"{job_dir} is not a job folder.")
    folder.request_stop()
