"""The model-location promise: a path typed into the shared app is refused alike, whether it exists or not.

Whoever reaches the app types model names into the sidebar, and a job a page
starts loads the model it names. Outside LLM Lab's folders, a path is refused
with one sentence that does not depend on what is there (so the app cannot be
used to map the server's disk), before anything looks at it: not even the
spinner's words change. A damaged file inside an allowed folder is refused
with a fixed sentence, not the reader's own (which gives its size and
layout). A refused model enters no cache, and no job folder or model card
ever names it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import ui.session
from core.embedded import embedded_gguf_path
from core.errors import InvalidInput, ModelLoadError
from core.finetune import FinetuneConfig, jobs_root, start_estimate, start_job
from core.jobs.paths import lock_path
from core.models import load_model, loaded_models
from tests.test_app import APP

REFUSED = ["/etc/passwd", "/etc/no-such-file", "/root", "/etc/x.gguf", "/etc/no-such-dir/y.gguf"]


@pytest.fixture(autouse=True)
def data_dir(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("LLM_LAB_DATA", str(tmp_path / "data"))
    monkeypatch.delenv("LLM_LAB_MODEL_DIRS", raising=False)
    monkeypatch.delenv("LLM_LAB_TEACHER_SECRET", raising=False)
    return tmp_path / "data"


def sentence(message: str, name: str) -> str:
    """The message with the name the person typed taken out: what is left must not depend on the path."""
    return message.replace(repr(name), "NAME")


def refusals(attempt) -> set[str]:
    found = set()
    for name in REFUSED:
        with pytest.raises(InvalidInput) as info:
            attempt(name)
        found.add(sentence(str(info.value), name))
    return found


def test_paths_outside_get_one_sentence_whether_they_exist_or_not():
    assert Path("/etc/passwd").is_file() and Path("/root").is_dir() and not Path("/etc/no-such-file").exists()
    [only] = refusals(lambda name: load_model(name, restricted=True))
    assert "outside the folders LLM Lab serves models from" in only


@pytest.mark.parametrize("start", [start_job, start_estimate])
def test_a_job_naming_a_refused_model_says_the_same_and_leaves_nothing(start, data_dir):
    [only] = refusals(lambda name: start(FinetuneConfig(dataset="sentiment", model=name)))
    assert only == sentence(str(_refusal("/etc/passwd")), "/etc/passwd")
    assert not lock_path().exists()
    left = [p for p in data_dir.rglob("*") if p.is_file()] if data_dir.exists() else []
    assert left == [], "no job folder, config or model card was written"
    assert not jobs_root().exists() or not any(jobs_root().iterdir())


def _refusal(name: str) -> InvalidInput:
    with pytest.raises(InvalidInput) as info:
        load_model(name, restricted=True)
    return info.value


def test_the_sidebar_refuses_before_it_looks_at_the_path(monkeypatch):
    looked: list[str] = []
    real = ui.session.needs_conversion
    monkeypatch.setattr(ui.session, "needs_conversion", lambda name: looked.append(name) or real(name))
    shown = set()
    for name in REFUSED:
        at = AppTest.from_file(APP, default_timeout=120).run()
        at.sidebar.text_input(key="model_name").set_value(name).run()
        at.switch_page("pages/explorer.py").run()
        assert not at.exception
        [error] = [e.value for e in at.error]
        shown.add(sentence(error, name))
    assert len(shown) == 1, shown
    assert looked == [], "the spinner's words were chosen by looking at a refused path"


def test_a_damaged_gguf_in_an_allowed_folder_gets_a_fixed_sentence(tmp_path, monkeypatch):
    allowed = tmp_path / "models"
    allowed.mkdir()
    monkeypatch.setenv("LLM_LAB_MODEL_DIRS", str(allowed))
    monkeypatch.setenv("LLM_LAB_CACHE", str(tmp_path / "cache"))
    broken = allowed / "broken.gguf"
    broken.write_bytes(embedded_gguf_path().read_bytes()[:100_000])  # cut short, as by a failed copy
    with pytest.raises(ModelLoadError) as info:
        load_model(str(broken), restricted=True)
    assert str(info.value) == "Could not read the GGUF file broken.gguf: it is damaged or not a GGUF file."
    assert not re.search(r"\d{3,}", str(info.value)), "no size, offset or count"
    assert str(broken) not in [k.name for k in loaded_models()], "the refused model entered the shared cache"
    converted = tmp_path / "cache" / "converted"
    assert not converted.exists() or not any(converted.iterdir())


def test_the_cli_says_what_a_folder_lacks_instead_of_a_cut_off_tokenizer_error(tmp_path, capsys):
    from core.cli import main

    (tmp_path / "empty").mkdir()
    assert main(["tokenize", "--model", str(tmp_path / "empty"), "--prompt", "hi"]) == 2
    error = capsys.readouterr().err
    assert "is not a model folder: it has no config.json" in error and "Couldn't instantiate" not in error
