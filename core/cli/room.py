"""``room``: class mode from a terminal: open a room, guess, show, reveal, go on, summarise, close.

``python -m core room new --prompt "The weather today is"`` prints the room's
code and the teacher token; the other verbs take the code. Rooms live in
``<data>/rooms.sqlite3`` (``LLM_LAB_DATA`` chooses the data folder), so the
command line and the app see the same rooms. The command line is the
machine's owner: ``show`` lists the current round's guesses with the model's
probabilities before the reveal, which a phone never sees.
"""

from __future__ import annotations

import argparse
import hashlib
from typing import Any

from core.cli.common import Adder
from core.errors import InvalidInput
from core.models import DTYPES, LoadedModel
from core.rooms.store import RoomStore


def _room_model(args: argparse.Namespace, store: RoomStore) -> LoadedModel:
    """The model the room was opened with (``--dtype`` and ``--device`` still apply)."""
    from core.models import load_model

    return load_model(store.room(args.code).model, args.dtype, args.device)


def student_id_for(name: str) -> str:
    """The CLI's student id: derived from the name, so the same name guessing again replaces its guess."""
    return "cli-" + hashlib.sha256(name.strip().casefold().encode("utf-8", "surrogatepass")).hexdigest()[:16]


def cmd_new(args: argparse.Namespace) -> dict[str, Any]:
    from core.models import load_model
    from core.rooms.game import open_room

    store = RoomStore()
    opened = open_room(store, load_model(args.model, args.dtype, args.device), args.prompt, chat=args.chat)
    return {**opened.to_json(), "prompt_text": store.round(opened.room.code).prompt_text}


def cmd_guess(args: argparse.Namespace) -> dict[str, Any]:
    record = RoomStore().add_guess(args.code, student_id_for(args.student), args.student, args.token)
    return {
        "room": record.room,
        "round": record.round,
        "student": record.name,
        "guess": record.text,
        "replaced": record.replaced,
    }


def cmd_show(args: argparse.Namespace) -> dict[str, Any]:
    from core.rooms.game import score_round

    store = RoomStore()
    return score_round(store, _room_model(args, store), args.code).to_json()


def cmd_reveal(args: argparse.Namespace) -> dict[str, Any]:
    from core.rooms.game import reveal_round

    store = RoomStore()
    store.check_teacher(args.code, args.teacher_token)  # before the model loads: a wrong token fails at once
    return reveal_round(store, _room_model(args, store), args.code, args.teacher_token).to_json()


def cmd_next(args: argparse.Namespace) -> dict[str, Any]:
    from core.rooms.game import next_round

    store = RoomStore()
    store.check_teacher(args.code, args.teacher_token)  # before the model loads: a wrong token fails at once
    if args.text is not None:
        choose, text = "text", args.text
    elif args.choose.strip().lower() in ("class", "model"):
        choose, text = args.choose.strip().lower(), None
    else:
        choose, text = "text", args.choose
    return next_round(store, _room_model(args, store), args.code, args.teacher_token, choose, text).to_json()


def cmd_summary(args: argparse.Namespace) -> dict[str, Any]:
    from core.rooms.game import room_summary

    store = RoomStore()
    return room_summary(store, _room_model(args, store), args.code).to_json()


def cmd_close(args: argparse.Namespace) -> dict[str, Any]:
    return RoomStore().close(args.code, args.teacher_token).to_json()


def _no_verb(args: argparse.Namespace) -> dict[str, Any]:
    raise InvalidInput("Say what to do: room new, guess, show, reveal, next, summary or close.")


# --- tables -----------------------------------------------------------------------------------


def print_new(result: dict[str, Any]) -> None:
    print(f"Room {result['room']} is open on {result['model']} (round {result['round']}); it lasts a day.")
    print(f"Teacher token: {result['teacher_token']}")
    print("Keep the token to yourself: it reveals, advances and closes this room.")


def print_guess(result: dict[str, Any]) -> None:
    again = " (it replaces the earlier one)" if result["replaced"] else ""
    print(f"Round {result['round']}: {result['student']} guessed {result['guess']!r}{again}.")


def print_round(result: dict[str, Any]) -> None:
    from core.tokens import display_token

    state = "revealed" if result["revealed"] else "open for guesses"
    print(f"Round {result['round']} of room {result['room']} ({state}), {result['students']} answers")
    print(f"Prompt: {result['prompt'][-200:]!r}\n")
    if result["guesses"]:
        header = f"{'class guess':<24} {'count':>5} {'share':>6}  {'model':>8}  model's tokens"
        print(header)
        print("-" * len(header))
        for b in result["guesses"]:
            tokens = " + ".join(display_token(t) for t in b["tokens"])
            mark = "  ← model's top token" if b["matches_model"] else ""
            print(f"{b['token'][:24]:<24} {b['count']:>5} {b['share']:>6.0%}  {b['model_prob']:>8.2%}  {tokens}{mark}")
        print(f"\n{result['agreement']:.0%} of the class agreed with the model's top token.\n")
    print(f"{'model top':<24} {'prob':>8}  class")
    for c in result["model_top"]:
        print(f"{display_token(c['token'])[:24]:<24} {c['prob']:>8.2%}  {c['class_count']}")


