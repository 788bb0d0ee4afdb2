"""The fine-tune page in AppTest: it reads job folders, re-attaches from the URL, refuses bad uploads, starts jobs."""

import json
import time
from pathlib import Path

import pytest

from core.datasets import load_dataset
from core.finetune import FINETUNE, FinetuneConfig, jobs_root
from core.finetune.jobs import create_job
from core.jobs.folder import JobFolder, read_job
from core.jobs.lock import claim_lock
from core.jobs.processes import ProcessId
from core.jobs.training import TrainingResult
from tests.adapters import saved_adapter_job
from tests.test_app import open_page

pytestmark = pytest.mark.usefixtures("data_dir")  # every test gets its own data folder


def running_job_folder(name: str = "sentiment-live"):
    """A job folder as a training process writes it, 'run' by this test process (alive for the test)."""
    folder = create_job(FinetuneConfig(max_steps=40), jobs_root() / name, load_dataset("sentiment"))
    now = time.time()
    folder.set_process(ProcessId.current())
    folder.update_status(
        status="running", phase="training", step=3, max_steps=40, started_at=now - 30, train_started_at=now - 20
    )
    for step, loss in [(1, 3.1), (2, 2.4), (3, 1.9)]:
        folder.append_metric({"step": step, "loss": loss, "learning_rate": 1e-3, "tokens_per_second": 900.0})
    folder.append_metric({"step": 0, "eval_loss": 3.3})
    return folder


def test_a_running_job_is_shown_from_its_folder_and_reattached_from_the_url():
    folder = running_job_folder()
    at = open_page("pages/finetune.py", {"job": folder.name})
    progress = at.get("progress")[0]
    assert "step 3 of 40" in progress.proto.text
    assert progress.proto.value == 7  # 3 of 40 steps, in percent
    assert any(b.label == "⏹ Cancel" for b in at.button)
    next(b for b in at.button if b.label == "⏹ Cancel").click().run()
    assert (folder.path / "STOP").exists()


def test_without_a_url_the_page_finds_the_running_job():
    folder = running_job_folder("found-by-lock")
    claim_lock(folder.path, ProcessId.current(), FINETUNE)
    at = open_page("pages/finetune.py")
    assert at.query_params["job"] in ("found-by-lock", ["found-by-lock"])
    assert "step 3 of 40" in at.get("progress")[0].proto.text
    assert next(b for b in at.button if b.label == "▶ Train").disabled  # one job at a time on a machine


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "empty"), (b"question,answer\nhi,there\n", "prompt"), (b"\xff\xfe\x00\x01bad", "UTF-8")],
)
def test_a_bad_upload_shows_its_message_and_starts_nothing(content, message):
    from core.datasets import parse_upload
    from core.errors import InvalidInput

    with pytest.raises(InvalidInput, match=message) as expected:
        parse_upload(content, "rows.csv")
    at = open_page("pages/finetune.py")
    at.radio(key="ft_source").set_value("upload").run()
    at.get("file_uploader")[0].set_value(("rows.csv", content, "text/csv")).run()
    assert not at.exception
    assert any(str(expected.value) in e.value for e in at.error)
    assert not any(b.label == "▶ Train" for b in at.button)
    assert not jobs_root().exists() or not any(jobs_root().iterdir())


@pytest.mark.slow
def test_train_starts_a_real_job_process_that_finishes():
    at = open_page("pages/finetune.py")
    at.number_input[0].set_value(2).run()  # steps
    next(b for b in at.button if b.label == "▶ Train").click().run()
    assert not at.exception
    assert not at.error, [e.value for e in at.error]
    name = at.query_params["job"]
    name = name[0] if isinstance(name, list) else name
    job_dir = jobs_root() / name
    deadline = time.monotonic() + 600
    while read_job(job_dir).active and time.monotonic() < deadline:
        time.sleep(2)
    state = read_job(job_dir)
    assert state.status == "done", state.error
    result = state.result_as(TrainingResult)
    assert result is not None and result.output_dir is not None
    assert (Path(result.output_dir) / "adapter_model.safetensors").is_file()
    at.run()
    assert any("Done" in s.value for s in at.success)
    assert any(name in str(df.value) for df in at.dataframe)


def test_an_adapter_chosen_on_the_fine_tune_page_is_used_by_the_explorer(lm):
    """A LoRA with random (non-zero) weights: the explorer's distribution must move away from the base's."""
    saved_adapter_job(lm, "random-lora", random_weights=True)

    at = open_page("pages/finetune.py")
    next(b for b in at.button if b.label == "🎲 Use in the explorer").click().run()
    assert not at.exception
    assert at.session_state["adapter"] == "random-lora"
    at.switch_page("pages/explorer.py").run()
    assert any("SmolLM2-135M-Instruct + random-lora" in c.value for c in at.caption)
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert spec["data"][0]["x"][0] != pytest.approx(0.7725, abs=1e-3)  # not the base model's " Paris"
    at.sidebar.selectbox(key="adapter").set_value("").run()
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert spec["data"][0]["y"][0] == "␣Paris" and spec["data"][0]["x"][0] == pytest.approx(0.7725, abs=1e-3)


