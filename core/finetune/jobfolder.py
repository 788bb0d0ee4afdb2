"""A fine-tuning job's folder: the files it is made of, and how to read its state.

Everything a page needs to follow a job is a file, so a page can poll from
any process (a refreshed tab, a second browser) and the job itself knows
nothing about who watches::

    <job>/config.json     the FinetuneConfig
    <job>/dataset.json    which dataset, and the sizes of its splits
    <job>/train.jsonl     the training split, as the job will read it
    <job>/eval.jsonl      the held-out split
    <job>/status.json     queued | running | done | failed | cancelled, phase, step, error, result
    <job>/process.json    pid and start time of the job process
    <job>/metrics.jsonl   one JSON object per step or evaluation
    <job>/job.log         the job process's stdout and stderr
    <job>/STOP            present when someone asked the job to stop
    <job>/adapter/        the saved LoRA adapter (written atomically, last)

JSON files are replaced atomically (temp file, fsync, ``os.replace``), so a
reader sees the old state or the new one, never half of one. Metrics are
appended one whole line per write; a reader ignores a trailing line that is
not complete yet.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import InvalidInput
from core.finetune.config import FinetuneConfig
from core.finetune.datasets import BUILTIN_DATASETS, FinetuneDataset, parse_examples
from core.finetune.paths import check_name, jobs_root
from core.finetune.processes import ProcessId

STATUSES = ("queued", "running", "done", "failed", "cancelled")
ACTIVE = frozenset({"queued", "running"})
DIED = "The training process stopped unexpectedly (it was killed or crashed) without saving its result."


def write_json_atomic(path: Path, data: Any) -> None:
    """Replace ``path`` with ``data`` as JSON in one step; on any error the old file stays as it was."""
    text = json.dumps(data, indent=2, ensure_ascii=False)  # serialise first: a bad value writes nothing
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path) -> Any:
    """The JSON in ``path``, or None if it does not exist."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


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
    def adapter_dir(self) -> Path:
        return self.path / "adapter"

    @property
    def stop_path(self) -> Path:
        return self.path / "STOP"

    def exists(self) -> bool:
        return self.file("config.json").is_file()

    def config(self) -> FinetuneConfig:
        data = read_json(self.file("config.json"))
        if data is None:
            raise InvalidInput(f"{self.path} is not a fine-tuning job folder (it has no config.json).")
        return FinetuneConfig.from_dict(data)

    def dataset(self) -> FinetuneDataset:
        info = read_json(self.file("dataset.json")) or {}
        name = info.get("name", "dataset")
        splits = [
            tuple(parse_examples(self.file(f"{split}.jsonl").read_bytes(), f"{split}.jsonl", min_rows=1))
            for split in ("train", "eval")
        ]
        builtin = BUILTIN_DATASETS.get(name) if info.get("builtin") else None
        return FinetuneDataset(name, splits[0], splits[1], builtin)

    def status(self) -> dict[str, Any]:
        return read_json(self.file("status.json")) or {}

    def update_status(self, **changes: Any) -> dict[str, Any]:
        """Merge ``changes`` into status.json (atomically) and return the new status."""
        status = {**self.status(), **changes, "updated_at": time.time()}
        if self.writable:
            write_json_atomic(self.file("status.json"), status)
        return status

    def process(self) -> ProcessId | None:
        return ProcessId.from_dict(read_json(self.file("process.json")))

    def set_process(self, process: ProcessId) -> None:
        if self.writable:
            write_json_atomic(self.file("process.json"), process.to_dict())

    def append_metric(self, row: dict[str, Any]) -> None:
        if self.writable:
            with self.file("metrics.jsonl").open("a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")  # one write per line, so readers never see half a row

    def metrics(self) -> list[dict[str, Any]]:
        try:
            text = self.file("metrics.jsonl").read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.split("\n")[:-1] if line.strip()]  # [:-1]: maybe incomplete

    def request_stop(self) -> None:
        self.stop_path.touch()

    def stop_requested(self) -> bool:
        return self.stop_path.exists()


