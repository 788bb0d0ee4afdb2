"""The local backend: a transformers model in this process, behind the ``Backend`` interface.

It adds no inference of its own: it calls ``encode_prompt``,
``next_token_distribution``, ``generate`` and the model's forward pass and
reshapes their results. Everything is known locally, so every capability is
on; pages that need more than the interface (sampling transforms, steering,
the logit lens) use ``lm`` with the rest of ``core``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

from core.backends.base import Backend, BackendDistribution, BackendStep, Decoding, Reply
from core.distributions import SamplingSettings, next_token_distribution
from core.generation import generate
from core.models import LoadedModel
from core.prompts import Example, completion_ids, has_chat_template, prompt_ids
from core.tokens import check_fits, encode_prompt


class LocalBackend(Backend):
    """A loaded model (from ``core.models.load_model``, or a view with an adapter) as a backend."""

    kind = "local"
    can_score_prompt = True
    full_distribution = True
    max_alternatives = None
    token_ids = True
    can_steer = True

    def __init__(self, lm: LoadedModel) -> None:
        self.lm = lm
        self.label = lm.display_name

    @property
    def reads_chat(self) -> bool:
        return has_chat_template(self.lm.tokenizer)

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

    def _steps(self, prompt: str, chat: bool, decoding: Decoding) -> Iterator[BackendStep]:
        encoded = encode_prompt(self.lm, prompt, chat=chat)
        d = decoding
        for step in generate(self.lm, encoded.ids, d.max_new_tokens, d.settings, d.seed, d.alternatives):
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

    def reply(self, example: Example, settings: SamplingSettings, seed: int | None, max_new_tokens: int) -> Reply:
        ids = prompt_ids(self.lm.tokenizer, example)
        steps = list(generate(self.lm, ids, max_new_tokens, settings, seed=seed, alternatives=1))
        text = self.lm.tokenizer.decode([s.chosen.id for s in steps], skip_special_tokens=True).strip()
        return Reply(text, len(steps))

    def expected_logprobs(self, example: Example) -> list[float]:
        """One forward pass over prompt and completion; row ``i`` of the logits predicts token ``i + 1``."""
        prompt = prompt_ids(self.lm.tokenizer, example)
        target = completion_ids(self.lm.tokenizer, example)
        ids = prompt + target
        check_fits(self.lm, len(ids))
        logits, _ = self.lm.forward(ids)
        logprobs = torch.log_softmax(logits[len(prompt) - 1 : -1].double(), dim=-1)
        return logprobs[torch.arange(len(target)), torch.tensor(target)].tolist()

    def prompt_text(self, prompt: str, chat: bool) -> str:
        return encode_prompt(self.lm, prompt, chat=chat).text

    def steps_text(self, steps: Sequence[BackendStep]) -> str:
        return self.lm.tokenizer.decode([s.chosen.id for s in steps], skip_special_tokens=True)
