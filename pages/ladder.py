"""Scaling ladder: what "large" buys, measured — a ladder of tiny models trained live, and one task across sizes.

Three tabs. *Climb a ladder* plans 3 to 5 tiny Llamas from ~17K to ~1.8M
parameters and trains them on the same text for the same tokens as one
background job (``core.ladder.start_ladder_job``: the shared job machinery,
one job per machine, Cancel keeps finished rungs, the URL re-attaches).
*Saved ladders* reopens any ladder from its folder, no retraining: held-out
loss against parameters with the fitted power law and SmolLM2-135M for
scale, the loss curves against compute, one sample per rung. *One task
across sizes* puts the same task items to every rung, the embedded model and
any model the teacher adds (``core.ladder.task``, built on ``core.compare``),
scored as accuracy or as P(expected).
"""

from __future__ import annotations

from ui.router import require_router

require_router()

import functools
from pathlib import Path

import pandas as pd
import streamlit as st

from core.datasets import BUILTIN_DATASETS, load_dataset
from core.embedded import EMBEDDED_DISPLAY_NAME
from core.errors import LabError
from core.jobs.folder import JobState
from core.ladder import (
    LADDER,
    MAX_RUNGS,
    MIN_RUNGS,
    Ladder,
    LadderConfig,
    delete_ladder,
    find_ladder_job,
    fit_rungs,
    list_ladders,
    read_ladder,
    start_ladder_job,
)
from core.ladder.task import SizedModel, TaskAcrossSizes, score_across_sizes
from core.models import LoadedModel, load_model, load_unshared
from core.pretrain import DEFAULT_CORPUS, Corpus
from core.pretrain.sizes import scientific, short_count
from core.pretrain.tokenizer import CHAR, vocabulary_size
from ui.charts import PLOTLY_CONFIG
from ui.corpus import corpus_choice as shared_corpus_choice
from ui.jobs import duration, follow_attached_job, report_later, saved_list, show_reported, start_button
from ui.ladder_charts import (
    METRIC_TITLES,
    P_EXPECTED,
    compute_figure,
    sample_html,
    scaling_figure,
    task_figure,
)
from ui.session import is_teacher, presenting, teacher_callback, teacher_only
from ui.widgets import choice

CORPUS, UPLOAD, RUNGS, SEED = "ld_corpus", "ld_upload", "ld_rungs", "ld_seed"
ERROR, SAVED, RUN, OPEN = "ld_error", "ld_saved", "run", "ladder"
TASK_DATASET, TASK_ITEMS, TASK_EMBEDDED, TASK_ADDED = "ld_task_dataset", "ld_task_items", "ld_task_embedded", "ld_added"
TASK_METRIC, TASK_RESULT, TASK_ERROR, TASK_GO = "ld_task_metric", "ld_task_result", "ld_task_error", "ld_task_go"
BLANK = "(blank: only spaces or newlines)"  # what a greedy rung often writes after a question
TRAIN, DELETE, LOAD = "start a training job", "delete a ladder", "load a model that is not loaded yet"
DEFAULTS = LadderConfig()

st.session_state.setdefault(CORPUS, DEFAULT_CORPUS)
st.session_state.setdefault(RUNGS, DEFAULTS.rungs)
st.session_state.setdefault(SEED, DEFAULTS.seed)
st.session_state.setdefault(TASK_DATASET, "sentiment")
st.session_state.setdefault(TASK_ITEMS, 8)
st.session_state.setdefault(TASK_EMBEDDED, True)
st.session_state.setdefault(TASK_ADDED, "")
st.session_state.setdefault(TASK_METRIC, P_EXPECTED)
report = report_later(ERROR)


@st.cache_data(max_entries=8, show_spinner=False)
def _vocabulary(name: str, text: str) -> int:
    """Characters in the text (plus the special tokens): the rungs' vocabulary; ``name`` keys the cache readably."""
    return vocabulary_size(CHAR, text)


