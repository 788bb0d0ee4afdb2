"""Class mode: the class guesses the next token on their phones, then sees itself beside the model.

The verbs of the game, on a ``RoomStore`` and the room's model:

1. the teacher opens a room on a prompt (``open_room``) and gets a code for
   the board and a teacher token for their own session;
2. each student sends a name (or none) and a guess (``RoomStore.add_guess``;
   a second guess in a round replaces the first) and sees ``round_state``,
   which never holds another student's name or guess;
3. the teacher reveals the round (``reveal_round``): the class's histogram
   beside the model's probabilities, the share that agreed with the model's
   top token, and each student's guess with the model's probability for it;
   after that anyone in the room may read it (``revealed_round``);
4. the teacher appends the class's favourite, the model's choice or a text
   of their own, and the next round starts on the longer prompt (``next_round``);
5. at the end, ``room_summary`` sets the class against the model round by round.

Only the teacher token reveals, advances and closes. ``score_round`` reads a
round whether or not it is revealed: it is for the machine's owner (the
command line) and must not be shown to students before the reveal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from core.errors import InvalidInput
from core.json_records import JsonRecord
from core.models import LoadedModel
from core.rooms.guesses import clean_guess, model_surface
from core.rooms.scoring import Reveal, guess_ids, score_guesses
from core.rooms.store import Continuation, OpenedRoom, Room, RoomStore, RoundRecord
from core.tokens import check_token_ids, encode_prompt

TOKENS_KEPT_FREE = 256  # a room's text must leave this many tokens of context for guesses (60 chars ≤ 240 bytes)
CHOICES = ("class", "model", "text")


@dataclass(frozen=True)
class RoundState(JsonRecord):
    """What a phone, or the teacher's board, shows while a round runs.

    It holds a count of answers and, for a student, their own name and
    guess: never anyone else's, so it can be sent to every phone before the
    reveal.
    """

    room: str
    round: int
    prompt_text: str
    revealed: bool
    closed: bool
    answers: int
    your_name: str | None = None
    your_guess: str | None = None


@dataclass(frozen=True)
class NextRound:
    """A new round, and what was appended to the previous round's prompt to start it."""

    round: RoundRecord
    appended: Continuation

    def to_json(self) -> dict[str, Any]:
        return {
            "room": self.round.room,
            "round": self.round.number,
            "prompt": self.round.prompt_text,
            "appended": self.appended.to_json(),
        }


@dataclass(frozen=True)
class RoundSummary(JsonRecord):
    """One revealed round, class against model."""

    round: int
    answers: int
    favourite: str | None  # the class's most guessed word (None when no one answered)
    favourite_tokens: tuple[str, ...]
    favourite_share: float
    favourite_model_prob: float | None  # the model's probability for the class's favourite
    model_token: str  # the model's top token
    model_prob: float
    agreed: bool  # the class's favourite is the model's top token
    agreement: float  # share of the students whose own guess was the model's top token
    appended: Continuation | None  # what started the next round, if one was started


@dataclass(frozen=True)
class RoomSummary(JsonRecord):
    """The game so far: the story the rounds wrote, and how often the class and the model agreed."""

    json_derived = ("rounds_played", "rounds_agreed", "mean_agreement")

    room: str
    model: str
    prompt: str  # as the teacher typed it
    text: str  # what the model reads now: the prompt with every appended continuation
    rounds: tuple[RoundSummary, ...]  # revealed rounds only

    @property
    def rounds_played(self) -> int:
        return len(self.rounds)

    @property
    def rounds_agreed(self) -> int:
        return sum(r.agreed for r in self.rounds)

    @property
    def mean_agreement(self) -> float | None:
        """The mean over rounds of the share of the class that agreed with the model (None before any reveal)."""
        return sum(r.agreement for r in self.rounds) / len(self.rounds) if self.rounds else None


def _check_room_left(lm: LoadedModel, n_tokens: int) -> None:
    if n_tokens + TOKENS_KEPT_FREE > lm.context_length:
        raise InvalidInput(
            f"The text has {n_tokens:,} tokens; a class room needs {TOKENS_KEPT_FREE} of "
            f"{lm.display_name}'s {lm.context_length:,} left free for guesses. Start from a shorter prompt."
        )


def _check_model(lm: LoadedModel, room: Room) -> None:
    """The room's token ids only make sense to the model it was opened with."""
    if lm.key.name != room.model or lm.adapter is not None:
        raise InvalidInput(f"This room is played with the model {room.model!r}; load that model to run it.")


def open_room(
    store: RoomStore, lm: LoadedModel, prompt: str, chat: bool = False, steered: Sequence[int] = ()
) -> OpenedRoom:
    """Open a room on ``prompt`` (chat: as the user's message in the model's template); round 1 starts on it.

    ``steered``: tokens the teacher already appended in the explorer; round 1
    starts after them, so the class guesses what the teacher's screen shows.
    """
    if lm.adapter is not None:
        raise InvalidInput("A class room is played with a base model: switch the adapter off.")
    tokens = encode_prompt(lm, prompt, chat)
    steered = list(steered)
    check_token_ids(lm, steered)
    ids = tokens.ids + steered
    _check_room_left(lm, len(ids))
    text = tokens.text + (lm.tokenizer.decode(steered) if steered else "")
    return store.create_room(prompt, chat, lm.key.name, text, ids)


