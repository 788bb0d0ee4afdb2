"""Fine-tuning jobs and duration estimates: their folders, starting them, finding them again.

A fine-tuning job's folder holds, beside the files every job has
(``core.jobs.folder``)::

    <job>/dataset.json    which dataset, and the sizes of its splits
    <job>/train.jsonl     the training split, as the job will read it
    <job>/eval.jsonl      the held-out split
    <job>/adapter/        the saved LoRA adapter (written atomically, last)

A job that finished with an adapter *is* a saved adapter
(``core.finetune.adapters``). An estimate is a short job of its own kind: it
times two real training steps in its own process, never in the web server,
and records a ``DurationEstimate``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from core.datasets import BUILTIN_DATASETS, Dataset, load_dataset, parse_examples
from core.finetune.config import FinetuneConfig
from core.finetune.encoding import encode_examples
from core.jobs.files import read_json, write_json_atomic
from core.jobs.folder import JobFolder, JobKind, find_job, mark_queued, new_job_folder
from core.jobs.launcher import start_job_process
from core.jobs.paths import claim_named_folder, claim_new_folder, data_root
from core.json_records import JsonRecord

FINETUNE = JobKind("finetune", "fine-tuning", ("finetune",))
ESTIMATE = JobKind("estimate", "duration estimate", ("finetune", "--estimate"))
ADAPTER_SUBDIR = "adapter"  # where a job saves its adapter: <job>/adapter


def jobs_root() -> Path:
    """The folder holding one sub-folder per fine-tuning job."""
    return data_root() / "finetune" / "jobs"


def estimates_root() -> Path:
    """The folder holding the short jobs that time a few training steps."""
    return data_root() / "finetune" / "estimates"


def find_finetune_job(name: str) -> Path:
    """The folder of the fine-tuning job called ``name`` (e.g. from a page's URL)."""
    return find_job(jobs_root(), name, FINETUNE)


def check_inputs(config: FinetuneConfig, dataset: Dataset, restricted: bool = False) -> None:
    """Everything that can be checked before a job starts: the config, the model, every row's length.

    ``restricted``: the model name came from the shared app, so a local path
    must lie in LLM Lab's own folders (``core.models.check_model_location``).
    """
    from core.models import load_model

    config.validate()
    tokenizer = load_model(config.model, restricted=restricted).tokenizer  # also proves the model loads
    encode_examples(tokenizer, dataset.train, config.max_length, "training")
    encode_examples(tokenizer, dataset.eval, config.max_length, "evaluation")


def create_job(config: FinetuneConfig, job_dir: Path, dataset: Dataset, kind: JobKind = FINETUNE) -> JobFolder:
    """Write a fine-tuning (or estimate) job folder, status ``queued``; the job reads only what is written here."""
    config.validate()
    folder = new_job_folder(job_dir, config.to_json())
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
    mark_queued(folder, kind)
    return folder


def job_dataset(folder: JobFolder) -> Dataset:
    """The dataset a job folder holds, as the job reads it."""
    info = read_json(folder.file("dataset.json")) or {}
    name = info.get("name", "dataset")
    splits = [
        tuple(parse_examples(folder.file(f"{split}.jsonl").read_bytes(), f"{split}.jsonl", min_rows=1))
        for split in ("train", "eval")
    ]
    builtin = BUILTIN_DATASETS.get(name) if info.get("builtin") else None
    return Dataset(name, splits[0], splits[1], builtin)


def start_job(config: FinetuneConfig, dataset: Dataset | None = None, name: str | None = None) -> Path:
    """Check everything, write a job folder and start the job process; return the folder.

    Raises ``InvalidInput`` (nothing started, nothing left behind) for a bad
    config, dataset or model, and ``JobBusy`` while another job runs.
    ``dataset`` is an upload already parsed for its preview; otherwise
    ``config.dataset`` is loaded.
    """
    config.validate()
    dataset = dataset or load_dataset(config.dataset, config.eval_fraction, config.seed)
    root = jobs_root()
    job_dir = claim_named_folder(root, name, "job name") if name else claim_new_folder(root, dataset.name)

    def prepare(path: Path) -> JobFolder:
        check_inputs(config, dataset, restricted=True)  # only pages start jobs: the CLI runs them in front
        return create_job(config, path, dataset)

    return start_job_process(FINETUNE, job_dir, prepare)


@dataclass(frozen=True)
class DurationEstimate(JsonRecord):
    """How long a job will take, from a step measured on this machine."""

    steps: int
    seconds_per_step: float
    eval_seconds: float  # one pass over the eval split
    evals: int  # before, during and after training
    load_seconds: float  # loading the model and building the Trainer
    total_seconds: float  # not counting the job process's start-up (a few seconds of imports)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DurationEstimate:
        return cls(**{f.name: data[f.name] for f in fields(cls)})


def start_estimate(config: FinetuneConfig, dataset: Dataset | None = None) -> Path:
    """Start timing two training steps of ``config`` in a process of its own; return its folder.

    It holds the machine's one-job lock while it runs (a few seconds of every
    core), so it waits for no job and no job starts under it.
    """
    config.validate()
    dataset = dataset or load_dataset(config.dataset, config.eval_fraction, config.seed)
    job_dir = claim_new_folder(estimates_root(), f"estimate-{dataset.name}")

    def prepare(path: Path) -> JobFolder:
        check_inputs(config, dataset, restricted=True)
        return create_job(config, path, dataset, ESTIMATE)

    return start_job_process(ESTIMATE, job_dir, prepare)
