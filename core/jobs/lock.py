"""One training job at a time on this machine, of any kind.

Training takes every core, and two jobs would each take twice as long. The
lock is a small JSON file naming the job, its kind and its process (pid and
start time). It is created atomically (a complete temp file, hard-linked
into place, which fails if a lock exists), and a lock whose process is dead
is stale and taken over. A lock is handed over only along one job's life (the
page that starts a job claims it for the job's folder; the job's own process
then takes it); it is released only by the process that holds it.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from core.errors import InvalidInput
from core.jobs.files import read_json
from core.jobs.folder import JobKind
from core.jobs.paths import lock_path
from core.jobs.processes import ProcessId


class JobBusy(InvalidInput):
    """Another training job holds this machine's lock."""


def _record(job_dir: Path, process: ProcessId, kind: JobKind) -> dict[str, object]:
    return {"job": str(Path(job_dir).resolve()), "kind": kind.name, "title": kind.title, **process.to_json()}


def running_job(kind: JobKind | None = None) -> Path | None:
    """The folder of the job (of ``kind``; None: any kind) that holds this machine's lock, if its process lives."""
    held = read_json(lock_path())
    process = ProcessId.from_dict(held)
    if process is None or not process.alive():
        return None
    if kind is not None and held.get("kind") != kind.name:
        return None
    return Path(held["job"])


def claim_lock(job_dir: Path, process: ProcessId, kind: JobKind) -> None:
    """Make ``process`` the holder of the machine's lock for ``job_dir``, or raise ``JobBusy``.

    A lock already naming ``job_dir`` is handed over (the launcher claims it
    for the job, then the job's own process takes it); a stale lock is taken.
    Job folders are claimed with ``mkdir`` first (``core.jobs.paths``), so two
    starts never name the same folder.
    """
    path = lock_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    record = _record(job_dir, process, kind)
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
            what = held.get("title") or "training"
            raise JobBusy(
                f"Another {what} job ({name}) is running on this machine, and only one runs at a time. "
                "Wait for it to finish, or cancel it first."
            )
        os.replace(tmp, path)  # our own job's lock, or a stale one
    finally:
        Path(tmp).unlink(missing_ok=True)


def release_lock(job_dir: Path, process: ProcessId | None = None) -> None:
    """Remove the lock if it is ``job_dir``'s (and ``process``'s, when given): never another's."""
    held = read_json(lock_path())
    if not held or held.get("job") != str(Path(job_dir).resolve()):
        return
    if process is not None and ProcessId.from_dict(held) != process:
        return
    lock_path().unlink(missing_ok=True)
