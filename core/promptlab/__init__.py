"""The prompt lab: prompt variants side by side, and in-context learning measured.

* ``task``: what is asked (a dataset's held-out items and training examples,
  or typed items) and how an answer is judged;
* ``variants``: ``PromptVariant`` (system message, template, examples, format
  hint) and ``run_variants``, every variant on the same items with the same
  decoding and seed;
* ``shots``: ``shot_curve``, accuracy and P(expected) against the number of
  examples, over several orders, optionally with random labels;
* ``answers``: the batched answering and scoring both use on a local model;
* ``links``: variants in a URL and back.
"""

from core.promptlab.shots import MAX_ORDERS, ShotCurve, ShotPoint, shot_curve
from core.promptlab.task import INPUT, Task, make_task, task_from_dataset, typed_task
from core.promptlab.variants import (
    MAX_VARIANTS,
    PromptVariant,
    VariantsResult,
    run_variants,
    starting_variants,
)

__all__ = [
    "INPUT",
    "MAX_ORDERS",
    "MAX_VARIANTS",
    "PromptVariant",
    "ShotCurve",
    "ShotPoint",
    "Task",
    "VariantsResult",
    "make_task",
    "run_variants",
    "shot_curve",
    "starting_variants",
    "task_from_dataset",
    "typed_task",
]
