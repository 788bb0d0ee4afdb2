"""A trained model on the ladder's held-out text: where a real small model sits beside the rungs.

SmolLM2-135M read about two trillion tokens; the rungs read well under a
million. Its bits per character on the same held-out text (``score_text``:
one forward pass, every token after the first scored) put it on the same
axis as the rungs, whatever its tokenizer.
"""

from __future__ import annotations

from core.distributions import score_text
from core.ladder.fit import bits_per_char
from core.ladder.library import ReferenceScore
from core.models import LoadedModel


def reference_score(lm: LoadedModel, text: str) -> ReferenceScore:
    """``lm``'s bits per character on ``text``, over the tokens it scores and the characters they spell."""
    score = score_text(lm, text)
    scored = [t for t in score.tokens if t.logprob is not None]
    characters = len(lm.tokenizer.decode([t.id for t in scored], skip_special_tokens=True))
    nll = -sum(t.logprob for t in scored) / len(scored)
    return ReferenceScore(
        model=lm.display_name,
        parameters=lm.n_parameters,
        bits_per_char=bits_per_char(nll, len(scored), characters),
        characters=characters,
        tokens=len(scored),
    )
