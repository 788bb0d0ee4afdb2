"""A ladder's folder, what it holds once climbed, and the library of saved ladders.

A ladder is a job of its own kind on the shared machinery (``core.jobs``);
its folder holds one sub-folder per rung, each written as the rung ends, so
a ladder that was cancelled or killed keeps the rungs it finished::

    <ladder>/config.json        the LadderConfig
    <ladder>/status.json        kind "ladder", status, phase, step (all rungs' steps), "plan", "rung", result
    <ladder>/corpus.txt         the text every rung reads
    <ladder>/reference.json     SmolLM2-135M's bits per character on the held-out text (when scored)
    <ladder>/rung-<n>/          a pretraining folder: config.json, status.json, metrics.jsonl, the model
                                (<ladder>-rung-<n>/, a plain transformers folder) and, once ended, result.json

``read_ladder`` builds everything a page or the CLI shows from those files
alone (no retraining, no model loaded), whatever state the job is in.
Ladders started from a page live in ``<data>/ladder/<name>/``.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from core.errors import InvalidInput
from core.jobs.files import read_json
from core.jobs.folder import JobFolder, JobKind, JobState, find_job, list_jobs, read_job
from core.jobs.paths import child_folder, data_root
from core.json_records import JsonRecord
from core.ladder.config import LadderConfig
from core.ladder.fit import PowerLawFit, fit_power_law
from core.pretrain.sizes import training_flops

LADDER = JobKind("ladder", "scaling ladder", ("ladder",))
REFERENCE_FILE = "reference.json"
RESULT_FILE = "result.json"


def ladders_root() -> Path:
    """The folder holding one sub-folder per ladder started from a page."""
    return data_root() / "ladder"


def rung_dir(ladder_dir: Path, number: int) -> Path:
    return Path(ladder_dir) / f"rung-{number}"


@dataclass(frozen=True)
class CurvePoint:
    """One step of a rung's training: the compute spent so far (6·N·D) and the losses at that step."""

    step: int
    flops: float
    loss: float | None  # training loss of this step's batch
    eval_loss: float | None  # held-out loss, at the steps where it was measured


def curve_points(rows: list[dict[str, Any]], parameters: int, tokens_per_step: int) -> tuple[CurvePoint, ...]:
    """A rung's metric rows (``metrics.jsonl``) as points against the compute spent by each step."""
    return tuple(
        CurvePoint(r["step"], training_flops(parameters, tokens_per_step * r["step"]), r["loss"], r["eval_loss"])
        for r in rows
    )


@dataclass(frozen=True)
class RungResult(JsonRecord):
    """What one rung learned: its size, held-out loss, bits per character, compute and time.

    ``partial``: the ladder was stopped during this rung, so it read fewer
    tokens than the others and is left out of the fit.
    """

    number: int
    layers: int
    d_model: int
    heads: int
    learning_rate: float
    parameters: int
    steps: int
    max_steps: int
    partial: bool
    tokens: int  # tokens read in training
    eval_loss: float | None  # held-out loss after training, nats per token
    eval_loss_before: float  # the same, with random weights
    bits_per_char: float | None  # eval_loss per character of the held-out text, in bits
    train_flops: float  # 6 x parameters x tokens
    seconds: float
    sample_prompt: str
    sample: str  # what the rung writes after the prompt, with the ladder's seed
    model_dir: str | None
    curve: tuple[CurvePoint, ...] = field(default=(), repr=False)

    def summary(self) -> dict[str, Any]:
        """The CLI's row for this rung (no curve, no sample)."""
        keys = ("number", "parameters", "eval_loss", "bits_per_char", "train_flops", "seconds", "tokens", "steps")
        row = {k: getattr(self, k) for k in keys}
        return {**row, "layers": self.layers, "d_model": self.d_model, "heads": self.heads, "partial": self.partial}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RungResult:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["curve"] = tuple(CurvePoint(**p) for p in data.get("curve") or ())
        return cls(**values)


@dataclass(frozen=True)
class ReferenceScore(JsonRecord):
    """A trained model scored on the same held-out text: bits per character compare across tokenizers."""

    model: str
    parameters: int
    bits_per_char: float
    characters: int
    tokens: int


