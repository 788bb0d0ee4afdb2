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
it is not in ``repr``, and every message built from a server's answer is
scrubbed of it. SDK exceptions are not chained onto ours (``from None``), as
they hold the request, headers included.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlsplit

import openai

from core.backends.base import (
    AuthenticationFailed,
    Backend,
    BackendDistribution,
    BackendError,
    BackendStep,
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
# llama.cpp's server, Ollama and a vLLM started without --api-key accept any key,
# but the SDK refuses to send a request without one.
NO_KEY_PLACEHOLDER = "not-needed"
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_MAX_RETRIES = 3
MAX_ALTERNATIVES = 20  # OpenAI's limit on top_logprobs; vLLM's default max_logprobs
MAX_SERVER_MESSAGE_CHARS = 300

T = TypeVar("T")


def resolve_base_url(base_url: str | None = None) -> str:
    """The base URL to use: the one given, else ``OPENAI_BASE_URL``, else OpenAI's.

    The message for a bad URL does not repeat it: a key pasted into the wrong
    field must not end up on the page.
    """
    url = (base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_BASE_URL).strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidInput(
            "The base URL must start with http:// or https://, e.g. http://127.0.0.1:8080/v1 or " + OPENAI_BASE_URL
        )
    return url


def host_of(url: str) -> str:
    """The host (and port) of ``url``, never the credentials a URL can carry (``http://user:secret@host``)."""
    parts = urlsplit(url)
    return f"{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}"


def is_openai(base_url: str) -> bool:
    host = urlsplit(base_url).hostname or ""
    return host == "api.openai.com" or host.endswith(".openai.com")


def resolve_api_key(base_url: str, api_key: str | None = None) -> str:
    """The key given, else ``OPENAI_API_KEY``; other servers than OpenAI get a placeholder when there is none.

    Note that ``OPENAI_API_KEY`` is sent to whatever server ``base_url`` names,
    as the SDK itself does; vLLM started with ``--api-key`` expects exactly that.
    """
    key = (api_key or "").strip() or os.environ.get("OPENAI_API_KEY", "").strip()
    if key:
        return key
    if is_openai(base_url):
        raise AuthenticationFailed(
            "OpenAI's API needs a key: set OPENAI_API_KEY in the environment or type the key in."
        )
    return NO_KEY_PLACEHOLDER


def _scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` without any of ``secrets`` or bearer tokens, shortened to a readable length."""
    text = re.sub(r"(?i)bearer\s+\S+", "Bearer [hidden]", text)
    for secret in secrets:
        if secret and secret != NO_KEY_PLACEHOLDER:
            text = text.replace(secret, "[API key hidden]")
    if len(text) > MAX_SERVER_MESSAGE_CHARS:
        text = text[:MAX_SERVER_MESSAGE_CHARS] + "…"
    return text


def _server_message(exc: openai.APIStatusError) -> str:
    """What the server said, from the JSON error body or the raw text."""
    body = exc.body
    if isinstance(body, dict):
        message = body.get("message") or body.get("detail") or body.get("error")
        return str(message if message else body)
    if isinstance(body, str) and body.strip():
        return body.strip()
    return exc.response.reason_phrase or ""


class _Connection:
    """One OpenAI-compatible server, a key for it, and the translation of its failures into ``BackendError``."""

    def __init__(self, base_url: str | None, api_key: str | None, timeout: float, max_retries: int) -> None:
        if not timeout > 0:
            raise InvalidInput(f"The timeout must be a positive number of seconds; got {timeout}.")
        if not isinstance(max_retries, int) or max_retries < 0:
            raise InvalidInput(f"The number of retries must be a whole number, 0 or more; got {max_retries!r}.")
        self.base_url = resolve_base_url(base_url)
        self.timeout = timeout
        self._api_key = resolve_api_key(self.base_url, api_key)
        self.client = openai.OpenAI(
            api_key=self._api_key,
            base_url=self.base_url,
            timeout=openai.Timeout(timeout, connect=min(timeout, 5.0)),
            max_retries=max_retries,
        )

    def __repr__(self) -> str:
        return f"_Connection({self.base_url!r})"

    def call(self, request: Callable[[], T], model: str | None = None) -> T:
        """Run ``request``, turning the SDK's exceptions and unparseable answers into ``BackendError``."""
        try:
            return request()
        except openai.OpenAIError as exc:
            raise self.translate(exc, model) from None
        except ValueError:  # a JSON content type with a body that is not JSON
            raise self.malformed("its answer is not valid JSON") from None

    def list_models(self) -> list[str]:
        page = self.call(self.client.models.list)
        try:
            return sorted(str(m.id) for m in page.data)
        except (AttributeError, TypeError):
            raise self.malformed("the model list has no model ids") from None

    def malformed(self, what: str) -> MalformedResponse:
        return MalformedResponse(
            f"The server at {self.base_url} answered, but not in the OpenAI API's format ({what}). "
            "Is the base URL that of an OpenAI-compatible API (it usually ends in /v1)?"
        )

    def translate(self, exc: openai.OpenAIError, model: str | None) -> BackendError:
        """A ``BackendError`` for ``exc`` whose message says what to do, without the key."""
        where = self.base_url
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
            return BackendError(f"The call to {where} failed: {self._clean(str(exc))}")
        said = self._clean(_server_message(exc))
        status = exc.status_code
        if isinstance(exc, openai.AuthenticationError):
            return AuthenticationFailed(
                f"The server at {where} refused the API key (401 Unauthorized). "
                "Check OPENAI_API_KEY or the key you typed: it may be mistyped, revoked, or meant for another server."
            )
        if isinstance(exc, openai.PermissionDeniedError):
            return AuthenticationFailed(f"The server at {where} does not let this API key do that (403): {said}")
        if isinstance(exc, openai.NotFoundError):
            hint = "" if urlsplit(where).path.rstrip("/").endswith("/v1") else " Most servers need /v1 at the end."
            subject = f"model {model!r}" if model else "this request"
            return UnknownModel(
                f"The server at {where} answered 404 Not Found for {subject}: {said}. "
                f"Check the model name against the server's list of models, and the base URL.{hint}"
            )
        if isinstance(exc, openai.RateLimitError):
            return BackendError(
                f"The server at {where} is rate-limiting these requests (429), even after retries with backoff: "
                f"{said}. Wait a minute, or check the account's quota."
            )
        if status in (400, 422) and "logprob" in said.lower():
            return NoLogprobs(
                f"Model {model!r} at {where} refused the log-probabilities LLM Lab asked for ({said}). "
                "Reasoning models give none at all: pick a non-reasoning model. Some servers cap the number of "
                "alternatives (OpenAI's legacy completions at 5): ask for fewer."
            )
        if status in (400, 422):
            return BackendError(f"The server at {where} refused the request ({status}): {said}")
        if status >= 500:
            return BackendError(
                f"The server at {where} failed with error {status}, even after retries: {said}. "
                "Check the server's log; try again later."
            )
        return BackendError(f"The server at {where} answered {status}: {said}")

    def _clean(self, text: str) -> str:
        return _scrub(text, (self._api_key,)).strip().rstrip(".")


def list_models(
    base_url: str | None = None,
    api_key: str | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    max_retries: int = DEFAULT_MAX_RETRIES,
) -> list[str]:
    """The model names the server lists at ``/models``, sorted.

    Not every server offers the list; then this raises ``UnknownModel`` (404),
    and a page can let the person type the name instead.
    """
    return _Connection(base_url, api_key, timeout, max_retries).list_models()


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

    ``base_url`` defaults to ``OPENAI_BASE_URL`` or OpenAI's API; ``api_key``
    to ``OPENAI_API_KEY`` (a placeholder for servers other than OpenAI, which
    usually need none). ``model`` is the name the server knows the model by.
    """

    kind: ClassVar[str] = "openai"
    can_score_prompt: ClassVar[bool] = False
    full_distribution: ClassVar[bool] = False
    max_alternatives: ClassVar[int | None] = MAX_ALTERNATIVES
    token_ids: ClassVar[bool] = False
    can_steer: ClassVar[bool] = False

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        max_retries: int = DEFAULT_MAX_RETRIES,
    ) -> None:
        self.model = (model or "").strip()
        if not self.model:
            raise InvalidInput("Name the model to use on the server (its /v1/models lists them).")
        self._connection = _Connection(base_url, api_key, timeout, max_retries)
        self.label = f"{self.model} at {host_of(self.base_url)}"

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
                table = choice.logprobs.top_logprobs if choice.logprobs else None
                top = list(table[0].items()) if table else []
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
                f"Model {self.model!r} at {self.base_url} ended its answer at once, so the server sent no "
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

    def generate_steps(
        self,
        prompt: str,
        chat: bool = False,
        max_new_tokens: int = 32,
        settings: SamplingSettings | None = None,
        seed: int | None = None,
        alternatives: int = 20,
    ) -> Iterator[BackendStep]:
        """Stream a generation, one step per token the server reports.

        The server samples, with ``settings`` (see ``_sampling``). A step is
        yielded once the next one arrives, because the reason the stream
        stopped comes after the last token.
        """
        validate_prompt(prompt)
        alternatives = _check_alternatives(alternatives)
        if not isinstance(max_new_tokens, int) or not 1 <= max_new_tokens <= MAX_NEW_TOKENS:
            raise InvalidInput(
                f"The number of new tokens must be between 1 and {MAX_NEW_TOKENS}; got {max_new_tokens}."
            )
        # An API does not tell its vocabulary size: only top-k's lower bound can be checked here.
        settings = (settings or SamplingSettings()).validate(sys.maxsize)
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
                lp = choice.logprobs
                entries = (
                    [
                        (tok, tok_lp, list((top or {}).items()))
                        for tok, tok_lp, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs, strict=True)
                    ]
                    if lp and lp.tokens
                    else []
                )
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
            f"Model {self.model!r} at {self.base_url} answered without log-probabilities, so LLM Lab cannot show "
            "its distribution. Reasoning models (o1, o3, gpt-5…) never return them, and some servers need them "
            "switched on; pick another model or server."
        )
