"""Class rooms on disk: one SQLite file shared by every session of the app and by the command line.

Streamlit sessions are threads of one process and ``python -m core room`` is
another process, so the rooms live in ``<data>/rooms.sqlite3`` rather than in
memory, and they survive a restart of the app. The file is in WAL mode
(readers never wait for a writer), every connection sets a busy timeout and
turns foreign keys on, and every operation opens its own short connection:
nothing is shared between threads, and every write is one ``BEGIN
IMMEDIATE`` transaction, so thirty phones sending a guess at once queue for
a few milliseconds each instead of losing a guess.

A room lasts a day. An expired room behaves exactly like one that never
existed (same sentence) and is deleted the first time anyone asks for it;
opening a room deletes every expired one. The clock is injectable so tests
can age a room without waiting.

This module knows nothing of models: what the model thinks of the guesses is
``core.rooms.scoring``'s job, and ``core.rooms.game`` ties the two together.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import InvalidInput, LabError
from core.jobs.paths import data_root
from core.json_records import JsonRecord, json_name
from core.rooms.codes import new_code, new_teacher_token, normalise_code, token_hash, token_matches
from core.rooms.guesses import check_student_id, clean_guess, clean_name

SCHEMA_VERSION = 1
ROOM_LIFETIME_S = 24 * 3600
MAX_STUDENTS = 200
MAX_ROUNDS = 50
BUSY_TIMEOUT_S = 15.0  # how long a write waits for another one before giving up

UNKNOWN_ROOM = "No open room has this code: check it with your teacher (a room lasts one day)."
WRONG_TEACHER = "Only the teacher who opened this room can do that: the teacher token does not match."
CLOSED_ROOM = "This room is closed: the teacher has ended the game."
BUSY = "The class's answers are arriving faster than this machine can save them: send yours again in a moment."

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS rooms (
        code TEXT PRIMARY KEY,
        prompt TEXT NOT NULL,               -- as the teacher typed it
        chat INTEGER NOT NULL,
        model TEXT NOT NULL,                -- the name load_model() takes
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        closed INTEGER NOT NULL DEFAULT 0,
        teacher_token_hash TEXT NOT NULL    -- SHA-256 of the token; the token itself is never stored
    )""",
    "CREATE INDEX IF NOT EXISTS rooms_by_expiry ON rooms (expires_at)",
    """CREATE TABLE IF NOT EXISTS rounds (
        room TEXT NOT NULL REFERENCES rooms (code) ON DELETE CASCADE,
        number INTEGER NOT NULL,
        prompt_text TEXT NOT NULL,          -- what the model reads, template applied
        prompt_ids TEXT NOT NULL,           -- JSON list of token ids
        revealed INTEGER NOT NULL DEFAULT 0,
        chosen TEXT,                        -- JSON: what was appended to start the next round
        PRIMARY KEY (room, number)
    )""",
    """CREATE TABLE IF NOT EXISTS guesses (
        room TEXT NOT NULL,
        round INTEGER NOT NULL,
        student TEXT NOT NULL,              -- random per browser; never shown
        name TEXT NOT NULL,
        text TEXT NOT NULL,                 -- as typed
        created_at REAL NOT NULL,
        PRIMARY KEY (room, round, student),
        FOREIGN KEY (room, round) REFERENCES rounds (room, number) ON DELETE CASCADE
    )""",
    "CREATE INDEX IF NOT EXISTS guesses_by_student ON guesses (room, student)",
)


def rooms_path() -> Path:
    """Where the rooms live: ``<data>/rooms.sqlite3``."""
    return data_root() / "rooms.sqlite3"


@dataclass(frozen=True)
class Room(JsonRecord):
    """An open room: the teacher's prompt, the model it is played with, and the round it is at."""

    code: str = field(metadata=json_name("room"))
    prompt: str
    chat: bool
    model: str
    created_at: float
    expires_at: float
    closed: bool
    round: int


@dataclass(frozen=True)
class OpenedRoom:
    """A room just opened, with the teacher token: shown once, to the teacher only, and never stored."""

    room: Room
    teacher_token: str = field(repr=False)

    def to_json(self) -> dict[str, Any]:
        return {**self.room.to_json(), "teacher_token": self.teacher_token}


@dataclass(frozen=True)
class Continuation(JsonRecord):
    """What was appended to a round's prompt to start the next round, and who chose it."""

    source: str  # "class", "model" or "text"
    text: str  # exactly what the model reads, leading space included
    ids: tuple[int, ...]


