"""Generation tree: the continuations a model could write, drawn as a tree of tokens.

Three ways to grow it from one prompt (``core.tree``): open nodes one by one
(their likeliest children), beam search beside greedy, or N samples merged
with counts. The whole view lives in the URL (``ui.tree_view``), so a link
reproduces it; the figures are built in ``ui.tree_charts``. With an adapter
on, the base model's tree and the tuned one's stand side by side.
"""

from __future__ import annotations

from ui.router import require_router

require_router()

import json
from dataclasses import replace

import streamlit as st

from core.errors import LabError
from core.models import LoadedModel
from core.tokens import check_token_ids, display_token
from ui.render import continuation_html, markdown_literal
from ui.session import current_adapter, current_base_model, presenting, show_error, using_api
from ui.tree_charts import DrawnNode, drawn_tree, png_config, shares_figure, tree_figure
from ui.tree_view import (
    BEAMS,
    MODE_NUMBERS,
    MODES,
    NUMBERS,
    SAMPLES,
    SETTING_NAMES,
    GrownTree,
    TreeSettings,
    from_query,
    grow,
    node_name,
    parse_node,
    to_query,
)
from ui.widgets import choice, examples_box

KEY = {name: f"tr_{name}" for name in SETTING_NAMES}
EXAMPLE, PICK, LINK_WARNINGS = "tr_example", "tr_pick", "tr_link_warnings"
DEFAULT = TreeSettings()

# Each example shows one thing a tree makes visible.
EXAMPLES: dict[str, tuple[str, bool]] = {
    "Beam search finds what greedy misses": ("Once upon a time", False),
    "One path takes most of the mass": ("The capital of France is", False),
    "Many plausible branches": ("After dinner, we went to the", False),
    "Chat template — how an instruct model starts its answer": ("What is the capital of France?", True),
}


def _init_state() -> None:
    """First run of a session on this page: the view from the URL, each value it could not use said once."""
    if KEY["prompt"] in st.session_state:
        return
    settings, warnings = from_query(st.query_params.to_dict())
    for name in SETTING_NAMES:
        st.session_state[KEY[name]] = getattr(settings, name)
    st.session_state[LINK_WARNINGS] = warnings


def _settings() -> TreeSettings:
    return TreeSettings(**{name: st.session_state.get(KEY[name], getattr(DEFAULT, name)) for name in SETTING_NAMES})


def _write_url(settings: TreeSettings) -> None:
    wanted = to_query(settings)
    if presenting():
        wanted["present"] = "1"
    if st.query_params.to_dict() != wanted:
        st.query_params.from_dict(wanted)


def _open(path: tuple[int, ...] | None) -> None:
    st.session_state[KEY["node"]] = path


def _close() -> None:
    _open(None)


def _picked() -> None:
    picked = st.session_state[PICK]
    _open(None if picked is None else parse_node(picked)[0])


def _load_example() -> None:
    example = st.session_state.get(EXAMPLE)
    if example in EXAMPLES:
        st.session_state[KEY["prompt"]], st.session_state[KEY["chat"]] = EXAMPLES[example]
        _close()


# label, step (None: whole numbers) and help of each slider; the ranges are ui.tree_view's (core's limits)
SLIDERS: dict[str, tuple[str, float | None, str]] = {
    "depth": ("Depth (tokens)", None, "How many tokens each path grows after the prompt."),
    "width": ("Beam width", None, "How many continuations are kept at each depth."),
    "length_penalty": (
        "Length penalty",
        0.1,
        "Beams are ranked by Σ log p / length^penalty: 0 ranks by the total (short beams win), 1 by the mean.",
    ),
    "samples": ("Samples (N)", None, "How many continuations are drawn."),
    "temperature": ("Temperature", 0.05, "0 is greedy; above 1 flattens."),
    "top_k": ("top-k", None, "Keep only the k likeliest tokens (0 keeps all)."),
    "top_p": ("top-p (nucleus)", 0.01, "Keep the smallest set of tokens reaching p."),
    "min_p": ("min-p", 0.01, "Drop tokens below min-p × the top one."),
    "children": ("Children listed", None, "How many of the likeliest next tokens an opened node lists."),
}
PRESENTATION_HIDES = ("min_p", "seed")


def _parameters(mode: str) -> None:
    """The controls the mode reads, four to a row."""
    names = [n for n in MODE_NUMBERS[mode] if not (presenting() and n in PRESENTATION_HIDES)]
    for row in range(0, len(names), 4):
        for column, name in zip(st.columns(4), names[row : row + 4], strict=False):
            # kept while another mode hides it ("page"): switching modes back and forth loses nothing
            if name == "seed":
                column.number_input(
                    "Seed", 0, 10**6, key=KEY[name], persist_state="page", help="The same seed draws the same samples."
                )
                continue
            label, step, help_text = SLIDERS[name]
            _, _, low, high = NUMBERS[name]
            column.slider(label, low, high, step=step, key=KEY[name], persist_state="page", help=help_text)


