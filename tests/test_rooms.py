"""Class mode (core.rooms): the store under a class of writers, the rules of the game, and the model's side.

The store tests need no model (rooms are opened on made-up token ids); every
test where the model's numbers matter runs the real SmolLM2-135M.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from core.errors import InvalidInput
from core.rooms import game, links
from core.rooms.codes import CODE_ALPHABET, CODE_LENGTH, new_code, normalise_code
from core.rooms.guesses import (
    ANONYMOUS,
    MAX_GUESS_CHARS,
    MAX_NAME_CHARS,
    bucket_key,
    clean_guess,
    clean_name,
    model_surface,
    typed_form,
)
from core.rooms.links import JoinLink, join_link
from core.rooms.store import (
    CLOSED_ROOM,
    MAX_ROUNDS,
    MAX_STUDENTS,
    ROOM_LIFETIME_S,
    UNKNOWN_ROOM,
    WRONG_TEACHER,
    Continuation,
    RoomStore,
)
from core.tokens import encode_prompt
from tests.conftest import ROOT

PROMPT = "The capital of France is"


class Clock:
    """A clock the test moves by hand; each reading advances it a millisecond, so guesses have an order."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        self.now += 0.001
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> RoomStore:
    return RoomStore(tmp_path / "rooms.sqlite3", clock=clock)


def fake_room(store: RoomStore, model: str = "embedded"):
    """A room on made-up token ids: the store never looks at them."""
    return store.create_room("Once upon a", False, model, "Once upon a", [10, 20, 30])


# --- codes and tokens ------------------------------------------------------------------------


def test_room_codes_are_long_random_unambiguous_and_read_in_any_case(store):
    codes = {new_code() for _ in range(2000)}
    assert len(codes) == 2000, "40 bits: no repeat in 2,000 draws"
    assert all(len(c) == CODE_LENGTH == 8 for c in codes)
    assert set("".join(codes)) <= set(CODE_ALPHABET) and not set("0O1I") & set(CODE_ALPHABET)
    assert len(CODE_ALPHABET) ** CODE_LENGTH >= 2**40

    opened = fake_room(store)
    code = opened.room.code
    spaced = f"  {code[:4].lower()}-{code[4:].lower()} "
    assert normalise_code(spaced) == code
    assert store.room(spaced).code == code
    for bad in ("", "ABC", "ABCDEFG0", "ABCDEFGHJ", None):
        with pytest.raises(InvalidInput, match="A room code is 8 letters and digits"):
            store.room(bad)


def test_only_a_hash_of_the_teacher_token_is_stored_and_the_token_is_required(store):
    opened = fake_room(store)
    code, token = opened.room.code, opened.teacher_token
    assert len(token) >= 32 and "teacher_token" not in json.dumps(opened.room.to_json())
    raw = b"".join(p.read_bytes() for p in store.path.parent.glob("rooms.sqlite3*"))
    assert token.encode() not in raw, "the token itself never reaches the disk"

    store.add_guess(code, "s1", "Ann", "time")
    for wrong in ("", "x" * 32, token[:-1], None):
        with pytest.raises(InvalidInput) as err:
            store.reveal(code, wrong)
        assert str(err.value) == WRONG_TEACHER
        with pytest.raises(InvalidInput, match="Only the teacher"):
            store.close(code, wrong)
        with pytest.raises(InvalidInput, match="Only the teacher"):
            store.advance(code, wrong, 1, Continuation("text", " time", (40,)))
    assert not store.round(code).revealed, "a refused reveal changed nothing"
    assert store.reveal(code, token).revealed


# --- what students type ----------------------------------------------------------------------


def test_names_are_stripped_limited_and_free_of_control_characters():
    assert clean_name("  Zoé 👩‍💻 ") == "Zoé 👩‍💻", "emoji with a zero-width joiner are fine"
    assert clean_name("") == clean_name("   ") == clean_name(None) == ANONYMOUS
    assert clean_name("x" * MAX_NAME_CHARS) == "x" * 40
    with pytest.raises(InvalidInput, match="The name has 41 characters; at most 40 are allowed"):
        clean_name("x" * 41)
    for bad in ("Ann\nBob", "A\tB", "A\x00B", "Ann\u202eevil", "A\x1bB"):
        with pytest.raises(InvalidInput, match="The name contains an invisible control character"):
            clean_name(bad)
    with pytest.raises(InvalidInput, match="The name must be text"):
        clean_name(42)


