"""Real tiny ladders for tests: three rungs, a few steps each, on a slice of Python's documentation.

Trained for real (the job's own code, in this process), only short: a small
context and batch, a handful of steps, no SmolLM2 reference unless asked.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from core.jobs.stop import request_stop
from core.ladder import LadderConfig, LadderResult, check_ladder
from core.ladder.jobs import create_ladder_job
from core.ladder.library import RESULT_FILE, rung_dir
from core.ladder.train import run_ladder_job
from core.pretrain.corpus import Corpus, python_docs_text

TINY = {"steps": 3, "context": 64, "batch_size": 2, "eval_every": 0, "sample_chars": 24, "reference": False}
TEXT_CHARS = 30_000


def tiny_text() -> str:
    return python_docs_text()[:TEXT_CHARS]


def tiny_ladder(job_dir: Path, **settings: object) -> LadderResult:
    """Train a tiny ladder of three rungs into ``job_dir`` (``settings`` override ``TINY``)."""
    corpus = Corpus("python-docs-slice.txt", tiny_text())
    config = LadderConfig(corpus=corpus.name, **{**TINY, **settings})
    create_ladder_job(config, Path(job_dir), corpus, check_ladder(config, corpus.text).plan)
    return run_ladder_job(Path(job_dir), echo=False)


def cancelled_after_first_rung(job_dir: Path) -> LadderResult:
    """A ladder cancelled as its second rung trains: Cancel's STOP file, written when rung 1's result appears."""
    first = rung_dir(job_dir, 1) / RESULT_FILE
    deadline = time.monotonic() + 300

    def cancel_when_rung_one_is_done() -> None:
        while not first.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        request_stop(job_dir)

    watcher = threading.Thread(target=cancel_when_rung_one_is_done, daemon=True)
    watcher.start()
    result = tiny_ladder(job_dir, steps=400)  # rung 2 would take far longer than the watcher's reaction
    watcher.join(timeout=5)
    return result
