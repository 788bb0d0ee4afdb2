"""Load test: a class of students on one LLM Lab server, with and without a fine-tune running.

It starts the app the way ``make run`` does (``streamlit run streamlit_app.py``
with the repository's ``.streamlit/config.toml``), on a free 127.0.0.1 port
with a temporary data folder, and stops it at the end. Each simulated student
is a real Streamlit session over the app's websocket (``bench/streamlit_session.py``
says why not thirty headless browsers), all starting at once, as a class does
when the teacher says "open the link":

1. open the explorer with a prompt of their own in the URL (``?prompt=...``):
   a next-token distribution;
2. think (``--think`` seconds, ±50 %), press **Generate** (``--tokens`` tokens);
3. think, type a new prompt of their own: another distribution;
4. repeat 2-3 until ``--duration`` is over (each student does at least one round).

Every prompt is different, so no answer comes from a cache. A request's
latency runs from sending the rerun to the message that the script finished
(for Generate that includes the rerun that shows the new text). A response is
checked, not just awaited: a distribution must bring its chart and the
page's URL must hold the prompt; a generation must lengthen the steered path
in the URL; an error box or exception on the page, a timeout
(``--timeout``) or a dropped session counts as an error.

Memory is the resident memory of the server's process tree (the engine
process included, the weights it shares with the server counted once), sampled
every 0.2 s; a fine-tune is its own process (as the Fine-tune page starts
it), so its memory is reported beside the server's, not in it. CPU seconds
are reported for the app, the fine-tune and this script: its simulated
students share the machine's cores with the app, which a real class's
laptops would not. With ``--with-finetune`` each user count runs again while
``python -m core finetune`` trains on the built-in sentiment data (at the
lower priority every job takes).

With ``--class-room`` the students play class mode instead (``bench/class_scenario.py``): they
join a room the teacher opened from the explorer, guess the next word on the join page and poll
it, while the teacher's room page counts the answers, reveals and starts the next round.

Usage: ``.venv/bin/python bench/load_test.py --users 10 --users 30 [--with-finetune] [--duration 40] [--json]``
or ``.venv/bin/python bench/load_test.py --class-room --users 30 [--duration 40] [--json]``
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.streamlit_session import AppSession, RunResult, SessionError  # noqa: E402
from core.access import TEACHER_SECRET_ENV  # noqa: E402
from core.backends.openai_api import ALLOWED_BASE_URLS_ENV, API_MODEL_ENV, DEFAULT_BACKEND_ENV  # noqa: E402
from core.json_records import JsonRecord  # noqa: E402
from core.models import CLASS_SERVER_ENV  # noqa: E402

PAGE = "explorer"
GENERATE, PROMPT = "⏩ Generate", "Prompt"  # the explorer's widget labels
TOKENS, API_TOKENS = "Tokens per ⏩", "Tokens"  # how many tokens a Generate adds: the local view, the API view
PROMPTS = (
    "The capital of France is",
    "After dinner, we went to the",
    "Translate to French: cheese =>",
    "The best way to learn a language is",
    "Once upon a time, in a small village,",
    "Photosynthesis is the process by which",
)
SAMPLE_EVERY_S = 0.2
SERVER_START_TIMEOUT_S = 90
FINETUNE_START_TIMEOUT_S = 300
MB = 1024 * 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values: list[float], q: float) -> float | None:
    """The nearest-rank percentile (``q`` in 0-100): a latency some request really had."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


@dataclass
class Latency:
    """Latency summary of a set of requests, in seconds."""

    count: int
    p50_s: float | None
    p95_s: float | None
    max_s: float | None

    @classmethod
    def of(cls, seconds: list[float]) -> Latency:
        return cls(len(seconds), percentile(seconds, 50), percentile(seconds, 95), max(seconds, default=None))


@dataclass
class Request:
    kind: str  # "distribution" or "generate"
    seconds: float
    error: str | None = None
    opening: bool = False  # a distribution that opened the page (the first, all of the class at once)


