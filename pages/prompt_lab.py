"""Prompt lab: prompt variants side by side, and in-context learning measured.

The model as it is, steered only by what it reads. A task (a built-in
dataset, an upload, or typed items); two to four variants (a system message,
a template with ``{input}``, k examples, a format hint), each asked the same
items with the same decoding and seed (``core.promptlab.run_variants``); then
the shot curve (``core.promptlab.shot_curve``): accuracy and P(expected)
against k, with a band over the examples' orders and an optional random-labels
curve. The variants live in the URL, so a link opens the same comparison.

Runs happen in this session, on the shared model's batching engine, and are
bounded: at most ``MAX_PAGE_ITEMS`` items, k at most 8, at most 5 orders.
"""

from __future__ import annotations

from ui.router import require_router

require_router()


import pandas as pd
import streamlit as st

from core.datasets import BUILTIN_DATASETS, load_dataset, parse_upload
from core.distributions import SamplingSettings
from core.errors import LabError
from core.promptlab import (
    PromptVariant,
    ShotCurve,
    Task,
    VariantsResult,
    run_variants,
    shot_curve,
    starting_variants,
    task_from_dataset,
    typed_task,
)
from core.promptlab.links import has_variants, variants_from_params, variants_to_params
from core.promptlab.shots import orderings
from ui.charts import PLOTLY_CONFIG
from ui.promptlab_charts import shot_curve_figure
from ui.session import current_backend, presenting, show_error, using_api
from ui.widgets import choice, export_buttons

SOURCE, DATASET, UPLOAD, COUNT = "pl_source", "pl_dataset", "pl_upload", "pl_count"
TYPED_ITEMS, TYPED_EXAMPLES, N_VARIANTS, TASK_ID = "pl_typed_items", "pl_typed_examples", "pl_n", "pl_task_id"
TEMPERATURE, SEED, MAX_NEW, NORMALISED, CHAT = "pl_temperature", "pl_seed", "pl_max_new", "pl_normalised", "pl_chat"
RUN, RESULT, LINK_WARNINGS = "pl_run", "pl_result", "pl_link_warnings"
CURVE_VARIANT, CURVE_KS, ORDERS, RANDOM, CURVE_RUN, CURVE = (
    "pl_curve_variant",
    "pl_curve_ks",
    "pl_orders",
    "pl_random",
    "pl_curve_run",
    "pl_curve",
)
BUILTIN, UPLOADED, TYPED = "builtin", "upload", "typed"
FIELDS = ("system", "template", "shots", "hint")
MAX_PAGE_ITEMS = 24  # a run asks items × variants (the curve: items × orders × k's): kept to a minute or two
MAX_PAGE_SHOTS, MAX_PAGE_ORDERS = 8, 5
CURVE_SHOTS = [0, 1, 2, 4, 8]
TYPED_ITEMS_DEFAULT = (
    "The soup was cold and the waiter rude. => negative\n"
    "Best concert I have been to in years. => positive\n"
    "The battery died after a single day. => negative\n"
    "A cosy room with a view of the sea. => positive"
)
TYPED_EXAMPLES_DEFAULT = (
    "The bread was stale and hard. => negative\n"
    "The staff remembered my name and my order. => positive\n"
    "The screen cracked in the first week. => negative\n"
    "Fresh flowers on every table, a delight. => positive"
)


def _key(field: str, i: int) -> str:
    return f"pl_{field}_{i}"


def _init() -> None:
    if st.query_params.get("dataset") in BUILTIN_DATASETS:
        st.session_state.setdefault(DATASET, st.query_params["dataset"])
    st.session_state.setdefault(SOURCE, BUILTIN)
    st.session_state.setdefault(DATASET, "sentiment")
    st.session_state.setdefault(N_VARIANTS, 2)
    st.session_state.setdefault(TYPED_ITEMS, TYPED_ITEMS_DEFAULT)
    st.session_state.setdefault(TYPED_EXAMPLES, TYPED_EXAMPLES_DEFAULT)
    st.session_state.setdefault(TEMPERATURE, 0.0)
    st.session_state.setdefault(SEED, 0)
    st.session_state.setdefault(NORMALISED, True)
    st.session_state.setdefault(CHAT, True)
    st.session_state.setdefault(CURVE_KS, CURVE_SHOTS)
    st.session_state.setdefault(ORDERS, 3)
    st.session_state.setdefault(RANDOM, False)


