"""Fine-tune: pick a dataset, press Train, watch the loss fall, keep the adapter.

The job runs as its own process (``core.finetune.start_job``) and writes its
state to a folder; this page only reads that folder (``ui.jobs``). The job's
name is in the URL, so a refresh or a second tab re-attaches. The duration
estimate is a short job of its own, too: training steps never run in the server.
"""

from __future__ import annotations

from ui.router import require_router

require_router()

from pathlib import Path

import pandas as pd
import streamlit as st

from core.datasets import BUILTIN_DATASETS, Dataset, load_dataset, parse_upload
from core.errors import LabError
from core.finetune import (
    FINETUNE,
    DurationEstimate,
    FinetuneConfig,
    delete_adapter,
    find_finetune_job,
    list_adapters,
    rename_adapter,
    start_estimate,
    start_job,
    zip_adapter,
)
from core.jobs.folder import JobState, read_job
from core.jobs.lock import running_job
from core.jobs.training import TrainingResult
from ui.charts import PLOTLY_CONFIG, loss_figure
from ui.jobs import duration, follow_attached_job, model_card, report_later, saved_list, show_reported
from ui.session import MODEL_NAME, choose_adapter, presenting, show_error, teacher_callback, teacher_only

SOURCE, UPLOAD, JOB, ERROR, NEW_NAME = "ft_source", "ft_upload", "job", "ft_error", "ft_new_name"
ESTIMATE_JOB, GO_EXPLORE, GO_COMPARE = "ft_estimate_job", "ft_go_explore", "ft_go_compare"
UPLOADED = "upload"
TRAIN, CHANGE = "start a fine-tune or time one", "rename or delete an adapter"
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
report = report_later(ERROR)


def _dataset() -> Dataset | None:
    source = st.session_state[SOURCE]
    try:
        if source != UPLOADED:
            return load_dataset(source)
        upload = st.session_state.get(UPLOAD)
        if upload is None:
            st.info("Upload a .csv or .jsonl file with `prompt` and `completion` columns, or chat `messages`.")
            return None
        return parse_upload(upload.getvalue(), upload.name)
    except LabError as exc:
        show_error(exc)
        return None


def _config(dataset: Dataset) -> FinetuneConfig:
    """The hyperparameter widgets, each with a line of help; returns the config they describe."""
    cols = st.columns(4)
    steps = cols[0].number_input("Steps", 1, 2000, 40, help="Optimizer steps. 40 take about a minute on 2 cores.")
    lr = cols[1].select_slider(
        "Learning rate",
        [5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3],
        value=1e-3,
        format_func=lambda v: f"{v:g}",
        help="LoRA tolerates ~10× a full fine-tune's rate; too high and the loss jumps around.",
    )
    batch = cols[2].number_input("Batch size", 1, 64, 4, help="Examples per step: smoother, but slower per step.")
    length = cols[3].number_input("Max length", 16, 1024, 128, help="Tokens per example; longer rows are refused.")
    cols = st.columns(4)
    r = cols[0].select_slider("LoRA rank r", [1, 2, 4, 8, 16, 32, 64], value=8, help="Size of the low-rank update.")
    alpha = cols[1].number_input("LoRA alpha", 1, 256, 16, help="The update is scaled by alpha / r.")
    dropout = cols[2].slider("Dropout", 0.0, 0.5, 0.05, 0.01, help="On the LoRA branch: regularises tiny datasets.")
    seed = cols[3].number_input("Seed", 0, 10**6, 0, help="Shuffling, initialisation and dropout follow it.")
    targets = st.multiselect(
        "Layers that get adapters", TARGETS, ["q_proj", "v_proj"], help="Attention query and value are the classic."
    )
    return FinetuneConfig(
        dataset=dataset.name,
        model=st.session_state.get(MODEL_NAME, "embedded"),
        max_steps=int(steps),
        learning_rate=float(lr),
        batch_size=int(batch),
        max_length=int(length),
        r=int(r),
        alpha=float(alpha),
        dropout=float(dropout),
        seed=int(seed),
        target_modules=list(targets),
    )


@teacher_callback(TRAIN, report)
def _start(config: FinetuneConfig, dataset: Dataset) -> None:
    st.query_params[JOB] = start_job(config, dataset).name


@teacher_callback(TRAIN, report)  # it takes the machine's one-job lock and every core, for a few seconds
def _estimate(config: FinetuneConfig, dataset: Dataset) -> None:
    st.session_state[ESTIMATE_JOB] = start_estimate(config, dataset)


@teacher_callback(CHANGE, report)
def _rename(name: str) -> None:
    rename_adapter(name, st.session_state[NEW_NAME])
    st.session_state[NEW_NAME] = ""


_delete = teacher_callback(CHANGE, report)(delete_adapter)


def _use_in_explorer(name: str) -> None:
    choose_adapter(name)
    st.session_state[GO_EXPLORE] = True  # a flag: st.switch_page cannot run inside a callback


def _compare(name: str) -> None:
    st.session_state[GO_COMPARE] = name


def _open_compare(name: str) -> None:
    """The compare page with this adapter against the base, on the dataset it learned from (in its URL)."""
    dataset = next((a.training.get("dataset") for a in list_adapters() if a.name == name), None)
    params = {"adapter": name, **({"dataset": dataset} if dataset in BUILTIN_DATASETS else {})}
    st.switch_page("pages/compare.py", query_params=params)


def _curve(job: JobState) -> None:
    if not job.metrics:
        return
    st.plotly_chart(loss_figure(job.metrics, job.max_steps, presenting()), config=PLOTLY_CONFIG, width="stretch")
    throughput = [m["tokens_per_second"] for m in job.metrics if m.get("tokens_per_second")]
    if throughput:
        st.caption(f"Throughput: {throughput[-1]:,.0f} training tokens per second.")