def _checked_node(lm: LoadedModel, settings: TreeSettings) -> TreeSettings:
    """The settings, without a linked node whose ids are not the model's (a hand-made link)."""
    try:
        check_token_ids(lm, list(settings.node or ()), "The link's node ids")
    except LabError as exc:
        st.warning(f"{exc} The tree opens from the prompt.", icon="🔗")
        _close()
        return replace(settings, node=None)
    return settings


def _grow_all(base: LoadedModel, settings: TreeSettings) -> list[GrownTree] | None:
    """Every tree the page shows (base, and tuned with an adapter on), or None after saying why not.

    All are grown before any is drawn: a refusal shows alone, never beside half a picture.
    """
    try:
        adapter = current_adapter()
        models = [base] if adapter is None else [base, base.with_adapter(adapter)]
        with st.spinner("Growing the tree…"):
            return [grow(lm, settings) for lm in models]
    except LabError as exc:
        show_error(exc)
        return None


def _open_reached(grown: list[GrownTree], settings: TreeSettings) -> TreeSettings:
    """The opened node as far as some tree holds it (a changed depth or width can leave it out)."""
    if settings.node is None:
        return settings
    reached = max((g.node for g in grown if g.node is not None), key=len, default=None)
    if reached != settings.node:
        st.info("The node opened before is not in this tree: its nearest ancestor here is opened instead.")
        _open(reached)
        settings = replace(settings, node=reached)
    return settings


def _continuation_text(nodes: list[DrawnNode]) -> str:
    return "".join(display_token(n.token) for n in nodes)


def _said(nodes: list[DrawnNode]) -> str:
    """A continuation in bold inside markdown, its characters shown as they are."""
    return f"**{markdown_literal(_continuation_text(nodes))}**"


def _draw(grown: GrownTree, root: DrawnNode, index: int, settings: TreeSettings) -> None:
    """One model's tree; a click on a node opens it."""
    figure = tree_figure(grown, root, presenting())
    sig = hash((settings, index))  # a new tree gets a fresh chart: an old selection must not click again
    event = st.plotly_chart(
        figure,
        key=f"tr_chart_{index}_{sig}",
        on_select="rerun",
        selection_mode="points",
        config=png_config(f"generation-tree-{settings.mode}"),
        width="stretch",
    )
    points = event.get("selection", {}).get("points", []) if event else []
    clicked = [p["customdata"] for p in points if isinstance(p.get("customdata"), str)]
    if clicked:
        path, _ = parse_node(clicked[0])
        if path is not None and path != settings.node:
            _open(path)
            st.rerun()
    if grown.search is not None:
        best, greedy = grown.search.beams[0], grown.search.greedy
        if grown.search.differs_from_greedy:
            st.info(
                f"Beam search's best, {_said(root.line(best.ids))} (Σ log p {best.logprob:.2f}), "
                f"differs from greedy's {_said(root.line(greedy.ids))} (Σ log p "
                f"{greedy.logprob:.2f}): the likeliest token at each step did not lead to the likeliest whole."
            )
        else:
            st.caption("Beam search's best is greedy's path here: taking the likeliest token each time was best.")


def _legend(mode: str) -> str:
    parts = {
        BEAMS: "Thick indigo: the best beam; light: the other beams; at each end, its rank and Σ log p.",
        SAMPLES: "Edge width: how many samples took it; a label gives that count and the model's p.",
    }
    return (
        "Each node is a token and the model's probability of it after everything to its left. "
        + parts.get(mode, "")
        + " Orange dashes: the greedy path (the likeliest token each time). Dotted grey: an opened node's "
        "likeliest children."
    )


def _beams_table(grown: GrownTree, root: DrawnNode) -> None:
    assert grown.search is not None
    rows = [
        {
            "rank": str(rank),
            "continuation": _continuation_text(root.line(beam.ids)),
            "Σ log p": round(beam.logprob, 3),
            "score": round(beam.score, 3),
            "ended": beam.finished,
        }
        for rank, beam in enumerate(grown.search.beams, start=1)
    ]
    greedy = grown.search.greedy
    rows.append(
        {
            "rank": "greedy",
            "continuation": _continuation_text(root.line(greedy.ids)),
            "Σ log p": round(greedy.logprob, 3),
            "score": round(greedy.score, 3),
            "ended": greedy.finished,
        }
    )
    st.dataframe(rows, hide_index=True, width="stretch")


def _samples_view(grown: GrownTree, root: DrawnNode) -> None:
    assert grown.sampled is not None
    node = root.find(grown.node or ()) or root
    where = f"…{_said(root.line(node.path))}" if node.path else "the prompt"
    st.markdown(f"Which token the samples took after {where}, beside the model's probability of it:")
    st.plotly_chart(shares_figure(node, presenting()), config=png_config("samples-vs-probabilities"), width="stretch")
    s = grown.settings
    if s.temperature == 1 and not s.top_k and s.top_p == 1 and s.min_p == 0:
        st.caption("At temperature 1 with nothing pruned, the shares approach the probabilities as N grows.")
    else:
        st.caption(
            "The samples were drawn after the sampling settings reshaped the distribution, so their shares "
            "approach the reshaped probabilities, not these (temperature 1, nothing pruned)."
        )
    if presenting():
        return
    counted: dict[tuple[int, ...], int] = {}
    for sample in grown.sampled.samples:
        counted[sample.ids] = counted.get(sample.ids, 0) + 1
    logprob = {sample.ids: sample.logprob for sample in grown.sampled.samples}
    rows = [
        {"count": count, "continuation": _continuation_text(root.line(ids)), "Σ log p": round(logprob[ids], 3)}
        for ids, count in sorted(counted.items(), key=lambda item: -item[1])
    ]
    st.dataframe(rows, hide_index=True, width="stretch")


