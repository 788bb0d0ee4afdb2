"""A training job's folder: the files it is made of, and how to read its state.

Everything a page needs to follow a job is a file, so a page can poll from
any process (a refreshed tab, a second browser) and the job itself knows
nothing about who watches. A job has a kind (``finetune`` or ``pretrain``);
the files every kind shares, and a fine-tuning job's own::

    <job>/config.json     the job's config (a FinetuneConfig, or core.pretrain's PretrainConfig)
    <job>/status.json     kind, queued | running | done | failed | cancelled, phase, step, error, result
    <job>/process.json    pid and start time of the job process
    <job>/metrics.jsonl   one JSON object per step or evaluation
    <job>/job.log         the job process's stdout and stderr
    <job>/STOP            present when someone asked the job to stop
    <job>/dataset.json    fine-tuning: which dataset, and the sizes of its splits
    <job>/train.jsonl     fine-tuning: the training split, as the job will read it
    <job>/eval.jsonl      fine-tuning: the held-out split
    <job>/adapter/        fine-tuning: the saved LoRA adapter (written atomically, last)

JSON files are replaced atomically (temp file, fsync, ``os.replace``), so a
reader sees the old state or the new one, never half of one. Metrics are
appended one whole line per write; a reader ignores a trailing line that is
not complete yet.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import InvalidInput
from core.finetune.config import FinetuneConfig
from core.finetune.datasets import BUILTIN_DATASETS, FinetuneDataset, parse_examples
from core.finetune.paths import check_name, jobs_root
from core.finetune.processes import ProcessId

FINETUNE, PRETRAIN = "finetune", "pretrain"
KIND_NAMES = {FINETUNE: "fine-tuning", PRETRAIN: "pretraining"}  # as a sentence names a job of that kind
STATUSES = ("queued", "running", "done", "failed", "cancelled")
ACTIVE = frozenset({"queued", "running"})
DIED = "The training process stopped unexpectedly (it was killed or crashed) without saving its result."


@contextmanager
def folder_replaced_atomically(target: Path) -> Iterator[Path]:
    """Yield an empty folder beside ``target``; when the block ends without error, it becomes ``target``.

    A crash or a full disk part-way leaves the previous ``target`` (or none), never a half-written one.
    """
    target = Path(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    old = target.with_name(f".{target.name}.old")
    try:
        yield tmp
        if target.exists():
            target.rename(old)
        tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


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

    def config_dict(self) -> dict[str, Any]:
        data = read_json(self.file("config.json"))
        if data is None:
            raise InvalidInput(f"{self.path} is not a job folder (it has no config.json).")
        return data

    def config(self) -> FinetuneConfig:
        return FinetuneConfig.from_dict(self.config_dict())

    def kind(self) -> str:
        """``finetune`` or ``pretrain``; folders from before kinds existed are fine-tuning jobs."""
        return self.status().get("kind") or FINETUNE

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
    """Create an empty job folder holding ``config.json``; the caller adds its inputs, then ``mark_queued``."""
    job_dir = Path(job_dir)
    if job_dir.exists() and any(job_dir.iterdir()):
        raise InvalidInput(f"{job_dir} already exists and is not empty: choose a new folder for the job.")
    job_dir.mkdir(parents=True, exist_ok=True)
    folder = JobFolder(job_dir)
    write_json_atomic(folder.file("config.json"), config)
    return folder


def mark_queued(folder: JobFolder, kind: str, **facts: Any) -> None:
    """Write status.json, last: a folder with a status is complete (other ranks wait for it).

    ``facts`` are what a kind of job records about itself from the start (a pretraining job: its corpus).
    """
    folder.update_status(
        kind=kind, status="queued", phase="queued", step=0, max_steps=None, created_at=time.time(), **facts
    )


def create_job(config: FinetuneConfig, job_dir: Path, dataset: FinetuneDataset) -> JobFolder:
    """Write a new fine-tuning job folder, status ``queued``; the job reads only what is written here."""
    config.validate()
    folder = new_job_folder(job_dir, config.to_dict())
    dataset.write(folder.path)
    write_json_atomic(
        folder.file("dataset.json"),
        {
            "name": dataset.name,
            "builtin": dataset.builtin is not None,
            "train_examples": len(dataset.train),
            "eval_examples": len(dataset.eval),
        },
    )
    mark_queued(folder, FINETUNE)
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
    kind: str = FINETUNE

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
        raise InvalidInput(f"{job_dir} is not a job folder (it has no status.json).")
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
        kind=status.get("kind") or FINETUNE,
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
