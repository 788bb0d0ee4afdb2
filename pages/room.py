"""Class room, the teacher's screen: the code and QR code to join, answers counted live, the reveal, the rounds.

The room's code is in the URL (``?room=CODE``), so a reload or a second tab
(the projector's) shows the same room; its teacher token never is: the server
keeps the tokens of the rooms it opened and hands them to the teacher's
session only (``ui.rooms``). A student who opens this page sees the controls
greyed out, and their callbacks refuse too. Before the reveal the page shows
how many answered, never what.
"""

from __future__ import annotations

from ui.router import require_router

require_router()

import pandas as pd
import streamlit as st

from core.errors import LabError
from core.models import LoadedModel
from core.rooms.codes import readable_code
from core.rooms.game import CHOICES, next_round, room_summary, round_state
from core.rooms.guesses import MAX_GUESS_CHARS
from core.rooms.store import Room
from core.tokens import display_token
from ui.jobs import report_later, show_reported
from ui.render import escape, plural
from ui.room_charts import reveal_figure
from ui.rooms import (
    ROOM_CSS,
    ROOM_PARAM,
    code_html,
    prompt_html,
    qr_svg,
    room_join_link,
    room_model,
    room_store,
    round_reveal,
    take_over,
    teacher_token,
)
from ui.session import presenting, show_error, teacher_callback, teacher_only
from ui.widgets import choice

ERROR = "room_error"
NEXT_CHOICE, NEXT_TEXT, TOKEN = "room_next_choice", "room_next_text", "room_teacher_token"
LAST_ROOM = "room_last"  # the room this session ran last: the sidebar's link comes back to it
RUN = "reveal, start the next round or close a room"
CHOICE_TITLES = dict(zip(CHOICES, ("The class's favourite", "The model's choice", "Words of my own"), strict=True))
report = report_later(ERROR)


def _token(code: str) -> str:
    return teacher_token(code) or ""  # none: the store answers with its wrong-teacher sentence


@teacher_callback(RUN, report)
def _reveal(code: str) -> None:
    """Close the round to guesses, then score it once for everyone.

    The phones see the round revealed at once and ask for its result, which
    ``round_reveal`` computes once per round: they wait for this scoring
    instead of each starting one of their own beside it.
    """
    store = room_store()
    room = store.room(code)
    lm = room_model(room)
    record = store.reveal(code, _token(code))
    round_reveal(room, lm, record.number)


@teacher_callback(RUN, report)
def _next(code: str) -> None:
    store = room_store()
    chosen = st.session_state[NEXT_CHOICE]
    text = st.session_state.get(NEXT_TEXT) if chosen == "text" else None
    next_round(store, room_model(store.room(code)), code, _token(code), chosen, text)
    st.session_state[NEXT_TEXT] = ""


@teacher_callback(RUN, report)
def _close(code: str) -> None:
    room_store().close(code, _token(code))


def _take_over(code: str) -> None:
    try:
        take_over(code, st.session_state.get(TOKEN) or "")
        st.session_state[TOKEN] = ""
    except LabError as exc:
        report(exc)


@st.fragment(run_every=1.0)
def live_count(code: str, number: int) -> None:
    """How many have answered, re-read every second; the whole page when the round moved on elsewhere."""
    try:
        state = round_state(room_store(), code)
    except LabError as exc:
        show_error(exc)
        return
    if (state.round, state.revealed, state.closed) != (number, False, False):
        st.rerun(scope="app")  # another tab of the teacher's revealed, advanced or closed it
    st.metric(f"Answers to round {number}", state.answers, help="Counted as they arrive; what they are stays hidden.")


def _reveal_view(room: Room, lm: LoadedModel, number: int) -> None:
    reveal = round_reveal(room, lm, number)
    top, favourite = reveal.model_choice, reveal.favourite
    metrics = st.columns(4)
    metrics[0].metric("Answers", reveal.answers)
    metrics[1].metric(
        "The class's favourite",
        favourite.label if favourite else "—",
        f"{favourite.share:.0%} of the class" if favourite else None,
        delta_color="off",
        delta_arrow="off",
    )
    metrics[2].metric(
        "The model's first choice", display_token(top.token), f"{top.prob:.1%}", delta_color="off", delta_arrow="off"
    )
    metrics[3].metric(
        "Agreed with the model",
        f"{reveal.agreement:.0%}",
        help="The share of the class whose guess was the model's most likely token.",
    )
    st.plotly_chart(reveal_figure(reveal, presenting()), key=f"room_chart_{number}", width="stretch")
    if reveal.students:
        st.markdown("**Each guess, and how likely the model found it**")
        rows = sorted(reveal.students, key=lambda s: -s.model_prob)
        table = pd.DataFrame(
            {
                "student": [s.name for s in rows],
                "guess": [s.guess.strip() for s in rows],
                "model's probability": [f"{s.model_prob:.2%}" for s in rows],
                "the model's first choice": ["✓" if s.agreed else "" for s in rows],
            }
        )
        st.dataframe(table, hide_index=True, width="stretch")
    else:
        st.caption("No one answered this round: the chart shows the model alone.")


