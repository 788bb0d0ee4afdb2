"""Tables as CSV that a spreadsheet opens safely.

A cell such as ``=HYPERLINK(...)`` in a prompt, an upload or a generated
answer would run as a formula when a teacher opens the export in a
spreadsheet (CSV injection). Such cells are written with a leading
apostrophe, which spreadsheets show as text; nothing else changes.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> object:
    """``value``, with text that a spreadsheet would read as a formula made inert."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def safe_csv(rows: Iterable[Mapping[str, object]]) -> str:
    """Rows of one shape as CSV text (header from the first row), formula-safe."""
    rows = list(rows)
    if not rows:
        return ""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: safe_cell(v) for k, v in row.items()})
    return out.getvalue()
