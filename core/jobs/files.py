"""Files that are always whole: JSON replaced in one step, folders swapped in atomically.

A page reads a job's files while the job writes them, and a crash or a full
disk can stop a write half-way. So a JSON file is written to a temporary
file, synced, and renamed over the old one; a folder (a saved adapter, a
tiny model) is written beside its target and renamed into place. A reader
sees the old version or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def write_json_atomic(path: Path, data: Any) -> None:
    """Replace ``path`` with ``data`` as JSON in one step; on any error the old file stays as it was."""
    text = json.dumps(data, indent=2, ensure_ascii=False)  # serialise first: a bad value writes nothing
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path) -> Any:
    """The JSON in ``path``, or None if it does not exist."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


@contextmanager
def folder_replaced_atomically(target: Path) -> Iterator[Path]:
    """Yield an empty folder beside ``target``; when the block ends without error, it becomes ``target``.

    A crash or a full disk part-way leaves the previous ``target`` (or none), never a half-written one.
    """
    target = Path(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    old = target.with_name(f".{target.name}.old")
    try:
        yield tmp
        if target.exists():
            target.rename(old)
        tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
