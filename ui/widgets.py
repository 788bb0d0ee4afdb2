"""Widgets drawn the same way on every page."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

import streamlit as st

from core.exports import safe_csv


def choice(label: str, titles: dict[str, str], key: str, container: Any = st, **kwargs: Any) -> str:
    """A horizontal radio whose options are ``titles``' keys, each shown by its title; returns the value chosen."""
    return container.radio(label, list(titles), key=key, horizontal=True, format_func=titles.__getitem__, **kwargs)


def examples_box(
    label: str, names: Iterable[str], key: str, on_change: Callable[[], None], noun: str = "an example"
) -> None:
    """A list of ready-made inputs to start from; choosing one calls ``on_change`` (which fills the input)."""
    st.selectbox(label, list(names), index=None, key=key, placeholder=f"Choose {noun}…", on_change=on_change)


def export_buttons(what: str, rows: list[dict[str, Any]], data: Any, name: str) -> None:
    """Download ``what`` side by side as CSV (``rows``, made inert for spreadsheets) and as JSON (``data``)."""
    left, right = st.columns(2)
    left.download_button(f"⬇ {what} as CSV", safe_csv(rows), f"{name}.csv", "text/csv")
    right.download_button(
        f"⬇ {what} as JSON", json.dumps(data, ensure_ascii=False, indent=1), f"{name}.json", "application/json"
    )
