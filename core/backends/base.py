"""What every backend offers: a next-token distribution and step-by-step generation.

A backend is where the probabilities come from: the local transformers model,
or any server that speaks the OpenAI API. They do not know the same things. A
local model gives every token's probability; an API gives at most the top 20
and no token ids. So results say what they know (``other_mass`` is the mass of
the tokens not listed, ``entropy_is_lower_bound`` says when the entropy could
not be computed exactly) and each backend states its capabilities as class
attributes, with ``limitations()`` giving the sentences a page shows instead
of failing.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import ClassVar

from core.distributions import SamplingSettings, TokenProb
from core.errors import LabError
from core.prompts import Example


class BackendError(LabError):
    """A backend could not answer; the message says why and what to do."""


class ServerUnreachable(BackendError):
    """Nothing answers at the base URL (refused, unknown host, timed out)."""


class AuthenticationFailed(BackendError):
    """The server refused the API key (401) or the key may not use this (403)."""


class UnknownModel(BackendError):
    """The server has no model of that name, or no such endpoint (404)."""


class NoLogprobs(BackendError):
    """The model answered but gave no log-probabilities (reasoning models never do)."""


class MalformedResponse(BackendError):
    """The server answered with something that is not an OpenAI-shaped response."""


def entropy_lower_bound(probs: Sequence[float]) -> float:
    """The least entropy (nats) any full distribution whose top tokens are ``probs`` can have.

    ``probs`` are the known top probabilities, most likely first. The rest of
    the mass, ``r = 1 - sum(probs)``, lies on tokens we were not told about,
    each at most as likely as the least likely known token ``p_min`` (they are
    not in the top list). Entropy is concave, so it is smallest when that mass
    is packed into as few tokens as the cap allows: ``floor(r / p_min)`` tokens
    at ``p_min`` and one token with the remainder. The bound is

        H = -sum(p log p for known p) - n * p_min * log(p_min) - rem * log(rem)

    It equals the exact entropy when the known tokens hold all the mass, and is
    never above the true entropy. (Treating "other" as one token,
    ``-r log r``, is also a lower bound, but a looser one.)
    """
    known = [p for p in probs if p > 0]
    entropy = -sum(p * math.log(p) for p in known)
    rest = 1.0 - sum(known)
    if rest <= 1e-12 or not known:
        return entropy
    p_min = min(known)
    n_full = math.floor(rest / p_min)
    remainder = rest - n_full * p_min
    entropy -= n_full * p_min * math.log(p_min)
    if remainder > 0:
        entropy -= remainder * math.log(remainder)
    return entropy


@dataclass(frozen=True)
class BackendDistribution:
    """The distribution over the next token, as far as the backend knows it.

    ``tokens`` are the most likely tokens, most likely first (ids are None
    where the backend gives only text). ``other_mass`` is the probability of
    every token not listed. ``entropy`` is in nats; where only the top tokens
    are known it is ``entropy_lower_bound(tokens)`` and
    ``entropy_is_lower_bound`` is True. ``prompt_text`` is the text the model
    read, when the backend knows it (an API applies its chat template out of
    sight); ``prompt_tokens`` is its length in tokens, when reported.
    """

    model: str
    tokens: tuple[TokenProb, ...]
    other_mass: float
    entropy: float
    entropy_is_lower_bound: bool
    prompt_text: str | None = None
    prompt_tokens: int | None = None

    @property
    def entropy_bits(self) -> float:
        return self.entropy / math.log(2)

    @property
    def listed_mass(self) -> float:
        return sum(t.prob for t in self.tokens)


@dataclass(frozen=True)
class BackendStep:
    """One generated token with the alternatives the backend reported at that step.

    Like ``core.generation.GenerationStep``, but ``rank`` is None when the
    chosen token is not among the listed alternatives (an API does not say how
    far down it was), and ``sampled_prob`` is None when the server sampled with
    its own settings, so the reshaped probability is unknown.
    """

    index: int
    chosen: TokenProb
    rank: int | None
    alternatives: tuple[TokenProb, ...]
    other_mass: float
    finished: bool
    sampled_prob: float | None = None


@dataclass(frozen=True)
class Decoding:
    """How a generation decodes: how many tokens, sampled how and from which seed, with how many alternatives."""

    max_new_tokens: int = 32
    settings: SamplingSettings | None = None
    seed: int | None = None
    alternatives: int = 20


@dataclass(frozen=True)
class Reply:
    """A model's whole answer to a prompt: its text (special tokens left out) and length in tokens."""

    text: str
    tokens: int


