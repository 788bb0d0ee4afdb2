"""Where LLM Lab keeps what it writes for itself, and which names are safe to use there.

Everything LLM Lab writes that it could not rebuild (jobs, adapters, tiny
models, class rooms) sits under one data folder: ``$LLM_LAB_DATA`` if set,
else ``data/`` at the repository root (git ignores it). Each kind of job
keeps its folders below it (``<data>/finetune/jobs/``, ``<data>/pretrain/jobs/``
...); the machine-wide lock that lets one training job of any kind run at a
time is ``<data>/job.lock``.

Names come from people (a rename box, a job id in a page's URL), so every name
is checked before it touches a path: no separators, no ``..``, nothing hidden,
no names Windows reserves.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from core.errors import InvalidInput

REPO_ROOT = Path(__file__).resolve().parents[2]
MAX_NAME_CHARS = 64
_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# Reserved by Windows whatever the extension (a zip unpacked there must not break).
_RESERVED = {"con", "prn", "aux", "nul"} | {f"{p}{n}" for p in ("com", "lpt") for n in range(10)}


def data_root() -> Path:
    """LLM Lab's data folder: ``$LLM_LAB_DATA``, else ``<repo>/data``."""
    override = os.environ.get("LLM_LAB_DATA")
    return Path(override).expanduser() if override else REPO_ROOT / "data"


def lock_path() -> Path:
    """The lock that keeps training (of any kind) to one job at a time on this machine."""
    return data_root() / "job.lock"


def check_name(name: str, what: str = "name") -> str:
    """Return ``name`` stripped if it is safe as a single folder name, else say why not."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput(f"The {what} is empty: type a name made of letters, digits, '-', '_' or '.'.")
    name = name.strip()
    if "/" in name or "\\" in name or os.path.isabs(name):
        raise InvalidInput(f"The {what} {name!r} contains a path separator: use a plain name such as 'my-adapter'.")
    if name.startswith("."):
        raise InvalidInput(f"The {what} {name!r} starts with '.': names may not be hidden or point to a parent folder.")
    if len(name) > MAX_NAME_CHARS:
        raise InvalidInput(f"The {what} has {len(name)} characters; at most {MAX_NAME_CHARS} are allowed.")
    if not _NAME_PATTERN.fullmatch(name):
        raise InvalidInput(
            f"The {what} {name!r} may only use letters, digits, '-', '_' and '.', "
            "and must start with a letter or digit."
        )
    if name.split(".")[0].lower() in _RESERVED:
        raise InvalidInput(f"The {what} {name!r} is a reserved device name on Windows: choose another.")
    return name


def slug(text: str) -> str:
    """A safe name fragment from free text (a dataset file name, say)."""
    cleaned = re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()
    return cleaned[:32] or "job"


def claim_new_folder(root: Path, label: str) -> Path:
    """Create and return ``root/<label>-<UTC date-time>``, with a counter if that name is taken.

    ``mkdir`` either creates the folder or fails, so two starts in the same
    second can never get the same folder.
    """
    root.mkdir(parents=True, exist_ok=True)
    base = f"{slug(label)}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"
    n = 1
    while True:
        path = root / (base if n == 1 else f"{base}-{n}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            n += 1


def claim_named_folder(root: Path, name: str, what: str = "name") -> Path:
    """Create ``root/<name>`` for a checked ``name``, or say that the name is taken."""
    root.mkdir(parents=True, exist_ok=True)
    path = child_folder(root, name, what)
    try:
        path.mkdir()
    except FileExistsError:
        raise InvalidInput(f"The {what} {path.name!r} is already taken: choose another.") from None
    return path


def child_folder(root: Path, name: str, what: str = "name") -> Path:
    """``root / name`` for a checked ``name``; never a path outside ``root``."""
    return root / check_name(name, what)
