"""Compare: was fine-tuning worth it, or would a better prompt have done?

Zero-shot, few-shot and fine-tuned answers to the same prompts, with the same
decoding and seed, judged the same way (``core.compare``); then one prompt's
next-token distribution before and after an adapter, with a strength slider
(``core.shift``). Adapters are views of the one base model in memory.
"""

from __future__ import annotations

from ui.router import require_router

require_router()


import pandas as pd
import streamlit as st

from core.backends import LocalBackend
from core.compare import Comparison, contenders, run_comparison
from core.datasets import BUILTIN_DATASETS, Dataset, load_dataset, parse_upload, typed_items
from core.distributions import SamplingSettings, next_token_distribution
from core.errors import LabError
from core.finetune import list_adapters, saved_adapter
from core.prompts import Example, pick_shots, prompt_ids, shared_opening
from core.shift import distribution_shift
from ui.charts import PLOTLY_CONFIG
from ui.compare_charts import accuracy_figure, shift_figure
from ui.session import (
    ADAPTER,
    current_api_backend,
    current_base_model,
    presenting,
    runs_on_torch_caption,
    show_error,
    using_api,
)
from ui.widgets import choice, export_buttons

DATASET, UPLOAD, SOURCE, COUNT, TYPED = "cmp_dataset", "cmp_upload", "cmp_source", "cmp_count", "cmp_typed"
ON_TORCH = "adapters run on torch, and so does the base model here, so that columns differ only by the adapter."
ADAPTERS, SHOTS, WITH_API, NORMALISED = "cmp_adapters", "cmp_shots", "cmp_api", "cmp_normalised"
TEMPERATURE, TOP_P, MAX_NEW, SEED = "cmp_temperature", "cmp_top_p", "cmp_max_new", "cmp_seed"
RUN, RESULT, EXAMPLES = "cmp_run", "cmp_result", "cmp_examples"
SHIFT_PROMPT, SHIFT_ADAPTER, STRENGTH = "cmp_shift_prompt", "cmp_shift_adapter", "cmp_strength"
UPLOADED, HELD_OUT, TYPED_SOURCE = "upload", "held_out", "typed"


def _init() -> None:
    """First visit: the dataset and adapter may come from the URL (the fine-tune page's Compare opens it so)."""
    linked = st.query_params.get("adapter")
    if linked:
        st.session_state[ADAPTERS] = [linked]
        st.session_state.pop(RESULT, None)  # a result for other columns would mislead
        del st.query_params["adapter"]
    if st.query_params.get("dataset") in BUILTIN_DATASETS:
        st.session_state[DATASET] = st.query_params["dataset"]
        del st.query_params["dataset"]
    st.session_state.setdefault(DATASET, "sentiment")
    st.session_state.setdefault(SOURCE, HELD_OUT)
    st.session_state.setdefault(SHOTS, 4)
    st.session_state.setdefault(NORMALISED, True)
    st.session_state.setdefault(TEMPERATURE, 0.0)
    st.session_state.setdefault(TOP_P, 1.0)
    st.session_state.setdefault(SEED, 0)
    st.session_state.setdefault(STRENGTH, 1.0)


def _dataset() -> Dataset | None:
    if st.session_state[DATASET] != UPLOADED:
        return load_dataset(st.session_state[DATASET])
    upload = st.session_state.get(UPLOAD)
    if upload is None:
        st.info("Upload a .csv or .jsonl file with `prompt` and `completion` columns, or chat `messages`.")
        return None
    return parse_upload(upload.getvalue(), upload.name)


def _default_adapters(dataset: Dataset, names: list[str]) -> list[str]:
    """The sidebar's adapter, else the newest two trained on this dataset."""
    chosen = st.session_state.get(ADAPTER)
    if chosen in names:
        return [chosen]
    return [a.name for a in list_adapters() if a.training.get("dataset") == dataset.name][:2]


def _prompt_choice(dataset: Dataset) -> list[Example]:
    choice("Prompts", {HELD_OUT: "Held-out prompts from the dataset", TYPED_SOURCE: "Type your own"}, SOURCE)
    if st.session_state[SOURCE] == TYPED_SOURCE:
        st.text_area(
            "One prompt per line; add `=> expected answer` to judge it",
            key=TYPED,
            height=120,
            placeholder="Review: The soup was cold and the waiter rude. => negative",
        )
        return typed_items(st.session_state.get(TYPED) or "")
    total = len(dataset.eval)
    st.session_state.setdefault(COUNT, min(8, total))
    st.session_state[COUNT] = min(st.session_state[COUNT], total)
    if total > 1:
        st.slider("How many held-out prompts", 1, total, key=COUNT, help="Each column answers every prompt.")
    return list(dataset.eval[: st.session_state[COUNT]])