def _task() -> tuple[Task | None, tuple]:
    """The task the widgets describe, and what identifies it (a new one resets the variants to its defaults)."""
    choice(
        "Task",
        {BUILTIN: "Built-in dataset", UPLOADED: "Upload a file", TYPED: "Type items"},
        SOURCE,
        help="Items are asked and judged; examples (k of them) are shown solved before each item.",
    )
    source = st.session_state[SOURCE]
    if source == TYPED:
        left, right = st.columns(2)
        left.text_area("Items to ask, one per line: `input => expected`", key=TYPED_ITEMS, height=130)
        right.text_area("Examples the model may be shown (for k > 0)", key=TYPED_EXAMPLES, height=130)
        return typed_task(st.session_state[TYPED_ITEMS], st.session_state[TYPED_EXAMPLES]), (TYPED,)
    if source == UPLOADED:
        st.file_uploader("A .csv or .jsonl file (as for fine-tuning)", type=["csv", "jsonl"], key=UPLOAD)
        upload = st.session_state.get(UPLOAD)
        if upload is None:
            st.info("Upload a .csv or .jsonl file with `prompt` and `completion` columns, or chat `messages`.")
            return None, (UPLOADED,)
        dataset = parse_upload(upload.getvalue(), upload.name)
        identity: tuple = (UPLOADED, upload.name, upload.size)
    else:
        st.selectbox(
            "Dataset (items from its held-out split, examples from its training split)",
            list(BUILTIN_DATASETS),
            key=DATASET,
            format_func=lambda d: BUILTIN_DATASETS[d].title,
        )
        dataset = load_dataset(st.session_state[DATASET])
        identity = (BUILTIN, dataset.name)
    most = min(len(dataset.eval), MAX_PAGE_ITEMS)
    st.session_state[COUNT] = min(st.session_state.get(COUNT, 8), most)
    if most > 1:
        st.slider(
            "How many held-out items",
            1,
            most,
            key=COUNT,
            help=f"Every variant answers every item; at most {MAX_PAGE_ITEMS} here, so a run stays short "
            "(the command line has no such limit).",
        )
    return task_from_dataset(dataset, st.session_state[COUNT]), identity


def _load_variants(task: Task, identity: tuple) -> None:
    """On a new task, its starting variants into the widgets; on the first visit, a link's variants over them."""
    if st.session_state.get(TASK_ID) == identity:
        return
    defaults = starting_variants(task)
    if TASK_ID not in st.session_state and has_variants(st.query_params):
        variants, warnings = variants_from_params(st.query_params, defaults, MAX_PAGE_SHOTS)
        st.session_state[LINK_WARNINGS] = warnings
        st.session_state[N_VARIANTS] = len(variants)
    else:
        variants = list(defaults)
    for i, v in enumerate([*variants, *defaults[len(variants) :]]):
        for field in FIELDS:
            st.session_state[_key(field, i)] = getattr(v, field)
    st.session_state[TASK_ID] = identity
    st.session_state[MAX_NEW] = task.max_new_tokens
    st.session_state.pop(RESULT, None)  # answers to another task's items would mislead
    st.session_state.pop(CURVE, None)


def _variant_widgets(task: Task) -> list[PromptVariant]:
    st.radio("Variants", [2, 3, 4], key=N_VARIANTS, horizontal=True)
    columns = st.columns(st.session_state[N_VARIANTS], gap="medium")
    defaults = starting_variants(task)
    variants = []
    for i, column in enumerate(columns):
        name = defaults[i].name
        for field in FIELDS:  # a variant hidden on an earlier run lost its widgets' state: back to its defaults
            st.session_state.setdefault(_key(field, i), getattr(defaults[i], field))
        with column:
            st.markdown(f"**Variant {name}**")
            st.text_area("System message", key=_key("system", i), height=68, placeholder="none")
            st.text_area("Template: `{input}` is where each item goes", key=_key("template", i), height=140)
            st.slider("Examples (k)", 0, MAX_PAGE_SHOTS, key=_key("shots", i), help="Solved examples shown first.")
            st.text_input("Answer-format hint", key=_key("hint", i), placeholder="none")
        variants.append(PromptVariant(name, *(st.session_state[_key(field, i)] for field in FIELDS)))
    return variants


