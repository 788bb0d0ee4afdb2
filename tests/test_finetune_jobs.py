"""Job folders, the machine lock, names and the adapters library (no training here)."""

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from core.adapter_host import is_adapter_dir
from core.datasets import load_dataset
from core.errors import InvalidInput
from core.finetune import (
    FINETUNE,
    FinetuneConfig,
    delete_adapter,
    find_finetune_job,
    jobs_root,
    list_adapters,
    rename_adapter,
    start_job,
    zip_adapter,
)
from core.finetune.jobs import ADAPTER_SUBDIR, create_job
from core.jobs.files import write_json_atomic
from core.jobs.folder import DIED, JobFolder, list_jobs, read_job
from core.jobs.lock import JobBusy, claim_lock, release_lock, running_job
from core.jobs.paths import check_name, lock_path
from core.jobs.processes import ProcessId
from tests.adapters import saved_adapter_job


def dead_process() -> ProcessId:
    """The identity of a real process that has exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    started = ProcessId.of(child.pid).started
    child.wait()
    return ProcessId(child.pid, started)


@pytest.mark.parametrize("bad", ["../x", "/abs", "a/b", "a\\b", "..", ".hidden", "", "  ", "CON", "nul.txt", "com1"])
def test_unsafe_names_are_refused(bad):
    with pytest.raises(InvalidInput):
        check_name(bad)


@pytest.mark.parametrize("bad", ["-dash-first", "spaces inside", "é-accent", "x" * 65])
def test_names_outside_the_safe_alphabet_are_refused(bad):
    with pytest.raises(InvalidInput):
        check_name(bad)


def test_plain_names_are_accepted_and_stripped():
    assert check_name("  sentiment-v2_final.1 ") == "sentiment-v2_final.1"
    assert check_name("console") == "console"  # only the exact device names are reserved


def test_find_job_refuses_traversal_from_a_url(data_dir):
    with pytest.raises(InvalidInput, match="path separator"):
        find_finetune_job("../../etc")
    with pytest.raises(InvalidInput, match="no fine-tuning job called"):
        find_finetune_job("not-there")


def test_a_failing_status_write_leaves_the_previous_status_whole(tmp_path):
    path = tmp_path / "status.json"
    write_json_atomic(path, {"status": "running", "step": 3})
    with pytest.raises(TypeError):
        write_json_atomic(path, {"status": "done", "bad": object()})
    assert json.loads(path.read_text()) == {"status": "running", "step": 3}
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"], "no temp file may be left behind"


def test_readers_never_see_a_half_written_status(tmp_path):
    path = tmp_path / "status.json"
    big = {"status": "running", "padding": "x" * 200_000}
    write_json_atomic(path, {**big, "step": 0})
    done = threading.Event()
    seen: list[int] = []

    def read_all_the_time():
        while not done.is_set():
            seen.append(json.loads(path.read_text())["step"])  # raises on a torn file

    reader = threading.Thread(target=read_all_the_time)
    reader.start()
    for step in range(1, 200):
        write_json_atomic(path, {**big, "step": step})
    done.set()
    reader.join()
    assert seen == sorted(seen), "steps only move forward"


def test_metrics_reader_skips_a_line_still_being_written(tmp_path):
    folder = JobFolder(tmp_path)
    folder.append_metric({"step": 1, "loss": 2.0})
    with folder.file("metrics.jsonl").open("a") as f:
        f.write('{"step": 2, "lo')
    assert folder.metrics() == [{"step": 1, "loss": 2.0}]


def test_the_lock_refuses_a_second_job_while_the_first_runs(data_dir):
    first = jobs_root() / "first"
    claim_lock(first, ProcessId.current(), FINETUNE)  # held by a live process: this one
    with pytest.raises(JobBusy, match=r"Another fine-tuning job \(first\) is running"):
        start_job(FinetuneConfig(dataset="sentiment"))
    assert not jobs_root().exists(), "a refused job leaves no folder"
    assert running_job(FINETUNE) == first.resolve()
    release_lock(first)
    assert running_job() is None


def test_a_stale_lock_is_taken_over(data_dir):
    claim_lock(jobs_root() / "crashed", dead_process(), FINETUNE)
    assert running_job() is None
    claim_lock(jobs_root() / "next", ProcessId.current(), FINETUNE)
    assert json.loads(lock_path().read_text())["job"].endswith("next")


def test_a_bad_upload_starts_nothing(data_dir, tmp_path):
    upload = tmp_path / "bad.csv"
    upload.write_text("question,answer\nq,a\n")
    with pytest.raises(InvalidInput, match="missing the column"):
        start_job(FinetuneConfig(dataset=str(upload)))
    assert not jobs_root().exists()
    assert not lock_path().exists()


def test_a_job_whose_process_died_is_reported_failed(data_dir):
    folder = create_job(FinetuneConfig(), jobs_root() / "killed", load_dataset("sentiment"))
    folder.update_status(status="running", phase="training", step=3, max_steps=40)
    folder.set_process(dead_process())
    folder.log_path.write_text("step 3/40  loss 0.5\nKilled\n")
    state = read_job(folder.path)
    assert state.status == "failed"
    assert state.error.startswith(DIED) and state.error.endswith("Last line of its log: Killed")
    assert folder.status()["status"] == "failed", "the verdict is recorded, not just shown"
    assert [j.name for j in list_jobs(jobs_root())] == ["killed"]


def test_a_queued_job_reports_progress_and_no_eta_yet(data_dir):
    folder = create_job(FinetuneConfig(), jobs_root() / "waiting", load_dataset("sentiment"))
    folder.set_process(ProcessId.current())
    state = read_job(folder.path)
    assert (state.status, state.progress, state.eta, state.result) == ("queued", 0.0, None, None)
    assert not is_adapter_dir(folder.path / ADAPTER_SUBDIR), "no adapter before the job has trained"
    assert state.config["dataset"] == "sentiment"


@pytest.fixture
def saved_adapter(lm, data_dir):
    """A real (untrained) LoRA adapter saved in a finished job folder called 'first'."""
    return saved_adapter_job(lm, "first")


@pytest.mark.slow
def test_adapters_can_be_listed_renamed_zipped_and_deleted(saved_adapter):
    [info] = list_adapters()
    assert (info.name, info.partial) == ("first", True)
    assert "stopped early: partial" in info.card and "SmolLM2-135M-Instruct" in info.card
    config = json.loads((info.path / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "embedded"

    new_path = rename_adapter("first", "sentiment-v1")
    assert new_path == jobs_root() / "sentiment-v1" / "adapter"
    with zipfile.ZipFile(io.BytesIO(zip_adapter("sentiment-v1"))) as archive:
        names = set(archive.namelist())
    assert {"sentiment-v1/adapter_config.json", "sentiment-v1/adapter_model.safetensors"} <= names
    assert "sentiment-v1/README.md" in names

    delete_adapter("sentiment-v1")
    assert list_adapters() == []


@pytest.mark.slow
@pytest.mark.parametrize("bad", ["../escape", "/tmp/abs", "CON", ".."])
def test_adapter_operations_refuse_unsafe_names(saved_adapter, bad):
    for operation in (lambda: rename_adapter("first", bad), lambda: zip_adapter(bad), lambda: delete_adapter(bad)):
        with pytest.raises(InvalidInput):
            operation()
    assert [a.name for a in list_adapters()] == ["first"]
    assert Path(saved_adapter.path / ADAPTER_SUBDIR / "adapter_model.safetensors").is_file()


@pytest.mark.slow
def test_a_running_job_cannot_be_renamed_or_deleted(saved_adapter):
    saved_adapter.update_status(status="running")
    saved_adapter.set_process(ProcessId.current())
    with pytest.raises(InvalidInput, match="still training"):
        delete_adapter("first")
    with pytest.raises(InvalidInput, match="still training"):
        rename_adapter("first", "other")


@pytest.mark.slow
def test_two_starts_in_the_same_second_start_one_job_and_keep_its_lock(data_dir, lm, monkeypatch):
    """Two Train clicks in the same second (two students, or a double click), on the same dataset.

    Both once claimed one folder name; the second was refused with the server's full path and "choose a
    new folder", and its clean-up deleted the lock of the job that did start.
    """
    import core.jobs.paths as paths

    frozen = time.gmtime()  # the same second for both, however slow the machine
    monkeypatch.setattr(paths, "time", SimpleNamespace(strftime=time.strftime, gmtime=lambda: frozen))
    barrier = threading.Barrier(2)
    started: list[Path] = []
    refused: list[InvalidInput] = []

    def click() -> None:
        barrier.wait()
        try:
            started.append(start_job(FinetuneConfig(dataset="sentiment", max_steps=1)))
        except InvalidInput as exc:
            refused.append(exc)

    threads = [threading.Thread(target=click) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert len(started) == 1 and len(refused) == 1, (started, refused)
        [job], [refusal] = started, refused
        assert isinstance(refusal, JobBusy), refusal
        assert str(data_dir) not in str(refusal) and "/" not in str(refusal), "no server path in the sentence"
        assert running_job(FINETUNE) == job.resolve(), "the started job still holds the machine's lock"
        assert [p.name for p in jobs_root().iterdir()] == [job.name], "the refused start left no folder"
    finally:
        for job in started:
            process = JobFolder(job).process()
            if process is not None and process.alive():
                os.kill(process.pid, signal.SIGKILL)
