"""Inside the model: the logit lens and attention maps, for the base model and a fine-tuned one.

One forward pass (``core.lens``) gives every layer's reading and every head's
attention weights; it is memoised per prompt, so the view, layer and head
controls sit in a fragment and redraw from cached results.
"""

from __future__ import annotations

from ui.router import require_router

require_router()

import streamlit as st

from core.errors import LabError
from core.exports import safe_csv
from core.finetune import saved_adapter
from core.lens import ModelInternals, compare_models, model_internals, single_token_id
from core.tokens import display_token, encode_prompt
from ui.charts import PLOTLY_CONFIG
from ui.inside_charts import attention_figure, head_gallery_figure, lens_figure, tracked_figure, variation_figure
from ui.session import (
    ADAPTER,
    adapter_choice,
    current_base_model,
    presenting,
    runs_on_torch_caption,
    show_error,
    using_api,
)
from ui.widgets import choice

PROMPT, CHAT, EXAMPLE = "in_prompt", "in_chat", "in_example"
COMPARE, SIDEBAR_SEEN = "in_adapter", "in_sidebar_adapter_seen"
VIEW, SHOW, TRACK, TYPED_TOKEN = "in_view", "in_show", "in_track", "in_typed_token"
LAYER, HEAD, WINDOW, SINK = "in_layer", "in_head", "in_window", "in_sink"
LENS, ATTENTION = "lens", "attention"
BASE, TUNED, DIFFERENCE = "base", "tuned", "difference"
MEAN_OF_HEADS = 0  # the head selector's first option
SHOWN_POSITIONS = {False: 16, True: 8}  # lens columns shown at once (presentation: fewer, larger)

EXAMPLES: dict[str, tuple[str, bool]] = {
    "Factual recall — the answer appears only in the last layers": ("The capital of France is", False),
    "Repetition — heads that look back at the earlier copy": ("one two three four five one two three four", False),
    "Grammar — agreement across a gap": ("The keys to the old cabinet", False),
    "Chat template — what an instruct model reads": ("What is the capital of France?", True),
}
DEFAULT_PROMPT, DEFAULT_CHAT = next(iter(EXAMPLES.values()))

st.session_state.setdefault(PROMPT, DEFAULT_PROMPT)
st.session_state.setdefault(CHAT, DEFAULT_CHAT)
st.session_state.setdefault(VIEW, LENS)
st.session_state.setdefault(SHOW, TUNED)
st.session_state.setdefault(HEAD, MEAN_OF_HEADS)
st.session_state.setdefault(SINK, True)
st.session_state.setdefault(TYPED_TOKEN, "")

st.title("🔍 Inside the model")
st.caption(
    "A transformer keeps one vector per token and every layer adds to it. Read that vector after each layer "
    "as if it were the last, and you see the prediction form; look at the attention weights, and you see which "
    "earlier tokens each token reads."
)
if using_api():
    st.info(
        "These views need the model's layers, and an API returns only its final answer. Choose **Here** under "
        "*Where the model runs* in the sidebar.",
        icon="🔌",
    )
    st.stop()
base = current_base_model()  # loads the model (with a spinner) or explains why it cannot
if base is None:
    st.stop()
runs_on_torch_caption(base, "the logit lens and attention read every layer, and llama.cpp gives only the output.")

if not presenting():
    with st.expander("How to read these charts"):
        st.markdown(
            "- **Logit lens.** Each column is a position in your prompt; each row a layer, from the token "
            "embeddings (*emb*, bottom) to the model's real output (top). A cell shows the token the model "
            "would predict next if it stopped after that layer — the vector read through the final "
            "normalisation and the output head — and its colour that token's probability. Hover a cell for "
            "the top 5. In *The capital of France is*, ␣Paris appears only in the last few layers.\n"
            "- **The line chart** follows one token's probability at the last position, layer by layer.\n"
            "- **Attention.** Row = the token doing the reading, column = the token it reads from; each row "
            "sums to 100 %. The top-right half is empty: a causal model never looks ahead. Many heads park "
            "most of their attention on the first token (an *attention sink*), so the colours can leave it out. "
            "Try the repetition example in SmolLM2-135M: layer 2, head 3 reads the previous token; layer 9, head 3 "
            "reads the word that followed the earlier copy of the current one (an *induction head*).\n"
            "- **Base vs fine-tuned.** Pick an adapter to see where fine-tuning changed the model: the "
            "*difference* shows, per cell, how far the two next-token distributions are apart (0 %: the same; "
            "100 %: nothing in common; an arrow marks a changed top token), and for attention the fine-tuned "
            "weights minus the base's."
        )


