"""A job's folder: the files it is made of, and how to read its state.

Everything a page needs to follow a job is a file, so a page can poll from
any process (a refreshed tab, a second browser) and the job itself knows
nothing about who watches. Every kind of job (fine-tuning, pretraining, a
duration estimate, a scaling ladder) has these files; a kind adds its own
inputs and outputs beside them::

    <job>/config.json     the job's config (the kind's own config dataclass)
    <job>/status.json     kind, queued | running | done | failed | cancelled, phase, step, error, result
    <job>/process.json    pid and start time of the job process
    <job>/metrics.jsonl   one JSON object per step or evaluation
    <job>/job.log         the job process's stdout and stderr
    <job>/STOP            present when someone asked the job to stop

JSON files are replaced atomically (``core.jobs.files``), so a reader sees the
old state or the new one, never half of one. Metrics are appended one whole
line per write; a reader ignores a trailing line that is not complete yet.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from core.errors import InvalidInput
from core.jobs.files import read_json, write_json_atomic
from core.jobs.paths import check_name
from core.jobs.processes import ProcessId

ACTIVE = frozenset({"queued", "running"})
DIED = "The process stopped unexpectedly (it was killed or crashed) without saving its result."


@dataclass(frozen=True)
class JobKind:
    """A kind of job: how status.json and the lock name it, and how a sentence does.

    ``command`` is what follows ``python -m core`` to run a prepared folder of
    this kind in its own process (``--job-dir <folder>`` is added).
    """

    name: str
    title: str
    command: tuple[str, ...]


class FromDict(Protocol):
    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any: ...


R = TypeVar("R", bound=FromDict)


class JobFolder:
    """The files of one job. ``writable=False`` for the extra ranks of a multi-process run."""

    def __init__(self, path: Path, writable: bool = True) -> None:
        self.path = Path(path)
        self.writable = writable

    @property
    def name(self) -> str:
        return self.path.name

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def log_path(self) -> Path:
        return self.path / "job.log"

    @property
    def stop_path(self) -> Path:
        return self.path / "STOP"

    def exists(self) -> bool:
        return self.file("config.json").is_file()

    def config_dict(self) -> dict[str, Any]:
        data = read_json(self.file("config.json"))
        if data is None:
            raise InvalidInput(f"{self.path} is not a job folder (it has no config.json).")
        return data

    def status(self) -> dict[str, Any]:
        return read_json(self.file("status.json")) or {}

    def update_status(self, **changes: Any) -> dict[str, Any]:
        """Merge ``changes`` into status.json (atomically) and return the new status."""
        status = {**self.status(), **changes, "updated_at": time.time()}
        if self.writable:
            write_json_atomic(self.file("status.json"), status)
        return status

    def finish(self, status: str, **facts: Any) -> dict[str, Any]:
        """Record that the job ended (done, cancelled or failed), with what it left: ``facts`` (its result, error)."""
        return self.update_status(status=status, phase="finished", **facts, finished_at=time.time())

    def process(self) -> ProcessId | None:
        return ProcessId.from_dict(read_json(self.file("process.json")))

    def set_process(self, process: ProcessId) -> None:
        if self.writable:
            write_json_atomic(self.file("process.json"), process.to_json())

    def append_line(self, name: str, row: dict[str, Any]) -> None:
        """Append ``row`` to the JSON-lines file ``name``."""
        if self.writable:
            with self.file(name).open("a", encoding="utf-8") as f:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")  # one write per line: never half a row

    def read_lines(self, name: str) -> list[dict[str, Any]]:
        """The rows of the JSON-lines file ``name`` (none if it does not exist yet)."""
        try:
            text = self.file(name).read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.split("\n")[:-1] if line.strip()]  # [:-1]: maybe incomplete

    def append_metric(self, row: dict[str, Any]) -> None:
        self.append_line("metrics.jsonl", row)

    def metrics(self) -> list[dict[str, Any]]:
        return self.read_lines("metrics.jsonl")

    def request_stop(self) -> None:
        self.stop_path.touch()

    def stop_requested(self) -> bool:
        return self.stop_path.exists()


def new_job_folder(job_dir: Path, config: dict[str, Any]) -> JobFolder:
    """Fill an empty (or new) job folder with ``config.json``; the caller adds its inputs, then ``mark_queued``."""
    job_dir = Path(job_dir)
    if job_dir.exists() and any(job_dir.iterdir()):
        raise InvalidInput(f"The folder {job_dir.name!r} already holds files: give the job a new folder.")
    job_dir.mkdir(parents=True, exist_ok=True)
    folder = JobFolder(job_dir)
    write_json_atomic(folder.file("config.json"), config)
    return folder


def mark_queued(folder: JobFolder, kind: JobKind, **facts: Any) -> None:
    """Write status.json, last: a folder with a status is complete (other ranks wait for it).

    ``facts`` are what a kind of job records about itself from the start (a pretraining job: its corpus).
    """
    folder.update_status(
        kind=kind.name, status="queued", phase="queued", step=0, max_steps=None, created_at=time.time(), **facts
    )


@dataclass
class JobState:
    """What a page shows about a job, read from its folder.

    ``result`` is the kind's result as JSON; ``result_as(cls)`` reads it as the
    kind's own dataclass.
    """

    name: str
    path: Path
    kind: str
    status: str
    phase: str
    step: int
    max_steps: int | None
    progress: float  # 0 to 1, by steps
    elapsed: float | None  # seconds since the job started (to its end, once finished)
    eta: float | None  # seconds left, from the measured step rate; None until a step is done
    error: str | None
    partial: bool  # stopped early: what it saved holds what was learned so far
    config: dict[str, Any]
    result: dict[str, Any] | None
    created_at: float | None
    stop_requested: bool = False
    metrics: list[dict[str, Any]] = field(default_factory=list, repr=False)

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def finished(self) -> bool:
        return not self.active

    def result_as(self, cls: type[R]) -> R | None:
        return None if self.result is None else cls.from_dict(self.result)


def read_job(job_dir: Path, with_metrics: bool = True) -> JobState:
    """The state of the job in ``job_dir``, telling the truth about a job whose process died.

    A job still marked queued or running whose process is gone is recorded
    (and reported) as failed, with the last line of its log as a clue.
    """
    folder = JobFolder(job_dir)
    status = folder.status()
    if not status:
        raise InvalidInput(f"{Path(job_dir).name!r} is not a job folder (it has no status).")
    if status.get("status") in ACTIVE:
        process = folder.process()
        if process is not None and not process.alive():
            status = folder.status()  # it may have written its final status just before exiting
            if status.get("status") in ACTIVE:
                clue = _last_log_line(folder.log_path)
                verdict = {
                    "status": "failed",
                    "phase": "finished",
                    "error": DIED + (f" Last line of its log: {clue}" if clue else ""),
                    "finished_at": time.time(),
                }
                try:
                    status = folder.update_status(**verdict)
                except OSError:  # a full disk: tell the truth now, record it when a later read can
                    status = {**status, **verdict}
    now = time.time()
    started = status.get("started_at")
    elapsed = None if started is None else (status.get("finished_at") or now) - started
    step, max_steps = int(status.get("step") or 0), status.get("max_steps")
    progress = min(1.0, step / max_steps) if max_steps else 0.0
    if status.get("status") == "done":
        progress = 1.0
    eta = None
    train_started = status.get("train_started_at")
    if status.get("status") == "running" and train_started and step and max_steps:
        per_step = (now - train_started) / step
        eta = per_step * max(0, max_steps - step) + float(status.get("eval_seconds") or 0)
    return JobState(
        name=folder.name,
        path=folder.path,
        kind=status.get("kind", ""),
        status=status.get("status", "queued"),
        phase=status.get("phase", ""),
        step=step,
        max_steps=max_steps,
        progress=progress,
        elapsed=elapsed,
        eta=eta,
        error=status.get("error"),
        partial=bool(status.get("partial")),
        config=read_json(folder.file("config.json")) or {},
        result=status.get("result"),
        created_at=status.get("created_at"),
        stop_requested=folder.stop_requested(),
        metrics=folder.metrics() if with_metrics else [],
    )


def _last_log_line(log: Path, max_bytes: int = 4096) -> str:
    try:
        with log.open("rb") as f:
            f.seek(max(0, log.stat().st_size - max_bytes))
            tail = f.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def find_job(root: Path, name: str, kind: JobKind) -> Path:
    """The folder of the ``kind`` job called ``name`` under ``root`` (e.g. from a page's URL), checked to be real."""
    path = root / check_name(name, "job name")
    if not JobFolder(path).file("status.json").is_file():
        raise InvalidInput(f"There is no {kind.title} job called {name!r}.")
    return path


def list_jobs(root: Path) -> list[JobState]:
    """Every job under ``root``, newest first (without their metrics, to stay cheap)."""
    if not root.is_dir():
        return []
    jobs = [
        read_job(p, with_metrics=False)
        for p in root.iterdir()
        if p.is_dir() and not p.name.startswith(".") and (p / "status.json").is_file()
    ]
    return sorted(jobs, key=lambda j: j.created_at or 0, reverse=True)