def _node_picker(root: DrawnNode, settings: TreeSettings) -> None:
    """The click's fallback (and a keyboard's way): every node of the tree in a list."""
    names = {node_name(n.path): n for n in root.walk()}
    current = None if settings.node is None else node_name(settings.node)
    st.session_state[PICK] = current if current in names else None

    def label(name: str) -> str:
        node = names[name]
        if not node.path:
            return "the prompt"
        return f"…{_continuation_text(root.line(node.path))[-50:]}  ({node.prob:.1%})"

    st.selectbox(
        "Open a node (or click one in the tree)",
        list(names),
        key=PICK,
        format_func=label,
        on_change=_picked,
        placeholder="Choose a node to list its likeliest next tokens…",
    )


def _continue_link(root: DrawnNode, settings: TreeSettings) -> None:
    """The opened node's text, and the explorer opened at it (its link holds the prompt and the path)."""
    path = settings.opened or ()
    nodes = root.line(path)
    st.markdown(continuation_html(settings.prompt, [(n.token, n.prob) for n in nodes]), unsafe_allow_html=True)
    query = {"prompt": settings.prompt, "chat": "1" if settings.chat else "0"}
    if path:
        query["path"] = ",".join(map(str, path))
    if settings.mode == SAMPLES:  # the explorer samples with the same settings
        query |= {"t": f"{settings.temperature:g}", "k": str(settings.top_k), "p": f"{settings.top_p:g}"}
        query["minp"] = f"{settings.min_p:g}"
    st.page_link(
        "pages/explorer.py",
        label="Continue from here in the explorer" if path else "Open the prompt in the explorer",
        icon="🎲",
        query_params=query,
    )


def _side_by_side(n: int) -> list:
    """One column per model: base and tuned side by side, or the whole width for one."""
    return list(st.columns(n)) if n > 1 else [st.container()]


_init_state()
st.title("🌳 Generation tree")
st.caption(
    "A model writes one token at a time, and each choice changes what can follow. Here are the paths it could "
    "have taken: open any node to see its likeliest next tokens, compare beam search with greedy, or draw N "
    "samples and watch how often each branch is taken."
)
for warning in st.session_state.pop(LINK_WARNINGS, []):
    st.warning(warning, icon="🔗")
if using_api():
    st.info(
        "A tree needs the probability of every next token at every node, which an API does not give. Choose "
        "**Here** under *Where the model runs* in the sidebar.",
        icon="🔌",
    )
    st.stop()

if not presenting():
    examples_box("Examples", EXAMPLES, EXAMPLE, _load_example)
prompt_col, chat_col = st.columns([4, 1])
prompt_col.text_area("Prompt", key=KEY["prompt"], height=80, on_change=_close)
chat_col.toggle("Chat message", key=KEY["chat"], on_change=_close, help="Wrap the prompt in the chat template.")
choice("Grow the tree by", MODES, KEY["mode"], on_change=_close)
_parameters(st.session_state[KEY["mode"]])
base = current_base_model()  # loads the model (with a spinner) or says why it cannot
if base is None:
    st.stop()
settings = _checked_node(base, _settings())
grown = _grow_all(base, settings)
if grown is None:
    _write_url(settings)
    st.stop()
settings = _open_reached(grown, settings)
roots = [drawn_tree(g) for g in grown]

for index, (column, g, root) in enumerate(zip(_side_by_side(len(grown)), grown, roots, strict=True)):
    with column:
        if len(grown) > 1:
            st.markdown(f"**{'Base' if index == 0 else 'Fine-tuned'}: {markdown_literal(g.model)}**")
        _draw(g, root, index, settings)
st.caption(_legend(settings.mode))

pick_col, close_col = st.columns([4, 1])
with pick_col:
    _node_picker(roots[-1], settings)
close_col.button(
    "⟲ Close",
    on_click=_close,
    disabled=settings.node is None,
    help="Close the opened nodes.",
    width="stretch",
)
_continue_link(roots[-1], settings)

for column, g, root in zip(_side_by_side(len(grown)), grown, roots, strict=True):
    with column:
        if g.search is not None and not presenting():
            _beams_table(g, root)
        if g.sampled is not None:
            _samples_view(g, root)

if not presenting():
    exported = grown[0].to_json() if len(grown) == 1 else {"base": grown[0].to_json(), "tuned": grown[1].to_json()}
    st.download_button(
        "⬇ The tree as JSON",
        json.dumps(exported, ensure_ascii=False, indent=1),
        f"generation-tree-{settings.mode}.json",
        "application/json",
        key="tr_json",
    )
    st.caption("The chart's camera icon saves it as a PNG.")
_write_url(settings)
