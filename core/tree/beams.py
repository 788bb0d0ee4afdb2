"""Beam search: the ``width`` likeliest continuations, grown one depth at a time, and greedy beside them.

Greedy takes the single likeliest token at each step and can miss a
continuation whose first token is less likely but whose whole is more likely;
beam search keeps ``width`` candidates to find such paths. Showing both, and
whether they differ, is the point of the page built on this.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from core.models import LoadedModel
from core.tree.growth import Growing, GrownFrom, TokenPath, advance, check_beam_search, prompt_ids_with_room, start


@dataclass(frozen=True)
class Beam(TokenPath):
    """One continuation and the score it was ranked by.

    ``score`` is ``logprob / len(ids) ** length_penalty`` (equal to ``logprob``
    with no penalty).
    """

    score: float


@dataclass(frozen=True)
class BeamSearch(GrownFrom):
    """The beams found, best first, and the greedy path (width 1) beside them."""

    json_derived = ("differs_from_greedy",)

    width: int
    length_penalty: float
    beams: tuple[Beam, ...]
    greedy: Beam

    @property
    def differs_from_greedy(self) -> bool:
        return self.beams[0].ids != self.greedy.ids


def _score(logprob: float, length: int, length_penalty: float) -> float:
    return logprob / length**length_penalty if length else logprob


def _beam(lm: LoadedModel, path: Growing, length_penalty: float) -> Beam:
    return Beam.grown(lm, path, score=_score(path.logprob, len(path.ids), length_penalty))


def _best_steps(beams: list[Growing], width: int, length_penalty: float) -> list[tuple[Growing, int | None]]:
    """The ``width`` best of: finished beams as they are (token None), and live beams each extended by a token.

    A live beam offers only its ``width`` likeliest tokens: no more than
    ``width`` can survive. Ties keep the earlier candidate (the sort is stable).
    """
    candidates: list[tuple[float, Growing, int | None]] = []
    for beam in beams:
        if beam.finished:
            candidates.append((_score(beam.logprob, len(beam.ids), length_penalty), beam, None))
            continue
        assert beam.next_logprobs is not None
        top = torch.topk(beam.next_logprobs, width)
        for lp, token in zip(top.values.tolist(), top.indices.tolist(), strict=True):
            candidates.append((_score(beam.logprob + lp, len(beam.ids) + 1, length_penalty), beam, int(token)))
    candidates.sort(key=lambda c: -c[0])
    return [(beam, token) for _, beam, token in candidates[:width]]


def beam_search(
    lm: LoadedModel,
    prompt: str,
    width: int = 4,
    depth: int = 8,
    length_penalty: float = 0.0,
    chat: bool = False,
) -> BeamSearch:
    """Keep the ``width`` best continuations at each depth, for up to ``depth`` tokens; best first.

    Beams are ranked by ``logprob / length ** length_penalty``: 0 ranks by
    total log-probability, which favours beams that stop early; 1 by the mean
    per token. A beam stops at an end-of-sequence token and keeps its place
    while it stays among the best. The greedy path grows in the same calls,
    so each depth costs one call to the model whatever the width, and
    ``width == 1`` is greedy itself.
    """
    alpha = check_beam_search(width, depth, length_penalty)
    prompt_ids = prompt_ids_with_room(lm, prompt, chat, depth)
    root = start(lm, prompt_ids)
    beams, greedy = [root], root
    for step in range(depth):
        if all(b.finished for b in beams) and greedy.finished:
            break
        chosen = _best_steps(beams, width, alpha)
        steps = [(beam, token) for beam, token in chosen if token is not None]
        greedy_at = None  # where greedy's next step sits in ``steps``
        if not greedy.finished:
            assert greedy.logits is not None
            best = int(torch.argmax(greedy.logits))
            # Greedy is often a beam too (always at the first depth): then it needs no pass of its own.
            greedy_at = next((i for i, (b, t) in enumerate(steps) if b is greedy and t == best), len(steps))
            if greedy_at == len(steps):
                steps.append((greedy, best))
        grown = advance(lm, steps, step < depth - 1)
        children = iter(grown)
        beams = [beam if token is None else next(children) for beam, token in chosen]
        if greedy_at is not None:
            greedy = grown[greedy_at]
    ranked = sorted((_beam(lm, b, alpha) for b in beams), key=lambda b: -b.score)
    return BeamSearch(lm.display_name, tuple(prompt_ids), depth, width, alpha, tuple(ranked), _beam(lm, greedy, alpha))