@dataclass
class ScenarioReport:
    """One load level: how the server answered ``users`` students for ``duration_s``."""

    users: int
    finetune_running: bool
    wall_s: float  # from the first request to the last answer (the last requests may run past the duration)
    requests: int
    errors: int
    error_samples: list[str]
    latency: Latency  # every answered request, both kinds
    by_kind: dict[str, Latency]
    # the distributions that opened the page: also in by_kind's, shown apart since a class opens the link at once
    opening: Latency
    requests_per_s: float
    server_rss_start_mb: float
    server_rss_peak_mb: float
    finetune_rss_peak_mb: float | None
    finetune_steps: int | None  # optimizer steps the fine-tune took during this scenario
    # CPU seconds used while it ran: the app's answers, the fine-tune, and this script's own students
    # (on 2 cores the simulated browsers take some of the CPU that a real class's laptops would bring).
    cpu_s: dict[str, float]


@dataclass
class LoadReport(JsonRecord):
    settings: dict[str, Any]
    machine: dict[str, Any]
    warmup_s: float  # first page view: model load and first forward pass
    scenarios: list[ScenarioReport] = field(default_factory=list)
    class_rooms: list[Any] = field(default_factory=list)  # bench.class_scenario.ClassReport, with --class-room
    problems: list[str] = field(default_factory=list)  # what could not be measured, and why


class RssSampler:
    """Peak RSS of process trees, sampled in a thread (the server's tree and, if any, the fine-tune's)."""

    def __init__(self, server_pid: int, finetune_pid: int | None) -> None:
        self.pids = {"server": server_pid, "finetune": finetune_pid}
        self.start = {name: self._rss(pid) for name, pid in self.pids.items()}
        self.peak = dict(self.start)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _rss(pid: int | None) -> int:
        """The tree's resident memory, what its children share with the server counted once.

        The engine process maps the model's weights from shared memory the
        server holds, and the same torch libraries: a plain sum of RSS would
        count them twice. So the server counts whole and each child its own
        (anonymous) memory. (/proc's status is read, not smaps: walking a
        1 GB process's pages every 0.2 s cost the machine a third of a core.)
        """
        total = 0
        for depth, process in enumerate(_tree(pid)):
            with suppress(psutil.NoSuchProcess, OSError):
                total += _anonymous_memory(process) if depth else process.memory_info().rss
        return total

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_EVERY_S):
            for name, pid in self.pids.items():
                self.peak[name] = max(self.peak[name], self._rss(pid))

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _tree(pid: int | None) -> list[psutil.Process]:
    """A process and its descendants (none if it is gone)."""
    if pid is None:
        return []
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _anonymous_memory(process: psutil.Process) -> int:
    """The process's resident memory of its own (RssAnon): not files, libraries or shared memory."""
    with open(f"/proc/{process.pid}/status") as status:
        for line in status:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    return process.memory_info().rss


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time so far of a process and its children, such as the engine process (0 if none).

    This script's own time is its alone: the server it started is its child.
    """
    total = 0.0
    for process in [psutil.Process()] if pid == os.getpid() else _tree(pid):
        with suppress(psutil.NoSuchProcess):
            times = process.cpu_times()
            total += times.user + times.system
    return total


@contextmanager
def app_server(data_dir: Path, log_path: Path, env: dict[str, str]) -> Iterator[tuple[str, int]]:
    """``streamlit run streamlit_app.py`` on a free loopback port; yields (base URL, pid)."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        "streamlit_app.py",
        "--server.address",
        "127.0.0.1",
        "--server.port",
        str(port),
        "--server.headless",
        "true",
    ]
    with log_path.open("wb") as log:
        server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"the app exited with {server.returncode}:\n{log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{base_url}/_stcore/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the app did not answer within {SERVER_START_TIMEOUT_S} s")
            time.sleep(0.3)
        yield base_url, server.pid
    finally:
        stop_process(server)


def stop_process(process: subprocess.Popen[bytes], grace_s: float = 30) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class FinetuneNotTraining(RuntimeError):
    """The fine-tune failed, or was still loading or evaluating when its time was up."""