def test_guesses_are_limited_and_stored_as_typed(store):
    assert clean_guess(" Cold ") == " Cold ", "stored as typed"
    assert clean_guess("x" * MAX_GUESS_CHARS) == "x" * 60
    with pytest.raises(InvalidInput, match="The guess has 61 characters; at most 60 are allowed"):
        clean_guess("x" * 61)
    for empty in ("", "   "):
        with pytest.raises(InvalidInput, match="The guess is empty: type the word you think comes next"):
            clean_guess(empty)
    with pytest.raises(InvalidInput, match="The guess contains an invisible control character"):
        clean_guess("co\nld")
    with pytest.raises(InvalidInput, match="The guess must be text"):
        clean_guess(None)

    code = fake_room(store).room.code
    record = store.add_guess(code, "s1", "", "<b>time</b> ")
    assert (record.name, record.text) == (ANONYMOUS, "<b>time</b> "), "no escaping in the store: that is the page's"
    for bad_id in ("", "a b", "x" * 65, "../x", None):
        with pytest.raises(InvalidInput, match="The student id must be 1 to 64 letters"):
            store.add_guess(code, bad_id, "Ann", "time")


def test_guesses_group_the_way_a_teacher_expects():
    assert bucket_key(" cold") == bucket_key("cold") == bucket_key("Cold ") == bucket_key("COLD.") == "cold"
    assert bucket_key("ice   Cream") == "ice cream"
    assert typed_form("  Cold! ") == "Cold", "case kept, trailing punctuation dropped"
    assert typed_form("?") == "?" and typed_form(" ... ") == "...", "punctuation alone stays"
    assert bucket_key("\n") == "", "a whitespace token can never equal a guess"
    assert bucket_key(" Paris") == bucket_key("paris")
    # The space the model writes before a word:
    assert model_surface("The weather is", "cold") == " cold"
    assert model_surface("The weather is ", "cold") == "cold"
    assert model_surface("<|im_start|>assistant\n", "Hello") == "Hello"
    assert model_surface("He said (", "hi") == "hi"
    assert model_surface("Paris", ",") == ","
    assert model_surface("John", "'s") == "'s"


# --- the store -------------------------------------------------------------------------------