def _setup() -> tuple[Dataset | None, list[Example], list[str]]:
    left, right = st.columns(2, gap="large")
    with left:
        st.selectbox(
            "Dataset (its training split gives the few-shot examples)",
            [*BUILTIN_DATASETS, UPLOADED],
            key=DATASET,
            format_func=lambda d: BUILTIN_DATASETS[d].title if d in BUILTIN_DATASETS else "Upload a file…",
        )
        if st.session_state[DATASET] == UPLOADED:
            st.file_uploader("A .csv or .jsonl file", type=["csv", "jsonl"], key=UPLOAD)
        try:
            dataset = _dataset()
        except LabError as exc:
            show_error(exc)
            dataset = None
        examples = _prompt_choice(dataset) if dataset else []
    names = [a.name for a in list_adapters()]
    with right:
        if dataset is not None and ADAPTERS not in st.session_state:
            st.session_state[ADAPTERS] = _default_adapters(dataset, names)
        st.session_state[ADAPTERS] = [a for a in st.session_state.get(ADAPTERS, []) if a in names]
        st.multiselect(
            "Fine-tuned adapters",
            names,
            key=ADAPTERS,
            placeholder="Train one on the Fine-tune page" if not names else "Choose adapters",
            help="Each is switched on over the same base model, one at a time.",
        )
        st.slider("Few-shot examples", 0, 8, key=SHOTS, help="Solved training examples put before the prompt; 0: none.")
        if using_api():
            st.checkbox("Also ask the API model from the sidebar (zero-shot)", key=WITH_API)
        with st.expander("Decoding — the same for every column"):
            st.slider("Temperature", 0.0, 2.0, key=TEMPERATURE, step=0.05, help="0 is greedy: always the top token.")
            st.slider("top-p", 0.05, 1.0, key=TOP_P, step=0.05)
            default_new = dataset.max_new_tokens if dataset else 32
            st.number_input("Max new tokens", 1, 256, value=default_new, key=MAX_NEW)
            st.number_input("Seed", 0, 2**31 - 1, key=SEED)
            st.checkbox("Fold case and punctuation when matching", key=NORMALISED)
    return dataset, examples, st.session_state[ADAPTERS]


def _run(dataset: Dataset | None, examples: list[Example], adapter_names: list[str]) -> None:
    base = current_base_model()
    if base is None:
        return
    runs_on_torch_caption(base, ON_TORCH)
    try:
        views = [(a.name, LocalBackend(base.with_adapter(a.ref()))) for a in list_adapters() if a.name in adapter_names]
        shots = pick_shots(dataset.train, st.session_state[SHOTS], st.session_state[SEED]) if dataset else ()
        api = current_api_backend() if using_api() and st.session_state.get(WITH_API) else None
        columns = contenders(LocalBackend(base), views, shots, api)
        progress = st.progress(0.0, text="Asking every column…")
        done: list[int] = []

        def advance(_row: object) -> None:
            done.append(1)
            progress.progress(len(done) / len(examples), text=f"{len(done)} of {len(examples)} prompts answered")

        result = run_comparison(
            columns,
            examples,
            dataset,
            SamplingSettings(temperature=st.session_state[TEMPERATURE], top_p=st.session_state[TOP_P]),
            seed=int(st.session_state[SEED]),
            max_new_tokens=int(st.session_state.get(MAX_NEW) or 32),
            normalised=st.session_state[NORMALISED],
            on_row=advance,
        )
        progress.empty()
    except LabError as exc:
        show_error(exc)
        return
    st.session_state[RESULT] = result
    st.session_state[EXAMPLES] = examples


def _mark(correct: bool | None) -> str:
    return {True: "✅ ", False: "❌ "}.get(correct, "")


