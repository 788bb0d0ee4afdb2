"""The teacher and the students: who may change what the class shares (``core.access``, ``ui.session``).

Without a teacher secret every session is the teacher's (the app listens on
127.0.0.1 unless someone opened it). With ``LLM_LAB_TEACHER_SECRET`` set, a
session that has not typed it may explore, score, compare and use a key of
its own, but not start, cancel, rename or delete jobs, load a model that is
not loaded, or spend the server's API key; such controls are shown disabled
with a sentence saying why, and their callbacks refuse too.
"""

from __future__ import annotations

import json
import time

import pytest
from streamlit.testing.v1 import AppTest

from core.access import TEACHER_SECRET_ENV, is_teacher, teacher_secret_required
from core.datasets import load_dataset
from core.finetune import FinetuneConfig, jobs_root, list_adapters
from core.finetune.jobs import create_job
from core.jobs.processes import ProcessId
from core.models import loaded_models
from core.pretrain.library import MODEL_FILES, models_root
from tests.adapters import saved_adapter_job
from tests.test_api_safety import SERVER_KEY, Listener, keys_sent, listener  # noqa: F401 (a fixture)
from tests.test_app import APP

SECRET = "tea-cher-4242"
ONLY_THE_TEACHER = "Only the teacher can"


@pytest.fixture
def classroom(monkeypatch, data_dir):
    """The server started for a class: with a teacher secret."""
    monkeypatch.setenv(TEACHER_SECRET_ENV, SECRET)


