"""One panel for every background job: which job a page follows, its progress, Cancel, and how it ended.

A job is its own process with its state in a folder (``core.jobs``); a page
only reads that folder. The job a page follows is named in its URL, so a
refresh or a second tab re-attaches; without one, the page follows the job
of its kind that holds the machine's lock. While the job runs, a fragment
re-reads the folder every second and reruns only itself; when the job ends,
the whole page reruns once (its saved list gains the new output).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import streamlit as st

from core.errors import LabError
from core.jobs.folder import JobKind, JobState, read_job
from core.jobs.lock import running_job
from core.jobs.stop import request_stop
from ui.session import teacher_callback, teacher_only

JobView = Callable[[JobState], None]
CANCEL_ERROR = "job_cancel_error"
CANCEL = "cancel a job"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def attached_job(url_key: str, find: Callable[[str], Path], kind: JobKind) -> JobState | None:
    """The job named in the URL under ``url_key``, else the job of ``kind`` running on this machine."""
    name = st.query_params.get(url_key)
    try:
        if name:
            return read_job(find(name))
        running = running_job(kind)
        if running is not None:
            st.query_params[url_key] = running.name
            return read_job(running)
    except LabError as exc:
        st.error(str(exc), icon="⚠️")
    return None


def report_later(key: str) -> Callable[[LabError], None]:
    """An error handler for callbacks, which run before the page: the page shows the message where it draws."""

    def report(exc: LabError) -> None:
        st.session_state[key] = str(exc)

    return report


def show_reported(key: str) -> None:
    if key in st.session_state:
        st.error(st.session_state.pop(key), icon="⚠️")


@teacher_callback(CANCEL, report_later(CANCEL_ERROR))
def _cancel(job_dir: Path) -> None:
    request_stop(job_dir)


def _progress(job: JobState) -> None:
    label = {"queued": "starting…", "running": job.phase or "running"}.get(job.status, job.status)
    steps = f"step {job.step} of {job.max_steps}" if job.max_steps else f"step {job.step}"
    st.progress(job.progress, text=f"{label} · {steps} · elapsed {duration(job.elapsed)} · left {duration(job.eta)}")


def _outcome(job: JobState, output: str) -> None:
    """How the job ended, in words that match what it saved (``output``: "adapter", "model")."""
    saved = bool(job.result and job.result.get("output_dir"))
    if job.status == "failed":
        st.error(f"The job failed: {job.error}", icon="⚠️")
    elif (job.status == "cancelled" or job.partial) and not saved:
        st.warning(f"The job was cancelled before its first training step: no {output} was saved.")
    elif job.status == "cancelled" or job.partial:
        st.warning(f"The job was stopped early: its {output} holds what it learned so far (marked partial).")
    else:
        st.success(f"Done. The {output} is saved and listed below.", icon="✅")


def job_panel(job: JobState, title: str, output: str, body: JobView, finished: JobView | None = None) -> None:
    """A job's title, progress and ``body`` (charts, samples); Cancel while it runs, ``finished`` once it ended."""
    st.subheader(title)
    _progress(job)
    body(job)
    if job.active:
        locked = teacher_only(CANCEL)
        st.button(
            "⏹ Cancel",
            key=f"cancel-{job.name}",
            on_click=_cancel,
            args=(job.path,),
            disabled=job.stop_requested or locked is not None,
            help="Stops after the current step and keeps what was learned, marked partial.",
        )
        if locked:
            st.caption(locked)
        show_reported(CANCEL_ERROR)
        return
    _outcome(job, output)
    if finished is not None and job.status != "failed":
        finished(job)


@st.fragment(run_every=1.0)
def live_job_panel(job_dir: Path, title: str, output: str, body: JobView, finished: JobView | None = None) -> None:
    """``job_panel`` re-read every second, rerunning only this fragment; the whole page once the job ends."""
    job = read_job(job_dir)
    job_panel(job, title, output, body, finished)
    if job.finished:
        st.rerun(scope="app")


def follow_job(job: JobState, title: str, output: str, body: JobView, finished: JobView | None = None) -> None:
    """Show ``job``: live while it runs, once when it has ended."""
    if job.active:
        live_job_panel(job.path, title, output, body, finished)
    else:
        job_panel(job, title, output, body, finished)


def follow_attached_job(
    url_key: str,
    find: Callable[[str], Path],
    kind: JobKind,
    title: str,
    output: str,
    body: JobView,
    finished: JobView | None = None,
) -> None:
    """The job a page follows (``attached_job``), titled ``title`` and its name; nothing while there is none."""
    job = attached_job(url_key, find, kind)
    if job is not None:
        follow_job(job, f"{title} {job.name}", output, body, finished)


def saved_list(title: str, what: str, rows: list[dict[str, object]], key: str) -> str | None:
    """What a kind of job saved (adapters, models) as a table, and a choice of one; None while there is none."""
    st.subheader(title)
    if not rows:
        st.caption("None yet: train one above.")
        return None
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    return st.selectbox(what, [str(row["name"]) for row in rows], key=key)


def model_card(card: str) -> None:
    with st.expander("Model card"):
        st.markdown(card or "_No model card._")


def start_button(label: str, key: str, start: Callable[[], None], what: str, locked: str | None) -> None:
    """The button that starts a training job: greyed while another job runs, or for a student (``locked`` says why)."""
    busy = running_job() is not None
    st.button(
        label,
        type="primary",
        key=key,
        on_click=start,
        disabled=busy or locked is not None,
        help="One training job at a time on this machine." if busy else f"Starts {what} as its own process.",
    )
    if locked:
        st.caption(locked)
