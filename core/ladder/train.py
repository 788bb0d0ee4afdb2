"""Climbing a ladder: the rungs trained one after another in one job process, each kept as it ends.

Each rung is a pretraining run, built and trained by pretraining's own code
(``core.pretrain.train.build_trainer``, the shared ``run_training``
skeleton, ``save_tiny_model``) in a sub-folder of the ladder, so a rung is a
tiny model like any other. What the ladder adds: the same prepared corpus,
seed, windows and token budget for every rung; the ladder's progress across
rungs; each rung's result (held-out loss, bits per character, 6·N·D, its
loss curve against compute, one sample) written atomically as it ends; and,
first, SmolLM2-135M scored on the same held-out text for a reference point.

A stop request (Cancel, SIGTERM, Ctrl-C) ends the rung in training after
its current step; its partial model is kept but left out of the fit, the
rungs before it stay, and no later rung starts.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import torch
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from core.errors import LabError
from core.jobs.files import write_json_atomic
from core.jobs.folder import JobFolder, new_job_folder
from core.jobs.launcher import run_in_job_folder
from core.jobs.progress import JobProgress
from core.jobs.stop import StopRequest
from core.jobs.training import TrainingResult, TrainingRun, run_training, trainer_scratch
from core.ladder.config import LadderConfig, RungPlan
from core.ladder.fit import bits_per_char
from core.ladder.jobs import PreparedLadder, check_ladder
from core.ladder.library import (
    LADDER,
    REFERENCE_FILE,
    RESULT_FILE,
    LadderResult,
    RungResult,
    collect_result,
    curve_points,
    rung_dir,
)
from core.ladder.reference import reference_score
from core.pretrain.jobs import CORPUS_FILE
from core.pretrain.library import save_tiny_model
from core.pretrain.samples import sample_text
from core.pretrain.sizes import training_flops
from core.pretrain.train import build_trainer, cpu_threads, model_info
from core.pretrain.windows import held_out_windows

RUNG_KIND = "ladder-rung"  # a rung's own status.json: a pretraining run inside a ladder, not a job of its own
STATUS_EVERY_S = 0.5  # the ladder's overall step is written at most this often (the rung's own every step)


@dataclass(frozen=True)
class HeldOut:
    """The held-out windows every rung is measured on: the tokens predicted, the characters they spell, the text."""

    tokens: int
    characters: int
    text: str


def held_out(prepared: PreparedLadder, context: int) -> HeldOut:
    """What the Trainer's held-out loss averages over: every window's tokens after its first, and their text."""
    tokenizer = prepared.corpus.tokenizer
    windows = held_out_windows(prepared.corpus.split.held_out, context)
    ids = [w["input_ids"] for w in windows]
    characters = sum(len(tokenizer.decode(w[1:].tolist())) for w in ids)
    text = tokenizer.decode(torch.cat(ids).tolist())
    return HeldOut(tokens=sum(len(w) - 1 for w in ids), characters=characters, text=text)


class LadderProgress(TrainerCallback):
    """Writes the ladder's step (all rungs' steps so far) while a rung trains, at most every half second."""

    def __init__(self, folder: JobFolder, steps_before: int) -> None:
        self.folder, self.steps_before = folder, steps_before
        self._written = 0.0

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any):
        now = time.time()
        if now - self._written >= STATUS_EVERY_S or state.global_step == state.max_steps:
            self.folder.update_status(step=self.steps_before + state.global_step)
            self._written = now


def run_ladder_job(job_dir: Path, echo: bool = True) -> LadderResult:
    """Run the ladder in ``job_dir`` in this process and return its result."""
    folder = JobFolder(Path(job_dir))
    echo_to = sys.stderr if echo else None
    threads = torch.get_num_threads()
    torch.set_num_threads(cpu_threads())  # tiny models: one core trains, the app keeps the other
    try:
        return run_in_job_folder(folder, LADDER, lambda stop, started: _climb(folder, stop, started, echo_to))
    finally:
        torch.set_num_threads(threads)  # a ladder run inside another program (a test) gives its threads back


def _say(echo: TextIO | None, line: str) -> None:
    if echo is not None:
        print(line, file=echo, flush=True)


def _climb(folder: JobFolder, stop: StopRequest, started: float, echo: TextIO | None) -> LadderResult:
    config = LadderConfig.from_dict(folder.config_dict())
    text = folder.file(CORPUS_FILE).read_text(encoding="utf-8")
    corpus = (folder.status().get("corpus") or {}).get("name", config.corpus)
    folder.update_status(phase="tokenizing", max_steps=config.rungs * config.steps)
    prepared = check_ladder(config, text)
    measured = held_out(prepared, config.context)
    if config.reference and not stop.requested():
        folder.update_status(phase="scoring SmolLM2 on the held-out text")
        _score_reference(folder, measured.text[: config.reference_chars], echo)
    for rung in prepared.plan:
        if stop.requested():
            break
        folder.update_status(phase=f"training rung {rung.number} of {len(prepared.plan)}", rung=rung.number)
        _say(echo, f"rung {rung.number} of {len(prepared.plan)}: {rung.parameters:,} parameters")
        result = _train_rung(folder, config, rung, prepared, measured, (corpus, len(text)), stop, echo)
        if result.partial:
            break
    cancelled = stop.requested()
    status = "cancelled" if cancelled else "done"
    ladder = collect_result(folder.path, config, status, corpus, time.time() - started)
    folder.finish(status, partial=cancelled, rung=None, result=ladder.to_json())
    return ladder


def _score_reference(folder: JobFolder, text: str, echo: TextIO | None) -> None:
    """SmolLM2-135M's bits per character on ``text``; a model that cannot be loaded here leaves no reference."""
    from core.models import load_model

    try:
        score = reference_score(load_model(), text)
    except LabError as exc:
        folder.update_status(reference_error=str(exc))
        _say(echo, f"no reference point: {exc}")
        return
    write_json_atomic(folder.file(REFERENCE_FILE), score.to_json())
    _say(echo, f"{score.model}: {score.bits_per_char:.3f} bits per character on the held-out text")


