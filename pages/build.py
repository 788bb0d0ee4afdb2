"""Build your own: text as its own label, a tiny model pretrained from scratch, and what "large" means.

Three sections. The first turns a text into the (context -> next token)
pairs pretraining learns from. The second sizes a tiny Llama (the parameter
count and memory follow the sliders live, in a fragment), trains it as a
background job (``core.pretrain.start_pretrain_job``: the fine-tuning job
machinery, one job per machine) and polls its folder once a second for the
loss and the samples; a saved model opens in the explorer like any other.
The third breaks the loaded model's parameters down and puts sizes and
training compute on one log scale.
"""

from __future__ import annotations

from ui.router import require_router

require_router()

import functools
import math
from pathlib import Path

import pandas as pd
import streamlit as st

from core.errors import LabError
from core.jobs.folder import JobState
from core.jobs.training import TrainingResult
from core.models import is_loaded
from core.pretrain import (
    DEFAULT_CORPUS,
    PUBLISHED_MODELS,
    Corpus,
    PretrainConfig,
    TinyModelInfo,
    delete_tiny_model,
    find_pretrain_job,
    job_samples,
    list_tiny_models,
    parameter_breakdown,
    parameter_count,
    start_pretrain_job,
    training_memory,
    training_pairs,
)
from core.pretrain.architecture import gigabytes
from core.pretrain.jobs import job_vocabulary
from core.pretrain.library import PRETRAIN
from core.pretrain.sizes import compute_optimal_tokens, scientific, short_count, training_flops
from core.pretrain.tokenizer import CHAR, MODEL, TOKENIZERS, make_tokenizer, vocabulary_size
from core.pretrain.windows import tokens_needed
from ui.build_charts import breakdown_figure, samples_html, sizes_figure, window_figure
from ui.charts import PLOTLY_CONFIG, loss_figure
from ui.corpus import corpus_choice as shared_corpus_choice
from ui.jobs import (
    duration,
    follow_attached_job,
    model_card,
    report_later,
    saved_list,
    show_reported,
    start_button,
)
from ui.session import (
    MODEL_DTYPE,
    choose_model,
    current_model,
    presenting,
    require_teacher,
    teacher_callback,
    teacher_only,
    using_api,
)

PAIRS_TEXT, PAIRS_TOKENIZER, PAIRS_CONTEXT = "bd_pairs_text", "bd_pairs_tokenizer", "bd_pairs_context"
CORPUS, UPLOAD, TOKENIZER = "bd_corpus", "bd_upload", "bd_tokenizer"
LAYERS, WIDTH, HEADS, CONTEXT = "bd_layers", "bd_d_model", "bd_heads", "bd_context"
STEPS, BATCH, LR = "bd_steps", "bd_batch", "bd_lr"
ERROR, GO_EXPLORE, SAVED, RUN = "bd_error", "bd_go_explore", "bd_saved", "run"
PLANNED = "bd_planned_parameters"  # the size panel's count, for the comparison chart
TRAIN, DELETE, LOAD = "start a training job", "delete a saved model", "load a model that is not loaded yet"
WIDTHS, HEAD_CHOICES = [32, 64, 96, 128, 192, 256, 384, 512], [1, 2, 4, 8]
CONTEXTS, BATCHES = [16, 32, 64, 128, 256], [4, 8, 16, 32, 64]
RATES = [3e-4, 1e-3, 3e-3, 1e-2]
DEFAULTS = PretrainConfig()
PAIRS_EXAMPLE = "The cat sat on the mat. The dog sat on the log."
SAMPLES_SHOWN = 8

st.session_state.setdefault(PAIRS_TEXT, PAIRS_EXAMPLE)
st.session_state.setdefault(PAIRS_TOKENIZER, CHAR)
st.session_state.setdefault(PAIRS_CONTEXT, 8)
st.session_state.setdefault(CORPUS, DEFAULT_CORPUS)
st.session_state.setdefault(TOKENIZER, DEFAULTS.tokenizer)
for key, default in (
    (LAYERS, DEFAULTS.layers),
    (WIDTH, DEFAULTS.d_model),
    (HEADS, DEFAULTS.heads),
    (CONTEXT, DEFAULTS.context),
    (STEPS, DEFAULTS.max_steps),
    (BATCH, DEFAULTS.batch_size),
    (LR, DEFAULTS.learning_rate),
):
    st.session_state.setdefault(key, default)


