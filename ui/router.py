"""Make sure a page runs inside ``streamlit_app.py``'s frame, before anything slow happens.

Because a ``pages/`` folder exists, Streamlit starts in its legacy multipage
mode and runs ``pages/<name>.py`` on its own for the first request after the
server starts when that request is for a page's URL (and AppTest does so on
every rerun), skipping the router, the sidebar and the page config. The
router's ``st.navigation`` switches that mode off; ``require_router`` does
too and reruns, which goes through the router to the same page (legacy and
router pages share their URL names). Pages call it as their first statement,
before importing anything heavy (torch, a model), so the bare run lasts a
moment; ``client.showSidebarNavigation = false`` keeps Streamlit's automatic
page list from flashing meanwhile. This module imports nothing but Streamlit.
"""

from __future__ import annotations

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager


def require_router() -> None:
    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()
