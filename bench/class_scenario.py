"""The class scenario of the load test (``bench/load_test.py --class-room``): a class plays class mode.

On the same server as the explorer scenarios (``make run``'s way, a private
data folder), with a teacher secret as ``make run HOST=0.0.0.0`` has:

1. the teacher types the secret, opens the explorer on a prompt and presses
   **🙋 Ask the class**; the room's page (a session of its own, as the
   projector's tab) counts the answers by polling, as the page does;
2. every student opens the join page at once (``/join?room=CODE``), thinks,
   sends a name and a guess (one in five changes it a moment later), and
   polls the room every 2 s as the page's fragment does, until the result
   arrives, then until the next round starts;
3. the teacher reveals once every student answered (or ``--round-time``
   passed), lets the class look at the result, and starts the next round,
   until ``--duration`` is over.

Every answer is checked: the join page must show the guess form, a guess
must come back confirmed, a poll must answer, the result must reach every
phone that guessed, the reveal must show the table and the next round its
header. At the end the rooms database is read directly: every guess a phone
saw confirmed must be there, once per student and round, with the text sent
last ("lost" counts the ones that are not).

Latencies, by kind: ``join`` (the page's first run), ``guess`` (the click to
the confirmed guess), ``poll`` (a phone's or the teacher's count's fragment
rerun when nothing changed), ``result`` and ``new round`` (the poll that
brought a phone the reveal, or the next round: the whole page redrawn),
``reveal`` and ``next round`` (the teacher's clicks, the reveal's scoring
included), ``open room`` (the explorer's button).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlencode

from bench.load_test import MB, Latency, Request, RssSampler, Timed, cpu_seconds, run_at_once
from bench.streamlit_session import AppSession, RunResult, SessionError
from core.json_records import JsonRecord
from core.rooms.store import RoomStore

PROMPT = "The capital of France is"
GUESSES = ("Paris", "paris", "the", "a", "London", "Lyon", "beautiful", "known", "ice cream", "PARIS.", "not")
# the pages' words (pages/explorer.py, pages/room.py, pages/join.py, the sidebar)
TEACHER_BOX, ASK, REVEAL, NEXT = "🔑 Teacher", "🙋 Ask the class", "👁 Reveal", "▶ Next round"
NAME, GUESS = "Your name (leave it empty to stay anonymous)", "Your guess: the next word"
SEND, CHANGE = "Send my guess", "Change my guess"
ROUND = re.compile(r"Round (\d+): what comes next\?")
ANSWERS = re.compile(r"Answers to round (\d+): (\d+)")
KINDS = ("open room", "join", "guess", "poll", "result", "new round", "reveal", "next round")


@dataclass
class ClassReport(JsonRecord):
    """One class: how the server answered ``users`` phones and the teacher's screen for ``duration_s``."""

    users: int
    rounds_revealed: int
    wall_s: float
    requests: int
    errors: int
    error_samples: list[str]
    by_kind: dict[str, Latency]
    guesses_confirmed: int  # (student, round) pairs whose guess a phone saw confirmed
    guesses_lost: int  # of those, missing from the database or holding another text
    server_rss_start_mb: float
    server_rss_peak_mb: float
    cpu_s: dict[str, float]


def round_shown(result: RunResult) -> int | None:
    found = next((ROUND.search(t) for t in result.texts if ROUND.search(t)), None)
    return int(found.group(1)) if found else None


def says(result: RunResult, words: str) -> bool:
    return any(words in t for t in result.texts)


