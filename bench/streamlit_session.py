"""One browser tab's conversation with a running Streamlit app, spoken over its websocket.

A load test needs many real sessions; thirty headless browsers would take
more of two CPU cores than the app under test. A browser tab, seen from the
server, is only a websocket (``/_stcore/stream``) carrying protobufs: it
sends a ``BackMsg`` asking for a rerun (with the URL's query string, the page
and the values of its widgets) and receives ``ForwardMsg``s (the elements the
script draws, URL changes, and ``script_finished``). ``AppSession`` speaks
exactly that, the way Streamlit's own frontend does, so the server runs the
same code for it as for a browser: same session, same script thread, same
widgets and callbacks.

A fragment that polls (``@st.fragment(run_every=…)``) is rerun by the
browser on a timer the server announces (an ``auto_rerun`` message);
``rerun_fragment`` sends that same request, so a simulated phone polls the
way a real one does.

What it does not do: render anything, run the plotly JavaScript, or fetch
media files. Latency here is the server's (script run and messages), not
the browser's drawing time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from streamlit.proto.Alert_pb2 import Alert
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

FINISHED = ForwardMsg.ScriptFinishedStatus
# A rerun is answered once the script has run to its end; st.rerun() first ends a run "early for rerun".
DONE = {FINISHED.FINISHED_SUCCESSFULLY}
# How ui.render.path_html draws the steered text: the prompt, then each chosen token in bold.
STEERED_TEXT, CHOSEN_TOKEN = 'class="lab-tokens"', "font-weight:600;"
# A fragment's rerun ends with its own status, or with the whole page's when it asked for a full rerun.
FRAGMENT_DONE = {FINISHED.FINISHED_FRAGMENT_RUN_SUCCESSFULLY, FINISHED.FINISHED_SUCCESSFULLY}
FAILED = {FINISHED.FINISHED_WITH_COMPILE_ERROR}


class SessionError(Exception):
    """The server did not answer a rerun as a browser would need: timeout, closed socket, broken script."""


@dataclass
class RunResult:
    """What the server sent back for one rerun, from the request to the end of the script."""

    seconds: float
    elements: list[str] = field(default_factory=list)  # element kinds in the order they arrived
    query_string: str = ""  # the URL's query after the run (pages write their state there)
    problems: list[str] = field(default_factory=list)  # exceptions and error boxes the page showed
    steered_tokens: int | None = None  # chosen tokens in the steered text's markdown, when the page drew it
    texts: list[str] = field(default_factory=list)  # what markdown, alerts and metrics ("label: value") said

    def count(self, kind: str) -> int:
        return self.elements.count(kind)


class AppSession:
    """A Streamlit session on ``page`` of the app at ``base_url``, as one browser tab sees it.

    Widget values set with ``set_value`` are sent on every rerun afterwards,
    as a browser sends all of its widgets' values; a click is sent once.
    Widgets are addressed by their label, the way a person finds them.
    """

    def __init__(self, base_url: str, page: str, query_string: str = "", timeout: float = 60.0) -> None:
        ws_url = base_url.replace("http://", "ws://", 1).rstrip("/") + "/_stcore/stream"
        self.page = page
        self.query_string = query_string
        self.timeout = timeout
        self.page_hash = ""  # learnt from the server's navigation message, then sent back
        self.widget_ids: dict[str, str] = {}  # label -> widget id, from the elements drawn so far
        # (fragment id, seconds between reruns) of the last polling fragment the page announced: its id
        # depends on where the page draws it, so it changes when the page above it does
        self.polling: tuple[str, float] | None = None
        self._values: dict[str, WidgetState] = {}
        try:
            self._socket: ClientConnection = connect(
                ws_url, subprotocols=["streamlit"], max_size=None, open_timeout=timeout
            )
        except (OSError, TimeoutError) as exc:
            raise SessionError(f"could not open a session at {ws_url}: {exc}") from exc

    def close(self) -> None:
        self._socket.close()

    def __enter__(self) -> AppSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _widget(self, label: str) -> WidgetState:
        if label not in self.widget_ids:
            raise SessionError(f"the page shows no widget labelled {label!r} (it has: {', '.join(self.widget_ids)})")
        return WidgetState(id=self.widget_ids[label])

    def set_value(self, label: str, **value: Any) -> None:
        """Give a widget a value (``string_value=``, ``int_value=``, ...) for this and later reruns."""
        state = self._widget(label)
        for name, v in value.items():
            setattr(state, name, v)
        self._values[label] = state

    def rerun(self) -> RunResult:
        """Ask for a rerun with the current URL and widget values; wait until the script has finished."""
        return self._send([])

    def click(self, label: str) -> RunResult:
        """Press a button (a trigger: sent with this rerun only) and wait for the script to finish."""
        trigger = self._widget(label)
        trigger.trigger_value = True
        return self._send([trigger])

    def rerun_fragment(self, fragment_id: str) -> RunResult:
        """Rerun one polling fragment, as the browser's timer does; it may rerun the whole page."""
        return self._send([], fragment_id)

    def _send(self, triggers: list[WidgetState], fragment_id: str = "") -> RunResult:
        request = BackMsg()
        state = request.rerun_script
        state.query_string = self.query_string
        state.page_name = self.page
        state.page_script_hash = self.page_hash
        state.widget_states.widgets.extend([*self._values.values(), *triggers])
        if fragment_id:
            state.fragment_id, state.is_auto_rerun = fragment_id, True
        began = time.perf_counter()
        try:
            self._socket.send(request.SerializeToString())
            return self._receive_until_finished(began, FRAGMENT_DONE if fragment_id else DONE)
        except TimeoutError:
            raise SessionError(f"no answer within {self.timeout:.0f} s") from None
        except ConnectionClosed as exc:
            raise SessionError(f"the server closed the session: {exc}") from None

    def _receive_until_finished(self, began: float, done: set[int]) -> RunResult:
        result = RunResult(seconds=0.0)
        deadline = began + self.timeout
        while True:
            message = ForwardMsg()
            message.ParseFromString(self._socket.recv(timeout=max(0.001, deadline - time.perf_counter())))
            kind = message.WhichOneof("type")
            if kind == "navigation":
                self.page_hash = message.navigation.page_script_hash
            elif kind == "page_info_changed":
                self.query_string = message.page_info_changed.query_string
            elif kind == "auto_rerun":
                self.polling = (message.auto_rerun.fragment_id, message.auto_rerun.interval)
            elif kind == "page_not_found":
                result.problems.append(f"page not found: {self.page!r}")
            elif kind == "delta" and message.delta.WhichOneof("type") == "new_element":
                widget = note_element(message.delta.new_element, result)
                if widget is not None:
                    self.widget_ids[widget[0]] = widget[1]
            elif kind == "script_finished":
                if message.script_finished in FAILED:
                    raise SessionError("the script failed to compile")
                if message.script_finished in done:
                    result.seconds = time.perf_counter() - began
                    result.query_string = self.query_string
                    return result


def note_element(element: Any, result: RunResult) -> tuple[str, str] | None:
    """Record an element the page drew in ``result``; return (label, widget id) if it is a widget."""
    kind = element.WhichOneof("type")
    body = getattr(element, kind)
    result.elements.append(kind)
    if kind == "exception":
        result.problems.append(f"exception: {body.type}: {body.message}")
    elif kind == "alert" and body.format == Alert.ERROR:
        result.problems.append(f"error box: {body.body}")
    elif kind == "markdown" and STEERED_TEXT in body.body:
        result.steered_tokens = max(result.steered_tokens or 0, body.body.count(CHOSEN_TOKEN))
    if kind in ("markdown", "alert"):
        result.texts.append(body.body)
    elif kind == "metric":
        result.texts.append(f"{body.label}: {body.body}")
    widget_id, label = getattr(body, "id", ""), getattr(body, "label", "")
    return (label, widget_id) if widget_id and label else None
