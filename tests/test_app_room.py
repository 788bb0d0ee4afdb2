"""Class mode's pages in AppTest: the teacher's room page and a student's join page, on the real model.

The teacher opens a room from the explorer; students guess through the join
page and through ``core`` (as other phones would); the reveal must show what
``core.rooms`` computes. With a teacher secret, a student's session cannot
open, reveal, advance or close a room.
"""

from __future__ import annotations

import json
import time

import pytest
from streamlit.testing.v1 import AppTest

from core.access import TEACHER_SECRET_ENV
from core.rooms.codes import readable_code
from core.rooms.game import open_room, revealed_round
from core.rooms.links import join_link
from core.rooms.store import CLOSED_ROOM, ROOM_LIFETIME_S, UNKNOWN_ROOM, WRONG_TEACHER, RoomStore
from core.tokens import encode_prompt
from tests.test_app import APP
from ui.rooms import _teacher_tokens, qr_svg

SECRET = "tea-cher-4242"
FRANCE = "The capital of France is"
PARIS = 7042
ONLY_THE_TEACHER = "Only the teacher can"


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_LAB_DATA", str(tmp_path / "data"))
    monkeypatch.delenv(TEACHER_SECRET_ENV, raising=False)
    return tmp_path / "data"


@pytest.fixture
def classroom(data_dir, monkeypatch):
    monkeypatch.setenv(TEACHER_SECRET_ENV, SECRET)