@st.cache_resource(max_entries=1, show_spinner=False)
def _model_tokenizer():
    """The embedded model's tokenizer, shared by all sessions for the pairs view (never mutated)."""
    return make_tokenizer(MODEL, "", 1_000_000)


@st.cache_data(max_entries=8, show_spinner="Counting the corpus's tokens…")
def _corpus_tokens(kind: str, name: str, text: str) -> tuple[int, int]:
    """(vocabulary size, tokens in the corpus) for a tokenizer kind; ``name`` keys the cache readably."""
    if kind == CHAR:
        return vocabulary_size(CHAR, text), len(text)
    return vocabulary_size(MODEL, text), len(_model_tokenizer()(text, add_special_tokens=False)["input_ids"])


report = report_later(ERROR)


# --- Text is its own label -------------------------------------------------------------------------------------


def pairs_section() -> None:
    st.markdown(
        "Pretraining needs no labelled data. Every position of a text is an exercise: *read the tokens so far, "
        "guess the next one* — and the text itself holds the answer. A model reads at most its **context "
        "window** of tokens, so the window slides along the text."
    )
    cols = st.columns([3, 1.2, 1])
    cols[0].text_area("Text", key=PAIRS_TEXT, height=110)
    cols[1].radio("Tokens", list(TOKENIZERS), key=PAIRS_TOKENIZER, format_func=TOKENIZERS.get)
    cols[2].slider("Context window", 1, 32, key=PAIRS_CONTEXT, help="The most tokens the model reads at once.")
    text, kind = st.session_state[PAIRS_TEXT], st.session_state[PAIRS_TOKENIZER]
    try:
        tokenizer = make_tokenizer(CHAR, text, 10**6) if kind == CHAR else _model_tokenizer()
        result = training_pairs(tokenizer, text, st.session_state[PAIRS_CONTEXT])
    except LabError as exc:
        st.error(str(exc), icon="⚠️")
        return
    st.markdown(
        f"**{len(result.tokens):,} tokens → {result.total_pairs:,} training examples**, and nobody wrote a label: "
        "the answer to each is simply the token that comes next."
    )
    st.plotly_chart(window_figure(result, presenting()), config=PLOTLY_CONFIG, width="stretch", key="bd_window")
    st.caption(
        "Each row is one example: the model reads the blue tokens and must predict the amber one. Grey: read "
        "before, but outside the window; white: still to come."
    )
    rows = [
        {
            "#": pair.position,
            "the model reads": ("…" if pair.truncated else "") + "".join(t.display for t in pair.context),
            "it must predict": pair.target.display,
            "token id": pair.target.id,
        }
        for pair in result.pairs
    ]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", height=260)


# --- Train a tiny model ----------------------------------------------------------------------------------------


def corpus_choice() -> Corpus | None:
    hint = "Upload a plain-text file (UTF-8): a book, your notes, some code."
    return shared_corpus_choice(CORPUS, UPLOAD, hint, describe=True)


def _config(corpus: Corpus) -> PretrainConfig:
    s = st.session_state
    return PretrainConfig(
        corpus=corpus.name,
        tokenizer=s[TOKENIZER],
        layers=int(s[LAYERS]),
        d_model=int(s[WIDTH]),
        heads=int(s[HEADS]),
        context=int(s[CONTEXT]),
        max_steps=int(s[STEPS]),
        batch_size=int(s[BATCH]),
        learning_rate=float(s[LR]),
    )