def print_next(result: dict[str, Any]) -> None:
    appended = result["appended"]
    print(f"Round {result['round']} starts: appended {appended['text']!r} ({appended['source']}).")
    print(f"Prompt: {result['prompt'][-200:]!r}")


def print_summary(result: dict[str, Any]) -> None:
    from core.tokens import display_token

    print(f"Room {result['room']} on {result['model']}: {result['text'][-300:]!r}\n")
    header = f"{'round':>5}  {'class favourite':<20} {'share':>6} {'model':>8}  {'model top':<16} {'prob':>7}  agreed"
    print(header)
    print("-" * len(header))
    for r in result["rounds"]:
        favourite = "—" if r["favourite"] is None else r["favourite"][:20]
        model_prob = "—" if r["favourite_model_prob"] is None else f"{r['favourite_model_prob']:.2%}"
        print(
            f"{r['round']:>5}  {favourite:<20} {r['favourite_share']:>6.0%} {model_prob:>8}  "
            f"{display_token(r['model_token'])[:16]:<16} {r['model_prob']:>7.2%}  {'yes' if r['agreed'] else 'no'}"
        )
    if result["rounds"]:
        agreed, played = result["rounds_agreed"], result["rounds_played"]
        print(f"\nThe class's favourite was the model's top token in {agreed} of {played} rounds.")


def print_close(result: dict[str, Any]) -> None:
    print(f"Room {result['room']} is closed after {result['round']} rounds; its summary stays readable for a day.")


# --- registration -----------------------------------------------------------------------------


def _options(p: argparse.ArgumentParser, model: bool = False, runs_model: bool = True) -> None:
    """Options on a verb. SUPPRESS as the default: a value given before the verb (``room --json show``) stays."""
    if model:
        p.add_argument("--model", default=argparse.SUPPRESS, help="'embedded' (default), a .gguf file, a HF id")
    if runs_model:
        p.add_argument("--dtype", default=argparse.SUPPRESS, choices=list(DTYPES))
        p.add_argument("--device", default=argparse.SUPPRESS, help="auto (CUDA if present), cpu or cuda")
    p.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print one JSON object")


def register(add: Adder) -> None:
    p = add("room", _no_verb, "Class mode: the class guesses the next token, then sees itself beside the model.")
    verbs = p.add_subparsers(dest="room_command", required=True, metavar="VERB")

    def verb(name: str, handler: Any, printer: Any, help_text: str, teacher: bool = False) -> argparse.ArgumentParser:
        """A verb; every verb but ``new`` names a room, and the teacher's verbs need the room's teacher token."""
        q = verbs.add_parser(name, help=help_text, description=help_text)
        q.set_defaults(handler=handler, printer=printer)
        if name != "new":
            q.add_argument("code")
        if teacher:
            q.add_argument("--teacher-token", required=True)
        return q

    q = verb("new", cmd_new, print_new, "Open a room on a prompt; prints its code and the teacher token.")
    q.add_argument("--prompt", required=True)
    q.add_argument("--chat", action="store_true", help="the prompt is the user's message in the chat template")
    _options(q, model=True)

    q = verb("guess", cmd_guess, print_guess, "Guess the next word as a student (a second guess replaces the first).")
    q.add_argument("--student", required=True, help="the student's name (the same name replaces its own guess)")
    q.add_argument("--token", required=True, help="the guess: a word, or a few")
    _options(q, runs_model=False)

    _options(verb("show", cmd_show, print_round, "The current round's guesses with the model's probabilities."))
    _options(verb("reveal", cmd_reveal, print_round, "Reveal the current round (teacher): class beside model.", True))

    q = verb("next", cmd_next, print_next, "Append a continuation to the revealed round and start the next one.", True)
    q.add_argument(
        "--choose", default="class", help="'class' (the class's favourite, default), 'model' (its top token) or a text"
    )
    q.add_argument("--text", default=None, help="append this text, even if it is the word 'class' or 'model'")
    _options(q)

    _options(
        verb("summary", cmd_summary, print_summary, "Every revealed round: the class's favourite against the model.")
    )
    _options(
        verb("close", cmd_close, print_close, "End the game (teacher): no more guesses or rounds.", True),
        runs_model=False,
    )