@dataclass(frozen=True)
class RoundRecord(JsonRecord):
    """One round as stored: the prompt the class guesses after, and whether it has been revealed."""

    room: str
    number: int = field(metadata=json_name("round"))
    prompt_text: str
    prompt_ids: tuple[int, ...]
    revealed: bool
    chosen: Continuation | None


@dataclass(frozen=True)
class GuessRecord:
    """One student's guess in one round. ``student_id`` is for matching only and never leaves ``to_json``."""

    room: str
    round: int
    student_id: str = field(repr=False)
    name: str
    text: str
    created_at: float
    replaced: bool = False  # this guess replaced the student's earlier one in the same round

    def to_json(self) -> dict[str, Any]:
        return {"round": self.round, "name": self.name, "guess": self.text, "replaced": self.replaced}


class _Expired(Exception):
    """Raised inside a transaction that met an expired room; the room is then deleted in a write of its own."""

    def __init__(self, code: str) -> None:
        self.code = code


class RoomStore:
    """The rooms in one SQLite file (default ``<data>/rooms.sqlite3``); safe to share between threads."""

    def __init__(self, path: Path | None = None, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path) if path is not None else rooms_path()
        self.clock = clock
        self._create_schema()

    # --- connections -------------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        # isolation_level=None: transactions are begun and ended here, explicitly, not by the driver.
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        conn.execute("PRAGMA foreign_keys = ON")
        return conn

    def _create_schema(self) -> None:
        """Create the tables once (idempotent, safe when several processes start together)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = self._open()
            try:
                conn.execute("PRAGMA journal_mode = WAL")  # recorded in the file: every later connection uses it
                conn.execute("BEGIN IMMEDIATE")
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                if version > SCHEMA_VERSION:
                    conn.execute("ROLLBACK")
                    raise LabError(
                        f"The rooms database {self.path} was written by a newer LLM Lab (schema {version}); "
                        "update LLM Lab or point LLM_LAB_DATA at another folder."
                    )
                for statement in _SCHEMA:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                conn.execute("COMMIT")
            finally:
                conn.close()
        except sqlite3.DatabaseError as exc:
            raise LabError(
                f"The rooms database {self.path} cannot be used ({exc}): move it away and LLM Lab starts a new one."
            ) from exc

    @contextmanager
    def _transaction(self, write: bool) -> Iterator[sqlite3.Connection]:
        """One transaction on a fresh connection: ``BEGIN IMMEDIATE`` for writes, a consistent snapshot for reads."""
        conn = self._open()
        try:
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except _Expired as expired:
            self._delete_if_expired(expired.code)
            raise InvalidInput(UNKNOWN_ROOM) from None
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):  # waited BUSY_TIMEOUT_S behind other writers
                raise LabError(BUSY) from exc
            raise
        finally:
            conn.close()

    def _delete_if_expired(self, code: str) -> None:
        with self._transaction(write=True) as conn:
            conn.execute("DELETE FROM rooms WHERE code = ? AND expires_at <= ?", (code, self.clock()))

    # --- reading rows ------------------------------------------------------------------------

    def _room(self, conn: sqlite3.Connection, code: object) -> Room:
        code = normalise_code(code)
        row = conn.execute("SELECT * FROM rooms WHERE code = ?", (code,)).fetchone()
        if row is None:
            raise InvalidInput(UNKNOWN_ROOM)
        if row["expires_at"] <= self.clock():
            raise _Expired(code)
        current = conn.execute("SELECT MAX(number) FROM rounds WHERE room = ?", (code,)).fetchone()[0]
        return Room(
            code=row["code"],
            prompt=row["prompt"],
            chat=bool(row["chat"]),
            model=row["model"],
            created_at=row["created_at"],
            expires_at=row["expires_at"],
            closed=bool(row["closed"]),
            round=int(current),
        )

    def _check_teacher(self, conn: sqlite3.Connection, room: Room, teacher_token: object) -> None:
        stored = conn.execute("SELECT teacher_token_hash FROM rooms WHERE code = ?", (room.code,)).fetchone()[0]
        if not token_matches(teacher_token, stored):
            raise InvalidInput(WRONG_TEACHER)

    @staticmethod
    def _round(conn: sqlite3.Connection, room: Room, number: int | None) -> RoundRecord:
        number = room.round if number is None else number
        row = conn.execute("SELECT * FROM rounds WHERE room = ? AND number = ?", (room.code, number)).fetchone()
        if row is None:
            raise InvalidInput(f"This room has no round {number!r}: it has rounds 1 to {room.round}.")
        chosen = json.loads(row["chosen"]) if row["chosen"] else None
        return RoundRecord(
            room=room.code,
            number=row["number"],
            prompt_text=row["prompt_text"],
            prompt_ids=tuple(json.loads(row["prompt_ids"])),
            revealed=bool(row["revealed"]),
            chosen=Continuation(chosen["source"], chosen["text"], tuple(chosen["ids"])) if chosen else None,
        )

    @staticmethod
    def _guess(row: sqlite3.Row, replaced: bool = False) -> GuessRecord:
        return GuessRecord(
            row["room"], row["round"], row["student"], row["name"], row["text"], row["created_at"], replaced
        )

    # --- public reads ------------------------------------------------------------------------

    def room(self, code: object) -> Room:
        """The open room with this code (any case, spaces and dashes allowed), or the unknown-room sentence."""
        with self._transaction(write=False) as conn:
            return self._room(conn, code)

    def round(self, code: object, number: int | None = None) -> RoundRecord:
        """Round ``number`` of the room (default: the current one)."""
        with self._transaction(write=False) as conn:
            return self._round(conn, self._room(conn, code), number)

    def rounds(self, code: object) -> list[RoundRecord]:
        """Every round of the room, first first."""
        with self._transaction(write=False) as conn:
            room = self._room(conn, code)
            return [self._round(conn, room, n) for n in range(1, room.round + 1)]

    def guesses(self, code: object, number: int | None = None) -> list[GuessRecord]:
        """The guesses of round ``number`` (default: the current one), oldest first."""
        with self._transaction(write=False) as conn:
            room = self._room(conn, code)
            record = self._round(conn, room, number)
            rows = conn.execute(
                "SELECT * FROM guesses WHERE room = ? AND round = ? ORDER BY created_at, student",
                (room.code, record.number),
            ).fetchall()
            return [self._guess(row) for row in rows]

    def guess_of(self, code: object, student_id: str, number: int | None = None) -> GuessRecord | None:
        """One student's guess in a round (default: the current one), or None."""
        check_student_id(student_id)
        with self._transaction(write=False) as conn:
            room = self._room(conn, code)
            record = self._round(conn, room, number)
            row = conn.execute(
                "SELECT * FROM guesses WHERE room = ? AND round = ? AND student = ?",
                (room.code, record.number, student_id),
            ).fetchone()
            return self._guess(row) if row else None

    def answer_count(self, code: object, number: int | None = None) -> int:
        """How many students have answered in a round (default: the current one)."""
        with self._transaction(write=False) as conn:
            room = self._room(conn, code)
            record = self._round(conn, room, number)
            return int(
                conn.execute(
                    "SELECT COUNT(*) FROM guesses WHERE room = ? AND round = ?", (room.code, record.number)
                ).fetchone()[0]
            )

    def student_count(self, code: object) -> int:
        """How many different students have answered in any round of the room."""
        with self._transaction(write=False) as conn:
            room = self._room(conn, code)
            query = "SELECT COUNT(DISTINCT student) FROM guesses WHERE room = ?"
            return int(conn.execute(query, (room.code,)).fetchone()[0])

    def check_teacher(self, code: object, teacher_token: object) -> Room:
        """The room, if ``teacher_token`` is its teacher's; else the wrong-teacher sentence."""
        with self._transaction(write=False) as conn:
            room = self._room(conn, code)
            self._check_teacher(conn, room, teacher_token)
            return room

    # --- writes ------------------------------------------------------------------------------

    def create_room(self, prompt: str, chat: bool, model: str, prompt_text: str, prompt_ids: list[int]) -> OpenedRoom:
        """Open a room on a prompt already checked and tokenized; round 1 starts on it.

        Expired rooms are deleted first, so the file never grows with old classes.
        """
        token = new_teacher_token()
        with self._transaction(write=True) as conn:
            now = self.clock()
            conn.execute("DELETE FROM rooms WHERE expires_at <= ?", (now,))
            while True:  # a clash is a 1-in-a-trillion event, but a clash must not take over a room
                code = new_code()
                try:
                    conn.execute(
                        "INSERT INTO rooms (code, prompt, chat, model, created_at, expires_at, teacher_token_hash) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (code, prompt, int(chat), model, now, now + ROOM_LIFETIME_S, token_hash(token)),
                    )
                    break
                except sqlite3.IntegrityError:
                    continue
            conn.execute(
                "INSERT INTO rounds (room, number, prompt_text, prompt_ids) VALUES (?, 1, ?, ?)",
                (code, prompt_text, json.dumps(list(prompt_ids))),
            )
            return OpenedRoom(self._room(conn, code), token)

    def add_guess(self, code: object, student_id: str, name: object, guess: object) -> GuessRecord:
        """Record a student's guess for the current round; a second guess in the same round replaces the first.

        The name is checked (empty means "anonymous"), the guess is checked and
        stored as typed. Refused once the round is revealed, once the room is
        closed, and for a new student once the room has ``MAX_STUDENTS``.
        """
        check_student_id(student_id)
        name = clean_name(name)
        text = clean_guess(guess)
        with self._transaction(write=True) as conn:
            room = self._room(conn, code)
            if room.closed:
                raise InvalidInput(CLOSED_ROOM)
            record = self._round(conn, room, None)
            if record.revealed:
                raise InvalidInput(
                    f"Round {record.number} has been revealed, so it takes no more guesses: "
                    "wait for the teacher to start the next round."
                )
            key = (room.code, record.number, student_id)
            replaced = (
                conn.execute("SELECT 1 FROM guesses WHERE room = ? AND round = ? AND student = ?", key).fetchone()
                is not None
            )
            known = conn.execute(
                "SELECT 1 FROM guesses WHERE room = ? AND student = ? LIMIT 1", (room.code, student_id)
            ).fetchone()
            if known is None:
                students = conn.execute(
                    "SELECT COUNT(DISTINCT student) FROM guesses WHERE room = ?", (room.code,)
                ).fetchone()[0]
                if students >= MAX_STUDENTS:
                    raise InvalidInput(
                        f"This room already has {MAX_STUDENTS} students, the most one room takes: "
                        "ask your teacher to open a second room."
                    )
            conn.execute(
                "INSERT INTO guesses (room, round, student, name, text, created_at) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (room, round, student) DO UPDATE SET "
                "name = excluded.name, text = excluded.text, created_at = excluded.created_at",
                (*key, name, text, self.clock()),
            )
            row = conn.execute("SELECT * FROM guesses WHERE room = ? AND round = ? AND student = ?", key).fetchone()
            return self._guess(row, replaced)

    def reveal(self, code: object, teacher_token: object) -> RoundRecord:
        """Close the current round to guesses and mark it revealed (teacher only; revealing twice is harmless)."""
        with self._transaction(write=True) as conn:
            room = self._room(conn, code)
            self._check_teacher(conn, room, teacher_token)
            if room.closed:
                raise InvalidInput(CLOSED_ROOM)
            conn.execute("UPDATE rounds SET revealed = 1 WHERE room = ? AND number = ?", (room.code, room.round))
            return self._round(conn, room, None)

    def advance(self, code: object, teacher_token: object, from_round: int, continuation: Continuation) -> RoundRecord:
        """Append ``continuation`` to round ``from_round``'s prompt and start the next round on it (teacher only).

        ``from_round`` is the round the continuation was chosen in: if another
        tab of the teacher's moved the room on meanwhile, this one is refused
        rather than appending twice.
        """
        with self._transaction(write=True) as conn:
            room = self._room(conn, code)
            self._check_teacher(conn, room, teacher_token)
            if room.closed:
                raise InvalidInput(CLOSED_ROOM)
            current = self._round(conn, room, None)
            if current.number != from_round:
                raise InvalidInput(f"The room has already moved on to round {current.number}.")
            if not current.revealed:
                raise InvalidInput(f"Reveal round {current.number} before starting the next one.")
            if current.number >= MAX_ROUNDS:
                raise InvalidInput(
                    f"This room has played its {MAX_ROUNDS} rounds, the most one room takes: "
                    "close it and open a new room to go on."
                )
            conn.execute(
                "UPDATE rounds SET chosen = ? WHERE room = ? AND number = ?",
                (json.dumps(continuation.to_json()), room.code, current.number),
            )
            conn.execute(
                "INSERT INTO rounds (room, number, prompt_text, prompt_ids) VALUES (?, ?, ?, ?)",
                (
                    room.code,
                    current.number + 1,
                    current.prompt_text + continuation.text,
                    json.dumps([*current.prompt_ids, *continuation.ids]),
                ),
            )
            return self._round(conn, self._room(conn, room.code), None)

    def close(self, code: object, teacher_token: object) -> Room:
        """End the game (teacher only): no more guesses or rounds; the summary stays readable until expiry."""
        with self._transaction(write=True) as conn:
            room = self._room(conn, code)
            self._check_teacher(conn, room, teacher_token)
            conn.execute("UPDATE rooms SET closed = 1 WHERE code = ?", (room.code,))
            return self._room(conn, room.code)

    def purge_expired(self) -> int:
        """Delete every expired room with its rounds and guesses; return how many rooms went."""
        with self._transaction(write=True) as conn:
            return conn.execute("DELETE FROM rooms WHERE expires_at <= ?", (self.clock(),)).rowcount