def app(page: str, query: dict | None = None, secret: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params.update(query or {})
    at.run()
    if secret:
        at.sidebar.text_input(key="teacher_secret").set_value(secret).run()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def ask_the_class(prompt: str, steer: bool = False, secret: str | None = None) -> tuple[AppTest, str]:
    """The teacher's explorer on ``prompt`` (with the model's first token appended if ``steer``), then 🙋."""
    at = app("pages/explorer.py", {"prompt": prompt}, secret)
    if steer:
        button(at, "⬆ Most likely").click().run()
    at.button(key="ask_the_class").click().run()
    assert not at.exception, [e.value for e in at.exception]
    code = at.query_params["room"]
    assert any(readable_code(code) in m.value for m in at.markdown), "the button led to the room's page"
    at.switch_page("pages/room.py").run()  # AppTest reruns the page it was told last: make that the room's
    return at, code


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def shown(at: AppTest) -> str:
    """Everything the page says, for checks of what it must not say."""
    parts = [e.value for kind in ("markdown", "caption", "error", "warning", "info", "success") for e in at.get(kind)]
    parts += [f"{m.label} {m.value}" for m in at.metric]
    parts += [df.value.to_csv() for df in at.dataframe]
    return "\n".join(str(p) for p in parts)


def chart(at: AppTest) -> dict:
    charts = at.get("plotly_chart")
    assert charts, "no chart on the page"
    return json.loads(charts[0].proto.spec)


def student(code: str, me: str) -> AppTest:
    return app("pages/join.py", {"room": code, "me": me})


def guess(at: AppTest, name: str, text: str) -> AppTest:
    at.text_input(key="join_name").set_value(name)
    at.text_input(key="join_guess").set_value(text)
    next(b for b in at.button if b.label in ("Send my guess", "Change my guess")).click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_the_teacher_opens_a_room_on_the_steered_text_with_a_code_a_link_and_a_qr_code(data_dir, lm):
    at, code = ask_the_class(FRANCE, steer=True)
    record = RoomStore().round(code)
    assert record.prompt_ids == (*encode_prompt(lm, FRANCE).ids, PARIS), "the steered token is part of round 1"
    assert record.prompt_text == FRANCE + " Paris"
    said = shown(at)
    assert readable_code(code) in said
    link = join_link(code, None, "127.0.0.1", 8501)  # AppTest: the repository's config, no browser URL
    assert f"or open **{link.url}**" in said
    assert any(qr_svg(link.url) in m.value for m in at.markdown), "the QR code holds the join link"
    assert any("phones cannot open the link" in w.value for w in at.warning), "the server listens on 127.0.0.1"
    assert [m.value for m in at.metric if m.label == "Answers to round 1"] == ["0"]
    assert not button(at, "👁 Reveal").disabled
    _, tokens = _teacher_tokens()
    token = next(t for (_, c), t in tokens.items() if c == code)
    assert token not in said and token not in json.dumps(dict(at.query_params)), "the teacher token is never shown"
    assert dict(at.query_params) == {"room": code}


def test_students_guess_the_teacher_counts_reveals_and_goes_on(data_dir, lm):
    teacher, code = ask_the_class(FRANCE)
    store = RoomStore()
    store.add_guess(code, "phone-ada", "Ada", "Paris")  # two phones, as core sees them
    store.add_guess(code, "phone-bob", "Bob", "London")
    cleo = guess(student(code, "phone-cleo"), "Cleo", " paris ")
    assert "Your guess: <b>paris</b>" in shown(cleo)
    cleo = guess(cleo, "Cleo", "Lyon")  # a second guess replaces the first
    assert [(g.name, g.text) for g in store.guesses(code)] == [("Ada", "Paris"), ("Bob", "London"), ("Cleo", "Lyon")]
    said = shown(cleo)
    assert "Your guess: <b>Lyon</b>" in said
    assert not any(other in said for other in ("Ada", "Bob", "London", "Paris")), "no one else's name or guess"

    teacher.run()
    assert [m.value for m in teacher.metric if m.label == "Answers to round 1"] == ["3"]
    assert not any(other in shown(teacher) for other in ("Ada", "Bob", "London", "Lyon")), "hidden until the reveal"

    button(teacher, "👁 Reveal").click().run()
    assert not teacher.exception
    reveal = revealed_round(store, lm, code)
    spec = chart(teacher)
    class_bars, model_bars = spec["data"]
    assert class_bars["y"][:3] == ["★ Paris", "London", "Lyon"]
    assert class_bars["x"][:3] == pytest.approx([b.share for b in reveal.buckets])
    assert model_bars["x"][:3] == pytest.approx([b.model_prob for b in reveal.buckets])
    assert model_bars["x"][0] == pytest.approx(0.773, abs=0.01)  # " Paris", as the explorer shows it
    metrics = {m.label: m.value for m in teacher.metric}
    assert metrics["Agreed with the model"] == f"{reveal.agreement:.0%}" == "33%"
    table = teacher.dataframe[0].value
    assert list(table["student"]) == ["Ada", "Bob", "Cleo"]  # by the model's probability
    assert list(table["model's probability"]) == [f"{s.model_prob:.2%}" for s in reveal.students]

    cleo.run()
    lyon = reveal.bucket_for("Lyon")
    assert f"You guessed <b>Lyon</b>: the model gave it {lyon.model_prob:.1%}." in shown(cleo)
    assert not cleo.get("text_input"), "no guessing after the reveal"

    teacher.radio(key="room_next_choice").set_value("model").run()
    button(teacher, "▶ Next round").click().run()
    assert store.round(code).number == 2 and store.round(code).prompt_text == FRANCE + " Paris"
    summary = teacher.dataframe[0].value
    assert list(summary["round"]) == [1] and list(summary["same word"]) == ["✓"]
    cleo.run()
    assert "Round 2: what comes next?" in shown(cleo) and cleo.text_input(key="join_guess").value == ""

    button(teacher, "⏹ Close the room").click().run()
    assert store.room(code).closed
    assert CLOSED_ROOM in shown(cleo.run())


def test_a_student_cannot_open_reveal_or_close_a_room_when_the_server_has_a_teacher_secret(classroom, lm):
    _, code = ask_the_class(FRANCE, secret=SECRET)
    explorer = app("pages/explorer.py", {"prompt": FRANCE})
    assert explorer.button(key="ask_the_class").disabled
    assert f"{ONLY_THE_TEACHER} open a class room" in shown(explorer)

    room = app("pages/room.py", {"room": code})
    for label in ("👁 Reveal", "⏹ Close the room"):
        assert button(room, label).disabled, f"{label} is the teacher's"
    assert f"{ONLY_THE_TEACHER} reveal, start the next round or close a room" in shown(room)

    teacher = app("pages/room.py", {"room": code}, secret=SECRET)
    assert not button(teacher, "👁 Reveal").disabled
    teacher.sidebar.text_input(key="teacher_secret").set_value("")  # the teacher's laptop, left to a student
    button(teacher, "👁 Reveal").click().run()  # in the same request as the cleared box
    assert any(f"{ONLY_THE_TEACHER} reveal" in e.value for e in teacher.error)
    assert not RoomStore().round(code).revealed


def test_a_room_opened_elsewhere_is_run_with_its_teacher_token(data_dir, lm):
    """After a restart (or a room opened from the command line) the teacher pastes the token once."""
    opened = open_room(RoomStore(), lm, FRANCE)
    at = app("pages/room.py", {"room": opened.room.code})
    assert button(at, "👁 Reveal").disabled
    at.text_input(key="room_teacher_token").set_value("not-the-token")
    button(at, "Run this room").click().run()
    assert WRONG_TEACHER in [e.value for e in at.error]
    at.text_input(key="room_teacher_token").set_value(opened.teacher_token)
    button(at, "Run this room").click().run()
    assert not button(at, "👁 Reveal").disabled
    assert opened.teacher_token not in shown(at)


def test_the_join_page_says_what_is_wrong_in_one_sentence_and_has_no_sidebar(data_dir, lm):
    at = app("pages/join.py")
    assert not at.sidebar.children, "a phone gets the whole width"
    at.text_input(key="join_code").set_value("hello")
    button(at, "Join").click().run()
    assert any("A room code is 8 letters and digits" in e.value for e in at.error)
    at.text_input(key="join_code").set_value("K7QX M3PA")
    button(at, "Join").click().run()
    assert UNKNOWN_ROOM in [e.value for e in at.error]

    old = RoomStore(clock=lambda: time.time() - 2 * ROOM_LIFETIME_S).create_room(FRANCE, False, "embedded", FRANCE, [1])
    assert UNKNOWN_ROOM in [e.value for e in student(old.room.code, "phone-late").error], "an expired room"

    _, code = ask_the_class(FRANCE)
    phone = student(code, "phone-eve")
    errors = [e.value for e in guess(phone, "Eve", "   ").error]
    assert errors == ["The guess is empty: type the word you think comes next."]
    assert RoomStore().guesses(code) == []
    guess(phone, "E" * 41, "x" * 61)  # the boxes keep 40 and 60 characters (the command line gets a sentence)
    assert [(g.name, g.text) for g in RoomStore().guesses(code)] == [("E" * 40, "x" * 60)]
    said = shown(guess(phone, "<b>Eve</b>", "<img src=x onerror=alert(1)>"))
    assert "Your guess: <b>&lt;img src=x onerror=alert(1)&gt;</b>" in said, "shown as text"
    assert "<img src=x" not in said