def test_compare_opens_the_compare_page_with_the_adapter_chosen(lm):
    saved_adapter_job(lm, "to-compare", random_weights=True)
    at = open_page("pages/finetune.py")
    next(b for b in at.button if b.label == "⚖️ Compare").click().run()
    assert not at.exception
    assert at.multiselect(key="cmp_adapters").value == ["to-compare"]
    assert at.selectbox(key="cmp_dataset").value == "sentiment"


@pytest.mark.slow
def test_the_estimate_runs_as_a_short_job_of_its_own_not_in_the_server():
    from core.finetune.jobs import estimates_root

    at = open_page("pages/finetune.py")
    next(b for b in at.button if b.label == "⏱ Estimate duration").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    [job_dir] = list(estimates_root().iterdir())
    process = JobFolder(job_dir).process()
    assert process is not None and process.pid != ProcessId.current().pid, "timed in a process of its own"
    deadline = time.monotonic() + 600
    while read_job(job_dir).active and time.monotonic() < deadline:
        time.sleep(1)
    assert read_job(job_dir).status == "done", read_job(job_dir).error
    at.run()
    assert any(i.value.startswith("About ") and "steps ×" in i.value for i in at.info)


def _uploaded(at, name: str, content: bytes):
    at.radio(key="ft_source").set_value("upload").run()
    at.get("file_uploader")[0].set_value((name, content, "application/octet-stream")).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_a_deeply_nested_jsonl_upload_is_a_sentence_not_a_recursion_error():
    at = _uploaded(open_page("pages/finetune.py"), "rows.jsonl", b"[" * 100_000 + b"]" * 100_000 + b"\n")
    assert any("line 1: nested too deeply to be a row" in e.value for e in at.error)
    assert not any(b.label == "▶ Train" for b in at.button)


def test_a_6_mb_upload_gets_core_s_sentence_and_the_previous_file_is_dropped():
    from core.datasets import MAX_UPLOAD_BYTES
    from tests.test_security import CONFIG

    six_mb = 6 * 1024 * 1024
    assert MAX_UPLOAD_BYTES < six_mb <= CONFIG["server"]["maxUploadSize"] * 1024 * 1024, "it reaches core"
    rows = b"prompt,completion\n" + b"".join(b"question %d,answer %d\n" % (n, n) for n in range(12))
    at = _uploaded(open_page("pages/finetune.py"), "good.csv", rows)
    assert any(b.label == "▶ Train" for b in at.button), "a good file is ready to train"
    at.get("file_uploader")[0].set_value(("big.csv", rows + b"x" * six_mb, "text/csv")).run()
    assert any("The file is 6.0 MB; uploads are limited to 5 MB" in e.value for e in at.error)
    assert not any(b.label == "▶ Train" for b in at.button), "the earlier file is no longer ready to train"


def test_a_job_cancelled_before_its_first_step_does_not_claim_an_adapter():
    folder = create_job(FinetuneConfig(max_steps=40), jobs_root() / "cancelled-early", load_dataset("sentiment"))
    # What run_training records when Cancel comes before step 1 (1.4 s after Train): nothing was saved.
    result = TrainingResult("cancelled", None, 0, 40, True, None, None, 3.3, None, 0, None, 0.0, 1.4, str(folder.path))
    folder.update_status(
        status="cancelled", phase="finished", partial=True, step=0, max_steps=40, result=result.to_json()
    )
    at = open_page("pages/finetune.py", {"job": folder.name})
    warnings = [w.value for w in at.warning]
    assert any("cancelled before its first training step: no adapter was saved" in w for w in warnings), warnings
    assert not any("holds what it learned" in w for w in warnings)


def test_an_adapter_deleted_while_chosen_is_said_so_not_switched_silently(lm):
    from core.finetune import delete_adapter

    saved_adapter_job(lm, "soon-gone")
    at = open_page("pages/explorer.py")
    at.sidebar.selectbox(key="adapter").set_value("soon-gone").run()
    assert at.session_state["adapter"] == "soon-gone"
    delete_adapter("soon-gone")  # in another tab, or by another person
    at.run()
    assert not at.exception
    gone = "The adapter 'soon-gone' is gone (renamed or deleted): back to the base model."
    assert any(gone in w.value for w in at.warning), [w.value for w in at.warning]
    assert at.session_state["adapter"] == ""