def _load_example() -> None:
    st.session_state[PROMPT], st.session_state[CHAT] = EXAMPLES[st.session_state[EXAMPLE]]


if not presenting():
    st.selectbox("Examples", list(EXAMPLES), index=None, key=EXAMPLE, on_change=_load_example, placeholder="Choose…")
prompt_col, chat_col = st.columns([5, 1])
prompt_col.text_area("Prompt", key=PROMPT, height=80)
chat_col.toggle("Chat", key=CHAT, help="Wrap the prompt in the model's chat template, as the user's message.")

if st.session_state.get(SIDEBAR_SEEN) != st.session_state[ADAPTER]:  # follow a new choice in the sidebar
    st.session_state[SIDEBAR_SEEN] = st.session_state[COMPARE] = st.session_state[ADAPTER]
adapter_choice(
    "Compare with a fine-tuned adapter",
    COMPARE,
    "none: the base model only",
    "A LoRA adapter trained on the Fine-tune page: see the same views with it switched on, and the difference.",
)

try:
    prompt = encode_prompt(base, st.session_state[PROMPT], chat=st.session_state[CHAT])
    with st.spinner("Reading every layer…"):
        tuned = base.with_adapter(saved_adapter(st.session_state[COMPARE])) if st.session_state[COMPARE] else None
        comparison = compare_models(base, tuned, prompt.ids) if tuned else None
        if comparison:
            sides = {BASE: comparison.base, TUNED: comparison.tuned}
        else:
            sides = {BASE: model_internals(base, prompt.ids)}
except LabError as exc:
    show_error(exc)
    st.stop()

names = {BASE: base.display_name, TUNED: tuned.display_name if tuned else ""}
st.caption(" · ".join(f"{'Base' if k == BASE else 'Fine-tuned'}: **{names[k]}**" for k in sides))


def _positions(n_positions: int) -> list[int]:
    """The lens columns to draw: all of a short prompt, a chosen window of a long one."""
    shown = SHOWN_POSITIONS[presenting()]
    if n_positions <= shown:
        return list(range(n_positions))
    if presenting():
        return list(range(n_positions - shown, n_positions))
    if st.session_state.get(WINDOW, (0, 0))[1] >= n_positions:
        del st.session_state[WINDOW]  # a shorter prompt than the window was made for
    first, last = st.select_slider(
        "Positions shown",
        options=list(range(n_positions)),
        value=(n_positions - shown, n_positions - 1),
        key=WINDOW,
        help="A long prompt does not fit across: choose which positions to show.",
    )
    return list(range(first, last + 1))


def _tracked_token(lens_sides: dict[str, ModelInternals]) -> int:
    """The token the line chart follows: typed, picked from the likely ones, or the model's answer."""
    shown = lens_sides.get(TUNED, lens_sides[BASE]).lens
    candidates = list(dict.fromkeys(t for side in lens_sides.values() for t in side.lens.candidates_to_track()))
    typed = st.session_state[TYPED_TOKEN]
    if typed and not presenting():
        try:
            return single_token_id(base, typed)
        except LabError as exc:
            show_error(exc)
    if st.session_state.get(TRACK) not in candidates:
        st.session_state[TRACK] = shown.final_top_id
    st.selectbox(
        "Token to follow",
        candidates,
        key=TRACK,
        format_func=lambda i: f"{display_token(shown.decode(i))}  ({shown.prob_by_layer(i)[-1]:.1%} at the end)",
        help="The model's likeliest answers, and any token a layer ranked first at the last position.",
    )
    return st.session_state[TRACK]


def _lens_csv(lens_sides: dict[str, ModelInternals]) -> str:
    rows = []
    for side, internals in lens_sides.items():
        lens = internals.lens
        for layer in range(lens.n_layers + 1):
            for position in range(lens.n_positions):
                for rank, t in enumerate(lens.top(layer, position), start=1):
                    rows.append(
                        {
                            "model": names[side],
                            "layer": layer,
                            "position": position,
                            "input_token": lens.input_tokens[position],
                            "rank": rank,
                            "token": t.token,
                            "id": t.id,
                            "prob": t.prob,
                        }
                    )
    return safe_csv(rows)


