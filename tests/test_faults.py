"""Faults a classroom machine meets while a fine-tune runs: a killed job, a full disk, an app restart.

Each test trains the real embedded model in a real job process, breaks
something for real, and then checks two things: the job's state as a fresh
reader (another process, or a freshly started page) finds it tells the truth
(failed, cancelled or running, with a reason; never "running" for a dead
job), and an adapter saved earlier on the same machine is byte for byte what
it was. ``tests/test_finetune_training.py`` already checks that a killed job
is reported failed and frees the machine's lock; here the same kill is seen
by a restarted page.

The full disk is a real one where this user may mount a tmpfs (root): the
jobs folder lives on a small tmpfs that a filler file fills, so writes fail
with ENOSPC. Elsewhere the job process gets a file-size limit
(``RLIMIT_FSIZE``, set on it with ``prlimit``) so that its large writes fail
with EFBIG, the same way, at the same place: the adapter, the largest file.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from core.adapter_host import is_adapter_dir
from core.datasets import load_dataset
from core.finetune import FINETUNE, FinetuneConfig, jobs_root, list_adapters, start_job
from core.finetune.jobs import ADAPTER_SUBDIR, create_job
from core.jobs.folder import DIED, JobFolder, read_job
from core.jobs.lock import running_job
from core.jobs.paths import REPO_ROOT
from tests.adapters import saved_adapter_job
from tests.conftest import wait_for
from tests.test_app import open_page
from tests.test_finetune_jobs import dead_process

FREE_BYTES_LEFT = 256 * 1024  # room for status and metrics files, not for a LoRA adapter (about 1.8 MB)


def file_hashes(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def small_upload(folder: Path) -> str:
    """12 rows (10 to train, 2 to evaluate): the jobs here spend their time training, not evaluating."""
    path = folder / "reviews.jsonl"
    rows = [e.to_json() for e in load_dataset("sentiment").train[:12]]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    monkeypatch.setenv("LLM_LAB_DATA", str(path))
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")  # as `make run` starts the app, and so the jobs it starts
    return path


def earlier_adapter(lm) -> tuple[Path, dict[str, str]]:
    """An adapter saved before the fault, and the hashes of its files."""
    adapter = saved_adapter_job(lm, "earlier").path / ADAPTER_SUBDIR
    return adapter, file_hashes(adapter)


def assert_intact(adapter: Path, hashes: dict[str, str]) -> None:
    assert file_hashes(adapter) == hashes, "the earlier adapter was changed"
    assert "earlier" in [a.name for a in list_adapters()]


@contextmanager
def full_disk(data_dir: Path) -> Iterator[Callable[[int], None]]:
    """Make ``data_dir`` a nearly full disk; yields a function to call with the job's pid once it is started.

    A tmpfs mounted over ``data_dir`` where mounting is allowed (then a filler
    file leaves FREE_BYTES_LEFT), else a per-file size limit on the job process.
    """
    mount = ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(data_dir)]
    mounted = os.geteuid() == 0 and subprocess.run(mount, capture_output=True).returncode == 0
    try:
        if mounted:

            def fill(pid: int) -> None:
                stats = os.statvfs(data_dir)
                with open(data_dir / "filler", "wb") as filler:
                    filler.write(b"\0" * (stats.f_bavail * stats.f_frsize - FREE_BYTES_LEFT))

            yield fill
        else:

            def fill(pid: int) -> None:
                resource.prlimit(pid, resource.RLIMIT_FSIZE, (FREE_BYTES_LEFT, FREE_BYTES_LEFT))

            yield fill
    finally:
        if mounted:
            subprocess.run(["umount", "--lazy", str(data_dir)], check=True)


@pytest.mark.slow
def test_a_full_disk_fails_the_job_with_a_clear_reason_and_leaves_no_half_adapter(data_dir, tmp_path, lm):
    upload = small_upload(tmp_path)
    with full_disk(data_dir) as fill:
        adapter, hashes = earlier_adapter(lm)
        job = start_job(FinetuneConfig(dataset=upload, max_steps=2, batch_size=1, evals_during_training=0))
        fill(JobFolder(job).process().pid)
        state = wait_for(job, lambda s: s.finished)
        log = (job / "job.log").read_text()
        assert state.status == "failed", (state, log)
        assert "disk is full" in state.error and "Free some space" in state.error, state.error
        assert state.result is None and not (job / ADAPTER_SUBDIR).exists()
        assert not [p.name for p in job.iterdir() if p.name.startswith(".")], "no temporary files left behind"
        assert running_job() is None
        assert_intact(adapter, hashes)
        assert [a.name for a in list_adapters()] == ["earlier"]


APP_THAT_STARTS_A_JOB = """
import sys, time
from core.finetune import FinetuneConfig, start_job
job = start_job(FinetuneConfig(dataset=sys.argv[1], max_steps=500, batch_size=1, evals_during_training=0))
print(job, flush=True)
time.sleep(600)  # the app keeps serving until it is killed
"""


@pytest.mark.slow
def test_a_job_outlives_an_app_restart_and_a_kill_mid_step_is_reported_truthfully(data_dir, tmp_path, lm):
    adapter, hashes = earlier_adapter(lm)
    app = subprocess.Popen(
        [sys.executable, "-c", APP_THAT_STARTS_A_JOB, small_upload(tmp_path)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        job = Path(app.stdout.readline().strip())
        assert job.parent == data_dir / "finetune" / "jobs", f"the app started no job: {job}"
        wait_for(job, lambda s: s.step >= 1 or s.finished)
    finally:
        app.kill()  # the app crashes (or is restarted) while its job trains
        app.wait()

    state = wait_for(job, lambda s: s.step >= 2 or s.finished)
    assert state.status == "running", ("the job runs in its own session: the app's death must not stop it", state)
    assert running_job(FINETUNE) == job.resolve(), "and it still holds the machine's lock"
    at = open_page("pages/finetune.py", {"job": job.name})  # the restarted app re-reads the folder
    assert "of 500" in at.get("progress")[0].proto.text
    assert any(b.label == "⏹ Cancel" for b in at.button)

    os.kill(JobFolder(job).process().pid, signal.SIGKILL)  # mid-step: no handler runs, nothing is saved
    at = open_page("pages/finetune.py", {"job": job.name})  # and the app restarts again
    assert any(DIED in e.value for e in at.error), [e.value for e in at.error]
    assert not any(b.label == "⏹ Cancel" for b in at.button), "a dead job cannot be cancelled"
    state = read_job(job)
    assert (state.status, state.result) == ("failed", None) and not is_adapter_dir(job / ADAPTER_SUBDIR)
    assert not [p.name for p in job.iterdir() if p.name.startswith(".")], "no .trainer/ or temp file left behind"
    trained = [m["step"] for m in state.metrics if m["loss"] is not None]
    assert trained == list(range(1, len(trained) + 1)) and len(trained) >= 2, "every metrics line is whole"
    assert running_job() is None, "a dead job's lock is stale"
    assert [a.name for a in list_adapters()] == ["earlier"], "a killed job lists no adapter"
    assert_intact(adapter, hashes)


@contextmanager
def no_room_to_write() -> Iterator[None]:
    """In this process, every write that grows a file fails (EFBIG), as on a full disk."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, hard))  # CPython ignores SIGXFSZ: writes raise OSError
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def test_a_dead_job_is_reported_failed_even_when_the_verdict_cannot_be_written(data_dir):
    folder = create_job(FinetuneConfig(), jobs_root() / "died-saving", load_dataset("sentiment"))
    folder.update_status(status="running", phase="saving", step=40, max_steps=40)
    folder.set_process(dead_process())
    with no_room_to_write():
        at = open_page("pages/finetune.py", {"job": folder.name})
        assert read_job(folder.path).status == "failed"
    assert not at.exception
    assert any(DIED in e.value for e in at.error), [e.value for e in at.error]
    assert folder.status()["status"] == "running", "nothing could be written"
    read_job(folder.path)
    assert folder.status()["status"] == "failed", "the next read that has room records the verdict"