def _results(result: Comparison) -> None:
    summaries = result.summaries()
    st.subheader("Accuracy")
    st.caption(f"A hit: {result.target}.")
    if any(s.accuracy is not None for s in summaries):
        st.plotly_chart(accuracy_figure(summaries, presenting()), config=PLOTLY_CONFIG, key="cmp_accuracy")
    table = pd.DataFrame(
        {
            "column": s.title,
            "accuracy": None if s.accuracy is None else f"{s.accuracy:.0%}",
            "log-likelihood of the target (nats/token)": s.mean_target_logprob,
            "tokens per answer": s.mean_tokens,
            "seconds per answer": s.mean_seconds,
        }
        for s in summaries
    )
    st.dataframe(table, hide_index=True, width="stretch")
    st.subheader("Answers side by side")
    shared = shared_opening([row.prompt for row in result.rows])
    if shared:
        st.caption(f"Every prompt begins with: *{' '.join(shared.split())}* — shown as “…” below.")
    side = pd.DataFrame(
        {
            "prompt": ("…" if shared else "") + row.prompt[len(shared) :],
            **({"expected": row.expected} if any(r.expected for r in result.rows) else {}),
            **{title: _mark(a.correct) + a.text for (_, title), a in zip(result.columns, row.answers, strict=True)},
        }
        for row in result.rows
    )
    widths = {name: st.column_config.TextColumn(width="medium") for name in side.columns if name != "expected"}
    st.dataframe(side, hide_index=True, width="stretch", column_config=widths)
    export_buttons("Comparison", result.table_rows(), result.to_json(), "comparison")


@st.fragment
def _shift(examples: list[Example], adapter_names: list[str]) -> None:
    """One prompt's next token, base against tuned, with the adapter's strength on a slider."""
    base = current_base_model()
    if base is None:
        return
    runs_on_torch_caption(base, ON_TORCH)
    adapters = [a.name for a in list_adapters() if a.name in adapter_names]
    left, right = st.columns([3, 1])
    prompts = {e.prompt: e for e in examples}
    left.selectbox("Prompt", list(prompts), key=SHIFT_PROMPT, format_func=lambda p: p.replace("\n", " ")[:120])
    right.selectbox("Adapter", adapters, key=SHIFT_ADAPTER)
    st.slider(
        "Adapter strength (LoRA scale)",
        0.0,
        1.0,
        key=STRENGTH,
        step=0.05,
        help="0 is the base model exactly; 1 is the adapter as trained. In between, the LoRA update is scaled.",
    )
    example = prompts.get(st.session_state.get(SHIFT_PROMPT)) or examples[0]
    chosen = st.session_state.get(SHIFT_ADAPTER)
    adapter = chosen if chosen in adapters else adapters[0]
    try:
        ids = prompt_ids(base.tokenizer, example)
        tuned = base.with_adapter(saved_adapter(adapter, st.session_state[STRENGTH]))
        shift = distribution_shift(next_token_distribution(base, ids), next_token_distribution(tuned, ids))
    except LabError as exc:
        show_error(exc)
        return
    a, b, c = st.columns(3)
    a.metric("KL(tuned ‖ base)", f"{shift.kl_tuned_base_bits:.3f} bits", help="0 when the two agree.")
    b.metric("KL(base ‖ tuned)", f"{shift.kl_base_tuned_bits:.3f} bits", help="KL is not symmetric.")
    c.metric("Jensen–Shannon", f"{shift.js_bits:.3f} bits", help="Symmetric; 0 = the same, 1 = nothing in common.")
    st.plotly_chart(shift_figure(shift, presenting()), config=PLOTLY_CONFIG, key="cmp_shift")


_init()
st.title("⚖️ Compare: zero-shot, few-shot, fine-tuned")
st.markdown(
    "Was fine-tuning worth it, or would a better prompt have done? Every column answers **the same prompts with "
    "the same decoding and seed**: the base model alone (zero-shot), the base model with a few solved examples "
    "in its prompt (few-shot), and each fine-tuned adapter."
)
dataset, examples, adapter_names = _setup()
st.button(
    "Run the comparison",
    type="primary",
    disabled=not examples,
    on_click=lambda: st.session_state.update({RUN: True}),
)
if st.session_state.pop(RUN, False):
    _run(dataset, examples, adapter_names)
if RESULT in st.session_state:
    _results(st.session_state[RESULT])
st.divider()
st.subheader("What the adapter did to the next token")
chosen_examples = st.session_state.get(EXAMPLES) or examples
if not adapter_names:
    st.info("Choose a fine-tuned adapter above to see how it moves the next-token distribution.")
elif not chosen_examples:
    st.info("Choose or type a prompt above.")
else:
    _shift(chosen_examples, adapter_names)