@st.fragment
def size_panel(corpus: Corpus) -> None:
    """The size and training widgets, with the parameter count and memory they mean, rerun on their own."""
    cols = st.columns(4)
    cols[0].slider("Layers", 1, 8, key=LAYERS, help="Transformer blocks, each attention then an MLP.")
    cols[1].select_slider("Width (d_model)", WIDTHS, key=WIDTH, help="Numbers per token on the residual stream.")
    cols[2].select_slider("Attention heads", HEAD_CHOICES, key=HEADS, help="Each head reads width / heads numbers.")
    cols[3].select_slider("Context length", CONTEXTS, key=CONTEXT, help="The most tokens the model reads at once.")
    cols = st.columns(4)
    cols[0].radio("Tokens", list(TOKENIZERS), key=TOKENIZER, format_func=TOKENIZERS.get)
    cols[1].number_input("Steps", 10, 5000, key=STEPS, step=50, help="Optimizer steps.")
    cols[2].select_slider("Batch size", BATCHES, key=BATCH, help="Windows of text per step.")
    cols[3].select_slider(
        "Learning rate", RATES, key=LR, format_func=lambda v: f"{v:g}", help="Peak rate; warm-up, then cosine decay."
    )
    config = _config(corpus)
    try:
        size = config.size.validate()
    except LabError as exc:
        st.error(str(exc), icon="⚠️")
        return
    vocab, corpus_tokens = _corpus_tokens(config.tokenizer, corpus.name, corpus.text)
    count = parameter_count(size, vocab)
    st.session_state[PLANNED] = count.total
    memory = training_memory(size, vocab, config.batch_size)
    seen = config.max_steps * config.tokens_per_step
    cols = st.columns(4)
    cols[0].metric("Parameters", short_count(count.total), help=f"{count.total:,} exactly")
    cols[1].metric(
        "Memory to train", f"≈ {gigabytes(memory.total_bytes)}", help="Weights, gradients, Adam, activations."
    )
    cols[2].metric(
        "Tokens it will read", short_count(seen), help=f"{config.max_steps} steps × {config.tokens_per_step}"
    )
    cols[3].metric("Tokens per parameter", f"{seen / count.total:.2g}", help="Chinchilla's rule of thumb: about 20.")
    st.caption(
        f"Vocabulary {vocab:,} · embeddings {count.embeddings:,} · attention {count.attention:,} · "
        f"MLP {count.mlp:,} · norms {count.norms:,} · corpus {corpus_tokens:,} tokens"
    )
    if not memory.fits:
        st.error(
            f"Too big: training would take about {gigabytes(memory.total_bytes)} but "
            f"{gigabytes(memory.available_bytes)} is free. Make it smaller.",
            icon="⚠️",
        )
    if corpus_tokens < tokens_needed(size.context, config.eval_fraction):
        st.warning(f"The corpus ({corpus_tokens:,} tokens) is too short for a context of {size.context}.", icon="✂️")


@teacher_callback(TRAIN, report)
def _start(corpus: Corpus) -> None:
    st.query_params[RUN] = start_pretrain_job(_config(corpus), corpus).name


_delete = teacher_callback(DELETE, report)(delete_tiny_model)


def _open_in_explorer(model_dir: Path) -> None:
    try:
        if not _loaded(model_dir):
            require_teacher(LOAD)
    except LabError as exc:
        report(exc)
        return
    choose_model(str(model_dir))
    st.session_state[GO_EXPLORE] = True  # a flag: st.switch_page cannot run inside a callback


def _loaded(model_dir: Path) -> bool:
    return is_loaded(str(model_dir), st.session_state[MODEL_DTYPE])


def _open_button(model_dir: Path | str, key: str) -> None:
    """Open a saved model in the explorer; in a student's session only once the teacher has loaded it."""
    locked = None if _loaded(Path(model_dir)) else teacher_only(LOAD)
    st.button(
        "🎲 Open in the explorer",
        key=key,
        on_click=_open_in_explorer,
        args=(Path(model_dir),),
        disabled=locked is not None,
    )
    if locked:
        st.caption(locked)


def _samples(job: JobState) -> None:
    samples = job_samples(job.path)
    if not samples:
        return
    st.markdown("**What it writes** — the same prompt and the same random draws: only what it learned changes.")
    if len(samples) > SAMPLES_SHOWN:
        samples = [samples[0], *samples[1 - SAMPLES_SHOWN :]]  # the noise it started from, and the latest
    st.markdown(samples_html(samples), unsafe_allow_html=True)