@st.cache_resource(max_entries=12, show_spinner=False)
def _rung_model(model_dir: str, saved_at: float) -> LoadedModel:
    """A rung's saved model, shared by sessions, outside the main model cache; ``saved_at`` renews it if rewritten."""
    return load_unshared(model_dir, restricted=True)


# --- Climb a ladder ---------------------------------------------------------------------------------------------


def corpus_choice() -> Corpus | None:
    hint = "Upload a plain-text file (UTF-8) of at least a few hundred thousand characters."
    return shared_corpus_choice(CORPUS, UPLOAD, hint, describe=False)


def _config(corpus: Corpus) -> LadderConfig:
    return LadderConfig(corpus=corpus.name, rungs=int(st.session_state[RUNGS]), seed=int(st.session_state[SEED]))


def plan_table(config: LadderConfig, corpus: Corpus) -> None:
    plan = config.plan(_vocabulary(corpus.name, corpus.text))
    tokens = config.tokens_per_rung
    rows = [
        {
            "rung": r.number,
            "layers": r.size.layers,
            "width": r.size.d_model,
            "heads": r.size.heads,
            "parameters": short_count(r.parameters),
            "learning rate": f"{r.learning_rate:g}",
            "tokens it reads": f"{tokens:,}",
            "compute (6·N·D)": f"{scientific(6 * r.parameters * tokens, 1)} FLOPs",
        }
        for r in plan
    ]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    st.caption(
        f"Every rung reads the same {tokens:,} characters of the text, in the same order (seed {config.seed}), "
        "so size is the only difference. The largest rung takes most of the time: a ladder of 3 takes about "
        "5 minutes on a 2-core laptop, and 5 rungs about 2 minutes more."
    )


@teacher_callback(TRAIN, report)
def _start(corpus: Corpus) -> None:
    st.query_params[RUN] = start_ladder_job(_config(corpus), corpus).name


_delete = teacher_callback(DELETE, report)(delete_ladder)


def _live(job: JobState) -> None:
    """While the ladder climbs: each rung's state, and the curves so far against compute (then ``_finished``)."""
    if not job.active:
        return
    ladder = read_ladder(job.path)
    done = {r.number: r for r in ladder.result.rungs}
    rows = [
        {
            "rung": p["number"],
            "parameters": short_count(p["parameters"]),
            "state": "done" if p["number"] in done else "training" if p["number"] == ladder.running_rung else "waiting",
            "bits per character": f"{done[p['number']].bits_per_char:.3f}" if p["number"] in done else "—",
        }
        for p in ladder.plan
    ]
    left, right = st.columns([2, 3])
    left.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    if ladder.result.reference is not None:
        ref = ladder.result.reference
        left.caption(f"{ref.model}: {ref.bits_per_char:.3f} bits per character on the same held-out text.")
    curves = [(r.number, r.parameters, r.curve) for r in ladder.result.rungs]
    live = ladder.live_curve()
    if live is not None:
        curves.append(live)
    if curves:
        right.plotly_chart(
            compute_figure(curves, presenting()), config=PLOTLY_CONFIG, width="stretch", key=f"ld_live_{job.name}"
        )


def _finished(job: JobState) -> None:
    ladder_view(read_ladder(job.path), "job")


def climb_section() -> None:
    st.markdown(
        "Train tiny **Llamas of growing size** on the same text, for the same number of tokens, one after "
        "another. The only thing that differs is the number of parameters — so whatever changes in the loss, "
        "size bought it."
    )
    corpus = corpus_choice()
    if corpus is not None:
        cols = st.columns([2, 1])
        cols[0].slider("Rungs", MIN_RUNGS, MAX_RUNGS, key=RUNGS, help="Sizes, spread from ~17K to ~1.8M parameters.")
        cols[1].number_input("Seed", 0, 2**31 - 1, key=SEED, help="Initial weights, and the windows every rung reads.")
        try:
            plan_table(_config(corpus), corpus)
        except LabError as exc:
            st.error(str(exc), icon="⚠️")
        start_button("▶ Climb", "ld_train", functools.partial(_start, corpus), "the ladder", teacher_only(TRAIN))
    show_reported(ERROR)
    follow_attached_job(RUN, find_ladder_job, LADDER, "Ladder", "ladder", _live, _finished)


