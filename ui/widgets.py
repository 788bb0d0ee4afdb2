"""Widgets drawn the same way on every page."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import streamlit as st


def choice(label: str, titles: dict[str, str], key: str, container: Any = st, **kwargs: Any) -> str:
    """A horizontal radio whose options are ``titles``' keys, each shown by its title; returns the value chosen."""
    return container.radio(label, list(titles), key=key, horizontal=True, format_func=titles.__getitem__, **kwargs)


def examples_box(
    label: str, names: Iterable[str], key: str, on_change: Callable[[], None], noun: str = "an example"
) -> None:
    """A list of ready-made inputs to start from; choosing one calls ``on_change`` (which fills the input)."""
    st.selectbox(label, list(names), index=None, key=key, placeholder=f"Choose {noun}…", on_change=on_change)
