"""The machinery every job kind shares (core.jobs): claimed folders, the lock, starting, the typed result."""

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from core.errors import InvalidInput
from core.jobs.folder import JobFolder, JobKind, mark_queued, new_job_folder, read_job
from core.jobs.launcher import start_job_process
from core.jobs.lock import JobBusy, claim_lock, release_lock, running_job
from core.jobs.paths import claim_named_folder, claim_new_folder, lock_path
from core.jobs.processes import ProcessId
from core.jobs.training import TrainingResult, trainer_scratch

KIND = JobKind("probe", "probing", ("probe",))
OTHER = JobKind("other", "other work", ("other",))


pytestmark = pytest.mark.usefixtures("data_dir")  # every test gets its own data folder


def test_new_folders_claimed_at_the_same_moment_are_all_different(data_dir):
    root = data_dir / "jobs"
    claimed: list[Path] = []
    barrier = threading.Barrier(8)

    def claim() -> None:
        barrier.wait()
        claimed.append(claim_new_folder(root, "same label"))

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({p.name for p in claimed}) == 8 and all(p.is_dir() for p in claimed)
    assert all(p.name.startswith("same-label-") for p in claimed)


def test_a_named_folder_is_claimed_once(data_dir):
    claim_named_folder(data_dir / "jobs", "mine", "job name")
    with pytest.raises(InvalidInput, match="already taken"):
        claim_named_folder(data_dir / "jobs", "mine", "job name")
    with pytest.raises(InvalidInput, match="path separator"):
        claim_named_folder(data_dir / "jobs", "../up", "job name")


def test_release_never_removes_another_process_s_lock(data_dir):
    job = data_dir / "jobs" / "a"
    me = ProcessId.current()
    claim_lock(job, me, KIND)
    stranger = ProcessId(me.pid, me.started + 1)
    release_lock(job, stranger)
    assert lock_path().is_file(), "a lock names its holder: a process that does not hold it cannot drop it"
    release_lock(data_dir / "jobs" / "b", me)
    assert lock_path().is_file(), "nor can another job's clean-up"
    release_lock(job, me)
    assert not lock_path().exists()


def test_the_lock_names_the_holder_s_kind_in_its_refusal(data_dir):
    claim_lock(data_dir / "jobs" / "a", ProcessId.current(), KIND)
    assert running_job(KIND) == (data_dir / "jobs" / "a").resolve()
    assert running_job(OTHER) is None and running_job() is not None
    with pytest.raises(JobBusy, match="Another probing job"):
        claim_lock(data_dir / "jobs" / "b", ProcessId.current(), OTHER)


def test_a_start_that_fails_its_checks_leaves_no_folder_and_no_lock(data_dir):
    job_dir = claim_new_folder(data_dir / "jobs", "bad")

    def prepare(path: Path) -> JobFolder:
        raise InvalidInput("a row is too long")

    with pytest.raises(InvalidInput, match="too long"):
        start_job_process(KIND, job_dir, prepare)
    assert not job_dir.exists() and not lock_path().exists()


def test_a_busy_machine_refuses_a_start_and_keeps_the_running_job_s_lock(data_dir):
    holder = data_dir / "jobs" / "running"
    claim_lock(holder, ProcessId.current(), KIND)
    job_dir = claim_new_folder(data_dir / "jobs", "second")
    with pytest.raises(JobBusy):
        start_job_process(OTHER, job_dir, lambda path: new_job_folder(path, {}))
    assert not job_dir.exists()
    assert running_job() == holder.resolve(), "the refused start did not touch the running job's lock"


@pytest.mark.slow
def test_a_started_job_runs_its_kind_s_command_in_its_own_process(data_dir, tmp_path):
    """A job kind whose command is a tiny script: the launcher spawns it, hands it the lock, and it ends."""
    echo = JobKind("probe", "probing", ("--version",))  # `python -m core --version` is not a command: it fails
    job_dir = claim_new_folder(data_dir / "jobs", "spawned")

    def prepare(path: Path) -> JobFolder:
        folder = new_job_folder(path, {"what": "nothing"})
        mark_queued(folder, echo)
        return folder

    start_job_process(echo, job_dir, prepare)
    folder = JobFolder(job_dir)
    process = folder.process()
    assert process is not None and process.pid != ProcessId.current().pid
    deadline = time.monotonic() + 120
    while (state := read_job(job_dir)).active and time.monotonic() < deadline:  # each read reaps the child
        time.sleep(0.2)
    assert state.status == "failed", "a process that ended without a result is reported as failed"
    assert "stopped unexpectedly" in (state.error or "")
    assert running_job() is None, "a dead holder's lock is stale"


def test_the_training_result_round_trips_through_status_json():
    result = TrainingResult(
        status="cancelled",
        output_dir=None,
        steps=0,
        max_steps=40,
        partial=True,
        loss_first=None,
        loss_last=None,
        eval_loss_before=2.5,
        eval_loss_after=None,
        tokens_seen=0,
        tokens_per_second=None,
        train_seconds=0.0,
        seconds=1.5,
        job_dir="/x",
    )
    assert TrainingResult.from_dict({**result.to_json(), "from_a_newer_version": 1}) == result


def test_the_trainer_s_scratch_files_live_outside_every_job_folder(data_dir):
    with trainer_scratch() as scratch:
        assert scratch.is_dir() and data_dir not in scratch.parents
    assert not scratch.exists()


def test_a_process_id_is_dead_once_its_process_has_exited():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    identity = ProcessId.of(child.pid)
    assert identity.alive() or child.poll() is not None
    child.wait()
    assert not identity.alive()