# --- A ladder's pictures ---------------------------------------------------------------------------------------


def _outcome(ladder: Ladder) -> None:
    result, state = ladder.result, ladder.state
    if state.status == "failed":
        st.error(f"This ladder failed: {state.error} The rungs it finished are shown.", icon="⚠️")
    if result.stopped is not None:
        stopped = result.stopped
        st.warning(
            f"Cancelled: {len(result.rungs)} of {result.rungs_planned} rungs finished and are shown. Rung "
            f"{stopped.number} was stopped after {stopped.steps} of {stopped.max_steps} steps: it read fewer tokens "
            "than the others, so it is kept but left out of the fit."
        )
    elif state.status == "cancelled":
        st.warning(f"Cancelled: {len(result.rungs)} of {result.rungs_planned} rungs finished and are shown.")


def ladder_view(ladder: Ladder, place: str) -> None:
    """A ladder's pictures from its folder: the law, the curves against compute, one sample per rung, the table."""
    result = ladder.result
    _outcome(ladder)
    if not result.rungs:
        st.info("No rung has finished yet: the pictures appear as rungs finish.")
        return
    fit = result.fit
    offset = False
    if len(result.rungs) >= 4:
        offset = st.checkbox(
            "Fit an irreducible loss too (L = a·N^−b + c)",
            key=f"ld_offset_{place}",
            help="The entropy of the text itself: a floor no model size goes below.",
        )
        if offset:
            fit = fit_rungs(result.rungs, offset=True)
    cols = st.columns(4)
    if fit is not None:
        cols[0].metric("Exponent b", f"{fit.b:.3f}", help="Loss falls as N^−b: doubling N divides it by 2^b.")
        cols[1].metric("r² (log-log)", f"{fit.r2:.3f}", help="1: the points lie exactly on a straight line.")
    largest = result.rungs[-1]
    cols[2].metric(f"Rung {largest.number}: bits/char", f"{largest.bits_per_char:.3f}", help="Held-out loss.")
    if result.reference is not None:
        reference = result.reference
        cols[3].metric(
            "Reference: bits/char", f"{reference.bits_per_char:.3f}", help=f"{reference.model} on the same text."
        )
    st.plotly_chart(
        scaling_figure(result.rungs, fit, result.reference, presenting()),
        config=PLOTLY_CONFIG,
        width="stretch",
        key=f"ld_scaling_{place}",
    )
    tokens = result.rungs[0].tokens
    st.caption(
        f"Each rung read {tokens:,} characters of {result.corpus}; the loss is measured on text none of them "
        "trained on, in bits per character, so a model with other tokens sits on the same axis. A straight line "
        "on log-log axes is a power law. "
        + (
            f"{result.reference.model} read about two trillion tokens: the gap to the dotted line is what data "
            "and compute bought beyond size."
            if result.reference
            else ""
        )
    )
    st.markdown("#### Loss against compute")
    curves = [(r.number, r.parameters, r.curve) for r in result.rungs]
    st.plotly_chart(
        compute_figure(curves, presenting()), config=PLOTLY_CONFIG, width="stretch", key=f"ld_compute_{place}"
    )
    st.caption(
        "Lines: training loss (smoothed); diamonds: held-out loss. Each rung spent 6 × its parameters × the "
        "tokens it read: a bigger rung pays more per token, and at the same compute a bigger one is not always "
        "ahead — but at the end of the same tokens it is lower."
    )
    st.markdown("#### What each rung writes — the same prompt, the same random draws")
    for col, rung in zip(st.columns(len(result.rungs)), result.rungs, strict=True):
        col.markdown(sample_html(rung), unsafe_allow_html=True)
    rows = [
        {
            "rung": r.number,
            "layers": r.layers,
            "width": r.d_model,
            "parameters": r.parameters,
            "held-out loss (nats/char)": r.eval_loss,
            "bits per character": r.bits_per_char,
            "compute (FLOPs)": scientific(r.train_flops, 2),
            "time": duration(r.seconds),
        }
        for r in result.rungs
    ]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")