class Phone(Timed):
    """One student's phone on the join page, round after round until the deadline."""

    def __init__(self, base_url: str, code: str, user: int, args: argparse.Namespace, deadline: float) -> None:
        super().__init__()
        self.base_url, self.code, self.user, self.args, self.deadline = base_url, code, user, args, deadline
        self.random = random.Random(user)
        self.confirmed: dict[int, str] = {}  # round -> the guess the page confirmed last

    def run(self, start: threading.Barrier) -> None:
        start.wait()
        try:
            with AppSession(self.base_url, "join", urlencode({"room": self.code}), timeout=self.args.timeout) as tab:
                page = self.timed("join", tab.rerun, lambda r: None if SEND in tab.widget_ids else "no guess form")
                while time.monotonic() < self.deadline:
                    number = round_shown(page)
                    self._guess(tab, number)
                    page = self._wait(tab, lambda r: says(r, "You guessed"), "result")
                    if page is None:
                        return
                    page = self._wait(tab, lambda r, n=number: round_shown(r) not in (None, n), "new round")
                    if page is None:
                        return
        except SessionError:
            return  # counted as an error where it happened; a real phone would reload

    def _guess(self, tab: AppSession, number: int | None) -> None:
        for attempt in range(2 if self.random.random() < 0.2 else 1):  # one in five changes their mind, quickly
            time.sleep(self.args.think * (self.random.uniform(0.2, 0.5) if attempt else self.random.uniform(0.5, 1.5)))
            text = self.random.choice(GUESSES)
            tab.set_value(NAME, string_value=f"Student {self.user + 1}")
            tab.set_value(GUESS, string_value=text)
            self.timed(
                "guess",
                lambda a=attempt: tab.click(CHANGE if a else SEND),
                lambda r, t=text: None if says(r, f"Your guess: <b>{t}</b>") else "the guess was not confirmed",
            )
            if number is not None:
                self.confirmed[number] = text

    def _wait(self, tab: AppSession, arrived: Callable[[RunResult], bool], kind: str) -> RunResult | None:
        """Poll as the page does until ``arrived`` (that poll counts as ``kind``); None once the class is over."""
        while time.monotonic() < self.deadline + self.args.round_time:
            if tab.polling is None:
                raise SessionError("the join page does not poll the room")
            fragment, interval = tab.polling
            time.sleep(interval)
            began = time.perf_counter()
            try:
                result = tab.rerun_fragment(fragment)
            except SessionError as exc:
                self.requests.append(Request("poll", time.perf_counter() - began, str(exc)))
                raise
            got = arrived(result)
            self.requests.append(Request(kind if got else "poll", result.seconds, "; ".join(result.problems) or None))
            if result.problems:
                raise SessionError(f"poll: {result.problems[0]}")
            if got:
                return result
        return None


class Teacher(Timed):
    """The teacher: opens the room from the explorer, watches the count, reveals and moves on."""

    def __init__(self, base_url: str, secret: str, users: int, args: argparse.Namespace) -> None:
        super().__init__()
        self.base_url, self.secret, self.users, self.args = base_url, secret, users, args
        self.rounds_revealed = 0

    def open_room(self) -> str:
        query = urlencode({"prompt": PROMPT})
        with AppSession(self.base_url, "explorer", query, timeout=self.args.timeout) as tab:
            tab.rerun()
            tab.set_value(TEACHER_BOX, string_value=self.secret)
            tab.rerun()
            self.timed(
                "open room", lambda: tab.click(ASK), lambda r: None if "room=" in tab.query_string else "no room"
            )
            return parse_qs(tab.query_string)["room"][0]

    def run(self, code: str, start: threading.Barrier, deadline: float) -> None:
        start.wait()
        try:
            with AppSession(self.base_url, "room", urlencode({"room": code}), timeout=self.args.timeout) as tab:
                tab.rerun()
                tab.set_value(TEACHER_BOX, string_value=self.secret)
                page = tab.rerun()
                while True:
                    number = round_shown(page)
                    self._wait_for_answers(tab, number)
                    self.timed("reveal", lambda: tab.click(REVEAL), self._revealed)
                    self.rounds_revealed += 1
                    time.sleep(2 * self.args.think)  # the class looks at the result
                    if time.monotonic() >= deadline:
                        return
                    page = self.timed(
                        "next round",
                        lambda: tab.click(NEXT),
                        lambda r, n=number: None if round_shown(r) == (n or 0) + 1 else "the next round did not start",
                    )
        except SessionError:
            return

    @staticmethod
    def _revealed(result: RunResult) -> str | None:
        shown = says(result, "Each guess") or says(result, "No one answered")
        return None if shown else "the reveal did not show the class's guesses"

    def _wait_for_answers(self, tab: AppSession, number: int | None) -> None:
        """Poll the live count (as the page does, every second) until everyone answered or the round time passed."""
        ends = time.monotonic() + self.args.round_time
        while time.monotonic() < ends:
            if tab.polling is None:
                raise SessionError("the room page does not count the answers")
            fragment, interval = tab.polling
            time.sleep(interval)
            counted = self.timed("poll", lambda f=fragment: tab.rerun_fragment(f), lambda r: None)
            answers = next((ANSWERS.search(t) for t in counted.texts if ANSWERS.search(t)), None)
            if answers and int(answers.group(1)) == number and int(answers.group(2)) >= self.users:
                time.sleep(self.args.think)  # a glance at the full count: late changes of mind arrive meanwhile
                return


