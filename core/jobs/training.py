"""The life of a Trainer run inside a job, the same for every kind that trains.

Fine-tuning an adapter and pretraining a tiny model differ in what they
build (a LoRA on a copy of a model, a Llama from random weights) and in what
they save; the rest is one skeleton, here: measure the held-out loss, train
(``JobProgress`` reports each step and obeys stop requests), measure it again
unless the last step already did, save the output atomically, and record a
typed ``TrainingResult`` in status.json. A run stopped before its first step
saves nothing and says so.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from core.jobs.folder import JobFolder
from core.jobs.progress import JobProgress
from core.jobs.stop import StopRequest, any_rank
from core.json_records import JsonRecord


@dataclass(frozen=True)
class TrainingResult(JsonRecord):
    """What a training job did: recorded in status.json, shown by pages, printed by the CLI.

    ``output_dir`` is what the job saved (an adapter, a model); None when it
    stopped before its first step. ``partial``: stopped early, so the output
    holds what was learned so far. ``parameters`` counts the weights trained.
    """

    status: str  # done | cancelled
    output_dir: str | None
    steps: int
    max_steps: int
    partial: bool
    loss_first: float | None
    loss_last: float | None
    eval_loss_before: float
    eval_loss_after: float | None
    tokens_seen: int
    tokens_per_second: float | None
    train_seconds: float
    seconds: float
    job_dir: str
    parameters: int | None = None

    def summary(self, renames: dict[str, str]) -> dict[str, Any]:
        """Every field, those in ``renames`` under the name a kind's CLI has always printed them by."""
        return {renames.get(name, name): value for name, value in self.to_json().items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingResult:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class TrainingRun:
    """What a kind of job hands the skeleton: its Trainer, and how to save what it trained.

    ``save(result)`` writes the output atomically and returns its folder; it
    runs only when at least one step was taken. ``after_train(steps)`` runs
    once training has ended (a pretraining job writes its last sample).
    """

    trainer: Any
    max_steps: int
    save: Callable[[TrainingResult], Path]
    parameters: int | None = None
    after_train: Callable[[int], None] | None = None


@contextmanager
def trainer_scratch() -> Iterator[Path]:
    """A scratch folder for the Trainer's own files, outside the job folder: a killed job leaves none there."""
    with tempfile.TemporaryDirectory(prefix="llm-lab-trainer-") as tmp:
        yield Path(tmp)


def run_training(
    folder: JobFolder, run: TrainingRun, progress: JobProgress, stop: StopRequest, started: float
) -> TrainingResult:
    """Evaluate, train, evaluate, save, record: the part of every training job that is the same."""
    trainer = run.trainer
    folder.update_status(phase="evaluating", max_steps=run.max_steps, parameters=run.parameters)
    eval_started = time.time()
    eval_loss_before = float(trainer.evaluate()["eval_loss"])
    folder.update_status(eval_seconds=time.time() - eval_started)
    train_metrics: dict[str, Any] = {}
    if not any_rank(stop.requested(), trainer.args.device):
        train_metrics = trainer.train().metrics
    steps = int(trainer.state.global_step)
    partial = steps == 0 or progress.stopped_early
    if run.after_train is not None:
        run.after_train(steps)
    last_eval = next((r for r in reversed(progress.rows) if r["eval_loss"] is not None), None)
    if steps == 0:
        eval_loss_after = None
    elif last_eval is not None and last_eval["step"] == steps:
        eval_loss_after = last_eval["eval_loss"]  # the Trainer already evaluated at the last step
    else:
        folder.update_status(phase="evaluating")
        eval_loss_after = float(trainer.evaluate()["eval_loss"])
    losses = [r["loss"] for r in progress.rows if r["loss"] is not None]
    tokens_seen = int(trainer.state.num_input_tokens_seen)
    train_seconds = max(0.0, float(train_metrics.get("train_runtime", 0.0)) - progress.eval_seconds_in_training)
    result = TrainingResult(
        status="cancelled" if partial else "done",
        output_dir=None,
        steps=steps,
        max_steps=run.max_steps,
        partial=partial,
        loss_first=losses[0] if losses else None,
        loss_last=losses[-1] if losses else None,
        eval_loss_before=eval_loss_before,
        eval_loss_after=eval_loss_after,
        tokens_seen=tokens_seen,
        tokens_per_second=tokens_seen / train_seconds if train_seconds > 0 else None,
        train_seconds=train_seconds,
        seconds=time.time() - started,
        job_dir=str(folder.path),
        parameters=run.parameters,
    )
    if steps > 0 and folder.writable:
        folder.update_status(phase="saving")
        result = replace(result, output_dir=str(run.save(result)))
    result = replace(result, seconds=time.time() - started)
    folder.finish(result.status, step=steps, partial=partial, result=result.to_json())
    return result