def _curve_and_samples(job: JobState) -> None:
    left, right = st.columns(2)
    with left:
        if job.metrics:
            figure = loss_figure(job.metrics, job.max_steps, presenting())
            vocabulary = job_vocabulary(job.path)
            if vocabulary:
                uniform = math.log(vocabulary)
                figure.add_hline(y=uniform, line_dash="dot", line_color="#94a3b8")
                highest = max(m.get("loss") or m.get("eval_loss") or 0 for m in job.metrics)
                figure.update_yaxes(range=[0, max(uniform, highest) * 1.1])
            st.plotly_chart(figure, config=PLOTLY_CONFIG, width="stretch", key=f"bd_loss_{job.name}")
            if vocabulary:
                st.caption(
                    f"Dotted: a uniform guess over the {vocabulary:,} tokens scores ln {vocabulary:,} = {uniform:.2f}. "
                    "Every nat below it is something the model learned from the text."
                )
    with right:
        _samples(job)


def _finished(job: JobState) -> None:
    result = job.result_as(TrainingResult)
    if result is None:
        return
    if result.output_dir:
        _open_button(result.output_dir, "bd_open_job")
    cols = st.columns(4)
    if result.loss_first is not None and result.loss_last is not None:
        cols[0].metric(
            "Training loss",
            f"{result.loss_last:.3f}",
            f"{result.loss_last - result.loss_first:+.3f}",
            delta_color="inverse",
        )
    if result.eval_loss_after is not None:
        cols[1].metric(
            "Held-out loss",
            f"{result.eval_loss_after:.3f}",
            f"{result.eval_loss_after - result.eval_loss_before:+.3f}",
            delta_color="inverse",
        )
    cols[2].metric("Time", duration(result.seconds))
    if result.tokens_per_second:
        cols[3].metric("Throughput", f"{result.tokens_per_second:,.0f} tokens/s")


def saved_models(models: list[TinyModelInfo]) -> None:
    rows = [
        {
            "name": m.name,
            "corpus": m.training.get("corpus"),
            "tokens": m.training.get("tokenizer"),
            "parameters": m.parameters,
            "steps": m.training.get("steps"),
            "held-out loss": m.training.get("eval_loss_after"),
            "partial": m.partial,
        }
        for m in models
    ]
    chosen = saved_list("Saved tiny models", "Model", rows, SAVED)
    if chosen is None:
        return
    model = next(m for m in models if m.name == chosen)
    locked = teacher_only(DELETE)
    cols = st.columns([1.4, 1, 3])
    with cols[0]:
        _open_button(model.path, "bd_open_saved")
    cols[1].button("🗑 Delete", key="bd_delete", on_click=_delete, args=(chosen,), disabled=locked is not None)
    if locked:
        cols[2].caption(locked)
    model_card(model.card)


def train_section() -> None:
    st.markdown(
        "Train a small **Llama** from random weights on a text, with the same job machinery as fine-tuning. "
        "Watch the loss fall and the samples turn from noise into words, then open the model in the explorer."
    )
    corpus = corpus_choice()
    if corpus is not None:
        with st.expander(f"{corpus.characters:,} characters. Its beginning:"):
            st.text(corpus.text[:600])
        size_panel(corpus)
        start_button("▶ Train", "bd_train", functools.partial(_start, corpus), "the job", teacher_only(TRAIN))
    show_reported(ERROR)
    follow_attached_job(RUN, find_pretrain_job, PRETRAIN, "Training", "model", _curve_and_samples, _finished)


# --- What large means ------------------------------------------------------------------------------------------


def _share(fraction: float) -> str:
    return "<0.1%" if 0 < fraction < 0.001 else f"{fraction:.1%}"