def test_schema_is_idempotent_in_wal_mode_with_a_version(store):
    RoomStore(store.path, clock=store.clock)  # a second start changes nothing
    conn = sqlite3.connect(store.path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert tables == {"rooms", "rounds", "guesses"}
    finally:
        conn.close()


def test_a_second_guess_in_a_round_replaces_the_first(store):
    code = fake_room(store).room.code
    first = store.add_guess(code, "s1", "Ann", "time")
    second = store.add_guess(code, "s1", "Annie", "day")
    assert (first.replaced, second.replaced) == (False, True)
    guesses = store.guesses(code)
    assert [(g.name, g.text) for g in guesses] == [("Annie", "day")]
    assert store.answer_count(code) == 1 and store.student_count(code) == 1


def test_the_store_survives_a_restart_and_is_shared_with_another_process(store):
    code = fake_room(store).room.code
    store.add_guess(code, "s1", "Ann", "time")
    path = store.path
    del store  # the app stops; nothing was held open between operations

    reopened = RoomStore(path)
    assert reopened.room(code).prompt == "Once upon a"
    assert [g.text for g in reopened.guesses(code)] == ["time"]
    script = (
        "import sys; from core.rooms.store import RoomStore; "
        "s = RoomStore(sys.argv[1]); print(s.room(sys.argv[2]).round, [g.name for g in s.guesses(sys.argv[2])])"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(path), code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1 ['Ann']"


def test_an_expired_room_reads_like_one_that_never_existed_and_is_purged(store, clock):
    code = fake_room(store).room.code
    store.add_guess(code, "s1", "Ann", "time")
    with pytest.raises(InvalidInput) as never:
        store.room("ABCDEFGH" if code != "ABCDEFGH" else "HGFEDCBA")
    clock.now += ROOM_LIFETIME_S - 10
    assert store.room(code).code == code, "still open just before a day has passed"
    clock.now += 20
    for read in (store.room, store.round, store.guesses, lambda c: store.add_guess(c, "s2", "Bob", "day")):
        with pytest.raises(InvalidInput) as expired:
            read(code)
        assert str(expired.value) == str(never.value) == UNKNOWN_ROOM
    conn = sqlite3.connect(store.path)
    try:
        counts = [conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("rooms", "rounds", "guesses")]
    finally:
        conn.close()
    assert counts == [0, 0, 0], "the expired room went with its rounds and guesses"


def test_opening_a_room_purges_every_expired_one(store, clock):
    old = [fake_room(store).room.code for _ in range(3)]
    clock.now += ROOM_LIFETIME_S + 1
    fresh = fake_room(store).room.code
    assert store.purge_expired() == 0, "create_room already deleted them"
    assert store.room(fresh).code == fresh
    with pytest.raises(InvalidInput, match="No open room has this code"):
        store.room(old[0])


def test_concurrent_threads_lose_and_duplicate_no_guess(store):
    code = fake_room(store).room.code
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def student_batch(batch: int) -> None:
        try:
            start.wait()
            for n in range(20):
                sid = f"t{batch}-{n}"
                store.add_guess(code, sid, f"S{batch}.{n}", "first")
                store.add_guess(code, sid, f"S{batch}.{n}", f"final {sid}")
        except BaseException as exc:  # collected: an assert in a thread would be lost
            errors.append(exc)

    threads = [threading.Thread(target=student_batch, args=(b,)) for b in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    guesses = store.guesses(code)
    assert len(guesses) == 160
    assert sorted(g.text for g in guesses) == sorted(f"final t{b}-{n}" for b in range(8) for n in range(20))


_WRITER = """
import sys, time
from pathlib import Path
from core.rooms.store import RoomStore
path, code, worker, go = sys.argv[1], sys.argv[2], sys.argv[3], Path(sys.argv[4])
store = RoomStore(path)
while not go.exists():
    time.sleep(0.005)
for n in range(40):
    sid = f"p{worker}-{n}"
    store.add_guess(code, sid, f"P{worker}.{n}", "first")
    store.add_guess(code, sid, f"P{worker}.{n}", f"final {sid}")
print("done")
"""


def test_concurrent_processes_lose_and_duplicate_no_guess(store, tmp_path):
    code = fake_room(store).room.code
    go = tmp_path / "go"
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(store.path), code, str(w), str(go)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(4)
    ]
    time.sleep(1.0)  # let them all import and wait at the line
    go.touch()
    results = [w.communicate(timeout=120) for w in writers]
    assert all(w.returncode == 0 for w in writers), [err for _, err in results]
    guesses = store.guesses(code)
    assert len(guesses) == 160, "4 processes x 40 students, each guessing twice: one row each"
    assert sorted(g.text for g in guesses) == sorted(f"final p{w}-{n}" for w in range(4) for n in range(40))
    assert len({g.student_id for g in guesses}) == 160


def test_a_writer_stuck_behind_a_lock_gets_a_sentence_not_a_traceback(store, monkeypatch):
    import core.rooms.store as store_module
    from core.errors import LabError

    code = fake_room(store).room.code
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_S", 0.2)
    blocker = sqlite3.connect(store.path, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")  # another writer that does not let go
        with pytest.raises(LabError) as err:
            store.add_guess(code, "s1", "Ann", "time")
        assert str(err.value) == store_module.BUSY
        assert store.room(code).code == code, "readers are never blocked by a writer (WAL)"
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert store.add_guess(code, "s1", "Ann", "time").text == "time", "once the lock goes, the guess goes in"


def test_a_room_takes_at_most_max_students(store):
    code = fake_room(store).room.code
    for n in range(MAX_STUDENTS):
        store.add_guess(code, f"s{n}", "", "time")
    with pytest.raises(InvalidInput, match=f"This room already has {MAX_STUDENTS} students"):
        store.add_guess(code, "one-too-many", "Late", "time")
    assert store.add_guess(code, "s0", "", "day").replaced, "a student already in can still change their guess"


def test_rounds_are_bounded_revealed_rounds_take_no_guesses_and_closed_rooms_nothing(store):
    opened = fake_room(store)
    code, token = opened.room.code, opened.teacher_token
    store.add_guess(code, "s1", "Ann", "time")
    with pytest.raises(InvalidInput, match="Reveal round 1 before starting the next one"):
        store.advance(code, token, 1, Continuation("text", " time", (40,)))
    store.reveal(code, token)
    with pytest.raises(InvalidInput, match="Round 1 has been revealed, so it takes no more guesses"):
        store.add_guess(code, "s2", "Bob", "day")
    for n in range(1, MAX_ROUNDS):
        store.advance(code, token, n, Continuation("text", " x", (40,)))
        store.reveal(code, token)
    with pytest.raises(InvalidInput, match="The room has already moved on to round 50"):
        store.advance(code, token, 1, Continuation("text", " x", (40,)))
    record = store.round(code)
    assert record.number == MAX_ROUNDS and record.prompt_ids == (10, 20, 30) + (40,) * 49
    assert record.prompt_text == "Once upon a" + " x" * 49
    with pytest.raises(InvalidInput, match="This room has played its 50 rounds"):
        store.advance(code, token, MAX_ROUNDS, Continuation("text", " x", (40,)))
    closed = store.close(code, token)
    assert closed.closed
    for act in (
        lambda: store.add_guess(code, "s9", "Zed", "x"),
        lambda: store.reveal(code, token),
        lambda: store.advance(code, token, MAX_ROUNDS, Continuation("text", " x", (40,))),
    ):
        with pytest.raises(InvalidInput) as err:
            act()
        assert str(err.value) == CLOSED_ROOM


def test_student_state_before_the_reveal_holds_no_other_names_or_guesses(store):
    code = fake_room(store).room.code
    store.add_guess(code, "ann-browser", "Ann", "time")
    store.add_guess(code, "bob-browser", "Bob", "midnight dream")
    mine = game.round_state(store, code, "ann-browser")
    assert (mine.your_name, mine.your_guess, mine.answers, mine.revealed) == ("Ann", "time", 2, False)
    text = json.dumps(mine.to_json())
    assert "Bob" not in text and "midnight" not in text and "bob-browser" not in text and "ann-browser" not in text
    board = json.dumps(game.round_state(store, code).to_json())
    assert "Ann" not in board and "Bob" not in board and '"answers": 2' in board
    fresh = game.round_state(store, code, "new-browser")
    assert fresh.your_guess is None and "Ann" not in json.dumps(fresh.to_json())


# --- the model's side ------------------------------------------------------------------------


def guess_all(store: RoomStore, code: str, guesses: list[tuple[str, str]]) -> None:
    for n, (name, text) in enumerate(guesses):
        store.add_guess(code, f"id{n}-{name}", name, text)


def forward_logprob(lm, prompt_ids: list[int], guess_ids: list[int]) -> float:
    """Score a continuation independently: one pass over prompt + guess, log-softmax in float64."""
    logits, _ = lm.forward(prompt_ids + guess_ids)
    logprobs = torch.log_softmax(logits.double(), dim=-1)
    return math.fsum(float(logprobs[len(prompt_ids) + i - 1, t]) for i, t in enumerate(guess_ids))


def test_a_single_token_guess_gets_exactly_the_explorers_probability(store, lm):
    from core.distributions import next_token_distribution

    opened = game.open_room(store, lm, PROMPT)
    guess_all(store, opened.room.code, [("Ann", " paris"), ("Bob", "Paris"), ("Cy", "PARIS "), ("Di", "Paris.")])
    reveal = game.reveal_round(store, lm, opened.room.code, opened.teacher_token)
    (bucket,) = reveal.buckets
    paris = lm.tokenizer(" Paris", add_special_tokens=False)["input_ids"]
    assert bucket.count == 4 and bucket.reading.token_ids == tuple(paris) and bucket.reading.tokens == (" Paris",)
    expected = next_token_distribution(lm, list(store.round(opened.room.code).prompt_ids))
    assert abs(bucket.model_prob - expected.token_prob(paris[0]).prob) < 1e-9
    assert bucket.label == "Paris", "the spelling typed most often"
    assert {v.typed: n for v, n in bucket.variants} == {"paris": 1, "Paris": 2, "PARIS": 1}
    assert reveal.bucket_for("  PaRiS!") is bucket


def test_a_multi_token_guess_lists_its_tokens_and_gets_the_product_of_their_probabilities(store, lm):
    opened = game.open_room(store, lm, PROMPT)
    guess_all(store, opened.room.code, [("Ann", "a beautiful city"), ("Bob", "<|im_end|>")])
    reveal = game.score_round(store, lm, opened.room.code)
    prompt_ids = list(store.round(opened.room.code).prompt_ids)
    city = reveal.bucket_for("A beautiful  city")
    assert city is not None and city.reading.tokens == (" a", " beautiful", " city") and city.reading.multi_token
    expected = forward_logprob(lm, prompt_ids, list(city.reading.token_ids))
    # Read in a batch continuing the prompt's cache: the plain full pass's number, to float32's rounding.
    assert math.isclose(city.model_prob, math.exp(expected), rel_tol=1e-5)
    assert 0 < city.model_prob < next_token_distribution_prob(lm, prompt_ids, city.reading.token_ids[0])
    special = reveal.bucket_for("<|im_end|>")
    assert special is not None and len(special.reading.token_ids) > 1, "typed markers are text, not a control token"
    assert 2 not in special.reading.token_ids


def next_token_distribution_prob(lm, prompt_ids: list[int], token_id: int) -> float:
    from core.distributions import next_token_distribution

    return next_token_distribution(lm, prompt_ids).token_prob(token_id).prob


def test_a_bucket_takes_the_spelling_the_model_prefers(store, lm):
    opened = game.open_room(store, lm, "The weather today is very")
    guess_all(store, opened.room.code, [("Ann", "Cold"), ("Bob", "Cold")])  # a phone capitalises
    reveal = game.score_round(store, lm, opened.room.code)
    (bucket,) = reveal.buckets
    ids = list(store.round(opened.room.code).prompt_ids)
    lower = next_token_distribution_prob(lm, ids, lm.tokenizer(" cold", add_special_tokens=False)["input_ids"][0])
    upper = next_token_distribution_prob(lm, ids, lm.tokenizer(" Cold", add_special_tokens=False)["input_ids"][0])
    assert lower > upper, "the model writes ' cold' after 'very'"
    assert bucket.reading.surface == " cold" and abs(bucket.model_prob - lower) < 1e-9
    assert [(v.typed, n) for v, n in bucket.variants] == [("Cold", 2)]
    assert abs(bucket.variants[0][0].prob - upper) < 1e-9, "the spelling typed keeps its own number"
    assert all(s.model_prob == bucket.model_prob for s in reveal.students)


def test_the_space_before_a_guess_follows_the_prompt(store, lm):
    spaced = game.open_room(store, lm, "The weather today is ")
    store.add_guess(spaced.room.code, "s1", "Ann", "cold")
    reading = game.score_round(store, lm, spaced.room.code).buckets[0].reading
    assert reading.surface == "cold" and reading.tokens == ("cold",)

    chat = game.open_room(store, lm, "Say hello.", chat=True)
    assert store.round(chat.room.code).prompt_text.endswith("assistant\n")
    store.add_guess(chat.room.code, "s1", "Ann", "hello")
    reading = game.score_round(store, lm, chat.room.code).buckets[0].reading
    assert reading.surface == "Hello", "no space after the template's newline; the model's preferred capital"


def test_the_reveal_sets_the_class_beside_the_model(store, lm, clock):
    opened = game.open_room(store, lm, PROMPT)
    code = opened.room.code
    guess_all(
        store,
        code,
        [("Ann", "Paris"), ("Bob", "paris"), ("Cy", "Lyon"), ("Di", "London"), ("Ed", "Paris"), ("Fay", "lyon")],
    )
    with pytest.raises(InvalidInput, match="The teacher has not revealed round 1 yet"):
        game.revealed_round(store, lm, code)
    reveal = game.reveal_round(store, lm, code, opened.teacher_token)
    # Scored again (the prefix cache may now skip the prompt): the same numbers, to float32's rounding.
    assert_same_numbers(game.revealed_round(store, lm, code).to_json(), reveal.to_json())
    assert reveal.answers == 6 and sum(b.count for b in reveal.buckets) == 6
    assert math.isclose(sum(b.share for b in reveal.buckets), 1.0)
    assert [b.key for b in reveal.buckets] == ["paris", "lyon", "london"], "most guessed first"
    top = reveal.model_choice
    assert top.token == " Paris" and top.class_count == 3
    assert [c.prob for c in reveal.model_top] == sorted((c.prob for c in reveal.model_top), reverse=True)
    assert len(reveal.model_top) == 10
    assert reveal.agreement == 3 / 6
    assert [b.matches_model for b in reveal.buckets] == [True, False, False]
    assert {s.name: s.agreed for s in reveal.students} == {
        "Ann": True, "Bob": True, "Cy": False, "Di": False, "Ed": True, "Fay": False
    }  # fmt: skip
    by_key = {b.key: b.model_prob for b in reveal.buckets}
    assert all(s.model_prob == by_key[s.key] for s in reveal.students)
    assert "id0-Ann" not in json.dumps(reveal.to_json()), "student ids never leave the store"
    with pytest.raises(InvalidInput, match="Round 1 has been revealed"):
        store.add_guess(code, "late", "Late", "Paris")


def test_ties_go_to_the_word_the_class_reached_first(store, lm):
    opened = game.open_room(store, lm, PROMPT)
    guess_all(store, opened.room.code, [("Ann", "Lyon"), ("Bob", "Paris"), ("Cy", "Nice")])
    reveal = game.score_round(store, lm, opened.room.code)
    assert [b.key for b in reveal.buckets] == ["lyon", "paris", "nice"]
    assert reveal.favourite is not None and reveal.favourite.label == "Lyon"


def test_next_rounds_append_the_class_the_model_or_a_text_and_the_summary_tells_the_story(store, lm):
    opened = game.open_room(store, lm, PROMPT)
    code, token = opened.room.code, opened.teacher_token
    first = store.round(code)
    guess_all(store, code, [("Ann", "Paris"), ("Bob", "paris"), ("Cy", "Lyon")])
    with pytest.raises(InvalidInput, match="Reveal round 1 before starting the next one"):
        game.next_round(store, lm, code, token, "class")
    with pytest.raises(InvalidInput, match="Only the teacher"):
        game.next_round(store, lm, code, "not-the-token", "class")
    game.reveal_round(store, lm, code, token)

    step = game.next_round(store, lm, code, token, "class")
    paris = tuple(lm.tokenizer(" Paris", add_special_tokens=False)["input_ids"])
    assert step.appended.source == "class" and step.appended.text == " Paris" and step.appended.ids == paris
    assert step.round.number == 2 and step.round.prompt_text == PROMPT + " Paris"
    assert step.round.prompt_ids == first.prompt_ids + paris
    assert store.round(code, 1).chosen == step.appended

    store.add_guess(code, "s1", "Ann", "!")
    game.reveal_round(store, lm, code, token)
    from core.distributions import next_token_distribution

    model_top = next_token_distribution(lm, list(step.round.prompt_ids)).argmax
    step = game.next_round(store, lm, code, token, "model")
    assert step.appended.source == "model" and step.appended.ids == (model_top,)
    assert step.round.prompt_text == PROMPT + " Paris" + lm.tokenizer.decode([model_top])

    game.reveal_round(store, lm, code, token)  # no one guessed in round 3
    with pytest.raises(InvalidInput, match="No one guessed in round 3, so the class has no favourite"):
        game.next_round(store, lm, code, token, "class")
    step = game.next_round(store, lm, code, token, "text", "It is lovely")
    assert step.appended.text == " It is lovely" and step.round.prompt_text.endswith(". It is lovely")
    with pytest.raises(InvalidInput, match="Choose what comes next with 'class', 'model' or 'text'"):
        game.next_round(store, lm, code, token, "favourite")

    summary = game.room_summary(store, lm, code)
    assert summary.text == step.round.prompt_text and summary.prompt == PROMPT
    assert [r.round for r in summary.rounds] == [1, 2, 3], "round 4 is not revealed yet"
    one, two, three = summary.rounds
    assert (one.favourite, one.agreed, one.answers, one.model_token) == ("Paris", True, 3, " Paris")
    assert math.isclose(one.favourite_share, 2 / 3) and one.favourite_model_prob == one.model_prob
    assert one.appended is not None and one.appended.source == "class"
    assert two.favourite == "!" and two.agreed == (two.model_token.strip() == "!")
    assert three.favourite is None and three.favourite_model_prob is None and not three.agreed
    assert summary.rounds_agreed == sum(r.agreed for r in summary.rounds) >= 1
    data = summary.to_json()
    assert data["rounds_played"] == 3 and data["rounds"][0]["appended"]["text"] == " Paris"


def test_a_room_refuses_a_model_it_was_not_opened_with_and_too_long_prompts(store, lm):
    code = fake_room(store, model="HuggingFaceTB/SmolLM2-360M").room.code
    with pytest.raises(InvalidInput, match="This room is played with the model 'HuggingFaceTB/SmolLM2-360M'"):
        game.score_round(store, lm, code)
    with pytest.raises(InvalidInput, match="The prompt is empty"):
        game.open_room(store, lm, "   ")
    with pytest.raises(InvalidInput, match="a class room needs 256 of"):
        game.open_room(store, lm, "word " * (lm.context_length - 100))


# --- the command line ------------------------------------------------------------------------


def run_cli(data: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "LLM_LAB_DATA": str(data)}
    return subprocess.run(
        [sys.executable, "-m", "core", "room", *args], cwd=ROOT, capture_output=True, text=True, timeout=300, env=env
    )


@pytest.mark.slow
def test_cli_plays_a_round_with_json_shapes(tmp_path):
    data = tmp_path / "data"
    out = run_cli(data, "new", "--prompt", "The weather today is very", "--json")
    assert out.returncode == 0, out.stderr
    new = json.loads(out.stdout)
    assert set(new) >= {"room", "teacher_token", "prompt", "round", "model", "expires_at"}
    assert new["round"] == 1 and new["prompt"] == "The weather today is very" and new["model"] == "embedded"
    code, token = new["room"], new["teacher_token"]
    assert (data / "rooms.sqlite3").is_file(), "LLM_LAB_DATA chooses where rooms live"

    for name, guess in (("Ann", "cold"), ("Bob", " Cold"), ("Cy", "sunny"), ("Ann", "warm")):
        out = run_cli(data, "guess", code.lower(), "--student", name, "--token", guess, "--json")
        assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"room": code, "round": 1, "student": "Ann", "guess": "warm", "replaced": True}

    out = run_cli(data, "show", code, "--json")
    assert out.returncode == 0, out.stderr
    show = json.loads(out.stdout)
    assert (show["prompt"], show["round"], show["students"]) == ("The weather today is very", 1, 3)
    assert {g["token"]: g["count"] for g in show["guesses"]} == {"Cold": 1, "sunny": 1, "warm": 1}
    assert all(
        set(g) >= {"token", "count", "model_prob", "tokens"} and 0 < g["model_prob"] < 1 for g in show["guesses"]
    )

    out = run_cli(data, "reveal", code, "--teacher-token", "wrong")
    assert out.returncode == 2 and out.stderr.strip() == f"error: {WRONG_TEACHER}"
    out = run_cli(data, "reveal", code, "--teacher-token", token, "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["revealed"] is True

    out = run_cli(data, "next", code, "--teacher-token", token, "--choose", "model", "--json")
    assert out.returncode == 0, out.stderr
    step = json.loads(out.stdout)
    assert step["round"] == 2 and step["appended"]["source"] == "model"
    assert step["prompt"] == "The weather today is very" + step["appended"]["text"]

    out = run_cli(data, "summary", code, "--json")
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["rounds_played"] == 1 and summary["rounds"][0]["answers"] == 3
    assert summary["rounds"][0]["appended"] == step["appended"]


def test_cli_says_what_is_wrong_in_one_sentence(tmp_path):
    data = tmp_path / "data"
    out = run_cli(data, "guess", "ABCD-EFGH", "--student", "Ann", "--token", "cold")
    assert out.returncode == 2 and out.stderr.strip() == f"error: {UNKNOWN_ROOM}"
    out = run_cli(data, "guess", "nope", "--student", "Ann", "--token", "cold")
    assert out.returncode == 2 and "A room code is 8 letters and digits" in out.stderr
    assert "Traceback" not in out.stderr


# --- opening from the explorer, and the join link ---------------------------------------------


def test_a_room_opens_after_the_tokens_the_teacher_steered(store, lm):
    prompt_ids = encode_prompt(lm, PROMPT).ids
    paris = lm.tokenizer(" Paris", add_special_tokens=False)["input_ids"]
    opened = game.open_room(store, lm, PROMPT, steered=paris)
    record = store.round(opened.room.code)
    assert record.prompt_ids == (*prompt_ids, *paris) and record.prompt_text == PROMPT + " Paris"
    assert opened.room.prompt == PROMPT, "the room remembers the prompt as typed"
    with pytest.raises(InvalidInput, match="include the id 99999999, which is not a token of"):
        game.open_room(store, lm, PROMPT, steered=[99999999])


def test_the_join_link_is_an_address_the_phones_can_reach(monkeypatch):
    code = "K7QXM3PA"
    monkeypatch.setattr(links, "network_address", lambda: "10.0.0.7")
    # the teacher's own address is a network one: the phones use it too
    assert join_link(code, "http://192.168.1.20:8501/room", "0.0.0.0", 8501) == JoinLink(
        "http://192.168.1.20:8501/join?room=K7QXM3PA", True
    )
    # the teacher on localhost, the server on every address: this machine's network address
    assert join_link("k7qx-m3pa", "http://localhost:8501/room", "0.0.0.0", 8501).url == (
        "http://10.0.0.7:8501/join?room=K7QXM3PA"
    )
    # a server on one address: that address
    assert join_link(code, "http://127.0.0.1:8501/room", "192.168.1.20", 9000).url.startswith(
        "http://192.168.1.20:9000/"
    )
    # behind a proxy, with Streamlit's base path: the proxy's address
    assert join_link(code, "https://lab.school.example/llm/room", "127.0.0.1", 8501, "/llm/").url == (
        "https://lab.school.example/llm/join?room=K7QXM3PA"
    )
    # on loopback only (LLM Lab's default), or with no network: no phone can open it, and it says so
    assert join_link(code, "http://localhost:8501/room", "127.0.0.1", 8501) == JoinLink(
        "http://127.0.0.1:8501/join?room=K7QXM3PA", False
    )
    monkeypatch.setattr(links, "network_address", lambda: None)
    assert not join_link(code, None, "0.0.0.0", 8501).reachable
    assert join_link(code, None, "fd00::5", 8501).url == "http://[fd00::5]:8501/join?room=K7QXM3PA"
    with pytest.raises(InvalidInput, match="A room code is 8 letters"):
        join_link("nope", None, "0.0.0.0", 8501)


def assert_same_numbers(got: object, expected: object, path: str = "") -> None:
    """Equal structures; floats equal within 1e-5 relative (a cached prefix and a full pass round differently)."""
    if isinstance(expected, float):
        assert math.isclose(got, expected, rel_tol=1e-5, abs_tol=1e-9), (path, got, expected)
    elif isinstance(expected, dict):
        assert isinstance(got, dict) and got.keys() == expected.keys(), path
        for key in expected:
            assert_same_numbers(got[key], expected[key], f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(got, list) and len(got) == len(expected), path
        for i, (g, e) in enumerate(zip(got, expected, strict=True)):
            assert_same_numbers(g, e, f"{path}[{i}]")
    else:
        assert got == expected, (path, got, expected)
