"""Real tiny ladders for tests: three rungs, a few steps each, on a slice of Python's documentation.

Trained for real (the job's own code, in this process), only short: a small
context and batch, a handful of steps, no SmolLM2 reference unless asked.
"""

from __future__ import annotations

import json
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
    """A ladder cancelled as its second rung trains: Cancel's STOP file, written once rung 2 has taken a step.

    Waiting for rung 2's first step, not only rung 1's result: a stop that
    lands between two rungs (a busy machine can delay this thread that long)
    ends the ladder with no partial rung, a different case.
    """
    first, second = rung_dir(job_dir, 1) / RESULT_FILE, rung_dir(job_dir, 2) / "status.json"
    deadline = time.monotonic() + 300

    def rung_two_has_trained() -> bool:
        try:
            return first.exists() and json.loads(second.read_text()).get("step", 0) >= 1
        except (OSError, ValueError):  # not written yet, or caught mid-rename
            return False

    def cancel_once_rung_two_trains() -> None:
        while not rung_two_has_trained() and time.monotonic() < deadline:
            time.sleep(0.01)
        request_stop(job_dir)

    watcher = threading.Thread(target=cancel_once_rung_two_trains, daemon=True)
    watcher.start()
    result = tiny_ladder(job_dir, steps=400)  # rung 2 would take far longer than the watcher's reaction
    watcher.join(timeout=5)
    return result