def _ratio(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def _years(value: float) -> str:
    return f"{value / 1e6:,.1f} million years" if value >= 1e6 else f"{value:,.0f} years"


def _compute_table() -> pd.DataFrame:
    rows = [
        {
            "model": m.name,
            "year": str(m.year),
            "parameters": short_count(m.parameters),
            "training tokens": short_count(m.training_tokens) if m.training_tokens else "not published",
            "tokens per parameter": _ratio(m.tokens_per_parameter) if m.tokens_per_parameter else "—",
            "training compute (6·N·D)": f"{scientific(m.training_flops, 1)} FLOPs" if m.training_flops else "—",
            "source": m.source,
        }
        for m in PUBLISHED_MODELS
    ]
    return pd.DataFrame(rows)


def large_section(models: list[TinyModelInfo]) -> None:
    entries: list[tuple[str, float, str]] = []
    if st.session_state.get(PLANNED):
        entries.append(("your tiny model (as set)", st.session_state[PLANNED], "yours"))
    latest = models[0] if models else None
    if latest is not None and latest.parameters:
        entries.append((f"{latest.name} (saved)", latest.parameters, "yours"))
    if using_api():
        st.info("A model behind an API does not show its weights: switch the sidebar to *Here* to break one down.")
        lm = None
    else:
        lm = current_model()
    if lm is not None:
        with lm.using() as model:
            breakdown = parameter_breakdown(model)
        st.markdown(f"#### Where the {short_count(breakdown.total)} parameters of {lm.display_name} sit")
        shares = " · ".join(f"{k} {_share(n / breakdown.total)}" for k, n in breakdown.by_kind.items())
        tied = " The output layer reuses the embedding table (tied): counted once." if breakdown.tied_embeddings else ""
        st.caption(f"{breakdown.total:,} parameters in {breakdown.tensors} tensors: {shares}.{tied}")
        st.plotly_chart(
            breakdown_figure(breakdown, presenting()), config=PLOTLY_CONFIG, width="stretch", key="bd_breakdown"
        )
        entries.append((f"{lm.display_name} (loaded)", breakdown.total, "loaded"))
    loaded_name = lm.display_name if lm is not None else ""
    entries += [(m.name, m.parameters, "published") for m in PUBLISHED_MODELS if not loaded_name.startswith(m.name)]
    st.markdown("#### Sizes on one scale")
    st.plotly_chart(sizes_figure(entries, presenting()), config=PLOTLY_CONFIG, width="stretch", key="bd_sizes")
    st.caption("Orange: yours · indigo: the model loaded in the sidebar · grey: published sizes.")
    gpt3 = next(m for m in PUBLISHED_MODELS if m.name == "GPT-3")
    chinchilla = next(m for m in PUBLISHED_MODELS if m.name == "Chinchilla")
    st.markdown(
        "**Compute.** Training N parameters on D tokens takes about **6·N·D floating-point operations** "
        "(about 2N per token forward and 4N backward; Kaplan et al. 2020). GPT-3: 6 × 175B × 300B ≈ "
        f"{scientific(gpt3.training_flops)} FLOPs, the 3.14e23 its paper reports.  \n"
        "**Data.** For the best model a fixed compute budget can buy, train on about **20 tokens per parameter** "
        f"(Hoffmann et al. 2022): Chinchilla, {short_count(chinchilla.parameters)} parameters on "
        f"{short_count(chinchilla.training_tokens)} tokens. GPT-3 read {gpt3.tokens_per_parameter:.1f} per parameter; "
        "today's small models read far more than 20, because a small model that has read more is cheaper to run."
    )
    if latest is not None and latest.training.get("tokens_per_second"):
        n, rate = latest.parameters, latest.training["tokens_per_second"]
        flops_per_second = training_flops(n, rate)
        years = gpt3.training_flops / flops_per_second / (365.25 * 24 * 3600)
        st.markdown(
            f"**Your {latest.name}:** {n:,} parameters, {latest.training['tokens_seen']:,} tokens, about "
            f"{scientific(training_flops(n, latest.training['tokens_seen']), 1)} FLOPs (Chinchilla would want "
            f"{short_count(compute_optimal_tokens(n))} tokens). It trained at about {flops_per_second / 1e9:,.1f} "
            f"GFLOP/s here: at that speed GPT-3's training would take about **{_years(years)}**."
        )
    st.dataframe(_compute_table(), hide_index=True, width="stretch")


if st.session_state.pop(GO_EXPLORE, False):
    st.switch_page("pages/explorer.py")
st.title("🧱 Build your own")
st.caption(
    "Where a language model comes from: raw text, a next-token exercise at every position, and a lot of compute. "
    "Make a tiny one here, and see how far it is from the large ones."
)
saved = list_tiny_models()
pairs_tab, train_tab, large_tab = st.tabs(["Text is its own label", "Train a tiny model", "What large means"])
with pairs_tab:
    pairs_section()
with train_tab:
    train_section()
    saved_models(saved)
with large_tab:
    large_section(saved)