def saved_section(ladders: list[Ladder]) -> Ladder | None:
    rows = [
        {
            "name": ladder.name,
            "corpus": ladder.result.corpus,
            "rungs": f"{len(ladder.result.rungs)} of {ladder.result.rungs_planned}",
            "state": ladder.state.status,
            "exponent b": None if ladder.result.fit is None else round(ladder.result.fit.b, 3),
            "r²": None if ladder.result.fit is None else round(ladder.result.fit.r2, 3),
        }
        for ladder in ladders
    ]
    chosen = saved_list("Saved ladders", "Ladder", rows, SAVED)
    if chosen is None:
        return None
    st.query_params[OPEN] = chosen
    ladder = next(ladder for ladder in ladders if ladder.name == chosen)
    locked = teacher_only(DELETE)
    cols = st.columns([1, 4])
    cols[0].button(
        "🗑 Delete",
        key="ld_delete",
        on_click=_delete,
        args=(chosen,),
        disabled=locked is not None or ladder.state.active,
    )
    if locked:
        cols[1].caption(locked)
    show_reported(ERROR)
    ladder_view(ladder, "saved")
    return ladder


# --- One task across sizes -------------------------------------------------------------------------------------


def _models(ladder: Ladder) -> list[SizedModel]:
    models = [
        SizedModel(
            f"rung-{r.number}",
            f"rung {r.number}",
            "rung",
            lambda d=r.model_dir: _rung_model(d, (Path(d) / "model.safetensors").stat().st_mtime),
        )
        for r in ladder.result.rungs
        if r.model_dir
    ]
    if st.session_state[TASK_EMBEDDED]:
        models.append(
            SizedModel("embedded", EMBEDDED_DISPLAY_NAME.split("-Instruct")[0], "embedded", lambda: load_model())
        )
    may_load = is_teacher()
    for name in [n.strip() for n in st.session_state[TASK_ADDED].split(",") if n.strip()]:
        models.append(
            SizedModel(
                name,
                Path(name).name,
                "added",
                lambda n=name: load_model(n, restricted=True, may_load_new=may_load),
            )
        )
    return models


def _run_task(ladder: Ladder) -> None:
    try:
        dataset = load_dataset(st.session_state[TASK_DATASET])
        models = _models(ladder)
        progress = st.progress(0.0, text="Putting every model on the task…")
        done: list[str] = []

        def advance(score: object) -> None:
            done.append(getattr(score, "title", ""))
            progress.progress(len(done) / len(models), text=f"{len(done)} of {len(models)} models done")

        result = score_across_sizes(models, dataset, int(st.session_state[TASK_ITEMS]), on_model=advance)
        progress.empty()
    except LabError as exc:
        st.session_state[TASK_ERROR] = str(exc)
        return
    st.session_state[TASK_RESULT] = (ladder.name, result)