@dataclass(frozen=True)
class LadderResult(JsonRecord):
    """A ladder as far as it got: the finished rungs, the fit through them, SmolLM2's reference point.

    ``output_dir`` is the ladder's folder once at least one rung saved a
    model (the shared job panel says "saved" by it); ``stopped`` is the rung
    a cancel interrupted, kept but not fitted.
    """

    status: str
    corpus: str
    rungs_planned: int
    rungs: tuple[RungResult, ...]
    stopped: RungResult | None
    fit: PowerLawFit | None
    reference: ReferenceScore | None
    job_dir: str
    output_dir: str | None
    seconds: float | None

    def summary(self) -> dict[str, Any]:
        """The CLI's ``--json``: ``{"rungs": [...], "fit": {...}, ...}``."""
        return {
            "status": self.status,
            "corpus": self.corpus,
            "rungs_planned": self.rungs_planned,
            "rungs": [r.summary() for r in self.rungs],
            "fit": None if self.fit is None else self.fit.to_json(),
            "reference": None if self.reference is None else self.reference.to_json(),
            "stopped_rung": None if self.stopped is None else self.stopped.summary(),
            "seconds": self.seconds,
            "output": self.job_dir,
        }


def fit_rungs(rungs: tuple[RungResult, ...] | list[RungResult], offset: bool = False) -> PowerLawFit:
    """The power law through the rungs' held-out bits per character (``offset``: with an irreducible loss)."""
    measured = [r for r in rungs if r.bits_per_char is not None and not r.partial]
    return fit_power_law([r.parameters for r in measured], [r.bits_per_char for r in measured], offset)


@dataclass(frozen=True)
class Ladder:
    """A ladder read from its folder: its config, its job state, its plan and its result so far."""

    name: str
    path: Path
    config: LadderConfig
    state: JobState
    plan: tuple[dict[str, Any], ...]  # {"number", "layers", "d_model", "heads", "learning_rate", "parameters"}
    result: LadderResult
    running_rung: int | None  # the rung in training now; None when the job is not running

    def live_curve(self) -> tuple[int, int, tuple[CurvePoint, ...]] | None:
        """The rung in training now: (number, parameters, its curve so far); None when none is."""
        planned = next((p for p in self.plan if p["number"] == self.running_rung), None)
        if planned is None:
            return None
        rows = JobFolder(rung_dir(self.path, planned["number"])).metrics()
        per_step = self.config.batch_size * self.config.context
        return planned["number"], planned["parameters"], curve_points(rows, planned["parameters"], per_step)


def collect_result(
    job_dir: Path, config: LadderConfig, status: str, corpus: str, seconds: float | None
) -> LadderResult:
    """The ladder's result from its rung folders: finished rungs, the one a cancel stopped, the fit, the reference."""
    finished: list[RungResult] = []
    stopped = None
    for number in range(1, config.rungs + 1):
        data = read_json(rung_dir(job_dir, number) / RESULT_FILE)
        if data is None:
            continue
        rung = RungResult.from_dict(data)
        if rung.partial:
            stopped = rung
        else:
            finished.append(rung)
    reference = read_json(Path(job_dir) / REFERENCE_FILE)
    saved = any(r.model_dir for r in [*finished, *([stopped] if stopped else [])])
    return LadderResult(
        status=status,
        corpus=corpus,
        rungs_planned=config.rungs,
        rungs=tuple(finished),
        stopped=stopped,
        fit=fit_rungs(finished) if len(finished) >= 2 else None,
        reference=ReferenceScore(**reference) if reference else None,
        job_dir=str(job_dir),
        output_dir=str(job_dir) if saved else None,
        seconds=seconds,
    )


def read_ladder(job_dir: Path) -> Ladder:
    """Everything about the ladder in ``job_dir`` from its files: finished rungs, fit, reference, state."""
    job_dir = Path(job_dir)
    folder = JobFolder(job_dir)
    state = read_job(job_dir)
    if state.kind != LADDER.name:
        raise InvalidInput(f"{job_dir.name!r} is not a scaling ladder (it is a {state.kind or 'different'} job).")
    config = LadderConfig.from_dict(folder.config_dict())
    status = folder.status()
    corpus = (status.get("corpus") or {}).get("name", config.corpus)
    result = collect_result(job_dir, config, state.status, corpus, state.elapsed)
    running = status.get("rung") if state.active else None
    return Ladder(job_dir.name, job_dir, config, state, tuple(status.get("plan") or ()), result, running)


def find_ladder_job(name: str) -> Path:
    """The folder of the ladder called ``name`` (e.g. from a page's URL), checked to be a real job."""
    return find_job(ladders_root(), name, LADDER)


def list_ladders(root: Path | None = None) -> list[JobState]:
    """Every ladder under ``root`` (default: the page's), newest first, whatever its state."""
    return [job for job in list_jobs(root or ladders_root()) if job.kind == LADDER.name]


def delete_ladder(name: str) -> None:
    """Delete a saved ladder and its rungs' models (refused while it trains)."""
    path = child_folder(ladders_root(), name, "ladder name")
    if not (path / "status.json").is_file():
        raise InvalidInput(f"There is no ladder called {name!r}.")
    if read_job(path, with_metrics=False).active:
        raise InvalidInput(f"The ladder {name!r} is still training: cancel it or wait for it to finish first.")
    shutil.rmtree(path)
