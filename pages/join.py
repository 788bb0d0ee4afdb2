"""Join a class, a student's phone: a name (or none) and a guess at the next word, then the result.

Opened from the teacher's QR code or link (``/join?room=CODE``), on a phone
390 px wide: one column, no sidebar (the router draws none for this page).
Each phone gets a random student id, kept in its URL (``&me=…``) because
phones reload tabs they put in the background: a reload stays the same
student, and a second guess in a round replaces the first. Before the reveal
the page shows the student's own guess and how many have answered, never
anyone else's name or guess; after it, the student's own result and the
class beside the model. Everything typed is shown escaped.
"""

from __future__ import annotations

from ui.router import require_router

require_router()

import secrets

import streamlit as st

from core.errors import LabError
from core.rooms.codes import readable_code
from core.rooms.game import RoundState, round_state
from core.rooms.guesses import ANONYMOUS, MAX_GUESS_CHARS, MAX_NAME_CHARS, check_student_id
from core.rooms.store import CLOSED_ROOM, Room
from core.tokens import display_token
from ui.jobs import report_later, show_reported
from ui.render import escape, plural
from ui.room_charts import reveal_figure
from ui.rooms import ROOM_CSS, ROOM_PARAM, prompt_html, room_model, room_store, round_reveal
from ui.session import show_error

STUDENT_PARAM = "me"
CODE, NAME, GUESS = "join_code", "join_name", "join_guess"
ERROR = "join_error"
SEND, CHANGE = "Send my guess", "Change my guess"
PHONE_CSS = """<style>
[data-testid="stMainBlockContainer"] { padding-top: 2.5rem; }
[data-testid="stMain"] input { font-size: 1.2rem !important; }
[data-testid="stMain"] button p { font-size: 1.1rem; }
</style>"""
report = report_later(ERROR)


def _student_id() -> str:
    """This phone's random id, from its URL; a new one (written to the URL) on the first visit."""
    try:
        return check_student_id(st.query_params.get(STUDENT_PARAM))
    except LabError:
        student = secrets.token_urlsafe(12)
        st.query_params[STUDENT_PARAM] = student
        return student


def _join() -> None:
    st.query_params[ROOM_PARAM] = st.session_state.get(CODE) or ""


def _send(code: str, student: str) -> None:
    try:
        room_store().add_guess(code, student, st.session_state.get(NAME) or None, st.session_state.get(GUESS))
        st.session_state[GUESS] = ""
    except LabError as exc:
        report(exc)


def _ask_for_a_code() -> None:
    with st.form("join_code_form", border=False):
        st.text_input("Room code", key=CODE, placeholder="K7QX M3PA", max_chars=20)
        st.form_submit_button("Join", type="primary", on_click=_join, width="stretch")


def _mine(text: str) -> None:
    """A line about this student's own guess (their words escaped: it is HTML)."""
    st.markdown(f'<div class="lab-room-mine">{text}</div>', unsafe_allow_html=True)


def _guess_form(room: Room, state: RoundState, student: str) -> None:
    if state.your_guess is not None:
        _mine(f"✅ Your guess: <b>{escape(state.your_guess.strip())}</b>. You can change it until the teacher reveals.")
    with st.form("join_form", border=False):
        st.text_input(  # kept while the result hides the form: the next round starts with the same name
            "Your name (leave it empty to stay anonymous)", key=NAME, max_chars=MAX_NAME_CHARS, persist_state="session"
        )
        st.text_input(
            "Your guess: the next word", key=GUESS, max_chars=MAX_GUESS_CHARS, placeholder="one word, or a few"
        )
        st.form_submit_button(
            CHANGE if state.your_guess is not None else SEND,
            type="primary",
            on_click=_send,
            args=(room.code, student),
            width="stretch",
        )


def _result(room: Room, state: RoundState) -> None:
    try:
        reveal = round_reveal(room, room_model(room), state.round)
    except LabError as exc:
        show_error(exc)
        return
    top = reveal.model_choice
    if state.your_guess is None:
        _mine("You did not answer this round.")
    else:
        bucket = reveal.bucket_for(state.your_guess)
        prob = bucket.model_prob if bucket else 0.0
        same = " 🎯 That is the model's first choice too!" if bucket and bucket.matches_model else ""
        _mine(f"You guessed <b>{escape(state.your_guess.strip())}</b>: the model gave it {prob:.1%}.{same}")
    favourite = reveal.favourite
    lines = [
        f"The model's first choice: <b>{escape(display_token(top.token))}</b> ({top.prob:.0%}); "
        f"{reveal.agreement:.0%} of the class chose it too."
    ]
    if favourite is not None:
        lines.append(f"The class's favourite: <b>{escape(favourite.label)}</b> ({plural(favourite.count, 'student')}).")
    st.markdown(f'<div class="lab-room-said">{"<br>".join(lines)}</div>', unsafe_allow_html=True)
    st.plotly_chart(
        reveal_figure(reveal, phone=True),
        key=f"join_chart_{state.round}",
        config={"displayModeBar": False},
        width="stretch",
    )


@st.fragment(run_every=2.0)
def _watch(code: str, number: int, revealed: bool) -> None:
    """Polls the room (no model, one small read) and redraws the page once the teacher reveals or moves on."""
    try:
        state = round_state(room_store(), code)
    except LabError:
        st.rerun(scope="app")  # the room is gone: the page says so
    if (state.round, state.revealed, state.closed) != (number, revealed, False):
        st.rerun(scope="app")
    if revealed:
        st.caption("⏳ Waiting for the teacher to start the next round…")
    else:
        st.caption(f"⏳ Waiting for the reveal… {plural(state.answers, 'answer')} so far.")


st.set_page_config(page_title="Join a class · LLM Lab", layout="centered")
st.markdown(ROOM_CSS + PHONE_CSS, unsafe_allow_html=True)
asked = st.query_params.get(ROOM_PARAM)
if not asked:
    st.markdown("### 🙋 Join a class")
    _ask_for_a_code()
    st.stop()
try:
    room = room_store().room(asked)
    student = _student_id()
    state = round_state(room_store(), room.code, student)
except LabError as exc:
    st.markdown("### 🙋 Join a class")
    show_error(exc)
    _ask_for_a_code()
    st.stop()
if NAME not in st.session_state and state.your_name not in (None, ANONYMOUS):
    st.session_state[NAME] = state.your_name  # a reloaded page remembers the name it guessed with

st.markdown(f"### 🙋 Round {state.round}: what comes next?")
st.caption(f"Room {readable_code(room.code)}")
st.markdown(prompt_html(state.prompt_text, 1.25, shown_chars=300), unsafe_allow_html=True)
if state.closed:
    st.info(CLOSED_ROOM + " Thanks for playing!")
    st.stop()
show_reported(ERROR)  # above the result too: a guess sent as the teacher revealed is refused with a sentence
if state.revealed:
    _result(room, state)
else:
    _guess_form(room, state, student)
_watch(room.code, state.round, state.revealed)