def _write_url(variants: list[PromptVariant]) -> None:
    wanted = variants_to_params(variants)
    if st.session_state[SOURCE] == BUILTIN:
        wanted["dataset"] = st.session_state[DATASET]
    if presenting():
        wanted["present"] = "1"
    if dict(st.query_params) != wanted:
        st.query_params.from_dict(wanted)


def _decoding() -> None:
    with st.expander("Decoding — the same for every variant"):
        cols = st.columns(4)
        cols[0].slider("Temperature", 0.0, 2.0, key=TEMPERATURE, step=0.05, help="0 is greedy: always the top token.")
        cols[1].number_input("Seed", 0, 2**31 - 1, key=SEED, help="For the draw of examples, their orders, sampling.")
        cols[2].number_input("Max new tokens", 1, 256, key=MAX_NEW, help="Each answer stops here, or at its end.")
        cols[3].checkbox("Fold case and punctuation", key=NORMALISED, help="'Positive.' then matches 'positive'.")
        if not using_api():
            st.checkbox(
                "Examples as chat turns (the model's chat template)",
                key=CHAT,
                help="Off: the prompt is plain text, each example a prompt/answer block, as for a base model.",
            )


def _common() -> dict:
    return {
        "settings": SamplingSettings(temperature=st.session_state[TEMPERATURE]),
        "seed": int(st.session_state[SEED]),
        "max_new_tokens": int(st.session_state.get(MAX_NEW) or 32),
        "chat": None if using_api() else st.session_state[CHAT],
        "normalised": st.session_state[NORMALISED],
    }


def _progress_bar(what: str):
    bar = st.progress(0.0, text=what)

    def advance(done: int, total: int) -> None:
        bar.progress(done / total, text=f"{what}: {done} of {total} prompts answered")

    return bar, advance


def _run(task: Task, variants: list[PromptVariant]) -> None:
    backend = current_backend()
    if backend is None:
        return
    bar, advance = _progress_bar("Asking every variant")
    try:
        st.session_state[RESULT] = run_variants(backend, task, variants, on_progress=advance, **_common())
    except LabError as exc:
        show_error(exc)
    bar.empty()


def _mark(correct: bool | None) -> str:
    return {True: "✅ ", False: "❌ "}.get(correct, "")


def _results(result: VariantsResult) -> None:
    st.subheader("Results")
    st.caption(
        f"A hit: {result.target}. P(expected) is the probability of the whole expected answer (the product of its "
        "tokens' probabilities, up to its end-of-turn token): a miss by a hair shows."
    )
    table = pd.DataFrame(
        {
            "variant": row["variant"],
            "accuracy": row["accuracy"],
            "mean P(expected)": row["mean_p_expected"],
            "mean answer length (tokens)": row["mean_tokens"],
        }
        for row in result.summary_rows()
    )
    percent = st.column_config.NumberColumn(format="percent")
    formats = {"accuracy": percent, "mean P(expected)": percent}
    st.dataframe(table, hide_index=True, width="stretch", column_config=formats)
    st.markdown("**Answers side by side**")
    side = pd.DataFrame(
        {
            "input": item.prompt,
            **({"expected": item.completion} if any(i.completion for i in result.items) else {}),
            **{
                v.name: _mark(answers[n].correct) + answers[n].text
                for v, answers in zip(result.variants, result.answers, strict=True)
            },
        }
        for n, item in enumerate(result.items)
    )
    widths = {name: st.column_config.TextColumn(width="medium") for name in side.columns if name != "expected"}
    st.dataframe(side, hide_index=True, width="stretch", column_config=widths)
    with st.expander("What the model reads: each variant's prompt for the first item"):
        for v, text in zip(result.variants, result.asked, strict=True):
            st.markdown(f"**{v.title}**")
            st.code(text, language=None, wrap_lines=True)
    export_buttons("Answers", result.table_rows(), result.to_json(), "prompt-lab")


