"""Backends without llama.cpp: the local backend, the entropy bound, and the API's error paths.

The error paths run against a real HTTP server on loopback — a minimal one
that answers as a broken or strict OpenAI-compatible server would (401, 404,
429, 503, no logprobs, not JSON) — because llama.cpp's server never answers
that way. The key used here must never appear in any message, repr or log.
"""

import contextlib
import json
import logging
import math
import time
import traceback
from http.server import BaseHTTPRequestHandler
from typing import ClassVar

import pytest

from core.backends import BackendError, LocalBackend, OpenAIBackend, list_models
from core.backends.base import (
    AuthenticationFailed,
    MalformedResponse,
    NoLogprobs,
    ServerUnreachable,
    UnknownModel,
    entropy_lower_bound,
)
from core.backends.openai_api import NO_KEY_PLACEHOLDER, resolve_api_key, resolve_base_url
from core.distributions import SamplingSettings, next_token_distribution
from core.errors import InvalidInput
from core.generation import generate
from core.tokens import encode_prompt
from tests.servers import http_server

SECRET = "sk-test-SECRET123"


# --- the entropy lower bound ---------------------------------------------------------------


def test_entropy_bound_is_exact_when_the_known_tokens_hold_all_the_mass():
    probs = [0.5, 0.25, 0.25]
    assert entropy_lower_bound(probs) == pytest.approx(-sum(p * math.log(p) for p in probs))


def test_entropy_bound_packs_the_rest_into_tokens_no_likelier_than_the_last_known():
    # 0.3 of unknown mass, each unknown token at most 0.2: one token at 0.2 and one at 0.1.
    expected = -(0.5 * math.log(0.5) + 0.2 * math.log(0.2) + 0.2 * math.log(0.2) + 0.1 * math.log(0.1))
    assert entropy_lower_bound([0.5, 0.2]) == pytest.approx(expected)
    # and it is tighter than treating "other" as a single token
    assert entropy_lower_bound([0.5, 0.2]) > -(0.5 * math.log(0.5) + 0.2 * math.log(0.2) + 0.3 * math.log(0.3))


@pytest.mark.slow
def test_entropy_bound_never_exceeds_the_true_entropy_of_a_real_distribution(lm):
    for prompt in ("The capital of France is", "Once upon a time", "def fibonacci(n):"):
        dist = next_token_distribution(lm, encode_prompt(lm, prompt).ids)
        for k in (1, 5, 20):
            bound = entropy_lower_bound([t.prob for t in dist.top(k)])
            assert bound <= dist.entropy + 1e-9
        assert entropy_lower_bound([t.prob for t in dist.top(20)]) > entropy_lower_bound([t.prob for t in dist.top(1)])


# --- the local backend ---------------------------------------------------------------------


@pytest.mark.slow
def test_local_backend_reports_the_exact_distribution(lm):
    backend = LocalBackend(lm)
    assert backend.full_distribution and backend.token_ids and backend.limitations() == []
    dist = backend.next_token("The capital of France is", top_k=5)
    assert dist.tokens[0].token == " Paris" and isinstance(dist.tokens[0].id, int)
    assert dist.entropy_is_lower_bound is False
    assert dist.entropy == pytest.approx(
        next_token_distribution(lm, encode_prompt(lm, "The capital of France is").ids).entropy
    )
    assert dist.other_mass == pytest.approx(1 - sum(t.prob for t in dist.tokens))
    assert dist.prompt_text == "The capital of France is" and dist.prompt_tokens == 5


@pytest.mark.slow
def test_local_backend_generation_is_core_generation(lm):
    backend = LocalBackend(lm)
    steps = list(backend.generate_steps("Once upon a time", max_new_tokens=6, seed=3, alternatives=5))
    ids = encode_prompt(lm, "Once upon a time").ids
    reference = list(generate(lm, ids, 6, SamplingSettings(), seed=3, alternatives=5))
    assert [s.chosen for s in steps] == [r.chosen for r in reference]
    assert [s.rank for s in steps] == [r.rank for r in reference]
    assert all(len(s.alternatives) == 5 and 0 <= s.other_mass < 1 for s in steps)


