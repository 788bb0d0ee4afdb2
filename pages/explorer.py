"""Next-token explorer: see, reshape and steer the model's distribution over the next token.

State lives in ``st.session_state`` and is mirrored in the URL (prompt,
settings and the steered tokens), so a link reproduces the view. The sliders
sit in a fragment: moving one reruns only the chart, from cached logits.
"""

from __future__ import annotations

from ui.router import require_router

require_router()

from typing import Any

import streamlit as st

from core.distributions import (
    NextTokenDistribution,
    SamplingSettings,
    ShapedDistribution,
    ShapedToken,
    next_token_distribution,
    reshape,
    sample_token,
)
from core.errors import LabError
from core.exports import safe_csv
from core.generation import generate, replay, seeded_generator
from core.probe import probe_target
from core.tokens import PromptTokens, encode_prompt
from ui import api_explorer
from ui.charts import PLOTLY_CONFIG, distribution_figure
from ui.render import path_html, plural, probe_html, share, token_chips
from ui.rooms import ask_the_class
from ui.session import current_backend, presenting, runs_on_words, show_error
from ui.widgets import examples_box

PROMPT, CHAT, PATH = "ex_prompt", "ex_chat", "ex_path"
TEMPERATURE, TOP_K, TOP_P, MIN_P, SHOWN, SEED, N_TOKENS = (
    "ex_temperature",
    "ex_top_k",
    "ex_top_p",
    "ex_min_p",
    "ex_shown",
    "ex_seed",
    "ex_n_tokens",
)
PICK, PICK_BUTTON = "ex_pick", "ex_append"
PANEL = "ex_panel"  # this session's last reshaped distribution and chart
EXAMPLE = "ex_example"
GENERATE_REQUESTED = "ex_generate_requested"
PROBE = "ex_probe"

# Each example teaches one thing; the first is the default view.
EXAMPLES: dict[str, tuple[str, bool]] = {
    "Factual recall — one token takes most of the mass": ("The capital of France is", False),
    "Ambiguity — many continuations are plausible": ("After dinner, we went to the", False),
    "Zero-shot instruction — the model follows a task it was never shown": (
        "Translate to French: cheese =>",
        False,
    ),
    "Repetition loop — greedy decoding gets stuck": ("I like apples. I like apples. I like apples. I like", False),
    "Chat template — what an instruct model really reads": ("What is the capital of France?", True),
}
DEFAULT_PROMPT, DEFAULT_CHAT = next(iter(EXAMPLES.values()))
DEFAULTS = {TEMPERATURE: 1.0, TOP_K: 0, TOP_P: 1.0, MIN_P: 0.0, SHOWN: 10, SEED: 0, N_TOKENS: 10}
URL_KEYS = {PROMPT: "prompt", CHAT: "chat", TEMPERATURE: "t", TOP_K: "k", TOP_P: "p", MIN_P: "minp", PATH: "path"}


def _init_state() -> None:
    """First run of a session: take the state from the URL where it has any, else the defaults."""
    if PROMPT in st.session_state:
        return
    q = st.query_params
    st.session_state[PROMPT] = q.get("prompt", DEFAULT_PROMPT)
    st.session_state[CHAT] = q.get("chat", "1" if DEFAULT_CHAT else "0") == "1"
    for key, cast in ((TEMPERATURE, float), (TOP_K, int), (TOP_P, float), (MIN_P, float)):
        try:
            st.session_state[key] = cast(q.get(URL_KEYS[key], DEFAULTS[key]))
        except ValueError:
            st.session_state[key] = DEFAULTS[key]
    try:
        st.session_state[PATH] = [int(i) for i in q.get("path", "").split(",") if i.strip()]
    except ValueError:
        st.session_state[PATH] = []
    for key in (SHOWN, SEED, N_TOKENS):
        st.session_state.setdefault(key, DEFAULTS[key])