def _next_controls(room: Room, lm: LoadedModel, number: int, locked: str | None) -> None:
    reveal = round_reveal(room, lm, number)
    st.subheader("What comes next?")
    favourite = reveal.favourite.reading.surface if reveal.favourite else None
    words = [f"the model's choice: {escape(display_token(reveal.model_choice.token))}"]
    if favourite is not None:
        words.insert(0, f"the class's favourite: {escape(display_token(favourite))}")
    st.markdown(f'<div class="lab-room-mine">{" · ".join(words)}</div>', unsafe_allow_html=True)
    st.session_state.setdefault(NEXT_CHOICE, "class")
    choice("Append", CHOICE_TITLES, NEXT_CHOICE, label_visibility="collapsed")
    if st.session_state[NEXT_CHOICE] == "text":
        st.text_input("Words to append", key=NEXT_TEXT, max_chars=MAX_GUESS_CHARS)
    st.button("▶ Next round", type="primary", on_click=_next, args=(room.code,), disabled=locked is not None)


def _summary(room: Room, lm: LoadedModel) -> None:
    summary = room_summary(room_store(), lm, room.code)
    if not summary.rounds:
        return
    st.subheader("The class against the model")
    rows = [
        {
            "round": r.round,
            "answers": r.answers,
            "class's favourite": r.favourite or "—",
            "share": f"{r.favourite_share:.0%}",
            "model's probability for it": "—" if r.favourite_model_prob is None else f"{r.favourite_model_prob:.1%}",
            "model's first choice": display_token(r.model_token),
            "its probability": f"{r.model_prob:.1%}",
            "same word": "✓" if r.agreed else "",
            "appended": display_token(r.appended.text) if r.appended else "",
        }
        for r in summary.rounds
    ]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    st.caption(
        f"The class's favourite was the model's first choice in {summary.rounds_agreed} of "
        f"{plural(len(summary.rounds), 'round')}; on average {summary.mean_agreement:.0%} of the class agreed "
        "with the model."
    )


st.markdown(ROOM_CSS, unsafe_allow_html=True)
code = st.query_params.get(ROOM_PARAM) or st.session_state.get(LAST_ROOM)
if not code:
    st.title("🙋 Ask the class")
    st.info(
        "Open a room from the next-token explorer: type (and steer) a text there, then press 🙋 Ask the class. "
        "The class joins with a code or a QR code and guesses the next word on their phones."
    )
    st.page_link("pages/explorer.py", label="Open the explorer", icon="🎲")
    st.stop()
try:
    room = room_store().room(code)
    state = round_state(room_store(), room.code)
except LabError as exc:
    show_error(exc)
    st.session_state.pop(LAST_ROOM, None)
    st.page_link("pages/explorer.py", label="Open a new room from the explorer", icon="🎲")
    st.stop()
st.session_state[LAST_ROOM] = room.code
if st.query_params.get(ROOM_PARAM) != room.code:
    st.query_params[ROOM_PARAM] = room.code

big = presenting()
token = teacher_token(room.code)
locked = teacher_only(RUN)
if locked is None and token is None:
    locked = "Paste this room's teacher token above to run it."
    st.warning(
        "This server did not open this room, or has restarted since: paste the room's teacher token to run it "
        "(`python -m core room new` prints it)."
    )
    st.text_input("The room's teacher token", key=TOKEN, type="password")
    st.button("Run this room", on_click=_take_over, args=(room.code,))
show_reported(ERROR)

link = room_join_link(room.code)
st.markdown(f"### 🙋 Round {state.round}: what comes next?")
st.markdown(prompt_html(state.prompt_text, 2.0 if big else 1.5), unsafe_allow_html=True)
if not link.reachable:
    st.warning(
        "This server listens on this machine only, so phones cannot open the link: start it with "
        "`make run HOST=0.0.0.0` for the class to join."
    )
if state.closed:
    st.info("This room is closed: the game is over. Its summary stays here for a day.")
elif not state.revealed:
    left, right = st.columns([1, 1], gap="large")
    with left:
        st.markdown("**Join with the code**")
        st.markdown(code_html(room.code, 4.5 if big else 3.2), unsafe_allow_html=True)
        st.markdown(f"or open **{link.url}**")
        live_count(room.code, state.round)
        st.button("👁 Reveal", type="primary", on_click=_reveal, args=(room.code,), disabled=locked is not None)
    with right:
        st.markdown(f'<div class="lab-room-qr">{qr_svg(link.url)}</div>', unsafe_allow_html=True)
        st.caption("Scan to join: the class needs no account and no app.")

if state.revealed or state.round > 1:
    try:
        lm = room_model(room)
    except LabError as exc:
        show_error(exc)
        st.stop()
    if state.revealed:
        _reveal_view(room, lm, state.round)
        if not state.closed:
            _next_controls(room, lm, state.round, locked)
    st.divider()
    _summary(room, lm)
if state.revealed and not state.closed:  # latecomers can still join for the next round
    with st.expander(f"Join: {readable_code(room.code)} · {link.url}"):
        st.markdown(f'<div class="lab-room-qr lab-room-qr-small">{qr_svg(link.url)}</div>', unsafe_allow_html=True)
if not state.closed:
    st.button("⏹ Close the room", on_click=_close, args=(room.code,), disabled=locked is not None)
if locked:
    st.caption(locked)