@contextmanager
def finetune_running(data_dir: Path, log_path: Path, env: dict[str, str]) -> Iterator[tuple[int, Path]]:
    """A fine-tune on the sentiment data, long enough to outlast the scenarios; yields (pid, job folder).

    It is started with the CLI, as its own process like the page's jobs, and
    waited for until it trains (loading and the first evaluation come
    before). SIGTERM stops it after its current step.
    """
    job_dir = data_dir / "finetune" / "jobs" / "load-test"
    command = [sys.executable, "-m", "core", "finetune", "--dataset", "sentiment", "--max-steps", "100000"]
    command += ["--output", str(job_dir)]
    with log_path.open("wb") as log:
        job = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + FINETUNE_START_TIMEOUT_S
        while finetune_step(job_dir) is None:
            if job.poll() is not None or time.monotonic() > deadline:
                raise FinetuneNotTraining(
                    f"the fine-tune did not reach its training steps within {FINETUNE_START_TIMEOUT_S} s, so "
                    f"nothing was measured with it: {log_path.read_text()[-1000:]}"
                )
            time.sleep(0.5)
        yield job.pid, job_dir
    finally:
        stop_process(job, grace_s=60)


def finetune_step(job_dir: Path) -> int | None:
    """The job's current step once it is training, else None."""
    try:
        status = json.loads((job_dir / "status.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return int(status.get("step") or 0) if status.get("phase") == "training" else None


def _prompt(scenario: int, user: int, n: int) -> str:
    # A student's own words in front of a teaching prompt: every request is a new text, never a cache hit.
    return f"Student {user + 1} (round {scenario}.{n}) writes: {PROMPTS[(user + n) % len(PROMPTS)]}"


def _path_length(query_string: str) -> int:
    path = parse_qs(query_string).get("path", [""])[0]
    return len([i for i in path.split(",") if i.strip()])


def check_distribution(result: RunResult, prompt: str) -> str | None:
    """What is wrong with the answer to a new prompt (None: nothing): the chart, and the prompt taken."""
    if result.problems:
        return "; ".join(result.problems)
    if result.count("plotly_chart") < 1:
        return "the distribution chart did not arrive"
    if parse_qs(result.query_string).get("prompt") != [prompt]:
        return "the page did not take the prompt"
    return None


def check_generation(result: RunResult, path_before: int) -> str | None:
    """What is wrong with the answer to Generate (None: nothing): tokens added to the steered path.

    The local view keeps its path in the URL; the API view (token text, not
    ids) only draws it, so there the steered text's bold tokens are counted.
    """
    if result.problems:
        return "; ".join(result.problems)
    after = _path_length(result.query_string) if result.steered_tokens is None else result.steered_tokens
    if after <= path_before:
        return "Generate added no token"
    return None


def run_at_once(people: list[Callable[[threading.Barrier], None]]) -> None:
    """Each simulated person in a thread of their own, all released at the same moment; back once all are done."""
    start = threading.Barrier(len(people) + 1)
    threads = [threading.Thread(target=person, args=(start,), daemon=True) for person in people]
    for thread in threads:
        thread.start()
    start.wait()
    for thread in threads:
        thread.join()


class Timed:
    """Requests of one simulated person, each timed and checked (a student here, a phone or the teacher in a class)."""

    def __init__(self) -> None:
        self.requests: list[Request] = []

    def timed(self, kind: str, action: Callable[[], RunResult], check: Callable[[RunResult], str | None]) -> RunResult:
        """``action``'s answer, timed and recorded; ``SessionError`` if it failed or the page or ``check`` saw fault."""
        began = time.perf_counter()
        try:
            result = action()
        except SessionError as exc:
            self.requests.append(Request(kind, time.perf_counter() - began, str(exc)))
            raise
        error = "; ".join(result.problems) or check(result)
        self.requests.append(Request(kind, result.seconds, error))
        if error:
            raise SessionError(f"{kind}: {error}")
        return result


class Student(Timed):
    """One simulated student: a session on the explorer, doing rounds until the deadline."""

    def __init__(self, base_url: str, scenario: int, user: int, args: argparse.Namespace, deadline: float) -> None:
        super().__init__()
        self.base_url, self.scenario, self.user, self.args, self.deadline = base_url, scenario, user, args, deadline
        self.random = random.Random(scenario * 1000 + user)
        self.rounds = 0
        self.steered = 0  # tokens on the steered path of the prompt now shown

    def _think(self) -> None:
        time.sleep(self.args.think * self.random.uniform(0.5, 1.5))

    def _timed(
        self,
        kind: str,
        action: Callable[[], RunResult],
        check: Callable[[RunResult], str | None],
        opening: bool = False,
    ) -> bool:
        try:
            self.timed(kind, action, check)
        except SessionError:
            return False
        finally:
            self.requests[-1].opening = opening
        return True

    def run(self, start: threading.Barrier) -> None:
        start.wait()
        while True:  # a session that broke is reopened, as a student reloads the page
            try:
                self._session()
            except SessionError as exc:
                self.requests.append(Request("distribution", 0.0, str(exc)))
            if time.monotonic() >= self.deadline:
                return
            self._think()

    def _session(self) -> None:
        prompt = _prompt(self.scenario, self.user, self.rounds)
        with AppSession(self.base_url, PAGE, urlencode({"prompt": prompt}), timeout=self.args.timeout) as tab:
            if not self._distribution(tab, prompt, opening=True):
                return
            self.steered = 0
            tab.set_value(tokens_label(self.args), int_value=self.args.tokens)
            while True:
                self._think()
                if not self._generate(tab):
                    return
                self.rounds += 1
                if time.monotonic() >= self.deadline:
                    return
                self._think()
                prompt = _prompt(self.scenario, self.user, self.rounds)
                tab.set_value(PROMPT, string_value=prompt)  # typing a new prompt reruns the page
                self.steered = 0  # and starts a new path
                if not self._distribution(tab, prompt) or time.monotonic() >= self.deadline:
                    return

    def _distribution(self, tab: AppSession, prompt: str, opening: bool = False) -> bool:
        return self._timed("distribution", tab.rerun, lambda result: check_distribution(result, prompt), opening)

    def _generate(self, tab: AppSession) -> bool:
        before = self.steered
        ok = self._timed("generate", lambda: self._click_generate(tab), lambda r: check_generation(r, before))
        return ok

    def _click_generate(self, tab: AppSession) -> RunResult:
        result = tab.click(GENERATE)
        self.steered = _path_length(result.query_string) if result.steered_tokens is None else result.steered_tokens
        return result


def run_scenario(
    base_url: str,
    server_pid: int,
    scenario: int,
    users: int,
    args: argparse.Namespace,
    finetune: tuple[int, Path] | None = None,
) -> ScenarioReport:
    processes = {"server": server_pid, "finetune": finetune[0] if finetune else None, "load_test": os.getpid()}
    cpu_before = {name: cpu_seconds(pid) for name, pid in processes.items()}
    with RssSampler(server_pid, processes["finetune"]) as memory:
        steps_before = finetune_step(finetune[1]) if finetune else None
        began = time.monotonic()
        students = [Student(base_url, scenario, user, args, began + args.duration) for user in range(users)]
        run_at_once([student.run for student in students])
        wall = time.monotonic() - began
        steps_after = finetune_step(finetune[1]) if finetune else None
    cpu = {name: round(cpu_seconds(pid) - cpu_before[name], 1) for name, pid in processes.items() if pid}
    requests = [r for s in students for r in s.requests]
    answered = [r for r in requests if r.error is None]
    errors = [r.error for r in requests if r.error is not None]
    return ScenarioReport(
        users=users,
        finetune_running=finetune is not None,
        wall_s=round(wall, 1),
        requests=len(requests),
        errors=len(errors),
        error_samples=sorted(set(errors))[:5],
        latency=Latency.of([r.seconds for r in answered]),
        by_kind={
            kind: Latency.of([r.seconds for r in answered if r.kind == kind]) for kind in ("distribution", "generate")
        },
        opening=Latency.of([r.seconds for r in answered if r.opening]),
        requests_per_s=round(len(answered) / wall, 2),
        server_rss_start_mb=round(memory.start["server"] / MB),
        server_rss_peak_mb=round(memory.peak["server"] / MB),
        finetune_rss_peak_mb=round(memory.peak["finetune"] / MB) if finetune else None,
        finetune_steps=(steps_after - steps_before) if steps_after is not None and steps_before is not None else None,
        cpu_s=cpu,
    )


def first_model(base_url: str, timeout: float) -> str:
    """The first model an OpenAI-compatible server lists (llama.cpp's server lists the one it serves)."""
    with urllib.request.urlopen(base_url.rstrip("/") + "/models", timeout=timeout) as answer:
        return json.load(answer)["data"][0]["id"]


def tokens_label(args: argparse.Namespace) -> str:
    return API_TOKENS if args.api_base_url else TOKENS


def warm_up(base_url: str, args: argparse.Namespace) -> float:
    """One page view and one generation before measuring: loads the model and runs its first passes."""
    began = time.perf_counter()
    with AppSession(base_url, PAGE, urlencode({"prompt": "Warming up:"}), timeout=args.timeout) as tab:
        error = check_distribution(tab.rerun(), "Warming up:")
        if error is None:
            tab.set_value(tokens_label(args), int_value=2)
            error = check_generation(tab.click(GENERATE), 0)
    if error:
        raise RuntimeError(f"the app does not work before any load: {error}")
    return time.perf_counter() - began


def server_env(data_dir: Path, args: argparse.Namespace) -> dict[str, str]:
    """The environment ``make run`` gives the app (and so the jobs it starts), with a private data folder.

    With ``--api-base-url`` every new session starts on that OpenAI-compatible
    server (``LLM_LAB_BACKEND=openai``), as a class scaled out to llama.cpp's
    server or vLLM is run.
    """
    env = {**os.environ, "LLM_LAB_DATA": str(data_dir), "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("OMP_WAIT_POLICY", None)
    if not args.openmp_default:
        env["OMP_WAIT_POLICY"] = "PASSIVE"  # as the Makefile's `run` sets it, and for the same reason
    env.setdefault("MALLOC_ARENA_MAX", "2")  # as `make run`: glibc's per-thread arenas kept freed memory
    for name, value in CLASS_SERVER_ENV.items():  # as `make run HOST=0.0.0.0` serves a class (unless set here)
        env.setdefault(name, value)
    if args.api_base_url:
        env.update(
            {
                DEFAULT_BACKEND_ENV: "openai",
                "OPENAI_BASE_URL": args.api_base_url,
                API_MODEL_ENV: args.api_model,
                ALLOWED_BASE_URLS_ENV: args.api_base_url,
            }
        )
    return env


def run(args: argparse.Namespace, say: Any) -> LoadReport:
    with tempfile.TemporaryDirectory(prefix="llm-lab-load-") as tmp:
        tmp_dir = Path(tmp)
        data_dir = tmp_dir / "data"
        env = server_env(data_dir, args)
        if args.class_room:  # as `make run HOST=0.0.0.0` starts a class: the students are not the teacher
            env[TEACHER_SECRET_ENV] = secrets.token_hex(8)
        with app_server(data_dir, tmp_dir / "server.log", env) as (base_url, server_pid):
            say(f"app at {base_url} (pid {server_pid}); warming up")
            report = LoadReport(
                settings={
                    "users": args.users,
                    "duration_s": args.duration,
                    "think_s": args.think,
                    "tokens_per_generate": args.tokens,
                    "timeout_s": args.timeout,
                    "with_finetune": args.with_finetune,
                    "class_room": args.class_room,
                    "round_time_s": args.round_time,
                    "omp_wait_policy": env.get("OMP_WAIT_POLICY", "OpenMP's default"),
                    "api_base_url": args.api_base_url,
                    "api_model": args.api_model,
                },
                machine={"cpus": os.cpu_count(), "load_average_at_start": [round(x, 2) for x in os.getloadavg()]},
                warmup_s=round(warm_up(base_url, args), 1),
            )
            if args.class_room:
                from bench.class_scenario import class_summary, run_class

                for users in args.users:
                    say(f"a class of {users} for {args.duration:g} s")
                    report.class_rooms.append(
                        run_class(base_url, server_pid, data_dir, env[TEACHER_SECRET_ENV], users, args)
                    )
                    say(class_summary(report.class_rooms[-1]))
                return report
            scenario = 0
            for users in args.users:
                scenario += 1
                say(f"{users} users for {args.duration:g} s")
                report.scenarios.append(run_scenario(base_url, server_pid, scenario, users, args))
                say(_summary(report.scenarios[-1]))
            if args.with_finetune:
                say("starting a fine-tune (sentiment) and waiting until it trains")
                try:
                    with finetune_running(data_dir, tmp_dir / "finetune.log", env) as finetune:
                        for users in args.users:
                            scenario += 1
                            say(f"{users} users for {args.duration:g} s, fine-tune running")
                            report.scenarios.append(run_scenario(base_url, server_pid, scenario, users, args, finetune))
                            say(_summary(report.scenarios[-1]))
                except FinetuneNotTraining as exc:
                    report.problems.append(str(exc))
                    say(str(exc))
    return report


def _fmt(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds:.2f}"


def _summary(s: ScenarioReport) -> str:
    d, g = s.by_kind["distribution"], s.by_kind["generate"]
    return (
        f"  {s.requests} requests, {s.errors} errors; p50/p95 {_fmt(s.latency.p50_s)}/{_fmt(s.latency.p95_s)} s "
        f"(distribution {_fmt(d.p50_s)}/{_fmt(d.p95_s)}, of which opening the page {_fmt(s.opening.p50_s)}/"
        f"{_fmt(s.opening.p95_s)}; generate {_fmt(g.p50_s)}/{_fmt(g.p95_s)}); "
        f"server memory peak {s.server_rss_peak_mb:,.0f} MB"
    )


def markdown_table(report: LoadReport) -> str:
    """The scenarios as the README shows them."""
    lines = [
        "| users | fine-tune | requests | errors | p50 | p95 | distribution p50 / p95 | of which opening the page "
        "| generate p50 / p95 | peak memory (server) | fine-tune steps | CPU s: app / fine-tune / load test |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in report.scenarios:
        d, g = s.by_kind["distribution"], s.by_kind["generate"]
        finetune = f"running ({s.finetune_rss_peak_mb:,.0f} MB)" if s.finetune_running else "—"
        lines.append(
            f"| {s.users} | {finetune} | {s.requests} | {s.errors} | {_fmt(s.latency.p50_s)} s "
            f"| {_fmt(s.latency.p95_s)} s | {_fmt(d.p50_s)} / {_fmt(d.p95_s)} s "
            f"| {_fmt(s.opening.p50_s)} / {_fmt(s.opening.p95_s)} s | {_fmt(g.p50_s)} / {_fmt(g.p95_s)} s "
            f"| {s.server_rss_peak_mb:,.0f} MB | {'—' if s.finetune_steps is None else s.finetune_steps} "
            f"| {s.cpu_s['server']:.0f} / {s.cpu_s.get('finetune', 0):.0f} / {s.cpu_s['load_test']:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, action="append", help="concurrent students (repeat: 10 and 30 default)")
    parser.add_argument("--duration", type=float, default=40, help="seconds each load level lasts (default 40)")
    parser.add_argument("--think", type=float, default=3, help="a student's pause between clicks, ±50%% (default 3)")
    parser.add_argument("--tokens", type=int, default=5, help="tokens per Generate click (default 5)")
    parser.add_argument("--timeout", type=float, default=60, help="seconds before a request counts as failed")
    parser.add_argument("--with-finetune", action="store_true", help="run each level again during a fine-tune")
    parser.add_argument(
        "--class-room",
        action="store_true",
        help="play class mode instead: the students join a room and guess while the teacher reveals (30 by default)",
    )
    parser.add_argument(
        "--round-time", type=float, default=15, help="class mode: the most a round waits for answers (default 15)"
    )
    parser.add_argument(
        "--openmp-default",
        action="store_true",
        help="start the app without OMP_WAIT_POLICY=PASSIVE (idle OpenMP threads spin), to compare",
    )
    parser.add_argument(
        "--api-base-url",
        help="start the app with every session on this OpenAI-compatible server (e.g. llama.cpp's llama-server "
        "--parallel 8 at http://127.0.0.1:8080/v1): the class scaled out",
    )
    parser.add_argument(
        "--api-model", default="", help="the model name the API server knows (default: the first it lists)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    args.users = args.users or ([30] if args.class_room else [10, 30])
    if args.api_base_url and not args.api_model:
        args.api_model = first_model(args.api_base_url, args.timeout)
    if min(args.users) < 1 or args.duration <= 0 or args.timeout <= 0 or args.tokens < 1 or args.think < 0:
        parser.error("users, duration, timeout and tokens must be positive (think may be 0)")
    if args.class_room and (args.with_finetune or args.round_time <= 0):
        parser.error("--class-room runs without a fine-tune, and its --round-time must be positive")
    say = (lambda line: print(line, file=sys.stderr, flush=True)) if args.json else print
    report = run(args, say)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    elif args.class_room:
        from bench.class_scenario import class_table

        print(class_table(report.class_rooms))
    else:
        print(markdown_table(report))
        for problem in report.problems:
            print(f"Not measured: {problem}")
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