# --- settings ------------------------------------------------------------------------------


def test_base_url_must_be_http_and_a_bad_one_is_not_echoed():
    with pytest.raises(InvalidInput) as info:
        resolve_base_url(SECRET)
    assert SECRET not in str(info.value)
    assert resolve_base_url("http://127.0.0.1:8080/v1/") == "http://127.0.0.1:8080/v1"


def test_api_key_comes_from_the_argument_then_the_environment(monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)  # configured: OpenAI's own API
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    assert resolve_api_key("https://api.openai.com/v1", "sk-typed") == "sk-typed"
    assert resolve_api_key("https://api.openai.com/v1", "  ", server_key=True) == "sk-from-env"
    with pytest.raises(AuthenticationFailed, match="type yours in"):
        resolve_api_key("https://api.openai.com/v1", "  ")  # a student's session: not the server's key
    monkeypatch.delenv("OPENAI_API_KEY")
    assert resolve_api_key("http://127.0.0.1:8080/v1", server_key=True) == NO_KEY_PLACEHOLDER
    with pytest.raises(AuthenticationFailed, match="OPENAI_API_KEY"):
        resolve_api_key("https://api.openai.com/v1", server_key=True)


def test_api_backend_states_what_it_cannot_show():
    backend = OpenAIBackend("m", base_url="http://127.0.0.1:9/v1", api_key=SECRET)
    assert not backend.can_score_prompt and not backend.full_distribution and backend.max_alternatives == 20
    assert any("lower bound" in note for note in backend.limitations())
    assert SECRET not in repr(backend) and SECRET not in str(vars(backend))
    with pytest.raises(InvalidInput, match="1 to 20"):
        backend.next_token("Hi", top_k=21)


# --- error paths against a minimal server on loopback ---------------------------------------


def _completion(logprobs: object, content: str = "Hi", finish_reason: str = "length") -> dict:
    return {
        "id": "c",
        "object": "chat.completion",
        "created": 0,
        "model": "tiny",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": finish_reason,
                "logprobs": logprobs,
            }
        ],
    }


GOOD_LOGPROBS = {
    "content": [
        {
            "token": "Hi",
            "logprob": -0.1,
            "top_logprobs": [{"token": "Hello", "logprob": -2.5}, {"token": "Hi", "logprob": -0.1}],
        }
    ]
}