def app(page: str | None = None, teacher: bool = False, query: dict | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params.update(query or {})
    at.run()
    if teacher:
        at.sidebar.text_input(key="teacher_secret").set_value(SECRET).run()
    if page:
        at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def said(at: AppTest) -> str:
    return " ".join(c.value for c in [*at.caption, *at.error, *at.sidebar.caption, *at.sidebar.error])


# --- the rule ---------------------------------------------------------------------------------


def test_without_a_secret_every_session_is_the_teacher(monkeypatch):
    monkeypatch.delenv(TEACHER_SECRET_ENV, raising=False)
    assert not teacher_secret_required()
    assert is_teacher(None) and is_teacher("") and is_teacher("anything")


def test_with_a_secret_only_that_secret_makes_a_session_the_teacher(monkeypatch):
    monkeypatch.setenv(TEACHER_SECRET_ENV, f"  {SECRET} ")
    assert teacher_secret_required()
    assert is_teacher(SECRET) and is_teacher(f" {SECRET}\n")
    for wrong in (None, "", SECRET[:-1], SECRET + "x", SECRET.upper(), "tea-cher-4242 x"):
        assert not is_teacher(wrong), wrong


def test_without_a_secret_there_is_no_teacher_box(monkeypatch, data_dir):
    monkeypatch.delenv(TEACHER_SECRET_ENV, raising=False)
    at = app("pages/finetune.py")
    assert not [t for t in at.sidebar.text_input if t.key == "teacher_secret"]
    assert not button(at, "▶ Train").disabled and ONLY_THE_TEACHER not in said(at)


# --- the fine-tune page -------------------------------------------------------------------------


def running_job():
    folder = create_job(FinetuneConfig(max_steps=40), jobs_root() / "live", load_dataset("sentiment"))
    folder.set_process(ProcessId.current())
    now = time.time()
    folder.update_status(status="running", phase="training", step=3, max_steps=40, started_at=now - 9)
    return folder


def test_a_student_can_look_but_not_train_cancel_rename_or_delete(classroom, lm):
    saved_adapter_job(lm, "kept")
    job = running_job()
    at = app("pages/finetune.py", query={"job": job.name})
    for label in ("▶ Train", "⏱ Estimate duration", "⏹ Cancel", "Rename", "🗑 Delete"):
        assert button(at, label).disabled, f"{label} is the teacher's"
    assert at.text_input(key="ft_new_name").disabled
    captions = said(at)
    for what in ("start a fine-tune", "cancel a job", "rename or delete an adapter"):
        assert f"{ONLY_THE_TEACHER} {what}" in captions, what
    assert not button(at, "🎲 Use in the explorer").disabled, "trying an adapter harms no one"
    assert at.get("download_button"), "nor does downloading one"


def test_the_teacher_types_the_secret_once_and_may_do_everything(classroom, lm):
    saved_adapter_job(lm, "kept")
    job = running_job()
    at = app("pages/finetune.py", teacher=True, query={"job": job.name})
    assert any("Teacher: you can" in c.value for c in at.sidebar.caption)
    for label in ("▶ Train", "⏱ Estimate duration", "⏹ Cancel", "🗑 Delete"):
        assert not button(at, label).disabled, label
    assert ONLY_THE_TEACHER not in said(at)
    button(at, "⏹ Cancel").click().run()
    assert (job.path / "STOP").exists()
    at.switch_page("pages/explorer.py").run()
    at.switch_page("pages/finetune.py").run()
    assert not button(at, "🗑 Delete").disabled, "remembered for the session, across pages"
    assert SECRET not in json.dumps(dict(at.query_params)), "never in the URL"


def test_a_click_that_arrives_with_the_secret_gone_is_refused(classroom, lm):
    """Streamlit drops clicks on a control that was disabled; one drawn enabled for the teacher is checked again."""
    saved_adapter_job(lm, "kept")
    at = app("pages/finetune.py", teacher=True)
    at.sidebar.text_input(key="teacher_secret").set_value("")  # the teacher's laptop, left to a student
    button(at, "🗑 Delete").click().run()  # in the same request as the cleared box
    assert [a.name for a in list_adapters()] == ["kept"]
    assert any(f"{ONLY_THE_TEACHER} rename or delete an adapter" in e.value for e in at.error)
    assert button(at, "🗑 Delete").disabled


def test_a_wrong_secret_is_said_so(classroom):
    at = app()
    at.sidebar.text_input(key="teacher_secret").set_value("guess").run()
    assert any("That is not the teacher secret." in e.value for e in at.sidebar.error)
    at.switch_page("pages/finetune.py").run()
    assert button(at, "▶ Train").disabled


# --- the build page -----------------------------------------------------------------------------


def test_a_student_cannot_train_delete_or_load_a_tiny_model(classroom):
    saved = models_root() / "tiny-one"  # listed as saved; never loaded, so never read here
    saved.mkdir(parents=True)
    for name in MODEL_FILES:
        (saved / name).write_text("{}")
    at = app("pages/build.py")
    for label in ("▶ Train", "🗑 Delete", "🎲 Open in the explorer"):
        assert button(at, label).disabled, label
    captions = said(at)
    for what in ("start a training job", "delete a saved model", "load a model that is not loaded yet"):
        assert f"{ONLY_THE_TEACHER} {what}" in captions, what
    at = app("pages/build.py", teacher=True)
    for label in ("▶ Train", "🗑 Delete", "🎲 Open in the explorer"):
        assert not button(at, label).disabled, label


# --- the shared model ---------------------------------------------------------------------------


def test_a_student_picks_a_loaded_model_but_cannot_load_another(classroom, lm):
    at = app()
    loaded = at.sidebar.selectbox(key="loaded_model_pick")
    assert "embedded (torch, float32)" in loaded.options
    assert f"{ONLY_THE_TEACHER} load another model" in said(at)
    before = list(loaded_models())
    at.sidebar.text_input(key="model_name").set_value("no-such-org/no-such-model").run()
    at.switch_page("pages/explorer.py").run()
    assert not at.exception
    [error] = [e.value for e in at.error]
    assert "'no-such-org/no-such-model' (float32) is not loaded on this server" in error
    assert "ask the teacher to load it" in error
    assert loaded_models() == before
    at.sidebar.selectbox(key="loaded_model_pick").set_value(lm.key).run()
    assert at.sidebar.text_input(key="model_name").value == "embedded" and not at.error


def test_the_teacher_may_load_a_model(classroom):
    at = app(teacher=True)
    assert not [s for s in at.sidebar.selectbox if s.key == "loaded_model_pick"]
    at.sidebar.text_input(key="model_name").set_value("no-such-org/no-such-model").run()
    at.switch_page("pages/explorer.py").run()
    [error] = [e.value for e in at.error]
    assert "not on this machine" in error, "the load was tried: the model does not exist"


# --- the server's API key -----------------------------------------------------------------------


def test_only_the_teacher_spends_the_servers_key(listener, data_dir, monkeypatch):  # noqa: F811
    monkeypatch.setenv(TEACHER_SECRET_ENV, SECRET)  # after the listener's set-up, which starts from none
    monkeypatch.setenv("OPENAI_BASE_URL", listener)  # the server's key is for this server
    for teacher, sent, words in (
        (False, "Bearer not-needed", "The server's own API key is the teacher's"),
        (True, f"Bearer {SERVER_KEY}", "Using the server's OPENAI_API_KEY"),
    ):
        at = app(teacher=teacher)
        at.sidebar.radio(key="backend").set_value("openai").run()
        assert words in said(at)
        at.sidebar.button[0].click().run()  # list the server's models
        assert not at.exception and at.session_state["api_models"] == ["tiny"]
        assert keys_sent()[-1] == sent
    at = app()
    at.sidebar.radio(key="backend").set_value("openai").run()
    at.sidebar.text_input(key="api_key").set_value("sk-the-student-s-own").run()
    at.sidebar.button[0].click().run()
    assert keys_sent()[-1] == "Bearer sk-the-student-s-own", "a student may use a key of their own"
    assert Listener.seen
