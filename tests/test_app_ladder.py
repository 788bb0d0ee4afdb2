"""The Scaling ladder page in AppTest: saved ladders reopen, a cancelled one shows its rungs, one task, re-attach.

Two real tiny ladders (three rungs of a few steps) are trained once for the
module into its data folder; every test reads them back from their files.
"""

import json
import time

import pytest

from core.access import TEACHER_SECRET_ENV
from core.jobs.lock import claim_lock, release_lock, running_job
from core.jobs.processes import ProcessId
from core.ladder import LADDER, LadderConfig, check_ladder, ladders_root, read_ladder
from core.ladder.jobs import create_ladder_job
from core.pretrain.corpus import Corpus
from tests.ladders import cancelled_after_first_rung, tiny_ladder, tiny_text
from tests.test_app import open_page

pytestmark = pytest.mark.slow  # the module trains two tiny ladders first
PAGE = "pages/ladder.py"


@pytest.fixture(scope="module", autouse=True)
def data_dir(tmp_path_factory):
    """One data folder for the module, with a finished and a cancelled ladder in it."""
    root = tmp_path_factory.mktemp("ladder-page") / "data"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LLM_LAB_DATA", str(root))
        mp.delenv(TEACHER_SECRET_ENV, raising=False)
        tiny_ladder(ladders_root() / "climbed", steps=6, context=256)  # rungs that read a whole task item
        cancelled_after_first_rung(ladders_root() / "cancelled")  # rungs of 64 characters
        yield root


def chart(at, key: str) -> dict:
    return json.loads(next(c for c in at.get("plotly_chart") if c.proto.id.endswith(key)).proto.spec)


def metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def saved(name: str):
    at = open_page(PAGE)
    at.selectbox(key="ld_saved").set_value(name).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_a_saved_ladder_reopens_with_its_law_curves_and_samples_without_retraining():
    ladder = read_ladder(ladders_root() / "climbed")
    weights = sorted(ladder.path.glob("rung-*/*/model.safetensors"))
    before = [w.stat().st_mtime_ns for w in weights]
    at = saved("climbed")
    assert at.query_params["ladder"] in ("climbed", ["climbed"]), "the link reopens it"
    assert metric(at, "Exponent b") == f"{ladder.result.fit.b:.3f}"
    assert metric(at, "r² (log-log)") == f"{ladder.result.fit.r2:.3f}"
    scaling = chart(at, "ld_scaling_saved")
    assert scaling["data"][0]["x"] == [r.parameters for r in ladder.result.rungs]
    assert scaling["data"][0]["y"] == pytest.approx([r.bits_per_char for r in ladder.result.rungs])
    assert scaling["layout"]["xaxis"]["type"] == scaling["layout"]["yaxis"]["type"] == "log"
    curves = chart(at, "ld_compute_saved")
    legend = [t["name"] for t in curves["data"] if t.get("showlegend", True)]
    assert len(legend) == 3 and all(name.startswith(f"rung {n} (") for n, name in enumerate(legend, start=1))
    samples = [m.value for m in at.markdown if "parameters</div>" in m.value]
    assert len(samples) == 3 and all(">The </span>" in s for s in samples), "one sample per rung, the same prompt"
    assert running_job() is None, "reopening trains nothing"
    assert len(weights) == 3 and [w.stat().st_mtime_ns for w in weights] == before


def test_a_cancelled_ladder_shows_its_finished_rung_and_says_what_happened():
    at = saved("cancelled")
    warning = next(w.value for w in at.warning if w.value.startswith("Cancelled"))
    assert "1 of 3 rungs finished and are shown" in warning and "Rung 2 was stopped after" in warning
    assert not any(m.label == "Exponent b" for m in at.metric), "one point draws no line"
    assert len(chart(at, "ld_scaling_saved")["data"][0]["x"]) == 1
    at.checkbox(key="ld_task_embedded").set_value(False).run()
    next(b for b in at.button if b.key == "ld_task_run").click().run()
    assert not at.exception
    told = [w.value for w in at.warning if "could not take the task" in w.value]
    assert told == [
        "rung 1 could not take the task: The prompt has 136 tokens but cancelled-rung-1 reads at most 64. Shorten it."
    ]


def test_one_task_across_sizes_scores_every_model_and_toggles_the_metric(lm):
    at = saved("climbed")
    at.slider(key="ld_task_items").set_value(2).run()
    next(b for b in at.button if b.key == "ld_task_run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    table = next(d.value for d in at.dataframe if "P(expected), mean" in d.value)
    assert list(table["model"]) == ["rung 1", "rung 2", "rung 3", "SmolLM2-135M"]
    assert list(table["accuracy"])[:3] == [0.0, 0.0, 0.0], "a few steps of Python's docs teach no task"
    p_chart = chart(at, "ld_task_chart")
    assert p_chart["layout"]["yaxis"]["type"] == "log"
    probabilities = p_chart["data"][0]["y"]
    assert max(probabilities[:3]) < 1e-3 < probabilities[3], "P(expected) climbs with size long before accuracy"
    at.radio(key="ld_task_metric").set_value("accuracy").run()
    accuracy = chart(at, "ld_task_chart")
    assert accuracy["data"][0]["y"][:3] == [0.0, 0.0, 0.0] and accuracy["layout"]["yaxis"].get("type") != "log"


def test_a_running_ladder_is_reattached_and_cancel_asks_it_to_stop():
    corpus = Corpus("notes.txt", tiny_text())
    config = LadderConfig(corpus=corpus.name, steps=50, context=64, batch_size=2, reference=False)
    folder = create_ladder_job(config, ladders_root() / "live", corpus, check_ladder(config, corpus.text).plan)
    folder.set_process(ProcessId.current())
    now = time.time()
    folder.update_status(status="running", phase="training rung 2 of 3", rung=2, step=60, max_steps=150, started_at=now)
    claim_lock(folder.path, ProcessId.current(), LADDER)
    try:
        at = open_page(PAGE)
        assert at.query_params["run"] in ("live", ["live"])
        assert "training rung 2 of 3 · step 60 of 150" in at.get("progress")[0].proto.text
        assert next(b for b in at.button if b.label == "▶ Climb").disabled, "one training job at a time"
        next(b for b in at.button if b.label == "⏹ Cancel").click().run()
        assert (folder.path / "STOP").exists()
    finally:
        release_lock(folder.path)


def test_only_the_teacher_may_start_a_ladder(monkeypatch):
    monkeypatch.setenv(TEACHER_SECRET_ENV, "a-secret")
    at = open_page(PAGE)
    assert next(b for b in at.button if b.label == "▶ Climb").disabled
    assert any("Only the teacher can start a training job" in c.value for c in at.caption)
