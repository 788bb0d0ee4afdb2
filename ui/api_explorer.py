"""The explorer's view of a model behind an OpenAI-compatible API.

An API lists at most the top 20 tokens, as text, for a token it generates.
So this view shows those and the unlisted mass as "other", says that the
entropy is a lower bound, and steers by appending token *text* to a raw
prompt (a chat endpoint cannot continue a half-written answer, so there it
only generates). Answers are memoised per session, never across sessions:
each session may be paying with its own key.
"""

from __future__ import annotations

import streamlit as st

from core.backends import BackendDistribution, BackendStep, OpenAIBackend
from core.distributions import SamplingSettings
from core.errors import LabError
from ui.charts import PLOTLY_CONFIG, api_distribution_figure
from ui.render import path_html
from ui.session import presenting, show_error

API_STEPS, API_ANSWERS, API_GENERATE = "ex_api_steps", "ex_api_answers", "ex_api_generate"
API_PICK_TOKEN = "ex_api_pick"
TOP = 20


def reset() -> None:
    st.session_state[API_STEPS] = []


def _distribution(backend: OpenAIBackend, prompt: str, chat: bool) -> BackendDistribution:
    answers: dict = st.session_state.setdefault(API_ANSWERS, {})
    key = (backend.label, backend.base_url, prompt, chat)
    if key not in answers:
        answers[key] = backend.next_token(prompt, chat=chat, top_k=TOP)
    return answers[key]


def _append(dist: BackendDistribution, choice: int) -> None:
    token = dist.tokens[choice]
    step = BackendStep(
        index=len(st.session_state[API_STEPS]),
        chosen=token,
        rank=choice + 1,
        alternatives=dist.tokens,
        other_mass=dist.other_mass,
        finished=False,
    )
    st.session_state[API_STEPS] = [*st.session_state[API_STEPS], step]


def render(
    backend: OpenAIBackend, prompt: str, chat: bool, settings: SamplingSettings, n_tokens: int, seed: int
) -> None:
    st.session_state.setdefault(API_STEPS, [])
    with st.expander("What an API cannot show, and why", expanded=False):
        for note in backend.limitations():
            st.markdown(f"- {note}")
    steps: list[BackendStep] = st.session_state[API_STEPS]
    text = prompt + "".join(s.chosen.token for s in steps)
    shown_prompt = prompt if not chat else f"[chat] {prompt}\n"

    path_box = st.empty()
    path_box.markdown(path_html(shown_prompt, steps), unsafe_allow_html=True)
    cols = st.columns([1.4, 1, 1, 3])
    cols[0].button(
        "⏩ Generate",
        on_click=st.session_state.__setitem__,
        args=(API_GENERATE, True),
        width="stretch",
        help="The server generates with the sampling settings below, reporting the alternatives at each step.",
    )
    cols[1].button("⟲ Reset", on_click=reset, disabled=not steps, width="stretch")

    if st.session_state.pop(API_GENERATE, False):
        try:
            streamed = list(steps)
            source = text if not chat else prompt
            for step in backend.generate_steps(source, chat, n_tokens, settings, seed=seed, alternatives=TOP):
                streamed.append(step)
                path_box.markdown(path_html(shown_prompt, streamed), unsafe_allow_html=True)
            st.session_state[API_STEPS] = streamed
        except LabError as exc:
            show_error(exc)
        st.rerun()

    if chat and steps:
        st.caption(
            "A chat endpoint cannot continue a half-written answer, so this view stops here. Reset to ask again."
        )
        return
    try:
        with st.spinner(f"Asking {backend.label}…"):
            dist = _distribution(backend, text, chat)
    except LabError as exc:
        show_error(exc)
        return
    metrics = st.columns(3)
    metrics[0].metric(
        "Entropy ≥", f"{dist.entropy_bits:.2f} bits", help="Only the top tokens are known: a lower bound."
    )
    metrics[1].metric("Top 20 cover", f"{dist.listed_mass:.1%}")
    metrics[2].metric("Other", f"{dist.other_mass:.1%}", help="Mass of every token the server did not list.")
    st.plotly_chart(api_distribution_figure(dist, presenting()), config=PLOTLY_CONFIG, width="stretch")
    if chat:
        st.caption("This is the first token of the answer. Generate to see the whole answer with its alternatives.")
        return
    pick, button = st.columns([3, 1])
    choice = pick.selectbox(
        "Token to append",
        range(len(dist.tokens)),
        format_func=lambda i: f"{dist.tokens[i].display}  ({dist.tokens[i].prob:.1%})",
        key=f"{API_PICK_TOKEN}-{len(steps)}",
        label_visibility="collapsed",
    )
    button.button("Append", on_click=_append, args=(dist, choice), width="stretch", key="ex_api_append")
