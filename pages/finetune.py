"""Fine-tune: pick a dataset, press Train, watch the loss fall, keep the adapter.

The job runs as its own process (``core.finetune.start_job``) and writes its
state to a folder; this page only reads that folder, polling it in a fragment.
The job's name is in the URL, so a refresh or a second tab re-attaches.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from core.errors import LabError
from core.finetune import (
    BUILTIN_DATASETS,
    FinetuneConfig,
    FinetuneDataset,
    JobState,
    delete_adapter,
    find_job,
    list_adapters,
    load_dataset,
    parse_upload,
    read_job,
    rename_adapter,
    request_stop,
    running_job,
    start_job,
    zip_adapter,
)
from ui.charts import PLOTLY_CONFIG, loss_figure
from ui.session import ADAPTER, MODEL_NAME, presenting, require_router, show_error

require_router()

SOURCE, UPLOAD, JOB, ERROR, NEW_NAME = "ft_source", "ft_upload", "job", "ft_error", "ft_new_name"
ESTIMATE_REQUESTED, GO_EXPLORE, GO_COMPARE = "ft_estimate_requested", "ft_go_explore", "ft_go_compare"
UPLOADED = "upload"
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def _dataset() -> FinetuneDataset | None:
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


def _config(dataset: FinetuneDataset) -> FinetuneConfig:
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


def _report(exc: LabError) -> None:
    st.session_state[ERROR] = str(exc)  # callbacks run before the page: show it when the page draws


def _start(config: FinetuneConfig, dataset: FinetuneDataset) -> None:
    try:
        st.query_params[JOB] = start_job(config, dataset).name
    except LabError as exc:
        _report(exc)


def _rename(name: str) -> None:
    try:
        rename_adapter(name, st.session_state[NEW_NAME])
        st.session_state[NEW_NAME] = ""
    except LabError as exc:
        _report(exc)


def _use_in_explorer(name: str) -> None:
    st.session_state[ADAPTER] = name
    st.session_state[GO_EXPLORE] = True  # a flag: st.switch_page cannot run inside a callback


def _compare(name: str) -> None:
    """Open the compare page with this adapter against the base, on the dataset it learned from."""
    dataset = next((a.training.get("dataset") for a in list_adapters() if a.name == name), None)
    st.session_state.update({"cmp_adapters": [name], GO_COMPARE: True})
    if dataset in BUILTIN_DATASETS:
        st.session_state["cmp_dataset"] = dataset
    st.session_state.pop("cmp_result", None)  # a result for other columns would mislead


def _delete(name: str) -> None:
    try:
        delete_adapter(name)
    except LabError as exc:
        _report(exc)


def _attached_job() -> JobState | None:
    """The job named in the URL, else the one running on this machine (another tab may have started it)."""
    name = st.query_params.get(JOB)
    try:
        if name:
            return read_job(find_job(name))
        running = running_job()
        if running is not None:
            st.query_params[JOB] = running.name
            return read_job(running)
    except LabError as exc:
        show_error(exc)
    return None


def _job_panel(job: JobState) -> None:
    st.subheader(f"Job {job.name}")
    label = {"queued": "starting…", "running": job.phase or "training"}.get(job.status, job.status)
    steps = f"step {job.step} of {job.max_steps}" if job.max_steps else f"step {job.step}"
    st.progress(job.progress, text=f"{label} · {steps} · elapsed {_duration(job.elapsed)} · left {_duration(job.eta)}")
    if job.metrics:
        st.plotly_chart(loss_figure(job.metrics, job.max_steps, presenting()), config=PLOTLY_CONFIG, width="stretch")
        throughput = [m["tokens_per_second"] for m in job.metrics if m.get("tokens_per_second")]
        if throughput:
            st.caption(f"Throughput: {throughput[-1]:,.0f} training tokens per second.")
    if job.active:
        st.button(
            "⏹ Cancel",
            on_click=request_stop,
            args=(job.path,),
            disabled=job.path.joinpath("STOP").exists(),
            help="Stops after the current step and keeps what was learned, marked partial.",
        )
        return
    if job.status == "failed":
        st.error(f"The job failed: {job.error}", icon="⚠️")
    elif job.status == "cancelled" or job.partial:
        st.warning("The job was stopped early: its adapter holds what it learned so far (marked partial).")
    else:
        st.success("Done. The adapter is saved and listed below.", icon="✅")
    if job.adapter_dir is not None:
        left, right = st.columns(2)
        left.button("🎲 Try it in the explorer", key="ft_try", on_click=_use_in_explorer, args=(job.name,))
        right.button("⚖️ Compare with the base model", key="ft_compare", on_click=_compare, args=(job.name,))
    if job.result:
        result = job.result
        cols = st.columns(3)
        before, after = result.get("eval_loss_before"), result.get("eval_loss_after")
        if before is not None and after is not None:
            cols[0].metric(
                "Eval loss", f"{after:.3f}", f"{after - before:+.3f} from {before:.3f}", delta_color="inverse"
            )
        cols[1].metric("Steps", result.get("steps"))
        cols[2].metric("Time", _duration(result.get("seconds")))


@st.fragment(run_every=1.0)
def live_job_panel(job_dir: Path) -> None:
    """Re-reads the job folder every second, rerunning only this panel; the whole page once it ends."""
    job = read_job(job_dir)
    _job_panel(job)
    if job.finished:
        st.rerun(scope="app")  # the adapters list below gains the new adapter, and polling stops


def _adapters() -> None:
    adapters = list_adapters()
    st.subheader("Saved adapters")
    if not adapters:
        st.caption("None yet: train one above.")
        return
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
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    chosen = st.selectbox("Adapter", [a.name for a in adapters], key="ft_adapter")
    adapter = next(a for a in adapters if a.name == chosen)
    with st.expander("Model card"):
        st.markdown(adapter.card or "_No model card._")
    cols = st.columns([1.3, 1.3, 2, 1, 1, 1])
    cols[0].button("🎲 Use in the explorer", on_click=_use_in_explorer, args=(chosen,), width="stretch")
    cols[1].button("⚖️ Compare", on_click=_compare, args=(chosen,), width="stretch")
    cols[2].text_input("New name", key=NEW_NAME, label_visibility="collapsed", placeholder="New name")
    cols[3].button("Rename", on_click=_rename, args=(chosen,), disabled=not st.session_state.get(NEW_NAME))
    cols[4].download_button("⬇ Zip", zip_adapter(chosen), f"{chosen}.zip", "application/zip")
    cols[5].button("🗑 Delete", on_click=_delete, args=(chosen,))


if st.session_state.pop(GO_EXPLORE, False):
    st.switch_page("pages/explorer.py")
if st.session_state.pop(GO_COMPARE, False):
    st.switch_page("pages/compare.py")
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
    busy = running_job(None) is not None  # a pretraining job holds the same lock
    cols[0].button(
        "▶ Train",
        type="primary",
        on_click=_start,
        args=(config, dataset),
        disabled=busy,
        width="stretch",
        help="One job at a time on this machine." if busy else "Starts the job as its own process.",
    )
    cols[1].button(
        "⏱ Estimate duration",
        on_click=st.session_state.__setitem__,
        args=(ESTIMATE_REQUESTED, True),
        width="stretch",
        help="Times two real training steps (a few seconds).",
    )
    if st.session_state.pop(ESTIMATE_REQUESTED, False):
        from core.finetune.train import estimate_duration

        try:
            with st.spinner("Timing two training steps…"):
                estimate = estimate_duration(config, dataset)
            cols[2].info(
                f"About {_duration(estimate.total_seconds)}: {estimate.steps} steps × "
                f"{estimate.seconds_per_step:.2f} s, plus evaluation and loading."
            )
        except LabError as exc:
            show_error(exc)

if ERROR in st.session_state:
    st.error(st.session_state.pop(ERROR), icon="⚠️")
job = _attached_job()
if job is not None and job.active:
    live_job_panel(job.path)
elif job is not None:
    _job_panel(job)
_adapters()