def _finished(job: JobState) -> None:
    result = job.result_as(TrainingResult)
    if result is None:
        return
    if result.output_dir:
        left, right = st.columns(2)
        left.button("🎲 Try it in the explorer", key="ft_try", on_click=_use_in_explorer, args=(job.name,))
        right.button("⚖️ Compare with the base model", key="ft_compare", on_click=_compare, args=(job.name,))
    cols = st.columns(3)
    if result.eval_loss_after is not None:
        change = result.eval_loss_after - result.eval_loss_before
        cols[0].metric(
            "Eval loss",
            f"{result.eval_loss_after:.3f}",
            f"{change:+.3f} from {result.eval_loss_before:.3f}",
            delta_color="inverse",
        )
    cols[1].metric("Steps", result.steps)
    cols[2].metric("Time", duration(result.seconds))


@st.fragment(run_every=1.0)
def _estimate_running(job_dir: Path) -> None:
    """Polls the estimate job (a few seconds); the page reruns once it has its answer."""
    job = read_job(job_dir, with_metrics=False)
    if job.finished:
        st.rerun(scope="app")
    st.info(f"Timing two training steps in a process of their own… {duration(job.elapsed)}", icon="⏱")


def _estimate_panel(job_dir: Path) -> None:
    job = read_job(job_dir, with_metrics=False)
    if job.active:
        _estimate_running(job_dir)
        return
    estimate = job.result_as(DurationEstimate)
    if estimate is None:
        st.error(f"The estimate failed: {job.error}", icon="⚠️")
        return
    st.info(
        f"About {duration(estimate.total_seconds)}: {estimate.steps} steps × "
        f"{estimate.seconds_per_step:.2f} s, plus evaluation and loading."
    )


def _adapters() -> None:
    adapters = list_adapters()
    rows = [
        {
            "name": a.name,
            "dataset": a.training.get("dataset"),
            "steps": a.training.get("steps"),
            "eval loss after": a.training.get("eval_loss_after"),
            "partial": a.partial,
        }
        for a in adapters
    ]
    chosen = saved_list("Saved adapters", "Adapter", rows, "ft_adapter")
    if chosen is None:
        return
    model_card(next(a for a in adapters if a.name == chosen).card)
    locked = teacher_only(CHANGE)
    cols = st.columns([1.3, 1.3, 2, 1, 1, 1])
    cols[0].button("🎲 Use in the explorer", on_click=_use_in_explorer, args=(chosen,), width="stretch")
    cols[1].button("⚖️ Compare", on_click=_compare, args=(chosen,), width="stretch")
    cols[2].text_input(
        "New name", key=NEW_NAME, label_visibility="collapsed", placeholder="New name", disabled=locked is not None
    )
    cols[3].button(
        "Rename", on_click=_rename, args=(chosen,), disabled=locked is not None or not st.session_state.get(NEW_NAME)
    )
    cols[4].download_button("⬇ Zip", zip_adapter(chosen), f"{chosen}.zip", "application/zip")
    cols[5].button("🗑 Delete", on_click=_delete, args=(chosen,), disabled=locked is not None)
    if locked:
        st.caption(locked)


if st.session_state.pop(GO_EXPLORE, False):
    st.switch_page("pages/explorer.py")
if GO_COMPARE in st.session_state:
    _open_compare(st.session_state.pop(GO_COMPARE))
st.title("🛠️ Fine-tune")
st.caption(
    "Take the pre-trained model and adjust it with examples of a task. LoRA trains a few small matrices "
    "beside the frozen weights, so a 135M-parameter model learns a new habit in a minute on a laptop."
)
names = [*list(BUILTIN_DATASETS), UPLOADED]
st.radio(
    "Dataset",
    names,
    key=SOURCE,
    horizontal=True,
    format_func=lambda n: BUILTIN_DATASETS[n].title if n in BUILTIN_DATASETS else "Upload a file",
)
if st.session_state[SOURCE] == UPLOADED:
    st.file_uploader("CSV or JSONL", type=["csv", "jsonl"], key=UPLOAD)
else:
    spec = BUILTIN_DATASETS[st.session_state[SOURCE]]
    st.markdown(f"{spec.description} *Target: {spec.target}.*")
dataset = _dataset()
if dataset is not None:
    st.caption(f"{len(dataset.train)} training and {len(dataset.eval)} evaluation examples.")
    st.dataframe(pd.DataFrame(dataset.preview(8)), hide_index=True, width="stretch")
    with st.expander("Hyperparameters", expanded=not presenting()):
        config = _config(dataset)
    cols = st.columns([1, 1, 3])
    busy = running_job() is not None  # any job, of any kind, holds the one lock
    locked = teacher_only(TRAIN)
    cols[0].button(
        "▶ Train",
        type="primary",
        on_click=_start,
        args=(config, dataset),
        disabled=busy or locked is not None,
        width="stretch",
        help="One job at a time on this machine." if busy else "Starts the job as its own process.",
    )
    cols[1].button(
        "⏱ Estimate duration",
        on_click=_estimate,
        args=(config, dataset),
        disabled=busy or locked is not None,
        width="stretch",
        help="Times two real training steps in a process of their own (a few seconds).",
    )
    with cols[2]:
        if locked:
            st.caption(locked)
        if ESTIMATE_JOB in st.session_state:
            _estimate_panel(st.session_state[ESTIMATE_JOB])

show_reported(ERROR)
follow_attached_job(JOB, find_finetune_job, FINETUNE, "Job", "adapter", _curve, _finished)
_adapters()