def create_job(config: FinetuneConfig, job_dir: Path, dataset: FinetuneDataset) -> JobFolder:
    """Write a new job folder, status ``queued``; the job reads only what is written here."""
    config.validate()
    job_dir = Path(job_dir)
    if job_dir.exists() and any(job_dir.iterdir()):
        raise InvalidInput(f"{job_dir} already exists and is not empty: choose a new folder for the job.")
    job_dir.mkdir(parents=True, exist_ok=True)
    folder = JobFolder(job_dir)
    write_json_atomic(folder.file("config.json"), config.to_dict())
    dataset.write(job_dir)
    write_json_atomic(
        folder.file("dataset.json"),
        {
            "name": dataset.name,
            "builtin": dataset.builtin is not None,
            "train_examples": len(dataset.train),
            "eval_examples": len(dataset.eval),
        },
    )
    folder.update_status(status="queued", phase="queued", step=0, max_steps=None, created_at=time.time())
    return folder


@dataclass
class JobState:
    """What a page shows about a job, read from its folder."""

    name: str
    path: Path
    status: str
    phase: str
    step: int
    max_steps: int | None
    progress: float  # 0 to 1, by steps
    elapsed: float | None  # seconds since the job started (to its end, once finished)
    eta: float | None  # seconds left, from the measured step rate; None until a step is done
    error: str | None
    partial: bool  # stopped early: the adapter has what was learned so far
    adapter_dir: Path | None
    config: dict[str, Any]
    result: dict[str, Any] | None
    created_at: float | None
    metrics: list[dict[str, Any]] = field(default_factory=list, repr=False)

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def finished(self) -> bool:
        return not self.active


def read_job(job_dir: Path, with_metrics: bool = True) -> JobState:
    """The state of the job in ``job_dir``, telling the truth about a job whose process died.

    A job still marked queued or running whose process is gone is recorded
    (and reported) as failed, with the last line of its log as a clue.
    """
    folder = JobFolder(job_dir)
    status = folder.status()
    if not status:
        raise InvalidInput(f"{job_dir} is not a fine-tuning job folder (it has no status.json).")
    if status.get("status") in ACTIVE:
        process = folder.process()
        if process is not None and not process.alive():
            status = folder.status()  # it may have written its final status just before exiting
            if status.get("status") in ACTIVE:
                clue = _last_log_line(folder.log_path)
                error = DIED + (f" Last line of its log: {clue}" if clue else "")
                status = folder.update_status(status="failed", phase="finished", error=error, finished_at=time.time())
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
    adapter = folder.adapter_dir
    return JobState(
        name=folder.name,
        path=folder.path,
        status=status.get("status", "queued"),
        phase=status.get("phase", ""),
        step=step,
        max_steps=max_steps,
        progress=progress,
        elapsed=elapsed,
        eta=eta,
        error=status.get("error"),
        partial=bool(status.get("partial")),
        adapter_dir=adapter if (adapter / "adapter_config.json").is_file() else None,
        config=read_json(folder.file("config.json")) or {},
        result=status.get("result"),
        created_at=status.get("created_at"),
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


def find_job(name: str, root: Path | None = None) -> Path:
    """The folder of the job called ``name`` (e.g. from a page's URL), checked to be a real job."""
    path = (root or jobs_root()) / check_name(name, "job name")
    if not JobFolder(path).file("status.json").is_file():
        raise InvalidInput(f"There is no fine-tuning job called {name!r}.")
    return path


def list_jobs(root: Path | None = None) -> list[JobState]:
    """Every job under ``root``, newest first (without their metrics, to stay cheap)."""
    root = root or jobs_root()
    if not root.is_dir():
        return []
    jobs = [
        read_job(p, with_metrics=False)
        for p in root.iterdir()
        if p.is_dir() and not p.name.startswith(".") and (p / "status.json").is_file()
    ]
    return sorted(jobs, key=lambda j: j.created_at or 0, reverse=True)
