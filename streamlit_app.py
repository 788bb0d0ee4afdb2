"""LLM Lab: the router and the frame every page shares.

Pages live in ``pages/`` and stay thin: they read widgets, call ``core`` and
draw what it returns. The sidebar (the page list, model
choice, presentation mode) is drawn here once for all pages, except the
class's join page, which is made for phones.
"""

import streamlit as st

from ui.session import presentation_css, sidebar

st.set_page_config(page_title="LLM Lab", page_icon="🔬", layout="wide")

PAGES = [
    st.Page("pages/home.py", title="Home", icon="🏠", default=True),
    st.Page("pages/explorer.py", title="Next-token explorer", icon="🎲", url_path="explorer"),
    st.Page("pages/tree.py", title="Generation tree", icon="🌳", url_path="tree"),
    st.Page("pages/score.py", title="Surprise: score a text", icon="🌡️", url_path="score"),
    st.Page("pages/finetune.py", title="Fine-tune", icon="🛠️", url_path="finetune"),
    st.Page("pages/build.py", title="Build your own", icon="🧱", url_path="build"),
    st.Page("pages/ladder.py", title="Scaling ladder", icon="📈", url_path="ladder"),
    st.Page("pages/compare.py", title="Compare", icon="⚖️", url_path="compare"),
    st.Page("pages/prompt_lab.py", title="Prompt lab", icon="🧪", url_path="prompt_lab"),
    st.Page("pages/inside.py", title="Inside the model", icon="🔍", url_path="inside"),
    st.Page("pages/room.py", title="Class room", icon="🙋", url_path="room"),
    st.Page("pages/join.py", title="Join a class", icon="📱", url_path="join"),
]
PHONE_PAGES = {"join"}  # a student's phone needs no sidebar: the page takes the whole width

# The page list is drawn by the sidebar (st.page_link): Streamlit's own list is switched off in
# .streamlit/config.toml, so its automatic list of pages/ files never flashes on a first request.
page = st.navigation(PAGES, position="hidden")
if page.url_path not in PHONE_PAGES:
    sidebar(PAGES)
presentation_css()
page.run()
