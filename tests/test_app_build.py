"""The Build-your-own page in AppTest: pairs, a live size count, a job re-attached from its folder, a real short job."""

import json
import time

import pytest

from core.jobs.folder import read_job
from core.jobs.lock import claim_lock
from core.jobs.processes import ProcessId
from core.pretrain import PretrainConfig, TinyModelSize, parameter_count
from core.pretrain.corpus import Corpus, python_docs_text
from core.pretrain.jobs import SAMPLES_FILE, create_pretrain_job
from core.pretrain.library import PRETRAIN, jobs_root, models_root
from core.pretrain.sizes import short_count
from core.pretrain.tokenizer import vocabulary_size
from tests.test_app import open_page

PAGE = "pages/build.py"


pytestmark = pytest.mark.usefixtures("data_dir")  # every test gets its own data folder


def metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_the_pairs_view_lists_every_context_and_its_next_token():
    at = open_page(PAGE)
    at.text_area(key="bd_pairs_text").set_value("abcab").run()
    at.slider(key="bd_pairs_context").set_value(2).run()
    assert any("5 tokens → 4 training examples" in m.value for m in at.markdown)
    table = at.dataframe[0].value
    assert list(table["the model reads"]) == ["a", "ab", "…bc", "…ca"]
    assert list(table["it must predict"]) == ["b", "c", "a", "b"]
    window = json.loads(at.get("plotly_chart")[0].proto.spec)["data"][0]
    assert window["z"][2] == [1, 2, 2, 3, 0], "example 3: 'a' passed, 'bc' read, 'a' to predict, 'b' to come"


def test_the_size_sliders_update_the_parameter_count_live():
    at = open_page(PAGE)
    vocab = vocabulary_size("char", python_docs_text())
    assert metric(at, "Parameters") == short_count(parameter_count(TinyModelSize(), vocab).total)
    at.slider(key="bd_layers").set_value(6).run()
    at.select_slider(key="bd_d_model").set_value(256).run()
    expected = parameter_count(TinyModelSize(6, 256, 4, 64), vocab).total
    assert metric(at, "Parameters") == short_count(expected) == "4.77M"
    assert at.session_state["bd_planned_parameters"] == expected
    at.select_slider(key="bd_heads").set_value(8).run()
    assert metric(at, "Parameters") == short_count(expected), "heads split the width: the count stays"
    at.radio(key="bd_tokenizer").set_value("model").run()
    assert metric(at, "Parameters") == short_count(parameter_count(TinyModelSize(6, 256, 8, 64), 49_152).total)


@pytest.mark.parametrize(("content", "message"), [(b"", "empty"), (b"\x00\x01\x02binary", "binary file")])
def test_a_bad_upload_shows_its_message_and_offers_no_train_button(content, message):
    at = open_page(PAGE)
    at.radio(key="bd_corpus").set_value("upload").run()
    at.get("file_uploader")[0].set_value(("notes.txt", content, "text/plain")).run()
    assert not at.exception
    assert any(message in e.value for e in at.error), [e.value for e in at.error]
    assert not any(b.label == "▶ Train" for b in at.button)


def running_job_folder(name: str = "live"):
    """A pretraining job folder as a training process writes it, 'run' by this test process."""
    config = PretrainConfig(max_steps=300)
    folder = create_pretrain_job(config, jobs_root() / name, Corpus("notes.txt", "some text " * 500))
    now = time.time()
    folder.set_process(ProcessId.current())
    folder.update_status(status="running", phase="training", step=3, max_steps=300, started_at=now - 9)
    for step, loss in [(1, 4.6), (2, 4.1), (3, 3.7)]:
        folder.append_metric({"step": step, "loss": loss, "learning_rate": 1e-3, "tokens_per_second": 900.0})
    folder.append_line(SAMPLES_FILE, {"step": 0, "prompt": "some ", "text": "xq#zzv"})
    claim_lock(folder.path, ProcessId.current(), PRETRAIN)
    return folder


def test_a_running_job_is_found_shown_with_its_samples_and_blocks_a_second():
    folder = running_job_folder()
    at = open_page(PAGE)
    assert at.query_params["run"] in ("live", ["live"])
    assert "step 3 of 300" in at.get("progress")[0].proto.text
    samples = next(m.value for m in at.markdown if "step 0" in m.value)
    assert ">some </span>xq#zzv<" in samples, "the samples are shown, the prompt set apart"
    assert next(b for b in at.button if b.label == "▶ Train").disabled, "one training job at a time"
    next(b for b in at.button if b.label == "⏹ Cancel").click().run()
    assert (folder.path / "STOP").exists()


@pytest.mark.slow
def test_train_runs_a_real_job_and_opens_the_model_in_the_explorer():
    at = open_page(PAGE)
    at.radio(key="bd_corpus").set_value("tiny-sentences").run()
    at.slider(key="bd_layers").set_value(1).run()
    at.select_slider(key="bd_d_model").set_value(32).run()
    at.select_slider(key="bd_heads").set_value(2).run()
    at.select_slider(key="bd_context").set_value(32).run()  # the explorer's prompt has 24 characters
    at.number_input(key="bd_steps").set_value(10).run()
    at.select_slider(key="bd_batch").set_value(4).run()
    next(b for b in at.button if b.label == "▶ Train").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    name = at.query_params["run"]
    name = name[0] if isinstance(name, list) else name
    deadline = time.monotonic() + 600
    while read_job(jobs_root() / name).active and time.monotonic() < deadline:
        time.sleep(1)
    state = read_job(jobs_root() / name)
    assert state.status == "done", state.error
    at.run()
    assert any("Done" in s.value for s in at.success)
    samples = next(m.value for m in at.markdown if "step 0" in m.value)
    assert samples.count(">the </span>") == 2 and "step 10" in samples, "a sample before training and after"
    assert any(name in str(df.value["name"].tolist()) for df in at.dataframe if "name" in df.value)
    next(b for b in at.button if b.label == "🎲 Open in the explorer").click().run()
    assert at.session_state["model_name"] == str((models_root() / name).resolve())
    at.switch_page("pages/explorer.py").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert all(len(label) == 1 or label.startswith("<") for label in spec["data"][0]["y"]), "characters"