def round_state(store: RoomStore, code: str, student_id: str | None = None) -> RoundState:
    """The current round for a phone (with ``student_id``: their own guess) or the board: no one else's guesses."""
    room = store.room(code)
    record = store.round(room.code)
    mine = store.guess_of(room.code, student_id) if student_id is not None else None
    return RoundState(
        room=room.code,
        round=record.number,
        prompt_text=record.prompt_text,
        revealed=record.revealed,
        closed=room.closed,
        answers=store.answer_count(room.code, record.number),
        your_name=mine.name if mine else None,
        your_guess=mine.text if mine else None,
    )


def score_round(store: RoomStore, lm: LoadedModel, code: str, number: int | None = None) -> Reveal:
    """A round's reveal whether or not the teacher has revealed it: for the machine's owner, never for phones."""
    room = store.room(code)
    _check_model(lm, room)
    record = store.round(room.code, _round_number(number))
    return score_guesses(lm, record, store.guesses(room.code, record.number))


def reveal_round(store: RoomStore, lm: LoadedModel, code: str, teacher_token: str) -> Reveal:
    """Close the current round to guesses and reveal it (teacher only)."""
    _check_model(lm, store.check_teacher(code, teacher_token))
    record = store.reveal(code, teacher_token)
    return score_guesses(lm, record, store.guesses(record.room, record.number))


def revealed_round(store: RoomStore, lm: LoadedModel, code: str, number: int | None = None) -> Reveal:
    """A round's reveal for anyone in the room, once the teacher has revealed it."""
    record = store.round(code, _round_number(number))
    if not record.revealed:
        raise InvalidInput(f"The teacher has not revealed round {record.number} yet.")
    return score_round(store, lm, record.room, record.number)


def next_round(
    store: RoomStore,
    lm: LoadedModel,
    code: str,
    teacher_token: str,
    choose: str = "class",
    text: str | None = None,
) -> NextRound:
    """Append a continuation to the revealed round's prompt and start the next round (teacher only).

    ``choose``: ``"class"`` appends the class's favourite, as the model would
    write it (its preferred spelling, its tokens); ``"model"`` appends the
    model's top token; ``"text"`` appends ``text`` (the teacher's own words,
    kept as typed, with the leading space the model would write).
    """
    room = store.check_teacher(code, teacher_token)
    _check_model(lm, room)
    if choose not in CHOICES:
        raise InvalidInput(f"Choose what comes next with 'class', 'model' or 'text', not {choose!r}.")
    record = store.round(room.code)
    if not record.revealed:
        raise InvalidInput(f"Reveal round {record.number} before starting the next one.")
    if choose == "text":
        typed = " ".join(clean_guess(text).split())
        surface = model_surface(record.prompt_text, typed)
        appended = Continuation("text", surface, tuple(guess_ids(lm, surface)))
    else:
        reveal = score_guesses(lm, record, store.guesses(room.code, record.number))
        if choose == "model":
            top = reveal.model_choice
            appended = Continuation("model", top.token, (top.id,))
        elif reveal.favourite is None:
            raise InvalidInput(
                f"No one guessed in round {record.number}, so the class has no favourite: "
                "append the model's token or a text of your own."
            )
        else:
            best = reveal.favourite.reading
            appended = Continuation("class", best.surface, best.token_ids)
    _check_room_left(lm, len(record.prompt_ids) + len(appended.ids))
    return NextRound(store.advance(room.code, teacher_token, record.number, appended), appended)


def room_summary(store: RoomStore, lm: LoadedModel, code: str) -> RoomSummary:
    """Every revealed round, class against model; an unrevealed round is left out (it may still take guesses)."""
    room = store.room(code)
    _check_model(lm, room)
    records = store.rounds(room.code)
    rounds = []
    for record in records:
        if not record.revealed:
            continue
        reveal = score_guesses(lm, record, store.guesses(room.code, record.number))
        favourite, top = reveal.favourite, reveal.model_choice
        rounds.append(
            RoundSummary(
                round=record.number,
                answers=reveal.answers,
                favourite=favourite.label if favourite else None,
                favourite_tokens=favourite.reading.tokens if favourite else (),
                favourite_share=favourite.share if favourite else 0.0,
                favourite_model_prob=favourite.model_prob if favourite else None,
                model_token=top.token,
                model_prob=top.prob,
                agreed=favourite is not None and favourite.matches_model,
                agreement=reveal.agreement,
                appended=record.chosen,
            )
        )
    return RoomSummary(room.code, lm.display_name, room.prompt, records[-1].prompt_text, tuple(rounds))


def _round_number(number: int | None) -> int | None:
    if number is not None and (not isinstance(number, int) or isinstance(number, bool) or number < 1):
        raise InvalidInput(f"A round number is a whole number from 1; got {number!r}.")
    return number