def lost_guesses(data_dir: Path, code: str, phones: list[Phone]) -> int:
    """Guesses a phone saw confirmed that the database does not hold as sent (once per student and round)."""
    store = RoomStore(data_dir / "rooms.sqlite3")
    stored: dict[tuple[int, str], str] = {}
    for number in {n for phone in phones for n in phone.confirmed}:
        for g in store.guesses(code, number):
            stored[(number, g.name)] = g.text
    return sum(
        stored.get((number, f"Student {phone.user + 1}")) != text
        for phone in phones
        for number, text in phone.confirmed.items()
    )


def run_class(
    base_url: str, server_pid: int, data_dir: Path, secret: str, users: int, args: argparse.Namespace
) -> ClassReport:
    """One class of ``users`` students and their teacher on the app at ``base_url`` (started with ``secret``)."""
    teacher = Teacher(base_url, secret, users, args)
    code = teacher.open_room()
    processes = {"server": server_pid, "load_test": os.getpid()}
    cpu_before = {name: cpu_seconds(pid) for name, pid in processes.items()}
    with RssSampler(server_pid, None) as memory:
        began = time.monotonic()
        deadline = began + args.duration
        phones = [Phone(base_url, code, user, args, deadline) for user in range(users)]
        run_at_once([*(phone.run for phone in phones), lambda start: teacher.run(code, start, deadline)])
        wall = time.monotonic() - began
    requests = [r for who in (teacher, *phones) for r in who.requests]
    errors = [r.error for r in requests if r.error]
    answered = [r for r in requests if r.error is None]
    return ClassReport(
        users=users,
        rounds_revealed=teacher.rounds_revealed,
        wall_s=round(wall, 1),
        requests=len(requests),
        errors=len(errors),
        error_samples=sorted(set(errors))[:5],
        by_kind={kind: Latency.of([r.seconds for r in answered if r.kind == kind]) for kind in KINDS},
        guesses_confirmed=sum(len(p.confirmed) for p in phones),
        guesses_lost=lost_guesses(data_dir, code, phones),
        server_rss_start_mb=round(memory.start["server"] / MB),
        server_rss_peak_mb=round(memory.peak["server"] / MB),
        cpu_s={name: round(cpu_seconds(pid) - cpu_before[name], 1) for name, pid in processes.items()},
    )


def _fmt(latency: Latency) -> str:
    if latency.p50_s is None or latency.p95_s is None:
        return "—"
    return f"{latency.p50_s:.2f} / {latency.p95_s:.2f} s"


def class_summary(r: ClassReport) -> str:
    k = r.by_kind
    return (
        f"  {r.users} students, {r.rounds_revealed} rounds revealed: {r.requests} requests, {r.errors} errors, "
        f"{r.guesses_lost} of {r.guesses_confirmed} guesses lost; guess {_fmt(k['guess'])}, poll {_fmt(k['poll'])}, "
        f"result {_fmt(k['result'])}, reveal {_fmt(k['reveal'])}; server RSS peak {r.server_rss_peak_mb:,.0f} MB"
    )


def class_table(reports: list[ClassReport]) -> str:
    """The class scenarios as the README shows them."""
    lines = [
        "| students | rounds | requests | errors | guesses lost | join p50 / p95 | guess p50 / p95 | poll p50 / p95 "
        "| result p50 / p95 | reveal p50 / p95 | next round p50 / p95 | peak RSS (server) | CPU s: app / load test |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in reports:
        k = r.by_kind
        lines.append(
            f"| {r.users} | {r.rounds_revealed} | {r.requests} | {r.errors} "
            f"| {r.guesses_lost} of {r.guesses_confirmed} "
            f"| {_fmt(k['join'])} | {_fmt(k['guess'])} | {_fmt(k['poll'])} | {_fmt(k['result'])} "
            f"| {_fmt(k['reveal'])} | {_fmt(k['next round'])} | {r.server_rss_peak_mb:,.0f} MB "
            f"| {r.cpu_s['server']:.0f} / {r.cpu_s['load_test']:.0f} |"
        )
    return "\n".join(lines)