def _write_url() -> None:
    wanted = {
        "prompt": st.session_state[PROMPT],
        "chat": "1" if st.session_state[CHAT] else "0",
        "t": f"{st.session_state[TEMPERATURE]:g}",
        "k": str(st.session_state[TOP_K]),
        "p": f"{st.session_state[TOP_P]:g}",
        "minp": f"{st.session_state[MIN_P]:g}",
    }
    if st.session_state[PATH]:
        wanted["path"] = ",".join(map(str, st.session_state[PATH]))
    if presenting():
        wanted["present"] = "1"
    if dict(st.query_params) != wanted:
        st.query_params.from_dict(wanted)


def settings() -> SamplingSettings:
    k = st.session_state[TOP_K]
    return SamplingSettings(
        temperature=st.session_state[TEMPERATURE],
        top_k=k if k > 0 else None,
        top_p=st.session_state[TOP_P],
        min_p=st.session_state[MIN_P],
    )


def _reset_path() -> None:
    st.session_state[PATH] = []
    api_explorer.reset()


def _load_example() -> None:
    choice = st.session_state.get(EXAMPLE)
    if choice in EXAMPLES:
        st.session_state[PROMPT], st.session_state[CHAT] = EXAMPLES[choice]
        _reset_path()


def _append(token_id: int) -> None:
    st.session_state[PATH] = [*st.session_state[PATH], int(token_id)]


def _position_seed(position: int) -> int:
    """Reproducible for a given seed and position, and different at each step."""
    return st.session_state[SEED] * 100_003 + position


def _sample(dist: NextTokenDistribution) -> None:
    """Runs at click time, so it uses the sliders' current values even after a fragment-only rerun."""
    try:
        shaped = reshape(dist, settings())
    except LabError:
        return  # the panel shows the settings error
    _append(sample_token(shaped, seeded_generator(_position_seed(len(dist.prompt_ids)))))


def _undo() -> None:
    st.session_state[PATH] = st.session_state[PATH][:-1]


_init_state()
st.title("🎲 Next-token explorer")
st.caption(
    "A language model does one thing: given a text, it gives every token in its vocabulary a probability "
    "of coming next. Pick a prompt, reshape the distribution, and steer the text one token at a time."
)

if not presenting():
    examples_box("Examples that each teach something", EXAMPLES, EXAMPLE, _load_example)
left, right = st.columns([4, 1])
left.text_area("Prompt", key=PROMPT, height=90, on_change=_reset_path)
right.toggle(
    "Chat message",
    key=CHAT,
    on_change=_reset_path,
    help="Wrap the prompt in the model's chat template as a user message, the way a chat app does.",
)

backend = current_backend()
if backend is None:
    st.stop()
if not backend.full_distribution:  # an API lists its top tokens only: a view of its own
    with st.expander("Sampling settings for ⏩ Generate", expanded=False):
        cols = st.columns(5)
        cols[0].slider("Temperature", 0.0, 2.0, step=0.05, key=TEMPERATURE)
        cols[1].slider("top-p", 0.01, 1.0, step=0.01, key=TOP_P)
        cols[2].slider("top-k (0 = off)", 0, 100, key=TOP_K)
        cols[3].number_input("Seed", 0, 10**6, key=SEED)
        cols[4].number_input("Tokens", 1, 200, key=N_TOKENS)
    try:
        api_settings = settings().validate(10**9)  # the server knows its own vocabulary size
    except LabError as exc:
        show_error(exc)
    else:
        api_explorer.render(
            backend,
            st.session_state[PROMPT],
            st.session_state[CHAT],
            api_settings,
            st.session_state[N_TOKENS],
            st.session_state[SEED],
        )
    _write_url()
    st.stop()

lm = backend.lm
st.caption(f"Model: **{lm.display_name}** · runs on {runs_on_words(lm)}")

try:
    prompt: PromptTokens = encode_prompt(lm, st.session_state[PROMPT], chat=st.session_state[CHAT])
    current_settings = settings().validate(lm.vocab_size)
    path: list[int] = st.session_state[PATH]
except LabError as exc:
    show_error(exc)
    _write_url()
    st.stop()
try:
    steps = replay(lm, prompt.ids, path)