def _train_rung(
    ladder: JobFolder,
    config: LadderConfig,
    rung: RungPlan,
    prepared: PreparedLadder,
    measured: HeldOut,
    corpus: tuple[str, int],
    stop: StopRequest,
    echo: TextIO | None,
) -> RungResult:
    """Train one rung in its own sub-folder with pretraining's code; write and return its result.

    ``corpus`` is the text's (name, characters), for the rung's model card.
    """
    started = time.time()
    rung_config = config.rung_config(rung, prepared.sample_prompt)
    path = rung_dir(ladder.path, rung.number)
    folder = new_job_folder(path, rung_config.to_json())
    folder.update_status(kind=RUNG_KIND, status="running", started_at=started)
    progress = JobProgress(folder, stop, started, echo)
    sample: dict[str, Any] = {"step": 0, "prompt": prepared.sample_prompt, "text": ""}
    with trainer_scratch() as scratch:
        climb = LadderProgress(ladder, (rung.number - 1) * config.steps)
        setup = build_trainer(rung_config, prepared.corpus, scratch, [progress, climb])

        def write_sample(steps: int) -> None:
            text = sample_text(
                setup.model, setup.tokenizer, prepared.sample_prompt, config.sample_chars, config.context, config.seed
            )
            sample.update(step=steps, text=text)

        def save(result: TrainingResult) -> Path:
            info = model_info(rung_config, *corpus, prepared.corpus, setup, result, [sample])
            # named after the ladder and the rung: the name the explorer and the task show for it
            return save_tiny_model(setup.model, setup.tokenizer, path / f"{ladder.name}-rung-{rung.number}", info)

        run = TrainingRun(setup.trainer, config.steps, save, setup.parameters, after_train=write_sample)
        trained = run_training(folder, run, progress, stop, started)
    result = _rung_result(rung, config, trained, progress.rows, measured, sample)
    write_json_atomic(path / RESULT_FILE, result.to_json())
    if result.bits_per_char is not None:
        _say(echo, f"rung {rung.number}: held-out {result.bits_per_char:.3f} bits per character")
    return result


def _rung_result(
    rung: RungPlan,
    config: LadderConfig,
    trained: TrainingResult,
    rows: list[dict[str, Any]],
    measured: HeldOut,
    sample: dict[str, Any],
) -> RungResult:
    parameters = trained.parameters or rung.parameters
    curve = curve_points(rows, parameters, config.batch_size * config.context)
    eval_loss = trained.eval_loss_after
    return RungResult(
        **{**rung.row(), "parameters": parameters},
        steps=trained.steps,
        max_steps=trained.max_steps,
        partial=trained.partial,
        tokens=trained.tokens_seen,
        eval_loss=eval_loss,
        eval_loss_before=trained.eval_loss_before,
        bits_per_char=None if eval_loss is None else bits_per_char(eval_loss, measured.tokens, measured.characters),
        train_flops=training_flops(parameters, trained.tokens_seen),
        seconds=trained.seconds,
        sample_prompt=sample["prompt"],
        sample=sample["text"],
        model_dir=trained.output_dir,
        curve=curve,
    )
