"""Generation trees: beam search, N samples merged into one tree, and the children of any node.

A single generation shows one path through the space of continuations; these
show many at once. ``beam_search`` keeps the ``width`` best partial
continuations at each depth and says whether the best differs from greedy;
``sample_tree`` draws ``n`` continuations and merges them into a tree whose
edges carry both the model's probability and how often the samples took them,
so frequencies can be watched approaching probabilities as ``n`` grows;
``expand`` lists the likeliest children of any node, for a page that opens
nodes on click.

``growth`` holds what both share: paths grown on their own KV caches, every
path of one step sent to the model in one call. Log-probabilities are natural
logs of the raw distribution (temperature 1, nothing pruned), whatever the
sampling settings.
"""

from core.tree.beams import Beam, BeamSearch, beam_search
from core.tree.growth import (
    MAX_BEAMS,
    MAX_CHILDREN,
    MAX_DEPTH,
    MAX_LENGTH_PENALTY,
    MAX_SAMPLES,
    Expansion,
    TokenPath,
    check_beam_search,
    check_samples,
    expand,
)
from core.tree.samples import SampledTree, TreeNode, merge, sample_tree

__all__ = [
    "MAX_BEAMS",
    "MAX_CHILDREN",
    "MAX_DEPTH",
    "MAX_LENGTH_PENALTY",
    "MAX_SAMPLES",
    "Beam",
    "BeamSearch",
    "Expansion",
    "SampledTree",
    "TokenPath",
    "TreeNode",
    "beam_search",
    "check_beam_search",
    "check_samples",
    "expand",
    "merge",
    "sample_tree",
]