class Backend(ABC):
    """Where next-token probabilities and answers come from.

    Capabilities are class attributes, so a page can decide what to show
    before calling anything:

    * ``can_score_prompt``: every prompt token can be scored (surprisal view);
    * ``full_distribution``: every token's probability is known, so sampling
      transforms can be replayed and the entropy is exact;
    * ``max_alternatives``: most alternatives per position (None: the vocabulary);
    * ``token_ids``: results carry token ids (an API gives only text);
    * ``can_steer``: a person can pick the next token by id and continue;
    * ``reads_chat``: prompts reach the model through a chat template (an API
      always applies its own; a local model when it has one).

    Pages, the CLI and compare ask a backend, and decide what to show from
    these capabilities; a local model's own views (reshaping, steering, the
    logit lens) use ``LocalBackend.lm``.
    """

    kind: ClassVar[str]
    can_score_prompt: ClassVar[bool]
    full_distribution: ClassVar[bool]
    max_alternatives: ClassVar[int | None]
    token_ids: ClassVar[bool]
    can_steer: ClassVar[bool]

    @property
    @abstractmethod
    def reads_chat(self) -> bool:
        """Whether prompts reach the model through a chat template."""

    label: str  # a short name for the model and where it runs, to show above results (never a key)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.label!r})"

    @abstractmethod
    def next_token(self, prompt: str, chat: bool = False, top_k: int = 10) -> BackendDistribution:
        """The ``top_k`` most likely next tokens after ``prompt`` (a user message when ``chat``)."""

    def generate_steps(
        self,
        prompt: str,
        chat: bool = False,
        max_new_tokens: int = 32,
        settings: SamplingSettings | None = None,
        seed: int | None = None,
        alternatives: int = 20,
    ) -> Iterator[BackendStep]:
        """Generate up to ``max_new_tokens`` tokens, yielding each with its alternatives."""
        return self._steps(prompt, chat, Decoding(max_new_tokens, settings, seed, alternatives))

    @abstractmethod
    def _steps(self, prompt: str, chat: bool, decoding: Decoding) -> Iterator[BackendStep]:
        """``generate_steps`` as this backend does it (lazily: nothing is checked or sent before the first step)."""

    @abstractmethod
    def reply(self, example: Example, settings: SamplingSettings, seed: int | None, max_new_tokens: int) -> Reply:
        """The model's answer to ``example`` (its context turns, then its prompt)."""

    def expected_logprobs(self, example: Example) -> list[float] | None:
        """The log-probability of each token of ``example.completion`` right after its prompt.

        None where the backend cannot score text it did not write (``can_score_prompt`` is False).
        """
        return None

    @abstractmethod
    def prompt_text(self, prompt: str, chat: bool) -> str | None:
        """The text the model reads for ``prompt``; None where the server templates it out of sight."""

    @abstractmethod
    def steps_text(self, steps: Sequence[BackendStep]) -> str:
        """The text of generated steps, as a reader sees it."""

    def limitations(self) -> list[str]:
        """Sentences saying what this backend cannot show, and why; empty when it can show everything."""
        notes = []
        if not self.can_score_prompt:
            notes.append(
                "Prompt scoring is unavailable: the API returns log-probabilities only for tokens it generates, "
                "not for the prompt."
            )
        if not self.full_distribution:
            notes.append(
                f"Only the top {self.max_alternatives} tokens are known; the rest is shown as 'other', the entropy "
                "is a lower bound, and temperature, top-k, top-p and min-p cannot be replayed on the distribution."
            )
        if not self.token_ids:
            notes.append("Tokens come as text without ids, so tokens with the same text cannot be told apart.")
        if not self.can_steer:
            notes.append("You cannot pick the next token yourself: the server chooses each token.")
        return notes
