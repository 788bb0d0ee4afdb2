"""Class mode's Streamlit side: the shared room store, the teacher's room tokens, the join link and QR code.

Rooms live in SQLite (``core.rooms.store``); what this module keeps in the
server's memory is only what a page needs again and again:

* one ``RoomStore`` per data folder (opening one creates the schema: a write);
* the teacher token of each room this server opened. ``core`` hands the
  token out once, when the room opens; keeping it here, for the teacher's
  session only (``teacher_token``), lets the teacher reload the page or open
  it in a second tab (the projector's) without the token ever being shown or
  put in a URL. After a restart the teacher pastes it once (``take_over``);
* each revealed round's result, computed once for the whole class: a
  revealed round takes no more guesses, so thirty phones asking for it after
  the reveal cost one scoring, not thirty.

Everything a student typed is shown through ``ui.render.escape`` (HTML) or in
a data table, never as markdown.
"""

from __future__ import annotations

import threading
from pathlib import Path

import segno
import streamlit as st

from core.errors import LabError
from core.models import DEFAULT_DTYPE, LoadedModel, ModelKey, load_model, loaded_models
from core.rooms.codes import readable_code
from core.rooms.game import open_room, revealed_round
from core.rooms.links import JoinLink, join_link
from core.rooms.scoring import Reveal
from core.rooms.store import Room, RoomStore, rooms_path
from ui.jobs import show_reported
from ui.render import escape
from ui.session import is_teacher, require_teacher, teacher_only

ROOM_PAGE = "pages/room.py"
ROOM_PARAM = "room"
OPEN_A_ROOM = "open a class room"
OPENED, ASK_ERROR = "ask_opened_room", "ask_error"  # set by the button's callback, used by the page


@st.cache_resource(max_entries=8, show_spinner=False)
def _store_at(path: str) -> RoomStore:
    return RoomStore(Path(path))


def room_store() -> RoomStore:
    """The rooms of this server's data folder (``LLM_LAB_DATA``), shared by every session."""
    return _store_at(str(rooms_path()))


@st.cache_resource(show_spinner=False)
def _teacher_tokens() -> tuple[threading.Lock, dict[tuple[str, str], str]]:
    """(store path, room code) -> teacher token, for the rooms opened or taken over on this server."""
    return threading.Lock(), {}


def keep_teacher_token(code: str, token: str) -> None:
    lock, tokens = _teacher_tokens()
    with lock:
        tokens[(str(room_store().path), code)] = token


def teacher_token(code: str) -> str | None:
    """The room's teacher token for the teacher's session; None for a student, or a room this server did not open."""
    if not is_teacher():
        return None
    lock, tokens = _teacher_tokens()
    with lock:
        return tokens.get((str(room_store().path), code))


def take_over(code: str, token: str) -> None:
    """Run a room this server did not open (opened before a restart, or by ``python -m core room new``)."""
    require_teacher(OPEN_A_ROOM)
    room = room_store().check_teacher(code, token.strip())
    keep_teacher_token(room.code, token.strip())


def room_model(room: Room) -> LoadedModel:
    """The model the room is played with: a copy already in memory (any precision), else loaded now.

    Loading one is the teacher's to do (``core.access``); a student's page
    only ever uses a model the teacher's room page has loaded.
    """
    loaded = [key for key in loaded_models() if key.name == room.model and key.adapter is None]
    if loaded:
        key = loaded[-1]  # the most recently used
        return load_model(key.name, key.dtype, key.device, restricted=True, may_load_new=False)
    return load_model(room.model, DEFAULT_DTYPE, restricted=True, may_load_new=is_teacher())


@st.cache_resource(max_entries=64, show_spinner=False)
def _reveal(path: str, code: str, opened_at: float, number: int, model: ModelKey, _lm: LoadedModel) -> Reveal:
    return revealed_round(_store_at(path), _lm, code, number)


def round_reveal(room: Room, lm: LoadedModel, number: int) -> Reveal:
    """Round ``number``'s result once the teacher revealed it (``InvalidInput`` before), computed once per round."""
    return _reveal(str(room_store().path), room.code, room.created_at, number, lm.key, lm)


def room_join_link(code: str) -> JoinLink:
    """The link phones open, from the address the teacher's browser uses and the one the server listens on."""
    return join_link(
        code,
        st.context.url,
        str(st.get_option("server.address") or ""),
        int(st.get_option("server.port")),
        str(st.get_option("server.baseUrlPath") or ""),
    )


def qr_svg(url: str) -> str:
    """``url`` as a QR code: an SVG that scales to any width, a projector's included, without blurring."""
    return segno.make(url, error="m").svg_inline(scale=1, border=2, omitsize=True, dark="#000", light="#fff")


def code_html(code: str, size_rem: float) -> str:
    return f'<div class="lab-room-code" style="font-size:{size_rem}rem">{escape(readable_code(code))}</div>'


def prompt_html(text: str, size_rem: float, shown_chars: int = 400) -> str:
    """The text the class continues, its end kept when it is long, with a blank where the next word goes."""
    cut = len(text) > shown_chars
    shown = escape(("…" if cut else "") + text[-shown_chars:]).replace("\n", "<br>")
    return (
        f'<div class="lab-room-prompt" style="font-size:{size_rem}rem">{shown}'
        '<span class="lab-room-blank" title="the next word">&nbsp;?&nbsp;</span></div>'
    )


ROOM_CSS = """<style>
.lab-room-code { font-family: monospace; font-weight: 700; letter-spacing: 0.12em; line-height: 1.1; }
.lab-room-prompt { padding: 0.7rem 0.9rem; border-radius: 0.5rem; background: rgba(79, 70, 229, 0.08);
  line-height: 1.45; overflow-wrap: anywhere; margin-bottom: 0.8rem; }
.lab-room-blank { display: inline-block; min-width: 3ch; margin-left: 0.25ch; border-bottom: 3px solid #4f46e5;
  color: #4f46e5; font-weight: 700; text-align: center; }
.lab-room-qr svg { width: 100%; max-width: 480px; height: auto; display: block; }
.lab-room-qr-small svg { max-width: 260px; }
.lab-room-mine { font-size: 1.25rem; line-height: 1.5; overflow-wrap: anywhere; margin-bottom: 0.5rem; }
.lab-room-said { line-height: 1.5; overflow-wrap: anywhere; margin-bottom: 0.5rem; }
</style>"""


def _open_room(lm: LoadedModel, prompt: str, chat: bool, steered: list[int]) -> None:
    try:
        require_teacher(OPEN_A_ROOM)
        opened = open_room(room_store(), lm, prompt, chat, steered)
    except LabError as exc:
        st.session_state[ASK_ERROR] = str(exc)
        return
    keep_teacher_token(opened.room.code, opened.teacher_token)
    st.session_state[OPENED] = opened.room.code


def ask_the_class(lm: LoadedModel, prompt: str, chat: bool, steered: list[int]) -> None:
    """The explorer's 🙋 Ask the class: open a room on this text (steered tokens included) and go to its page."""
    why = teacher_only(OPEN_A_ROOM)
    st.button(
        "🙋 Ask the class",
        key="ask_the_class",
        on_click=_open_room,
        args=(lm, prompt, chat, list(steered)),
        disabled=why is not None,
        help="Open a room on this text: the class guesses the next word on their phones, then sees itself "
        "beside the model.",
    )
    if why:
        st.caption(why)
    show_reported(ASK_ERROR)
    opened = st.session_state.pop(OPENED, None)
    if opened:
        st.switch_page(ROOM_PAGE, query_params={ROOM_PARAM: opened})
