"""Any server that speaks the OpenAI API as a backend: OpenAI, vLLM, llama.cpp, Ollama, LM Studio, TGI.

What the API can tell us shapes everything here:

* one generated token comes with at most 20 ``top_logprobs`` alternatives, as
  text without ids, so a distribution is its top tokens plus "other";
* ``chat=True`` goes to ``/chat/completions`` (the server applies its own chat
  template, out of sight); ``chat=False`` sends the raw prompt to the legacy
  ``/completions`` endpoint, which OpenAI keeps only for a few old models but
  vLLM, llama.cpp and Ollama all serve;
* the prompt itself cannot be scored (OpenAI has no ``echo`` any more);
* reasoning models return no log-probabilities at all.

Calls have a timeout and are retried with exponential backoff on 408, 409,
429, 5xx and connection errors: that is the ``openai`` SDK's ``max_retries``
(0.5 s doubling to at most 8 s, with jitter, honouring ``Retry-After`` up to
two minutes). Failures become ``BackendError`` subclasses whose messages name
the server and say what to do.

The API key never leaves this module except in the ``Authorization`` header:
it is not in ``repr`` or any message. SDK exceptions are not chained onto ours
(``from None``), as they hold the request, headers included.

The app runs on a server that a class can reach, and the base URL is typed
by whoever uses a page, so the server must not become a way into its own
network: the server's ``OPENAI_API_KEY`` goes only to the base URL the server
was configured with (``server_key_for``), and only when the caller may use it
(the teacher's session); ``LLM_LAB_API_BASE_URLS`` can restrict the base URLs
to a list, refused before any request; and a message names the server by
host and port and the answer by its HTTP status, never by its body, so an
internal web page cannot be read through LLM Lab.
"""

from __future__ import annotations

import dataclasses
import http
import math
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

import openai

from core.backends.base import (
    AuthenticationFailed,
    Backend,
    BackendDistribution,
    BackendError,
    BackendStep,
    Decoding,
    MalformedResponse,
    NoLogprobs,
    Reply,
    ServerUnreachable,
    UnknownModel,
    entropy_lower_bound,
)
from core.distributions import SamplingSettings, TokenProb
from core.errors import InvalidInput
from core.generation import MAX_NEW_TOKENS
from core.prompts import Example
from core.tokens import validate_prompt

OPENAI_BASE_URL = "https://api.openai.com/v1"
ALLOWED_BASE_URLS_ENV = "LLM_LAB_API_BASE_URLS"
# A class served by an OpenAI-compatible server (llama.cpp's with parallel slots, vLLM) starts every
# new session on it: LLM_LAB_BACKEND=openai, the model LLM_LAB_API_MODEL, at OPENAI_BASE_URL.
DEFAULT_BACKEND_ENV, API_MODEL_ENV = "LLM_LAB_BACKEND", "LLM_LAB_API_MODEL"
BACKEND_CHOICES = ("local", "openai")
# llama.cpp's server, Ollama and a vLLM started without --api-key accept any key,
# but the SDK refuses to send a request without one.
NO_KEY_PLACEHOLDER = "not-needed"
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_MAX_RETRIES = 3
MAX_ALTERNATIVES = 20  # OpenAI's limit on top_logprobs; vLLM's default max_logprobs
BAD_URL = "The base URL must start with http:// or https://, e.g. http://127.0.0.1:8080/v1 or " + OPENAI_BASE_URL

T = TypeVar("T")


def _checked_url(url: str, refusal: str = BAD_URL) -> str:
    """``url`` stripped, if it is an http(s) URL with a host and a valid port; ``refusal`` never repeats it."""
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number from 0 to 65535)
    except ValueError:
        raise InvalidInput(refusal) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(refusal)
    return url