def task_results(result: TaskAcrossSizes) -> None:
    for score in result.scores:
        if score.error:
            st.warning(f"{score.title} could not take the task: {score.error}", icon="⚠️")
    choice("Score by", METRIC_TITLES, TASK_METRIC)
    metric = st.session_state[TASK_METRIC]
    st.plotly_chart(
        task_figure(result.scores, metric, presenting()), config=PLOTLY_CONFIG, width="stretch", key="ld_task_chart"
    )
    st.caption(
        "Accuracy is all or nothing per item: it stays at 0 until a model gets answers exactly right, then jumps. "
        "P(expected) — the probability a model gives the whole expected answer — climbs smoothly with size long "
        "before that. Whether an ability looks like it *emerges* depends partly on how you score it "
        "(Schaeffer et al., 2023). The rungs never saw a task: that is the point."
    )
    rows = [
        {
            "model": s.title,
            "parameters": s.parameters,
            "accuracy": s.accuracy,
            "P(expected), mean": None if s.p_expected is None else f"{s.p_expected:.3g}",
            "first answer": (s.answers[0].text or BLANK) if s.answers else s.error,
        }
        for s in result.scores
    ]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    with st.expander(f"The {len(result.prompts)} items and every answer"):
        for i, (prompt, expected) in enumerate(zip(result.prompts, result.expected, strict=True)):
            st.markdown(f"**{i + 1}.** {prompt!r} → expected {expected!r}")
            answers = {s.title: (s.answers[i].text or BLANK) if len(s.answers) > i else "—" for s in result.scores}
            st.dataframe(pd.DataFrame([answers]), hide_index=True, width="stretch")


def task_section(ladder: Ladder | None) -> None:
    st.markdown(
        "The same task items for every model available — the ladder's rungs, the embedded SmolLM2, and any "
        "model the teacher adds — with the same greedy decoding, scored two ways."
    )
    if ladder is None or not ladder.result.rungs:
        st.info("Choose a saved ladder with finished rungs in *Saved ladders* first.")
        return
    cols = st.columns([1.2, 1, 1])
    cols[0].selectbox("Task", list(BUILTIN_DATASETS), key=TASK_DATASET, format_func=lambda n: BUILTIN_DATASETS[n].title)
    cols[1].slider("Items", 1, 20, key=TASK_ITEMS, help="Held-out items of the task, the same for every model.")
    cols[2].checkbox(f"Include {EMBEDDED_DISPLAY_NAME}", key=TASK_EMBEDDED)
    st.text_input(
        "Add models (comma-separated Hugging Face ids or local folders)",
        key=TASK_ADDED,
        placeholder="e.g. HuggingFaceTB/SmolLM2-360M-Instruct, HuggingFaceTB/SmolLM2-1.7B-Instruct",
        help="Loaded one at a time; a model not in memory yet needs internet (or the Hub's cache).",
    )
    locked = teacher_only(LOAD)
    if locked and st.session_state[TASK_ADDED].strip():
        st.caption(f"{locked} Models the teacher loaded already work.")
    st.caption(f"Task: {BUILTIN_DATASETS[st.session_state[TASK_DATASET]].target}.")
    st.button(
        f"▶ Run on {ladder.name}",
        type="primary",
        key="ld_task_run",
        on_click=lambda: st.session_state.update({TASK_GO: True}),  # the run itself draws its progress below
    )
    if st.session_state.pop(TASK_GO, False):
        _run_task(ladder)
    show_reported(TASK_ERROR)
    stored = st.session_state.get(TASK_RESULT)
    if stored and stored[0] == ladder.name:
        task_results(stored[1])


# --- The page ----------------------------------------------------------------------------------------------------


def _saved_ladders() -> list[Ladder]:
    ladders = []
    for job in list_ladders():
        try:
            ladders.append(read_ladder(job.path))
        except (LabError, OSError):
            continue  # a folder being deleted, or not a ladder after all: not listed
    return ladders


st.title("📈 Scaling ladder")
st.caption(
    "The first word of LLM is *large*. Here size is measured: loss falls with parameters as a law, and one task "
    "shows how an ability's *emergence* depends on how it is scored."
)
saved = _saved_ladders()
if SAVED not in st.session_state and st.query_params.get(OPEN) in [ladder.name for ladder in saved]:
    st.session_state[SAVED] = st.query_params[OPEN]
climb_tab, saved_tab, task_tab = st.tabs(["Climb a ladder", "Saved ladders", "One task across sizes"])
with climb_tab:
    climb_section()
with saved_tab:
    chosen = saved_section(saved)
with task_tab:
    task_section(chosen)
