"""Starting a job as its own process, one at a time per machine, and asking it to stop.

A page must never train inside its server (a rerun, a second session or a
crash would take the job with it), so ``start_job`` writes the job folder and
spawns ``python -m core finetune --job-dir <folder>`` in a new session, its
output going to the job's log file. The page then only reads the folder.

One job at a time: training takes every core, and two jobs would each take
twice as long. The lock is a small JSON file naming the job and its process
(pid and start time). It is created atomically (a complete temp file,
hard-linked into place, which fails if a lock exists), and a lock whose
process is dead is stale and taken over.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil

from core.errors import InvalidInput
from core.finetune.config import FinetuneConfig
from core.finetune.datasets import FinetuneDataset, load_dataset
from core.finetune.formatting import encode_examples
from core.finetune.jobfolder import JobFolder, create_job, read_json
from core.finetune.paths import REPO_ROOT, check_name, jobs_root, lock_path, new_job_name
from core.finetune.processes import ProcessId, remember


class JobBusy(InvalidInput):
    """Another fine-tuning job holds this machine's lock."""


def _lock_record(job_dir: Path, process: ProcessId) -> dict[str, object]:
    return {"job": str(job_dir.resolve()), **process.to_dict()}


def running_job() -> Path | None:
    """The folder of the job that holds this machine's lock, if its process is alive."""
    held = read_json(lock_path())
    process = ProcessId.from_dict(held)
    if process is None or not process.alive():
        return None
    return Path(held["job"])


def claim_lock(job_dir: Path, process: ProcessId) -> None:
    """Make ``process`` the holder of the machine's lock for ``job_dir``, or raise ``JobBusy``.

    A lock already naming ``job_dir`` is handed over (the launcher claims it
    for the job, then the job's own process takes it); a stale lock is taken.
    """
    path = lock_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    record = _lock_record(job_dir, process)
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
            raise JobBusy(
                f"Another fine-tuning job ({name}) is running on this machine, and only one runs at a time. "
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
        folder = create_job(config, job_dir, dataset)
        with folder.log_path.open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "core", "finetune", "--job-dir", str(job_dir.resolve())],
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
        claim_lock(job_dir, child)
    except BaseException:
        release_lock(job_dir)
        raise
    return job_dir


def request_stop(job_dir: Path) -> None:
    """Ask the job to stop after its current step; it saves what it has, marked partial."""
    folder = JobFolder(job_dir)
    if not folder.exists():
        raise InvalidInput(f"{job_dir} is not a fine-tuning job folder.")
    folder.request_stop()
