"""What a page user can make the server send, and read back, through the API backend.

The base URL is typed by whoever uses a page, so the server's requests go
where a student points them. A listener on loopback stands for a machine the
student controls, or for an internal web service: it records each request's
headers and answers as a test tells it. The server's own key must never reach
it, and nothing it answers (a page, a JSON list, an error body) may be shown
back, nor the credentials a URL carries.
"""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from typing import ClassVar

import pytest
from streamlit.testing.v1 import AppTest

from core.backends import OpenAIBackend, list_models
from core.backends.base import BackendError, MalformedResponse
from core.backends.openai_api import ALLOWED_BASE_URLS_ENV, NO_KEY_PLACEHOLDER
from core.errors import InvalidInput, LabError
from tests.servers import http_server
from tests.test_app import APP

SERVER_KEY = "sk-server-KEY-789"
INTERNAL = "INTERNAL-ONLY-db.example:5432"  # what an internal service would give away
MODEL_LIST = {"object": "list", "data": [{"id": "tiny", "object": "model", "created": 0, "owned_by": "me"}]}


class Listener(BaseHTTPRequestHandler):
    """Records every request's headers and answers with ``answer`` (status, content type, body)."""

    seen: ClassVar[list[dict[str, str]]] = []
    answer: ClassVar[tuple[int, str, bytes]] = (200, "application/json", json.dumps(MODEL_LIST).encode())

    def log_message(self, *args: object) -> None:
        pass

    def _answer(self) -> None:
        Listener.seen.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        status, content_type, body = Listener.answer
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer


@pytest.fixture
def listener(monkeypatch):
    """The listener's base URL; the server runs with a key of its own and no other API configuration."""
    monkeypatch.setenv("OPENAI_API_KEY", SERVER_KEY)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv(ALLOWED_BASE_URLS_ENV, raising=False)
    monkeypatch.delenv("LLM_LAB_TEACHER_SECRET", raising=False)
    Listener.seen = []
    Listener.answer = (200, "application/json", json.dumps(MODEL_LIST).encode())
    with http_server(Listener) as root:
        yield f"{root}/v1"


def answers(status: int, body: bytes | str | object, content_type: str = "application/json") -> None:
    raw = body if isinstance(body, bytes) else (body if isinstance(body, str) else json.dumps(body)).encode()
    Listener.answer = (status, content_type, raw)


def keys_sent() -> list[str]:
    return [request.get("authorization", "") for request in Listener.seen]


# --- the server's key -----------------------------------------------------------------------


def test_the_servers_key_never_goes_to_an_address_a_page_user_types(listener):
    assert list_models(listener, None, server_key=True) == ["tiny"]  # even the teacher's session
    OpenAIBackend("tiny", base_url=listener, server_key=True, max_retries=0).list_models()
    assert Listener.seen, "the listener was asked"
    assert keys_sent() == [f"Bearer {NO_KEY_PLACEHOLDER}"] * len(Listener.seen)
    assert not any(SERVER_KEY in json.dumps(request) for request in Listener.seen)


def test_the_servers_key_goes_only_to_the_base_url_it_was_configured_with(listener, monkeypatch):
    host_port = listener.removeprefix("http://").removesuffix("/v1")
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://teacher:pw@{host_port}/v1/")  # the same place, spelled otherwise
    list_models(listener, None, server_key=True)
    assert keys_sent() == [f"Bearer {SERVER_KEY}"], "the teacher's session, the configured server"
    list_models(listener, None, server_key=False)
    assert keys_sent()[-1] == f"Bearer {NO_KEY_PLACEHOLDER}", "a student's session never spends the server's key"
    list_models(listener, "sk-typed-by-a-student")
    assert keys_sent()[-1] == "Bearer sk-typed-by-a-student", "a key typed in the session goes where it was typed for"
    list_models(listener.replace("/v1", "/other/v1"), None, server_key=True)
    assert keys_sent()[-1] == f"Bearer {NO_KEY_PLACEHOLDER}", "another path on that host is another API"


