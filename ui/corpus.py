"""The corpus picker of the pages that train tiny models (Build your own, Scaling ladder)."""

from __future__ import annotations

import streamlit as st

from core.errors import LabError
from core.pretrain import BUILTIN_CORPORA, Corpus, load_corpus, parse_text_upload

UPLOADED = "upload"  # the radio's value for "Upload a .txt file"


@st.cache_data(max_entries=4, show_spinner=False)
def builtin_corpus(name: str) -> Corpus:
    return load_corpus(name)


def corpus_choice(corpus_key: str, upload_key: str, upload_hint: str, describe: bool) -> Corpus | None:
    """A built-in corpus (``describe``: with its description) or an uploaded .txt; None until there is one."""
    st.radio(
        "Corpus",
        [*BUILTIN_CORPORA, UPLOADED],
        key=corpus_key,
        horizontal=True,
        format_func=lambda n: BUILTIN_CORPORA[n].title if n in BUILTIN_CORPORA else "Upload a .txt file",
    )
    name = st.session_state[corpus_key]
    try:
        if name != UPLOADED:
            if describe:
                st.markdown(BUILTIN_CORPORA[name].description)
            return builtin_corpus(name)
        upload = st.file_uploader("A UTF-8 text file", type=["txt"], key=upload_key)
        if upload is None:
            st.info(upload_hint)
            return None
        return parse_text_upload(upload.getvalue(), upload.name)
    except LabError as exc:
        st.error(str(exc), icon="⚠️")
        return None