def _lens_view(show: str) -> None:
    lens = sides[TUNED if show == TUNED else BASE].lens
    positions = _positions(lens.n_positions)
    if show == DIFFERENCE and comparison is not None:
        st.markdown("**How far the fine-tuned model's reading is from the base's, per layer and position**")
        figure = variation_figure(comparison, positions, presenting())
    else:
        st.markdown(f"**What {names[show]} would predict next, read after each layer**")
        figure = lens_figure(lens, positions, presenting())
    st.plotly_chart(figure, config=PLOTLY_CONFIG, width="stretch", key="in_lens_chart")
    pick_col, type_col = st.columns([3, 2])
    with pick_col:
        token = _tracked_token(sides)
    if not presenting():
        type_col.text_input(
            "…or type a token",
            key=TYPED_TOKEN,
            placeholder="e.g. ␣Paris: type ' Paris', with its space",
            help="Any single token of the model's vocabulary; leave empty to pick from the list.",
        )
    series = {"base model": sides[BASE].lens.prob_by_layer(token)}
    if TUNED in sides:
        series["fine-tuned"] = sides[TUNED].lens.prob_by_layer(token)
    st.plotly_chart(
        tracked_figure(series, lens.decode(token), presenting()),
        config=PLOTLY_CONFIG,
        width="stretch",
        key="in_tracked_chart",
    )
    if not presenting():
        st.download_button(  # built on click: a long prompt's lens is tens of thousands of rows
            "⬇ The lens as CSV (top 5 per cell)", lambda: _lens_csv(dict(sides)), "logit-lens.csv", "text/csv"
        )


def _attention_view(show: str) -> None:
    internals = sides[TUNED if show == TUNED else BASE]
    try:
        maps = internals.require_attention()
    except LabError as exc:
        show_error(exc)
        return
    layer_col, head_col = st.columns(2)
    st.session_state[LAYER] = min(st.session_state.get(LAYER, 3), maps.n_layers)  # another model may have fewer
    if st.session_state[HEAD] > maps.n_heads:
        st.session_state[HEAD] = MEAN_OF_HEADS
    layer = layer_col.slider("Layer", 1, maps.n_layers, key=LAYER)
    head_col.selectbox(
        "Head",
        range(maps.n_heads + 1),
        key=HEAD,
        format_func=lambda h: "mean of all heads" if h == MEAN_OF_HEADS else f"head {h}",
    )
    head = st.session_state[HEAD] or None
    if not presenting():
        st.toggle(
            "Colour without the first token",
            key=SINK,
            help="Many heads park most of their attention on the first token (an 'attention sink'); leaving it "
            "out of the colour scale shows the rest. Hover still gives every weight.",
        )
    which = "the mean of its heads" if head is None else f"head {head}"
    tokens = internals.lens.input_tokens
    if show == DIFFERENCE and comparison is not None:
        pattern = comparison.attention_difference(layer, head)
        st.markdown(f"**Fine-tuned minus base attention, layer {layer}, {which}** (red: more, blue: less)")
    else:
        pattern = maps.pattern(layer, head)
        st.markdown(f"**Where each token looks in {names[show]}, layer {layer}, {which}**")
    without_first = bool(st.session_state[SINK])
    figure = attention_figure(pattern, tokens, show == DIFFERENCE, without_first, presenting())
    st.plotly_chart(figure, config=PLOTLY_CONFIG, width="stretch", key="in_attention_chart")
    if not presenting():
        st.markdown(f"**All {maps.n_heads} heads of layer {layer}**")
        gallery_base = sides[BASE].attention if show == DIFFERENCE else None
        gallery = head_gallery_figure(maps, layer, gallery_base, without_first)
        st.plotly_chart(gallery, config=PLOTLY_CONFIG, width="stretch", key="in_gallery_chart")


@st.fragment
def views() -> None:
    view_col, show_col = st.columns(2)
    choice("View", {LENS: "Logit lens", ATTENTION: "Attention"}, VIEW, view_col)
    show = BASE
    if TUNED in sides:
        choice("Model", {BASE: "base", TUNED: "fine-tuned", DIFFERENCE: "difference"}, SHOW, show_col)
        show = st.session_state[SHOW]
    if st.session_state[VIEW] == LENS:
        _lens_view(show)
    else:
        _attention_view(show)


views()