def _sidebar_listing(base_url: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.sidebar.radio(key="backend").set_value("openai").run()
    at.sidebar.text_input(key="api_base_url").set_value(base_url).run()
    return at


def test_the_sidebar_says_truthfully_whether_the_servers_key_is_sent(listener, monkeypatch):
    at = _sidebar_listing(listener)
    captions = " ".join(c.value for c in at.sidebar.caption)
    assert "this one gets no key" in captions and "Using the server's OPENAI_API_KEY" not in captions
    at.sidebar.button[0].click().run()  # list the server's models
    assert not at.exception and at.session_state["api_models"] == ["tiny"]
    assert keys_sent() == [f"Bearer {NO_KEY_PLACEHOLDER}"]

    monkeypatch.setenv("OPENAI_BASE_URL", listener)
    at = _sidebar_listing(listener)
    assert any("Using the server's OPENAI_API_KEY" in c.value for c in at.sidebar.caption)
    at.sidebar.button[0].click().run()
    assert keys_sent()[-1] == f"Bearer {SERVER_KEY}"
    assert SERVER_KEY not in json.dumps([str(el) for el in at], default=str)


# --- what the server's answers may show -----------------------------------------------------


@pytest.mark.parametrize("status", [400, 403, 404, 409, 418, 500])
def test_a_failure_shows_its_status_and_a_fixed_sentence_never_the_body(listener, status):
    answers(status, f"<html><h1>Admin console</h1><p>{INTERNAL}</p></html>", "text/html")
    for attempt in (
        lambda: list_models(listener, max_retries=0),
        lambda: OpenAIBackend("tiny", base_url=listener, max_retries=0).next_token("Hi", chat=True),
    ):
        with pytest.raises(BackendError) as info:
            attempt()
        message = str(info.value)
        assert str(status) in message and "127.0.0.1" in message
        assert INTERNAL not in message and "Admin console" not in message


@pytest.mark.parametrize(
    "listing",
    [
        [INTERNAL, "payroll"],  # a JSON list of ids
        {"data": [{"id": INTERNAL}]},  # a list under "data" that is not a list of models
        {"object": "list", "data": [{"id": INTERNAL, "object": "user"}]},
        {"object": "list", "data": [INTERNAL]},
    ],
)
def test_only_an_openai_shaped_model_list_is_accepted(listener, listing):
    answers(200, listing)
    with pytest.raises(MalformedResponse, match="not in the OpenAI API's format") as info:
        list_models(listener, max_retries=0)
    assert INTERNAL not in str(info.value)


def test_a_web_page_at_the_base_url_is_a_sentence_not_a_crash(listener):
    answers(200, "<!doctype html><html><body>Another web application</body></html>", "text/html")
    with pytest.raises(MalformedResponse, match="not in the OpenAI API's format"):
        list_models(listener, max_retries=0)


def test_a_web_page_at_the_base_url_leaves_the_page_standing(listener):
    answers(200, "<!doctype html><html><body>Another web application</body></html>", "text/html")
    at = _sidebar_listing(listener)
    at.sidebar.button[0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("not in the OpenAI API's format" in e.value for e in at.sidebar.error)
    assert at.title, "the page is still drawn"


def test_credentials_in_the_url_are_never_repeated(listener, unused_port):
    answers(404, {"error": {"message": "no"}})
    with_credentials = listener.replace("http://", "http://user:hunter2-secret@")
    for base_url, error in (
        (with_credentials, "404 Not Found"),
        (f"http://user:hunter2-secret@127.0.0.1:{unused_port}/v1", "No server is running"),
    ):
        backend = OpenAIBackend("tiny", base_url=base_url, max_retries=0)
        assert "hunter2-secret" not in repr(backend) and "hunter2-secret" not in backend.label
        with pytest.raises(BackendError, match=error) as info:
            backend.next_token("Hi", chat=True)
        assert "hunter2-secret" not in str(info.value) and "user@" not in str(info.value)


# --- the allow-list ---------------------------------------------------------------------------


def test_the_allow_list_refuses_any_other_base_url_before_a_request_is_sent(listener, monkeypatch):
    monkeypatch.setenv(ALLOWED_BASE_URLS_ENV, "https://api.openai.com/v1,  http://llm.school.example:8000/v1")
    for attempt in (
        lambda: list_models(listener, "sk-typed"),
        lambda: OpenAIBackend("tiny", base_url=listener).next_token("Hi"),
        lambda: OpenAIBackend("tiny", base_url=listener.replace("127.0.0.1", "user:pw@127.0.0.1")),
    ):
        with pytest.raises(InvalidInput, match="may only contact the API servers it was started with") as info:
            attempt()
        assert "llm.school.example:8000" in str(info.value) and "127.0.0.1" not in str(info.value)
    assert Listener.seen == [], "refused before anything was sent"
    monkeypatch.setenv(ALLOWED_BASE_URLS_ENV, f"https://api.openai.com/v1\n{listener}/")
    assert list_models(listener) == ["tiny"], "a listed URL works, whitespace between the entries"


def test_a_broken_allow_list_says_which_setting_is_wrong(listener, monkeypatch):
    monkeypatch.setenv(ALLOWED_BASE_URLS_ENV, "sk-pasted-by-mistake")
    with pytest.raises(LabError, match=ALLOWED_BASE_URLS_ENV) as info:
        list_models(listener)
    assert "sk-pasted-by-mistake" not in str(info.value)
    assert Listener.seen == []