except LabError as exc:  # a shared link's steered tokens that this model cannot read: start from the prompt
    show_error(exc)
    st.session_state[PATH] = path = []
    steps = ()
ids = prompt.ids + path
dist = next_token_distribution(lm, ids)

with st.expander(f"What the model reads: {plural(len(prompt.tokens), 'token')}", expanded=not presenting()):
    if prompt.chat:
        st.caption("The chat template wraps your message; special tokens are outlined.")
    st.markdown(token_chips(prompt.tokens), unsafe_allow_html=True)

st.markdown(
    "**Text so far** — steered tokens are coloured by the model's probability (red unlikely, green likely); "
    "hover one to see the alternatives it beat."
)
path_box = st.empty()
path_box.markdown(path_html(prompt.text, steps), unsafe_allow_html=True)

if st.session_state.pop(GENERATE_REQUESTED, False):
    # Streams into the text above, then draws the rest of the page for the longer text in this same run:
    # a second run to show it would cost every student's click a whole page again.
    try:
        streamed = list(steps)
        seed = _position_seed(len(ids))
        for step in generate(lm, ids, st.session_state[N_TOKENS], current_settings, seed=seed, alternatives=10):
            streamed.append(step)
            path_box.markdown(path_html(prompt.text, streamed), unsafe_allow_html=True)
            _append(step.chosen.id)
    except LabError as exc:
        show_error(exc)
    path = st.session_state[PATH]
    steps = replay(lm, prompt.ids, path)  # from the memo: the generation computed every step
    ids = prompt.ids + path
    dist = next_token_distribution(lm, ids)  # one single-token step over the kept cache

eos_reached = bool(steps) and steps[-1].finished
buttons = st.columns([1, 1, 1.4, 1, 1, 1])
greedy_id = dist.argmax
buttons[0].button("⬆ Most likely", on_click=_append, args=(greedy_id,), disabled=eos_reached, width="stretch")
buttons[1].button(
    "🎲 Sample",
    on_click=_sample,
    args=(dist,),
    disabled=eos_reached,
    width="stretch",
    help="Draw one token with the current sampling settings.",
)
buttons[2].button(
    "⏩ Generate",
    on_click=st.session_state.__setitem__,
    args=(GENERATE_REQUESTED, True),  # a flag, not the click's return value: it survives a rerun
    disabled=eos_reached,
    width="stretch",
    help="Generate several tokens with the current settings (how many: 'Tokens per ⏩' beside the chart).",
)
buttons[3].button("↶ Undo", on_click=_undo, disabled=not path, width="stretch")
buttons[4].button("⟲ Reset", on_click=_reset_path, disabled=not path, width="stretch")
if eos_reached:
    st.info("The model chose its end-of-text token: this answer is finished. Undo or reset to go on.")
ask_the_class(lm, st.session_state[PROMPT], st.session_state[CHAT], path)


@st.fragment
def _panel_view(shown: int) -> tuple[ShapedDistribution, list[ShapedToken], Any]:
    """The reshaped distribution, its top tokens and the chart, kept for this session while nothing changes.

    A page reruns on every click of every student: reshaping the vocabulary in
    float64 and building the plotly figure anew each time was a sixth of a
    class's server time, for the same picture.
    """
    key = (lm.key, tuple(ids), settings(), shown, presenting())
    kept = st.session_state.get(PANEL)
    if kept is not None and kept[0] == key:
        return kept[1]
    shaped = reshape(dist, settings())
    view = (shaped, shaped.top(shown), distribution_figure(shaped, shown, presenting()))
    st.session_state[PANEL] = (key, view)
    return view


