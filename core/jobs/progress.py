"""The Trainer callbacks that report a job's progress and obey its stop request.

The training loop is transformers' own; it knows nothing of pages or files.
``JobProgress`` listens to it and writes what a watcher needs into the job
folder: a metrics row per step (loss, learning rate, tokens/s) and per
evaluation (eval loss), and the current step in status.json. It also checks,
after every optimizer step, whether someone asked the job to stop (a ``STOP``
file in the folder, or SIGTERM/SIGINT); if so it sets
``control.should_training_stop`` and the Trainer ends after that step, so
the job can save what it has learned so far.
"""

from __future__ import annotations

import time
from typing import Any, TextIO

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from core.jobs.folder import JobFolder
from core.jobs.stop import StopRequest, any_rank


class JobProgress(TrainerCallback):
    """Writes metrics and status to a job folder as the Trainer runs, and stops it on request.

    ``rows`` keeps what was written, for the job's final summary.
    ``eval_seconds_in_training`` is the time evaluations took inside
    ``train()``, so training throughput can leave it out.
    """

    def __init__(self, folder: JobFolder, stop: StopRequest, job_started: float, echo: TextIO | None = None) -> None:
        self.folder = folder
        self.stop = stop
        self.job_started = job_started
        self.echo = echo
        self.rows: list[dict[str, Any]] = []
        self.training = False
        self.stopped_early = False
        self.eval_seconds_in_training = 0.0
        self._last_time = 0.0
        self._last_tokens = 0
        self._eval_seconds_since_log = 0.0

    def _write(self, row: dict[str, Any], line: str) -> None:
        row = {
            "step": row["step"],
            "loss": row.get("loss"),
            "learning_rate": row.get("learning_rate"),
            "eval_loss": row.get("eval_loss"),
            "tokens_per_second": row.get("tokens_per_second"),
            "grad_norm": row.get("grad_norm"),
            "elapsed": time.time() - self.job_started,
        }
        self.rows.append(row)
        self.folder.append_metric(row)
        if self.echo is not None and self.folder.writable:
            print(line, file=self.echo, flush=True)

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any):
        self.training = True
        self._last_time = time.time()
        self._last_tokens = state.num_input_tokens_seen
        self.folder.update_status(
            phase="training", step=state.global_step, max_steps=state.max_steps, train_started_at=self._last_time
        )

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any):
        self.folder.update_status(step=state.global_step)
        if any_rank(self.stop.requested(), args.device):
            control.should_training_stop = True
            self.stopped_early = state.global_step < state.max_steps
        return control

    def on_log(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any):
        logs = kwargs.get("logs") or {}
        if "loss" not in logs:  # evaluation results and the end-of-training summary come through here too
            return
        now = time.time()
        seconds = now - self._last_time - self._eval_seconds_since_log
        tokens = state.num_input_tokens_seen - self._last_tokens
        speed = tokens / seconds if seconds > 0 else None
        self._last_time, self._last_tokens, self._eval_seconds_since_log = now, state.num_input_tokens_seen, 0.0
        row = {
            "step": state.global_step,
            "loss": float(logs["loss"]),
            "learning_rate": logs.get("learning_rate"),
            "grad_norm": logs.get("grad_norm"),
            "tokens_per_second": speed,
        }
        line = f"step {state.global_step}/{state.max_steps}  loss {row['loss']:.4f}"
        if row["learning_rate"] is not None:
            line += f"  lr {row['learning_rate']:.2e}"
        if speed is not None:
            line += f"  {speed:,.0f} tokens/s"
        self._write(row, line)

    def on_evaluate(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any):
        metrics = kwargs.get("metrics") or {}
        if "eval_loss" not in metrics:
            return
        if self.training:
            runtime = float(metrics.get("eval_runtime") or 0)
            self.eval_seconds_in_training += runtime
            self._eval_seconds_since_log += runtime
        loss = float(metrics["eval_loss"])
        self._write({"step": state.global_step, "eval_loss": loss}, f"step {state.global_step}  eval loss {loss:.4f}")

    def on_train_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any):
        self.training = False


class StepTimer(TrainerCallback):
    """Wall time of each optimizer step, for duration estimates."""

    def __init__(self) -> None:
        self.durations: list[float] = []
        self._began = 0.0

    def on_step_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any):
        self._began = time.perf_counter()

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any):
        self.durations.append(time.perf_counter() - self._began)
