"""Pretraining jobs: writing a job folder, starting it as its own process, finding it again.

A pretraining job is a job of its own kind on the shared machinery
(``core.jobs``): the same one-job-per-machine lock, the same process
spawning and stop file, the same status and metrics files, read by the same
``read_job``. Its folder adds the corpus it reads and the samples it
writes::

    <job>/corpus.txt      the text, as the job will read it
    <job>/samples.jsonl   {"step", "prompt", "text"} every few steps
    status.json           also holds "corpus" (name, characters), "model_dir" (where the model goes),
                          and once the model is built "parameters" and "vocabulary"

Everything that can be checked is checked before the process starts
(corpus length for the context, memory for the size), so a bad setting is a
message on the page, not a failed job.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.errors import InvalidInput
from core.jobs.folder import JobFolder, JobKind, find_job, mark_queued, new_job_folder
from core.jobs.launcher import start_job_process
from core.jobs.paths import check_name, claim_named_folder, claim_new_folder
from core.pretrain.config import PretrainConfig
from core.pretrain.corpus import Corpus, load_corpus
from core.pretrain.library import PRETRAIN, jobs_root, models_root
from core.pretrain.windows import prepare_corpus

CORPUS_FILE = "corpus.txt"
SAMPLES_FILE = "samples.jsonl"


def new_corpus_job(job_dir: Path, config: dict[str, Any], corpus: Corpus, kind: JobKind, **facts: Any) -> JobFolder:
    """Write a new folder for a job that trains on ``corpus`` (pretraining, a ladder), status ``queued``.

    The text goes beside the config, and status.json names the corpus and
    its size; ``facts`` are what the kind records about itself from the start.
    """
    folder = new_job_folder(job_dir, config)
    folder.file(CORPUS_FILE).write_text(corpus.text, encoding="utf-8")
    corpus_facts = {"name": corpus.name, "builtin": corpus.builtin, "characters": corpus.characters}
    mark_queued(folder, kind, corpus=corpus_facts, **facts)
    return folder


def create_pretrain_job(
    config: PretrainConfig, job_dir: Path, corpus: Corpus, model_dir: Path | None = None
) -> JobFolder:
    """Write a new pretraining job folder, status ``queued``; its model goes to ``model_dir`` (or ``<job>/model``)."""
    config.validate()
    model_dir = Path(model_dir or Path(job_dir) / "model").resolve()
    return new_corpus_job(job_dir, config.to_json(), corpus, PRETRAIN, model_dir=str(model_dir))


def start_pretrain_job(config: PretrainConfig, corpus: Corpus | None = None, name: str | None = None) -> Path:
    """Check everything, write a job folder and start the job process; return the folder.

    Raises ``InvalidInput`` (nothing started, nothing left behind) for a bad
    config or corpus, a corpus too short for the context or a size too big
    for the memory, and ``JobBusy`` while another training job (of any kind) runs.
    """
    config.validate()
    corpus = corpus or load_corpus(config.corpus)
    root = jobs_root()
    label = f"{corpus.name.rsplit('.', 1)[0]}-{config.tokenizer}"
    if name is not None and (models_root() / check_name(name, "model name")).exists():
        raise InvalidInput(f"A tiny model called {name!r} already exists: choose another name.")
    job_dir = claim_named_folder(root, name, "model name") if name else claim_new_folder(root, label)

    def prepare(path: Path) -> JobFolder:
        prepare_corpus(config, corpus.text)
        return create_pretrain_job(config, path, corpus, models_root() / path.name)

    return start_job_process(PRETRAIN, job_dir, prepare)


def find_pretrain_job(name: str) -> Path:
    """The folder of the pretraining job called ``name`` (e.g. from a page's URL), checked to be a real job."""
    return find_job(jobs_root(), name, PRETRAIN)


def job_vocabulary(job_dir: Path) -> int | None:
    """How many tokens the job's model chooses from (known once its tokenizer is built)."""
    return JobFolder(job_dir).status().get("vocabulary")


def job_samples(job_dir: Path) -> list[dict]:
    """The samples the job has written so far, oldest first."""
    return JobFolder(job_dir).read_lines(SAMPLES_FILE)