def distribution_panel() -> None:
    """Sliders and chart: reruns alone when a slider moves; reshaping needs no forward pass."""
    shown = st.session_state[SHOWN]
    try:
        shaped, top, figure = _panel_view(shown)
    except LabError as exc:
        st.warning(str(exc))
        shaped = None
    metrics = st.columns(4)
    metrics[0].metric("Entropy", f"{dist.entropy_bits:.2f} bits", help="Uncertainty of the model's distribution.")
    if shaped is not None:
        metrics[1].metric("After settings", f"{shaped.entropy_bits:.2f} bits")
        metrics[2].metric("Bars cover", f"{sum(t.original_prob for t in top):.1%}", help="Mass of the shown tokens.")
        metrics[3].metric("Tokens kept", f"{shaped.n_kept:,}", help=f"of {dist.vocab_size:,} in the vocabulary")
    controls, chart = st.columns([1, 3])
    with controls:
        st.slider("Temperature", 0.0, 3.0, step=0.05, key=TEMPERATURE, help="0 is greedy; above 1 flattens.")
        st.slider("top-k", 0, 200, key=TOP_K, help="Keep only the k most likely tokens (0 keeps all).")
        st.slider("top-p (nucleus)", 0.01, 1.0, step=0.01, key=TOP_P, help="Keep the smallest set reaching p.")
        if not presenting():
            st.slider("min-p", 0.0, 1.0, step=0.01, key=MIN_P, help="Drop tokens below min-p × the top one.")
            st.number_input("Seed", 0, 10**6, key=SEED, help="Sampling is reproducible for a given seed.")
            st.number_input("Tokens per ⏩", 1, 200, key=N_TOKENS)
        st.slider("Bars shown", 3, 40, key=SHOWN)
    if shaped is None:
        return
    with chart:
        event = st.plotly_chart(
            figure,
            key=f"bars-{len(ids)}",
            on_select="rerun",
            selection_mode="points",
            config=PLOTLY_CONFIG,
            width="stretch",
        )
        points = (event or {}).get("selection", {}).get("points", []) if event else []
        if points and not eos_reached:
            _append(int(points[0]["customdata"]))
            st.rerun(scope="app")
        st.caption("Click a bar to append that token, or pick one here:")
        pick_col, button_col = st.columns([3, 1])
        labels = {t.id: f"{t.display}  ({t.original_prob:.1%})" for t in top}
        picked = pick_col.selectbox(
            "Token to append",
            list(labels),
            format_func=labels.__getitem__,
            key=f"{PICK}-{hash(tuple(ids))}-{shown}",  # a new list of candidates gets a fresh widget
            label_visibility="collapsed",
        )
        if button_col.button(
            "Append", key=PICK_BUTTON, on_click=_append, args=(picked,), disabled=eos_reached, width="stretch"
        ):
            st.rerun(scope="app")  # the text above the fragment shows the new token too
        if not presenting():
            rows = [
                {
                    "rank": n + 1,
                    "token": t.token,
                    "id": t.id,
                    "prob": t.original_prob,
                    "prob_after_settings": t.prob,
                    "kept": t.kept,
                }
                for n, t in enumerate(top)
            ]
            st.download_button("⬇ Numbers as CSV", safe_csv(rows), "next-token.csv", "text/csv", key="ex_csv")
    _write_url()


@st.fragment
def probe_panel() -> None:
    """Probe a word: the probability of a whole string coming next (typing reruns only this part)."""
    with st.expander(
        "🎯 Probe a word: how likely is a whole word or phrase next?", expanded=bool(st.session_state.get(PROBE))
    ):
        st.text_input(
            "Target",
            key=PROBE,
            placeholder="␣Paris",
            help="Its tokens are read after the text so far; a leading space matters: ' Paris' and 'Paris' are "
            "different tokens.",
        )
        target = st.session_state.get(PROBE)
        if not target:
            return
        try:
            probe = probe_target(lm, ids, target)
        except LabError as exc:
            show_error(exc)
            return
        st.metric(
            f"P({probe.target!r} comes next)",
            share(probe.prob),
            help="The product of its tokens' probabilities, each given the text and the tokens before it.",
        )
        if probe.prob < 0.01:
            st.caption(f"About 1 in {round(1 / probe.prob):,}." if probe.prob > 0 else "Too unlikely to count.")
        st.markdown(probe_html(probe), unsafe_allow_html=True)


distribution_panel()
probe_panel()
_write_url()