class StrictServer(BaseHTTPRequestHandler):
    """Answers by the requested model name, the way real servers fail."""

    requests: ClassVar[list[str]] = []  # model names asked for, in order

    def log_message(self, *args: object) -> None:  # keep the test output clean
        pass

    def _send(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"Content-Type": "application/json", **(headers or {})}
        self.send_response(status)
        self.send_header("Content-Length", str(len(raw)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self) -> None:
        if self.path == "/v1/models":
            self._send(
                200, {"object": "list", "data": [{"id": "tiny", "object": "model", "created": 0, "owned_by": "me"}]}
            )
        elif self.path == "/web-page/v1/models":  # another web application at the base URL
            self._send(200, b"<html><body>An intranet page</body></html>", {"Content-Type": "text/html"})
        elif self.path == "/json-list/v1/models":  # an internal service answering with its own JSON
            self._send(200, ["internal-host-a", "internal-host-b"])
        else:
            self._send(404, {"error": {"message": "Not found"}})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if not self.path.startswith("/v1/"):
            self._send(404, {"detail": "Not Found"})
            return
        model = body["model"]
        StrictServer.requests.append(model)
        auth = self.headers.get("Authorization", "")
        if model == "needs-key" and auth != "Bearer sk-right":
            # A careless server that echoes the key it was given.
            self._send(401, {"error": {"message": f"Incorrect API key provided: {auth[7:]}", "type": "auth"}})
        elif model == "echo-key":
            self._send(400, {"error": {"message": f"Bad request from {auth} (key {auth[7:]})"}})
        elif model == "reasoner":
            self._send(400, {"error": {"message": "logprobs is not supported with this model", "param": "logprobs"}})
        elif model == "mute":  # drew end-of-text at once
            self._send(200, _completion({"content": []}, content="", finish_reason="stop"))
        elif model == "silent":
            self._send(200, _completion(None))
        elif model == "garbled":
            self._send(200, b"<html>this is not JSON</html>")
        elif model == "wrong-shape":
            self._send(200, {"hello": "world"})
        elif model == "busy":
            self._send(429, {"error": {"message": "Rate limit reached"}}, {"retry-after-ms": "10"})
        elif model == "flaky" and StrictServer.requests.count("flaky") < 3:
            self._send(503, {"error": {"message": "loading"}}, {"retry-after-ms": "10"})
        elif model == "slow":  # slower than any test's timeout; the client has hung up by the time it answers
            time.sleep(3)
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self._send(200, _completion(GOOD_LOGPROBS))
        elif model in ("tiny", "flaky", "needs-key"):
            self._send(200, _completion(GOOD_LOGPROBS))
        else:
            self._send(404, {"error": {"message": f"The model `{model}` does not exist", "code": "model_not_found"}})


@pytest.fixture(scope="module")
def strict_server():
    with http_server(StrictServer) as root:
        yield f"{root}/v1"


@pytest.fixture
def everything_logged(caplog):
    caplog.set_level(logging.DEBUG)
    return caplog


def _fails(backend: OpenAIBackend, error: type[BackendError]) -> str:
    with pytest.raises(error) as info:
        backend.next_token("Hi", chat=True, top_k=2)
    exc = info.value
    text = "".join(traceback.format_exception(exc))
    assert SECRET not in text and "sk-right" not in text
    assert exc.__cause__ is None  # the SDK's exception holds the request, headers and all
    return str(exc)


def test_a_good_answer_from_the_minimal_server(strict_server):
    dist = OpenAIBackend("tiny", base_url=strict_server, api_key=SECRET).next_token("Hi", chat=True, top_k=2)
    assert [t.token for t in dist.tokens] == ["Hi", "Hello"]  # sorted, whatever order the server sent
    assert dist.tokens[0].id is None and dist.entropy_is_lower_bound
    assert dist.other_mass == pytest.approx(1 - math.exp(-0.1) - math.exp(-2.5))
    assert list_models(strict_server, api_key=SECRET) == ["tiny"]


def test_wrong_key_gives_a_clear_message_without_the_key(strict_server, everything_logged, capsys):
    message = _fails(OpenAIBackend("needs-key", base_url=strict_server, api_key=SECRET), AuthenticationFailed)
    assert "refused the API key (401" in message
    assert SECRET not in everything_logged.text and SECRET not in "".join(capsys.readouterr())


def test_a_server_that_echoes_the_key_is_not_echoed_back(strict_server, everything_logged, capsys):
    message = _fails(OpenAIBackend("echo-key", base_url=strict_server, api_key=SECRET), BackendError)
    assert "refused the request (400 Bad Request)" in message and "Bad request from" not in message
    assert SECRET not in everything_logged.text and SECRET not in "".join(capsys.readouterr())


def test_unknown_model_gives_a_clear_message(strict_server):
    message = _fails(OpenAIBackend("gpt-nope", base_url=strict_server, api_key=SECRET), UnknownModel)
    assert "404 Not Found" in message and "'gpt-nope'" in message
    assert "does not exist" not in message, "the server's own words are not repeated"


def test_a_missing_v1_is_hinted(strict_server):
    base = strict_server.removesuffix("/v1")
    message = _fails(OpenAIBackend("tiny", base_url=base, api_key=SECRET), UnknownModel)
    assert "/v1 at the end" in message


def test_a_model_without_logprobs_says_so(strict_server):
    assert "Reasoning models" in _fails(OpenAIBackend("silent", base_url=strict_server), NoLogprobs)
    assert "refused the log-probabilities" in _fails(OpenAIBackend("reasoner", base_url=strict_server), NoLogprobs)


def test_an_answer_that_ends_at_once_is_not_blamed_on_the_model(strict_server):
    assert "ended its answer at once" in _fails(OpenAIBackend("mute", base_url=strict_server), BackendError)


def test_openai_gets_non_standard_sampler_fields_only_when_they_are_set():
    openai_backend = OpenAIBackend("gpt-4o-mini", base_url="https://api.openai.com/v1", api_key=SECRET)
    assert "extra_body" not in openai_backend._sampling(SamplingSettings())
    assert openai_backend._sampling(SamplingSettings(top_k=5))["extra_body"] == {"top_k": 5}
    # llama.cpp would otherwise apply its own top-k 40, min-p 0.05 and repeat penalty 1.1
    other = OpenAIBackend("m", base_url="http://127.0.0.1:9/v1")._sampling(SamplingSettings())
    assert other["extra_body"] == {"top_k": 0, "min_p": 0.0, "repeat_penalty": 1.0}


def test_malformed_answers_say_so(strict_server):
    for model in ("garbled", "wrong-shape"):
        assert "not in the OpenAI API's format" in _fails(
            OpenAIBackend(model, base_url=strict_server), MalformedResponse
        )
    with pytest.raises(MalformedResponse, match="stream ended without a token"):
        list(OpenAIBackend("garbled", base_url=strict_server).generate_steps("Hi", chat=True))


def test_503_is_retried_with_backoff_until_it_works(strict_server):
    dist = OpenAIBackend("flaky", base_url=strict_server, max_retries=3).next_token("Hi", chat=True, top_k=2)
    assert dist.tokens[0].token == "Hi"
    assert StrictServer.requests.count("flaky") == 3


def test_429_is_retried_then_reported(strict_server):
    before = StrictServer.requests.count("busy")
    message = _fails(OpenAIBackend("busy", base_url=strict_server, max_retries=2), BackendError)
    assert "rate-limiting" in message and "429 Too Many Requests" in message and "Rate limit reached" not in message
    assert StrictServer.requests.count("busy") - before == 3


def test_nothing_listening_gives_the_not_running_message(unused_port, everything_logged, capsys):
    backend = OpenAIBackend("tiny", base_url=f"http://127.0.0.1:{unused_port}/v1", api_key=SECRET, max_retries=1)
    message = _fails(backend, ServerUnreachable)
    assert message.startswith(f"No server is running at 127.0.0.1:{unused_port} ")
    assert SECRET not in everything_logged.text and SECRET not in "".join(capsys.readouterr())


class LlamaServerShape(BaseHTTPRequestHandler):
    """Answers /v1/completions the way llama.cpp's own llama-server does: logprobs in the chat shape."""

    def do_POST(self) -> None:
        asked = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        entry = {
            "id": 7042,
            "token": " Paris",
            "logprob": -0.25,
            "top_logprobs": [
                {"id": 7042, "token": " Paris", "logprob": -0.25},
                {"id": 260, "token": " the", "logprob": -2.5},
            ],
        }
        choice = {"text": " Paris", "index": 0, "logprobs": {"content": [entry]}, "finish_reason": "length"}
        body = {"id": "c", "object": "text_completion", "created": 0, "model": asked["model"], "choices": [choice]}
        if asked.get("stream"):
            data = f"data: {json.dumps(body)}\n\ndata: [DONE]\n\n".encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
        else:
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


def test_a_completion_in_llama_server_s_chat_shaped_logprobs_is_read_too():
    """llama-server sends /v1/completions logprobs as a ``content`` list, not OpenAI's legacy parallel lists."""
    with http_server(LlamaServerShape) as root:
        backend = OpenAIBackend("smollm2", base_url=f"{root}/v1", max_retries=0)
        dist = backend.next_token("The capital of France is", top_k=2)
        assert [t.token for t in dist.tokens] == [" Paris", " the"]
        assert [t.prob for t in dist.tokens] == pytest.approx([math.exp(-0.25), math.exp(-2.5)])
        [step] = list(backend.generate_steps("The capital of France is", max_new_tokens=1, alternatives=2))
        assert (step.chosen.token, step.rank, len(step.alternatives)) == (" Paris", 1, 2)
