"""What a training job saved (an adapter, a tiny model), as the pages' lists and the CLI show it.

Every kind saves its output as a folder holding a ``training.json`` (what it
learned from, its losses, whether it stopped early) and a model card
(``README.md``); a kind's own listing adds what is its alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from core.jobs.files import read_json


@dataclass(frozen=True)
class SavedOutput:
    """What a training job saved (an adapter, a model), as a list shows it: its folder and its training.json.

    ``partial``: the job stopped early, so it holds what was learned so far;
    ``card``: the model card written beside it (README.md).
    """

    name: str
    path: Path
    training: dict[str, Any]

    @classmethod
    def read(cls, name: str, path: Path, **more: Any) -> Self:
        """The output saved at ``path``; ``more`` holds a subclass's own fields."""
        return cls(name, path, read_json(path / "training.json") or {}, **more)

    @property
    def partial(self) -> bool:
        return bool(self.training.get("partial"))

    @property
    def card(self) -> str:
        card = self.path / "README.md"
        return card.read_text(encoding="utf-8") if card.is_file() else ""
