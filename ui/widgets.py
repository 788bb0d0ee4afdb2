"""Widgets drawn the same way on every page."""

from __future__ import annotations

from typing import Any

import streamlit as st


def choice(label: str, titles: dict[str, str], key: str, container: Any = st, **kwargs: Any) -> str:
    """A horizontal radio whose options are ``titles``' keys, each shown by its title; returns the value chosen."""
    return container.radio(label, list(titles), key=key, horizontal=True, format_func=titles.__getitem__, **kwargs)
