"""Shared fixtures: the real embedded model, loaded once per test session.

No test replaces the model with a fake: everything runs on SmolLM2-135M.
The Hub is switched off so an unknown model id fails at once, offline, as it
would on a laptop without internet.
"""

import contextlib
import io
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.servers import free_port, serving

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as `make run` and `python -m core` set it (core/__main__.py)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
# The app and the CLI start on llama.cpp where it can run; the suite compares pages and commands with the `lm`
# fixture, the torch engine, so it starts them on torch. tests/test_llamacpp.py drives the llama.cpp engine.
os.environ.setdefault("LLM_LAB_ENGINE", "torch")

ROOT = Path(__file__).resolve().parent.parent
HANG_GUARD_S = 600  # a job that has not got there by then is stuck, not slow
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session")
def lm():
    from core.models import load_model

    return load_model()


@pytest.fixture
def unused_port() -> int:
    """A loopback port nothing listens on (free a moment ago)."""
    return free_port()


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory):
    """llama.cpp's OpenAI-compatible server (llama-cpp-python) on the embedded GGUF; yields its base URL.

    A real server on loopback, started once per session and stopped at the
    end; its log goes to a file that is shown if it fails to start. The
    context is kept at 512 tokens because llama-cpp-python computes
    log-probabilities over its whole logits buffer (``n_ctx`` x vocabulary):
    a non-streamed chat answer takes 8 s at 2048 and under 1.5 s at 512.
    """
    from core.embedded import embedded_gguf_path

    port = free_port()
    command = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(embedded_gguf_path()),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "512",
    ]
    base_url = f"http://127.0.0.1:{port}/v1"
    log_path = tmp_path_factory.mktemp("llama_server") / "server.log"
    with serving(command, f"{base_url}/models", log_path, timeout=120):
        yield base_url


@pytest.fixture(scope="session")
def sentiment_run(tmp_path_factory):
    """A short real fine-tune on the sentiment dataset through the CLI, in the foreground: (--json result, job folder).

    Session-wide: the training and compare tests share one run.
    """
    from core.cli import main

    root = tmp_path_factory.mktemp("finetune")
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out):
        mp.setenv("LLM_LAB_DATA", str(root / "data"))
        argv = ["finetune", "--dataset", "sentiment", "--output", str(root / "job"), "--max-steps", "25", "--json"]
        assert main(argv) == 0
    lines = out.getvalue().strip().splitlines()
    assert len(lines) == 1, "with --json, stdout holds only the result"
    return json.loads(lines[0]), root / "job"


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    """A data folder of the test's own (``LLM_LAB_DATA``): its own jobs, adapters, models, rooms and lock."""
    monkeypatch.setenv("LLM_LAB_DATA", str(tmp_path / "data"))
    return tmp_path / "data"


def wait_for(job_dir: Path, done: Callable, poll_s: float = 0.5):
    """The job's state once ``done(state)`` holds; the test fails with the job's log if it never does."""
    from core.jobs.folder import read_job

    deadline = time.monotonic() + HANG_GUARD_S
    while time.monotonic() < deadline:
        state = read_job(job_dir)
        if done(state):
            return state
        time.sleep(poll_s)
    pytest.fail(f"the job in {job_dir} hung: {read_job(job_dir)}\n{(job_dir / 'job.log').read_text()}")