def _curve_setup(task: Task, variants: list[PromptVariant]) -> PromptVariant:
    names = [v.name for v in variants]
    if st.session_state.get(CURVE_VARIANT) not in names:
        st.session_state[CURVE_VARIANT] = names[0]
    cols = st.columns([1, 2, 1.2, 1.4])
    cols[0].selectbox("Variant", names, key=CURVE_VARIANT, help="Its system message, template and hint; k varies.")
    cols[1].multiselect("Numbers of examples (k)", CURVE_SHOTS, key=CURVE_KS)
    cols[2].slider("Orders per k", 1, MAX_PAGE_ORDERS, key=ORDERS, help="The same k examples, shuffled: a band.")
    cols[3].checkbox("Also random labels", key=RANDOM, help="The examples' answers drawn at random.")
    ks = sorted(st.session_state[CURVE_KS])
    runs = sum(
        len(orderings(k, st.session_state[ORDERS], 0)) * (2 if st.session_state[RANDOM] and k else 1) for k in ks
    )
    st.caption(f"This asks {runs * len(task.items):,} prompts ({runs} runs of {len(task.items)} items).")
    return next(v for v in variants if v.name == st.session_state[CURVE_VARIANT])


def _run_curve(task: Task, variant: PromptVariant) -> None:
    backend = current_backend()
    if backend is None:
        return
    bar, advance = _progress_bar("Drawing the shot curve")
    try:
        st.session_state[CURVE] = shot_curve(
            backend,
            task,
            st.session_state[CURVE_KS],
            st.session_state[ORDERS],
            random_labels=st.session_state[RANDOM],
            variant=variant,
            on_progress=advance,
            **_common(),
        )
    except LabError as exc:
        show_error(exc)
    bar.empty()


def _curve(curve: ShotCurve) -> None:
    st.plotly_chart(shot_curve_figure(curve, presenting()), config=PLOTLY_CONFIG, key="pl_curve_chart")
    st.caption(
        f"{curve.items} items; each point is the mean over up to {curve.orders} orders of the same examples, the band "
        "their worst and best order."
    )
    export_buttons("Curve", curve.run_rows(), curve.to_json(), "shot-curve")


_init()
st.title("🧪 Prompt lab")
st.markdown(
    "The model as it is, steered only by what it reads. Write **two to four ways of asking** — a system message, "
    "an instruction with `{input}`, a few solved examples, a hint about the answer's format — and every variant "
    "answers **the same items with the same decoding and seed**."
)
try:
    task, identity = _task()
except LabError as exc:
    show_error(exc)
    task, identity = None, ()
if task is None:
    st.stop()
_load_variants(task, identity)
for warning in st.session_state.pop(LINK_WARNINGS, []):
    st.warning(warning, icon="🔗")
variants = _variant_widgets(task)
_write_url(variants)
_decoding()
st.button("Run the variants", type="primary", on_click=lambda: st.session_state.update({RUN: True}))
if st.session_state.pop(RUN, False):
    _run(task, variants)
if RESULT in st.session_state:
    _results(st.session_state[RESULT])

st.divider()
st.subheader("The shot curve: learning from examples in the prompt")
st.markdown(
    "How does accuracy grow with the number of solved examples in the prompt, and how much does their **order** "
    "matter? With *random labels* the examples' answers are drawn at random: if accuracy holds up, the model read "
    "the examples' format, not their labels."
)
curve_variant = _curve_setup(task, variants)
st.button(
    "Draw the shot curve",
    disabled=not st.session_state[CURVE_KS],
    on_click=lambda: st.session_state.update({CURVE_RUN: True}),
)
if st.session_state.pop(CURVE_RUN, False):
    _run_curve(task, curve_variant)
if CURVE in st.session_state:
    _curve(st.session_state[CURVE])
