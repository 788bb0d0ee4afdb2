"""Results that write themselves as JSON: one rule for every dataclass a command prints or a page exports.

A result's JSON (a command's ``--json``, a page's download, a job's
status.json) is its fields by name, in order, with nested results written
the same way and tuples as lists. A class says only where its JSON differs
from that rule: a field printed under another name (the name the JSON has
always had) says so in its metadata (``field(metadata=json_name("room"))``),
and ``json_derived`` names the properties worth printing after the fields.
A result whose JSON has another shape altogether writes its own ``to_json``
and still calls ``json_value`` for the parts inside.
"""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from typing import Any, ClassVar

JSON_NAME = "json_name"


def json_name(key: str) -> dict[str, str]:
    """A field's metadata when its JSON key is not its name."""
    return {JSON_NAME: key}


def json_value(value: Any) -> Any:
    """``value`` as JSON holds it: a record by its ``to_json``, another dataclass field by field, tuples as lists."""
    if isinstance(value, JsonRecord):
        return value.to_json()
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: json_value(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, tuple | list):
        return [json_value(v) for v in value]
    if isinstance(value, dict):
        return {k: json_value(v) for k, v in value.items()}
    return value


class JsonRecord:
    """Mixed into a dataclass: ``to_json`` writes its fields (under their ``json_name``), then ``json_derived``."""

    json_derived: ClassVar[tuple[str, ...]] = ()

    def to_json(self) -> dict[str, Any]:
        data = {f.metadata.get(JSON_NAME, f.name): json_value(getattr(self, f.name)) for f in fields(self)}
        data.update((name, json_value(getattr(self, name))) for name in self.json_derived)
        return data