def _endpoint(url: str) -> tuple[str, str, int, str]:
    """Where requests to ``url`` go: scheme, host, port and path. Credentials in the URL do not change it."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme.lower(), (parts.hostname or "").lower(), port, parts.path.rstrip("/")


def shown_url(url: str) -> str:
    """``url`` as a page may show it: without the credentials a URL can carry (``http://user:secret@host``)."""
    scheme, _, _, path = _endpoint(url)
    return f"{scheme}://{host_of(url)}{path}"


def configured_base_url() -> str:
    """The base URL the server was started with: ``OPENAI_BASE_URL``, else OpenAI's."""
    return _checked_url(
        os.environ.get("OPENAI_BASE_URL") or OPENAI_BASE_URL,
        "OPENAI_BASE_URL, set where LLM Lab was started, is not an http:// or https:// URL: fix it and restart.",
    )


def server_default_backend() -> str:
    """Where a new session's answers come from: ``local`` (this process's model) unless ``LLM_LAB_BACKEND`` says."""
    chosen = os.environ.get(DEFAULT_BACKEND_ENV, "local").strip().lower() or "local"
    if chosen not in BACKEND_CHOICES:
        raise InvalidInput(
            f"{DEFAULT_BACKEND_ENV}, set where LLM Lab was started, must be 'local' or 'openai': fix it and restart."
        )
    return chosen


def configured_model() -> str:
    """The API model a new session starts with (``LLM_LAB_API_MODEL``; empty: the person picks one)."""
    return os.environ.get(API_MODEL_ENV, "").strip()


def allowed_base_urls() -> list[str]:
    """The base URLs ``LLM_LAB_API_BASE_URLS`` allows (commas or whitespace between them); empty: any."""
    refusal = (
        f"{ALLOWED_BASE_URLS_ENV}, set where LLM Lab was started, lists something that is not an http:// or "
        "https:// URL: fix it and restart."
    )
    listed = re.split(r"[,\s]+", os.environ.get(ALLOWED_BASE_URLS_ENV, ""))
    return [_checked_url(url, refusal) for url in listed if url]


def _is_allowed(url: str, allowed: list[str]) -> bool:
    return not allowed or _endpoint(url) in {_endpoint(a) for a in allowed}


def default_base_url() -> str:
    """The base URL a page starts with: the configured one, or the first allowed one if the list leaves it out."""
    configured, allowed = configured_base_url(), allowed_base_urls()
    return configured if _is_allowed(configured, allowed) else allowed[0]


def resolve_base_url(base_url: str | None = None) -> str:
    """The base URL to use: the one given, else the configured one; refused if an allow-list leaves it out.

    The message for a bad URL does not repeat it: a key pasted into the wrong
    field must not end up on the page. With ``LLM_LAB_API_BASE_URLS`` set, any
    other URL is refused here, before a request could reach it.
    """
    url = _checked_url(base_url) if base_url and base_url.strip() else configured_base_url()
    allowed = allowed_base_urls()
    if not _is_allowed(url, allowed):
        raise InvalidInput(
            "This LLM Lab may only contact the API servers it was started with "
            f"({ALLOWED_BASE_URLS_ENV}): {', '.join(shown_url(a) for a in allowed)}. Use one of them."
        )
    return url


def host_of(url: str) -> str:
    """The host (and port) of ``url``, never the credentials a URL can carry (``http://user:secret@host``)."""
    parts = urlsplit(url)
    return f"{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}"


def is_openai(base_url: str) -> bool:
    host = urlsplit(base_url).hostname or ""
    return host == "api.openai.com" or host.endswith(".openai.com")


def server_key_for(base_url: str) -> str | None:
    """The server's own key (``OPENAI_API_KEY``) if it may go to ``base_url``, else None.

    The key was given to the server for one API: the base URL it was
    configured with (``configured_base_url``). Sent anywhere else, a person
    who types the address of a listener of theirs would receive it.
    """
    key = os.environ.get("OPENAI_API_KEY", "").strip()
    if not key or _endpoint(base_url) != _endpoint(configured_base_url()):
        return None
    return key


def resolve_api_key(base_url: str, api_key: str | None = None, server_key: bool = False) -> str:
    """The key given; else, if ``server_key``, the server's own for its configured URL; else a placeholder.

    ``server_key``: the caller may use the server's ``OPENAI_API_KEY`` (a page
    passes whether its session is the teacher's). Even then the key goes only
    to the base URL the server was configured with (``server_key_for``).
    OpenAI's own API gets no placeholder: it needs a real key.
    """
    key = (api_key or "").strip() or (server_key_for(base_url) if server_key else None)
    if key:
        return key
    if is_openai(base_url):
        raise AuthenticationFailed(
            "OpenAI's API needs a key: type yours in, or set OPENAI_API_KEY where LLM Lab runs (the app sends "
            "it only to the base URL it was started with, and only from the teacher's session)."
        )
    return NO_KEY_PLACEHOLDER


def uses_server_key(base_url: str | None, api_key: str | None, server_key: bool) -> bool:
    """Whether a connection made with these settings would send the server's own key (what a page tells people)."""
    return not (api_key or "").strip() and server_key and server_key_for(resolve_base_url(base_url)) is not None


def _status(code: int) -> str:
    """``404 Not Found``: the status and its standard phrase, not the phrase a server chose to send."""
    try:
        return f"{code} {http.HTTPStatus(code).phrase}"
    except ValueError:
        return str(code)


def _mentions(exc: openai.APIStatusError, word: str) -> bool:
    """Whether the server's answer mentions ``word``: to tell failures apart, never to show the answer."""
    return word in f"{exc.body}".lower()


def _model_ids(listing: Any) -> list[str] | None:
    """The ids of an OpenAI-shaped model list (``{"object": "list", "data": [{"id": …, "object": "model"}…]}``).

    None for anything else: a page must not display whatever JSON another
    service on the network answers with.
    """
    if not isinstance(listing, dict) or listing.get("object") != "list" or not isinstance(listing.get("data"), list):
        return None
    entries = listing["data"]
    if not all(isinstance(m, dict) and m.get("object") == "model" and isinstance(m.get("id"), str) for m in entries):
        return None
    return sorted(m["id"] for m in entries)


class _Connection:
    """One OpenAI-compatible server, a key for it, and the translation of its failures into ``BackendError``."""

    def __init__(
        self, base_url: str | None, api_key: str | None, timeout: float, max_retries: int, server_key: bool
    ) -> None:
        if not timeout > 0:
            raise InvalidInput(f"The timeout must be a positive number of seconds; got {timeout}.")
        if not isinstance(max_retries, int) or max_retries < 0:
            raise InvalidInput(f"The number of retries must be a whole number, 0 or more; got {max_retries!r}.")
        self.base_url = resolve_base_url(base_url)
        self.host = host_of(self.base_url)
        self.timeout = timeout
        self.client = openai.OpenAI(
            api_key=resolve_api_key(self.base_url, api_key, server_key),
            base_url=self.base_url,
            timeout=openai.Timeout(timeout, connect=min(timeout, 5.0)),
            max_retries=max_retries,
        )

    def __repr__(self) -> str:
        return f"_Connection({shown_url(self.base_url)!r})"

    def call(self, request: Callable[[], T], model: str | None = None) -> T:
        """Run ``request``, turning the SDK's exceptions and unparseable answers into ``BackendError``."""
        try:
            return request()
        except openai.OpenAIError as exc:
            raise self.translate(exc, model) from None
        except ValueError:  # a JSON content type with a body that is not JSON
            raise self.malformed("its answer is not valid JSON") from None

    def list_models(self) -> list[str]:
        """The ids the server lists, read from the raw answer: only an OpenAI-shaped list is accepted."""
        answer = self.call(self.client.models.with_raw_response.list).http_response
        try:
            ids = _model_ids(answer.json())
        except ValueError:  # not JSON at all: a web page, say
            ids = None
        if ids is None:
            raise self.malformed("its answer to /models is not a list of models")
        return ids

    def malformed(self, what: str) -> MalformedResponse:
        return MalformedResponse(
            f"The server at {self.host} answered, but not in the OpenAI API's format ({what}). "
            "Is the base URL that of an OpenAI-compatible API (it usually ends in /v1)?"
        )

    def translate(self, exc: openai.OpenAIError, model: str | None) -> BackendError:
        """A ``BackendError`` for ``exc``: a fixed sentence with the HTTP status, never the server's own words."""
        where = self.host
        if isinstance(exc, openai.APITimeoutError):
            return ServerUnreachable(
                f"The server at {where} did not answer within {self.timeout:g} s, even after retries. "
                "It may be overloaded or the model may still be loading; try again, or raise the timeout."
            )
        if isinstance(exc, openai.APIConnectionError):
            return ServerUnreachable(
                f"No server is running at {where} (the connection failed, even after retries). "
                "Start the server, or check the host and port of the base URL."
            )
        if isinstance(exc, openai.APIResponseValidationError):
            return self.malformed("the response did not match the expected schema")
        if not isinstance(exc, openai.APIStatusError):
            return BackendError(f"The call to the server at {where} failed ({type(exc).__name__}).")
        status = _status(exc.status_code)
        if isinstance(exc, openai.AuthenticationError):
            return AuthenticationFailed(
                f"The server at {where} refused the API key ({status}). "
                "Check the key: it may be mistyped, revoked, or meant for another server."
            )
        if isinstance(exc, openai.PermissionDeniedError):
            return AuthenticationFailed(f"The server at {where} does not let this API key do that ({status}).")
        if isinstance(exc, openai.NotFoundError):
            has_v1 = urlsplit(self.base_url).path.rstrip("/").endswith("/v1")
            hint = "" if has_v1 else " Most servers need /v1 at the end."
            subject = f"model {model!r}" if model else "this request"
            return UnknownModel(
                f"The server at {where} answered {status} for {subject}. "
                f"Check the model name against the server's list of models, and the base URL.{hint}"
            )
        if isinstance(exc, openai.RateLimitError):
            return BackendError(
                f"The server at {where} is rate-limiting these requests ({status}), even after retries with "
                "backoff. Wait a minute, or check the account's quota."
            )
        if exc.status_code in (400, 422) and _mentions(exc, "logprob"):
            return NoLogprobs(
                f"Model {model!r} at {where} refused the log-probabilities LLM Lab asked for ({status}). "
                "Reasoning models give none at all: pick a non-reasoning model. Some servers cap the number of "
                "alternatives (OpenAI's legacy completions at 5): ask for fewer."
            )
        if exc.status_code in (400, 422):
            return BackendError(
                f"The server at {where} refused the request ({status}). Check the model name and the settings; "
                "the server's log says why."
            )
        if exc.status_code >= 500:
            return BackendError(
                f"The server at {where} failed ({status}), even after retries. Check the server's log; try again later."
            )
        return BackendError(f"The server at {where} answered {status}, which LLM Lab cannot use.")


def list_models(
    base_url: str | None = None,
    api_key: str | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    max_retries: int = DEFAULT_MAX_RETRIES,
    server_key: bool = False,
) -> list[str]:
    """The model names the server lists at ``/models``, sorted.

    Not every server offers the list; then this raises ``UnknownModel`` (404),
    and a page can let the person type the name instead. ``server_key``: see
    ``resolve_api_key``.
    """
    return _Connection(base_url, api_key, timeout, max_retries, server_key).list_models()


def _completion_entries(logprobs: Any) -> list[tuple[str, float, list[tuple[str, float]]]]:
    """A completion's tokens as (token, logprob, alternatives), in either shape a server sends.

    OpenAI's legacy completions (and vLLM, llama-cpp-python) send parallel
    lists ``tokens`` / ``token_logprobs`` / ``top_logprobs`` (a dict per
    token); llama.cpp's own server sends the chat shape, a ``content`` list
    of ``{token, logprob, top_logprobs: [{token, logprob}]}``, which the SDK
    keeps as plain dicts.
    """
    if logprobs is None:
        return []
    if getattr(logprobs, "tokens", None):
        return [
            (token, logprob, list((top or {}).items()))
            for token, logprob, top in zip(logprobs.tokens, logprobs.token_logprobs, logprobs.top_logprobs, strict=True)
        ]
    return [
        (
            _field(t, "token"),
            _field(t, "logprob"),
            [(_field(a, "token"), _field(a, "logprob")) for a in _field(t, "top_logprobs") or []],
        )
        for t in getattr(logprobs, "content", None) or []
    ]


def _field(entry: Any, name: str) -> Any:
    return entry[name] if isinstance(entry, dict) else getattr(entry, name)


def _token_prob(token: Any, logprob: Any) -> TokenProb:
    """One alternative; OpenAI uses -9999 for "too unlikely to say", which becomes probability 0."""
    if not isinstance(token, str) or isinstance(logprob, bool) or not isinstance(logprob, int | float):
        raise TypeError("a token without text or log-probability")
    if math.isnan(logprob):
        raise ValueError("a log-probability that is not a number")
    logprob = min(float(logprob), 0.0)  # servers round; a probability is never above 1
    return TokenProb(None, token, math.exp(logprob), logprob)


def _ranked(alternatives: Iterable[TokenProb], limit: int) -> tuple[TokenProb, ...]:
    # llama.cpp appends the sampled token after the top list when it is not in it; sorting puts it in its place.
    return tuple(sorted(alternatives, key=lambda t: t.logprob, reverse=True)[:limit])


def _other_mass(tokens: Iterable[TokenProb]) -> float:
    return max(0.0, 1.0 - sum(t.prob for t in tokens))


def _check_alternatives(k: int) -> int:
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_ALTERNATIVES:
        raise InvalidInput(f"An API gives 1 to {MAX_ALTERNATIVES} alternatives per token; got {k!r}.")
    return k


class OpenAIBackend(Backend):
    """A model on an OpenAI-compatible server.

    ``base_url`` defaults to ``OPENAI_BASE_URL`` or OpenAI's API. ``api_key``
    is the caller's own; without one, the server's ``OPENAI_API_KEY`` when
    ``server_key`` allows it and ``base_url`` is the configured one, else a
    placeholder (servers other than OpenAI usually need none). ``model`` is
    the name the server knows the model by.
    """

    kind = "openai"
    can_score_prompt = False
    full_distribution = False
    max_alternatives = MAX_ALTERNATIVES
    token_ids = False
    can_steer = False

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        max_retries: int = DEFAULT_MAX_RETRIES,
        server_key: bool = False,
    ) -> None:
        self.model = (model or "").strip()
        if not self.model:
            raise InvalidInput("Name the model to use on the server (its /v1/models lists them).")
        self._connection = _Connection(base_url, api_key, timeout, max_retries, server_key)
        self.label = f"{self.model} at {self._connection.host}"

    @property
    def base_url(self) -> str:
        return self._connection.base_url

    @property
    def reads_chat(self) -> bool:
        return True  # the chat endpoint applies the server's template; completions read raw text

    def list_models(self) -> list[str]:
        """The model names this backend's server lists (see the module-level ``list_models``)."""
        return self._connection.list_models()

    def reply(self, example: Example, settings: SamplingSettings, seed: int | None, max_new_tokens: int) -> Reply:
        """One chat completion: the example's turns as messages, the server's answer as text."""
        if not isinstance(max_new_tokens, int) or not 1 <= max_new_tokens <= MAX_NEW_TOKENS:
            raise InvalidInput(
                f"The number of new tokens must be between 1 and {MAX_NEW_TOKENS}; got {max_new_tokens}."
            )
        settings = settings.validate(sys.maxsize)
        fields: dict[str, Any] = {"model": self.model, "max_tokens": max_new_tokens, **self._sampling(settings)}
        if seed is not None:
            fields["seed"] = seed
        client = self._connection.client
        messages = example.prompt_messages()
        response = self._call(lambda: client.chat.completions.create(messages=messages, **fields))
        try:
            text = response.choices[0].message.content or ""
            usage = getattr(response, "usage", None)
            tokens = getattr(usage, "completion_tokens", None) if usage else None
        except (AttributeError, IndexError, KeyError, TypeError):
            raise self._connection.malformed("fields are missing or of the wrong type") from None
        if not isinstance(text, str):
            raise self._connection.malformed("the answer is not text")
        return Reply(text.strip(), tokens if isinstance(tokens, int) else 0)

    def prompt_text(self, prompt: str, chat: bool) -> str | None:
        return None if chat else prompt

    def steps_text(self, steps: Sequence[BackendStep]) -> str:
        return "".join(s.chosen.token for s in steps)

    def next_token(self, prompt: str, chat: bool = False, top_k: int = 10) -> BackendDistribution:
        """Ask for one token with ``top_k`` alternatives.

        The sampler is switched off (temperature 1, nothing pruned) so that
        servers which report probabilities after their sampler (llama.cpp's
        ``post_sampling_probs``, vLLM's processed logprobs modes) still report
        the model's own.
        """
        validate_prompt(prompt)
        top_k = _check_alternatives(top_k)
        client = self._connection.client
        common: dict[str, Any] = {"model": self.model, "max_tokens": 1, **self._sampling(SamplingSettings())}
        if chat:
            messages = [{"role": "user", "content": prompt}]
            response = self._call(
                lambda: client.chat.completions.create(messages=messages, logprobs=True, top_logprobs=top_k, **common)
            )
        else:
            response = self._call(lambda: client.completions.create(prompt=prompt, logprobs=top_k, **common))
        try:
            choice = response.choices[0]
            if chat:
                content = choice.logprobs.content if choice.logprobs else None
                top = [(t.token, t.logprob) for t in content[0].top_logprobs] if content else []
            else:
                entries = _completion_entries(choice.logprobs)
                top = entries[0][2] if entries else []
            tokens = _ranked((_token_prob(tok, lp) for tok, lp in top), top_k)
            text = choice.message.content if chat else choice.text
            ended_at_once = choice.finish_reason == "stop" and not text
            usage = getattr(response, "usage", None)
            prompt_tokens = getattr(usage, "prompt_tokens", None) if usage else None
            model = getattr(response, "model", None) or self.model
        except (AttributeError, IndexError, KeyError, TypeError, ValueError):
            raise self._connection.malformed("fields are missing or of the wrong type") from None
        if not tokens and ended_at_once:
            # Sampling drew end-of-text, and servers list no alternatives for a token they do not return.
            raise BackendError(
                f"Model {self.model!r} at {self._connection.host} ended its answer at once, so the server sent no "
                "alternatives; ask again."
            )
        if not tokens:
            raise self._no_logprobs()
        return BackendDistribution(
            model=str(model),
            tokens=tokens,
            other_mass=_other_mass(tokens),
            entropy=entropy_lower_bound([t.prob for t in tokens]),
            entropy_is_lower_bound=True,
            prompt_text=None if chat else prompt,
            prompt_tokens=prompt_tokens if isinstance(prompt_tokens, int) else None,
        )

    def _steps(self, prompt: str, chat: bool, decoding: Decoding) -> Iterator[BackendStep]:
        """Stream a generation, one step per token the server reports.

        The server samples, with ``decoding.settings`` (see ``_sampling``). A
        step is yielded once the next one arrives, because the reason the
        stream stopped comes after the last token.
        """
        validate_prompt(prompt)
        alternatives = _check_alternatives(decoding.alternatives)
        max_new_tokens, seed = decoding.max_new_tokens, decoding.seed
        if not isinstance(max_new_tokens, int) or not 1 <= max_new_tokens <= MAX_NEW_TOKENS:
            raise InvalidInput(
                f"The number of new tokens must be between 1 and {MAX_NEW_TOKENS}; got {max_new_tokens}."
            )
        # An API does not tell its vocabulary size: only top-k's lower bound can be checked here.
        settings = (decoding.settings or SamplingSettings()).validate(sys.maxsize)
        common: dict[str, Any] = {
            "model": self.model,
            "max_tokens": max_new_tokens,
            "stream": True,
            **self._sampling(settings),
        }
        if seed is not None:
            common["seed"] = seed
        client = self._connection.client
        if chat:
            messages = [{"role": "user", "content": prompt}]
            stream = self._call(
                lambda: client.chat.completions.create(
                    messages=messages, logprobs=True, top_logprobs=alternatives, **common
                )
            )
        else:
            stream = self._call(lambda: client.completions.create(prompt=prompt, logprobs=alternatives, **common))
        pending: BackendStep | None = None
        finish_reason: str | None = None
        saw_text = False
        chunks = iter(stream)
        try:
            while (chunk := self._call(lambda: next(chunks, None))) is not None:
                try:
                    for token, logprob, top, text, reason in self._read_chunk(chunk, chat):
                        saw_text = saw_text or bool(text)
                        finish_reason = reason or finish_reason
                        if token is None:
                            continue
                        if pending is not None:
                            yield pending
                        chosen = _token_prob(token, logprob)
                        ranked = _ranked((_token_prob(t, lp) for t, lp in top), alternatives)
                        rank = next((i + 1 for i, t in enumerate(ranked) if t.token == token), None)
                        index = 0 if pending is None else pending.index + 1
                        pending = BackendStep(index, chosen, rank, ranked, _other_mass(ranked), finished=False)
                except (AttributeError, IndexError, KeyError, TypeError, ValueError):
                    raise self._connection.malformed("fields are missing or of the wrong type") from None
        finally:
            stream.close()  # a caller that stops early must stop the server generating, too
        if pending is None:
            if saw_text:
                raise self._no_logprobs()
            if finish_reason is None:
                raise self._connection.malformed("the stream ended without a token or a reason to stop")
            return  # the model ended its answer at once
        yield dataclasses.replace(pending, finished=finish_reason == "stop")

    @staticmethod
    def _read_chunk(
        chunk: Any, chat: bool
    ) -> Iterator[tuple[str | None, float | None, list[tuple[str, float]], str, str | None]]:
        """(token, logprob, alternatives, text, finish reason) for each token in a streamed chunk.

        A chunk may carry text and a finish reason without any token (then
        token is None).
        """
        for choice in chunk.choices:
            reason = choice.finish_reason
            if chat:
                text = (choice.delta.content or "") if choice.delta else ""
                content = choice.logprobs.content if choice.logprobs else None
                entries = [(t.token, t.logprob, [(a.token, a.logprob) for a in t.top_logprobs]) for t in content or []]
            else:
                text = choice.text or ""
                entries = _completion_entries(choice.logprobs)
            if not entries:
                yield None, None, [], text, reason
            for token, logprob, top in entries:
                yield token, logprob, top, text, reason
                text = ""

    def _sampling(self, settings: SamplingSettings) -> dict[str, Any]:
        """Request fields for ``settings``.

        Temperature and top-p are standard. top-k and min-p are not: OpenAI
        refuses unknown fields, so it gets them only when they are set (and
        its refusal is reported). Other servers get them always, "off"
        included, with no repeat penalty: llama.cpp's server otherwise applies
        its own top-k 40, min-p 0.05 and repeat penalty 1.1 behind the
        settings shown. Servers that know none of these ignore them.
        """
        fields: dict[str, Any] = {"temperature": settings.temperature, "top_p": settings.top_p}
        if is_openai(self.base_url):
            extra: dict[str, Any] = {"top_k": settings.top_k} if settings.top_k is not None else {}
            if settings.min_p > 0:
                extra["min_p"] = settings.min_p
        else:
            extra = {"top_k": settings.top_k or 0, "min_p": settings.min_p, "repeat_penalty": 1.0}
        if extra:
            fields["extra_body"] = extra
        return fields

    def _call(self, request: Callable[[], T]) -> T:
        return self._connection.call(request, self.model)

    def _no_logprobs(self) -> NoLogprobs:
        return NoLogprobs(
            f"Model {self.model!r} at {self._connection.host} answered without log-probabilities, so LLM Lab "
            "cannot show its distribution. Reasoning models (o1, o3, gpt-5…) never return them, and some servers "
            "need them switched on; pick another model or server."
        )
