"""The local backend: a transformers model in this process, behind the ``Backend`` interface.

It adds no inference of its own; it calls ``encode_prompt``,
``next_token_distribution`` and ``generate`` and reshapes their results.
Everything is known locally, so every capability is on; pages that need more
than the interface (sampling transforms, steering, scoring) use ``lm`` with
the rest of ``core``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

from core.backends.base import Backend, BackendDistribution, BackendStep
from core.distributions import SamplingSettings, next_token_distribution
from core.generation import generate
from core.models import LoadedModel
from core.tokens import encode_prompt


class LocalBackend(Backend):
    """A loaded model (from ``core.models.load_model``) as a backend."""

    kind: ClassVar[str] = "local"
    can_score_prompt: ClassVar[bool] = True
    full_distribution: ClassVar[bool] = True
    max_alternatives: ClassVar[int | None] = None
    token_ids: ClassVar[bool] = True
    can_steer: ClassVar[bool] = True

    def __init__(self, lm: LoadedModel) -> None:
        self.lm = lm

    def __repr__(self) -> str:
        return f"LocalBackend({self.lm.display_name!r})"

    @property
    def label(self) -> str:
        return self.lm.display_name

    def next_token(self, prompt: str, chat: bool = False, top_k: int = 10) -> BackendDistribution:
        encoded = encode_prompt(self.lm, prompt, chat=chat)
        dist = next_token_distribution(self.lm, encoded.ids)
        top = tuple(dist.top(top_k))
        return BackendDistribution(
            model=self.lm.display_name,
            tokens=top,
            other_mass=max(0.0, 1.0 - sum(t.prob for t in top)),
            entropy=dist.entropy,
            entropy_is_lower_bound=False,
            prompt_text=encoded.text,
            prompt_tokens=len(encoded.ids),
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
        encoded = encode_prompt(self.lm, prompt, chat=chat)
        for step in generate(self.lm, encoded.ids, max_new_tokens, settings, seed=seed, alternatives=alternatives):
            listed = sum(t.prob for t in step.alternatives)
            yield BackendStep(
                index=step.index,
                chosen=step.chosen,
                rank=step.rank,
                alternatives=step.alternatives,
                other_mass=max(0.0, 1.0 - listed),
                finished=step.finished,
                sampled_prob=step.sampled_prob,
            )
