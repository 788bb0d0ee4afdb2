"""The bad-input catalogue: every input a person can give, at its worst, and what they are told.

Each case has an id that is also a row of ``docs/bad-input.md`` (a test keeps
the two in step). A case either is refused with ``InvalidInput`` /
``LabError`` carrying the sentence the person sees, or is accepted and works
(emoji, control characters, mixed scripts are text like any other). After
every case an earlier saved adapter must be byte-for-byte what it was, and
the data folder must hold no stray files: nothing lost, nothing corrupted.
"""

from __future__ import annotations

import hashlib
import math
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.access import TEACHER_SECRET_ENV, is_teacher
from core.backends import LocalBackend, OpenAIBackend, list_models
from core.backends.openai_api import (
    ALLOWED_BASE_URLS_ENV,
    DEFAULT_BACKEND_ENV,
    NO_KEY_PLACEHOLDER,
    resolve_api_key,
    server_default_backend,
)
from core.cli import build_parser
from core.datasets import MAX_UPLOAD_BYTES, load_dataset, parse_upload
from core.distributions import SamplingSettings, score_text
from core.embedded import embedded_gguf_path
from core.errors import LabError
from core.exports import safe_csv
from core.finetune import FinetuneConfig, rename_adapter, saved_adapter
from core.finetune.adapters import delete_adapter
from core.finetune.jobs import check_inputs, create_job
from core.generation import generate, seeded_generator
from core.jobs.paths import check_name
from core.ladder import LadderConfig, check_ladder, read_ladder
from core.ladder.jobs import reopen_ladder
from core.models import check_model_location, default_engine, load_model
from core.pretrain.corpus import python_docs_text
from core.probe import probe_target
from core.promptlab import PromptVariant, run_variants, shot_curve, starting_variants, task_from_dataset, typed_task
from core.promptlab.links import variants_from_params
from core.prompts import pick_shots
from core.rooms.game import open_room, score_round
from core.rooms.store import CLOSED_ROOM, ROOM_LIFETIME_S, UNKNOWN_ROOM, WRONG_TEACHER, OpenedRoom, RoomStore
from core.tokens import MAX_PROMPT_CHARS, check_token_ids, decode_bytes, encode_prompt
from core.tree import beam_search
from tests.adapters import saved_adapter_job
from tests.ladders import cancelled_after_first_rung
from tests.test_backends import SECRET, strict_server  # noqa: F401 (a fixture)
from ui.render import escape
from ui.room_charts import reveal_figure
from ui.tree_view import TreeSettings, from_query

DOC = Path(__file__).resolve().parent.parent / "docs" / "bad-input.md"
KEEP = "kept-adapter"


@pytest.fixture(scope="module")
def data(tmp_path_factory, lm):
    """A data folder with one saved adapter that no case may touch."""
    root = tmp_path_factory.mktemp("bad-input") / "data"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LLM_LAB_DATA", str(root))
        saved_adapter_job(lm, KEEP, random_weights=True)
        yield root


@pytest.fixture(scope="module")
def bad_models(tmp_path_factory) -> Path:
    """Folders and files that are not models, outside the data folder: a person's mistakes with --model."""
    root = tmp_path_factory.mktemp("bad-models")
    (root / "empty").mkdir()
    create_job(FinetuneConfig(), root / "a-job", load_dataset("sentiment"))  # a job folder: a config.json of its own
    broken = root / "bad-config"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "llama", ')  # cut short
    (broken / "model.safetensors").write_bytes(b"")
    (broken / "tokenizer.json").write_text("{}")
    (root / "broken.gguf").write_bytes(embedded_gguf_path().read_bytes()[:100_000])
    return root


@dataclass(frozen=True)
class Rooms:
    """Class rooms in a store of their own (outside the data folder, which no case may change)."""

    store: RoomStore
    open: str
    revealed: str
    closed: str
    expired: str


@pytest.fixture(scope="module")
def rooms(tmp_path_factory) -> Rooms:
    path = tmp_path_factory.mktemp("rooms") / "rooms.sqlite3"
    store = RoomStore(path)

    def room() -> OpenedRoom:
        return store.create_room("Once upon a", False, "embedded", "Once upon a", [10, 20, 30])

    revealed, closed = room(), room()
    store.reveal(revealed.room.code, revealed.teacher_token)
    store.close(closed.room.code, closed.teacher_token)
    old = RoomStore(path, clock=lambda: time.time() - 2 * ROOM_LIFETIME_S)
    expired = old.create_room("Once upon a", False, "embedded", "Once upon a", [10, 20, 30])
    return Rooms(store, room().room.code, revealed.room.code, closed.room.code, expired.room.code)


def _snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()
    }


@pytest.fixture(autouse=True)
def nothing_lost(data):
    before = _snapshot(data)
    yield
    assert _snapshot(data) == before, "a bad input changed or left files in the data folder"


def upload(raw: bytes, name: str = "rows.csv") -> Callable[[], object]:
    return lambda: parse_upload(raw, name)


def settings(lm, **kw) -> Callable[[], object]:
    return lambda: SamplingSettings(**kw).validate(lm.vocab_size)


def cli(*argv: str) -> Callable[[], object]:
    """What a CLI command does with ``argv``, its checks included (``main`` would print the refusal)."""

    def run() -> object:
        args = build_parser().parse_args(argv)
        return args.handler(args)

    return run


TREE, SHOTS = ("tree", "--prompt", "Hi"), ("shots", "--dataset", "sentiment")
CSV_HEADER = b"prompt,completion\n"
GOOD_ROWS = b"".join(b"question %d,answer %d\n" % (n, n) for n in range(12))


def catalogue(
    lm, api_url: str | None, models: Path, rooms: Rooms
) -> tuple[dict[str, tuple[Callable, str]], dict[str, Callable]]:
    """Every case, built against the real model (the strict test server for the API rows, ``models`` for --model)."""
    outside = "outside the folders LLM Lab serves"

    def guess(code: str, name: str | None, text: str) -> Callable[[], object]:
        return lambda: rooms.store.add_guess(code, "phone-1", name, text)

    refused: dict[str, tuple[Callable, str]] = {
        # prompts
        "prompt-empty": (lambda: encode_prompt(lm, ""), "is empty"),
        "prompt-whitespace": (lambda: encode_prompt(lm, " \n\t  "), "is empty"),
        "prompt-100k-chars": (lambda: encode_prompt(lm, "word " * 20_000), r"tokens but .* reads at most 8,192"),
        "prompt-over-limit": (lambda: encode_prompt(lm, "x" * (MAX_PROMPT_CHARS + 1)), "at most 200,000"),
        "prompt-lone-surrogate": (lambda: encode_prompt(lm, "caf\udce9"), "not valid UTF-8"),
        "text-invalid-utf8-bytes": (lambda: decode_bytes(b"caf\xe9 au lait"), "not valid UTF-8"),
        # sliders
        "temperature-negative": (settings(lm, temperature=-0.1), "Temperature must be between 0 and 100"),
        "temperature-nan": (settings(lm, temperature=math.nan), "Temperature must be"),
        "temperature-huge": (settings(lm, temperature=1e6), "Temperature must be"),
        "top-k-zero": (settings(lm, top_k=0), "top-k must be between 1 and the vocabulary size"),
        "top-k-above-vocab": (settings(lm, top_k=lm.vocab_size + 1), "top-k must be between"),
        "top-k-fraction": (settings(lm, top_k=2.5), "whole number"),
        "top-p-zero": (settings(lm, top_p=0.0), "top-p must be above 0"),
        "top-p-above-one": (settings(lm, top_p=1.5), "top-p must be above 0 and at most 1"),
        "min-p-negative": (settings(lm, min_p=-0.01), "min-p must be between 0 and 1"),
        "max-new-tokens-zero": (lambda: list(generate(lm, [1, 2], 0)), "between 1 and 2048"),
        "max-new-tokens-huge": (lambda: list(generate(lm, [1, 2], 10**6)), "between 1 and 2048"),
        "few-shot-too-many": (lambda: pick_shots(load_dataset("sentiment").train, 99, 0), "between 0 and 16"),
        "alternatives-negative": (
            lambda: list(generate(lm, [1, 2], 2, alternatives=-3)),
            r"^The number of alternatives must be between 1 and the vocabulary size \(49,152\); got -3\.$",
        ),
        "alternatives-negative-score": (
            lambda: score_text(lm, "Hello there", alternatives=-3),
            r"^The number of alternatives must be between 1",
        ),
        "seed-above-range": (lambda: seeded_generator(10**23), r"^The seed must be a whole number from -2\^63"),
        "seed-below-range": (lambda: seeded_generator(-(2**63) - 1), r"^The seed must be a whole number from -2\^63"),
        "compare-limit-negative": (
            cli("compare", "--dataset", "sentiment", "--limit", "-1"),
            r"^--limit must be a whole number from 1 to 1,000,000; got -1\.$",
        ),
        "tree-beams-above-limit": (cli(*TREE, "--beams", "17"), r"^The beam width must be between 1 and 16; got 17\.$"),
        "tree-depth-above-limit": (
            cli(*TREE, "--samples", "2", "--depth", "33"),
            r"^The depth must be between 1 and 32 tokens; got 33\.$",
        ),
        "tree-samples-above-limit": (
            cli(*TREE, "--samples", "65"),
            r"^The number of samples must be between 1 and 64; got 65\.$",
        ),
        "tree-length-penalty-negative": (
            cli(*TREE, "--beams", "2", "--length-penalty", "-1"),
            r"^The length penalty must be between 0 and 2; got -1\.0\.$",
        ),
        "tree-context-full": (
            lambda: beam_search(lm, "the" + " the" * (lm.context_length - 3), 2, 8),
            r"^The prompt has 8,190 tokens, and 8 more would pass the 8,192 that SmolLM2-135M-Instruct reads",
        ),
        "link-tree-node-outside-vocab": (
            lambda: check_token_ids(lm, [99999999], "The link's node ids"),  # as the tree page checks a link's node
            r"^The link's node ids include the id 99999999, which is not a token of",
        ),
        "link-path-outside-vocab": (lambda: check_token_ids(lm, [99999999]), "id 99999999, which is not a token of"),
        "link-path-negative": (lambda: check_token_ids(lm, [-1]), "id -1, which is not a token of"),
        "adapter-strength-above-one": (
            lambda: lm.with_adapter(saved_adapter(KEEP, 1.5)),
            "strength must be between 0 and 1",
        ),
        # prompt lab and probing a word
        "promptlab-empty-task": (lambda: typed_task("  \n ", FOUR_EXAMPLES), r"^The task has no items to ask"),
        "promptlab-example-without-answer": (
            lambda: typed_task("a => b", "an example with no answer"),
            r"^Example line 1 has no answer: write each example as 'input => answer'\.$",
        ),
        "promptlab-template-no-input": (
            lambda: variants(lm, [PromptVariant("A"), PromptVariant("B", template="Is it positive?")]),
            r"^Variant B's template has no \{input\}: write \{input\} where each item's text goes",
        ),
        "promptlab-too-many-shots": (
            lambda: variants(lm, [PromptVariant(shots=8)]),
            r"^Variant A asks for 8 examples, but the task has only 4 to show: ask for at most 4, or add examples\.$",
        ),
        "promptlab-prompt-past-context": (
            lambda: variants(lm, [PromptVariant()], "word " * 9000 + "=> yes"),
            r"^Variant A makes a prompt of 9,\d{3} tokens \(item 1\) and SmolLM2-135M-Instruct reads at most 8,192",
        ),
        "promptlab-too-many-variants": (
            lambda: variants(lm, [PromptVariant(name) for name in "ABCDE"]),
            r"^Compare 1 to 4 prompt variants at a time; got 5\.$",
        ),
        "promptlab-text-too-long": (
            lambda: variants(lm, [PromptVariant(system="x" * 5000)]),
            r"^Variant A's system message has 5,000 characters; at most 4,000 are allowed\.$",
        ),
        "shots-more-than-examples": (
            lambda: shot_curve(LocalBackend(lm), typed_task("a => b", FOUR_EXAMPLES), [0, 8]),
            r"^The shot curve asks for 8 examples, but the task has only 4 to show",
        ),
        "shots-orders-negative": (
            cli(*SHOTS, "--orders", "-1"),
            r"^--orders must be a whole number from 1 to 10; got -1\.$",
        ),
        "shots-limit-zero": (
            cli(*SHOTS, "--limit", "0"),
            r"^--limit must be a whole number from 1 to 1,000,000; got 0\.$",
        ),
        "shots-none": (
            lambda: shot_curve(LocalBackend(lm), typed_task("a => b"), []),
            r"^Give at least one number of examples for the shot curve",
        ),
        "shots-no-expected-answers": (
            lambda: shot_curve(LocalBackend(lm), typed_task("no answer given"), [0]),
            r"^The shot curve needs items with expected answers",
        ),
        "probe-target-empty": (lambda: probe_target(lm, [1, 2], ""), r"^The target is empty"),
        "probe-target-too-long": (
            lambda: probe_target(lm, [1, 2], " word" * 65),
            r"^The target has 65 tokens; probe at most 64 at a time\.$",
        ),
        # class rooms
        "room-code-malformed": (
            lambda: rooms.store.room("hello"),
            r"^A room code is 8 letters and digits, such as 'K7QX M3PA' \(there is no 0, O, 1 or I in a code\)",
        ),
        "room-code-unknown": (lambda: rooms.store.room("K7QX M3PA"), f"^{re.escape(UNKNOWN_ROOM)}$"),
        "room-expired": (lambda: rooms.store.room(rooms.expired), f"^{re.escape(UNKNOWN_ROOM)}$"),
        "room-guess-empty": (
            guess(rooms.open, "Eve", "  "),
            r"^The guess is empty: type the word you think comes next\.$",
        ),
        "room-guess-too-long": (
            guess(rooms.open, "Eve", "x" * 61),
            r"^The guess has 61 characters; at most 60 are allowed: type the next word, or a few\.$",
        ),
        "room-name-too-long": (
            guess(rooms.open, "E" * 41, "cold"),
            r"^The name has 41 characters; at most 40 are allowed\.$",
        ),
        "room-name-control-characters": (
            guess(rooms.open, "Eve\u202eevil", "cold"),
            r"^The name contains an invisible control character \(a line break, a tab or a text-direction mark\)",
        ),
        "room-guess-after-reveal": (
            guess(rooms.revealed, "Eve", "cold"),
            r"^Round 1 has been revealed, so it takes no more guesses: wait for the teacher to start the next round\.$",
        ),
        "room-closed": (guess(rooms.closed, "Eve", "cold"), f"^{re.escape(CLOSED_ROOM)}$"),
        "room-wrong-teacher-token": (
            lambda: rooms.store.reveal(rooms.open, "a-guessed-token"),
            f"^{re.escape(WRONG_TEACHER)}$",
        ),
        # model ids
        "model-nonexistent-id": (lambda: load_model("no-such-org/no-such-model"), "not on this machine"),
        "model-path-outside": (lambda: check_model_location("/etc"), outside),
        "model-relative-escape": (lambda: check_model_location("../../"), outside),
        "model-gguf-outside": (lambda: check_model_location("/tmp/x.gguf"), outside),
        "model-path-a-file": (lambda: load_model("/etc/passwd", restricted=True), outside),
        "model-path-missing": (lambda: load_model("/etc/no-such-file", restricted=True), outside),
        "model-path-root-home": (lambda: load_model("/root", restricted=True), outside),
        "model-gguf-in-etc": (lambda: load_model("/etc/x.gguf", restricted=True), outside),
        "model-gguf-damaged": (
            lambda: _with_env(
                {"LLM_LAB_MODEL_DIRS": str(models)}, load_model, str(models / "broken.gguf"), restricted=True
            ),
            r"^Could not read the GGUF file broken\.gguf: it is damaged or not a GGUF file\.$",
        ),
        "model-not-loaded-student": (
            lambda: load_model("gpt2", restricted=True, may_load_new=False),
            r"^The model 'gpt2' \(float32\) is not loaded on this server, and only the teacher can load one",
        ),
        "model-empty-folder": (
            lambda: load_model(str(models / "empty")),
            r"is not a model folder: it has no config\.json, no weights \(a \.safetensors file\) and no tokenizer",
        ),
        "model-job-folder": (
            lambda: load_model(str(models / "a-job")),
            r"is not a model folder: it has no weights \(a \.safetensors file\) and no tokenizer",
        ),
        "model-config-not-json": (
            lambda: load_model(str(models / "bad-config")),
            r"its config\.json is not valid JSON\.$",
        ),
        "engine-unknown": (
            lambda: load_model(engine="llama"),
            r"^Unknown engine 'llama': choose one of torch, llamacpp\.$",
        ),
        "engine-env-unknown": (
            lambda: _with_env({"LLM_LAB_ENGINE": "vllm"}, default_engine),
            r"^LLM_LAB_ENGINE='vllm' is not an engine: use one of torch, llamacpp\.$",
        ),
        # fine-tuning uploads
        "upload-empty": (upload(b""), "empty"),
        "upload-binary": (upload(b"\x00\x01\x02\xff" * 64), "not valid UTF-8|binary"),
        "upload-huge": (upload(b"a" * (MAX_UPLOAD_BYTES + 1)), "MB"),
        "upload-wrong-columns": (upload(b"question,answer\n" + GOOD_ROWS), "prompt"),
        "upload-wrong-encoding": (upload(CSV_HEADER + "café,olé\n".encode("latin-1") + GOOD_ROWS), "UTF-8"),
        "upload-wrong-type": (upload(CSV_HEADER + GOOD_ROWS, "rows.xlsx"), r"\.csv|\.jsonl"),
        "upload-broken-jsonl": (upload(b'{"prompt": "a", "completion": \n', "rows.jsonl"), "line 1|JSON"),
        "upload-too-few-rows": (upload(CSV_HEADER + b"a,b\n"), "at least"),
        "upload-deeply-nested-jsonl": (
            upload(b"[" * 100_000 + b"]" * 100_000 + b"\n", "rows.jsonl"),
            r"line 1: nested too deeply to be a row",
        ),
        "upload-unclosed-quote": (
            upload(CSV_HEADER + GOOD_ROWS + b'"an unclosed, quote\nmore,rows\n'),
            r"has a quote \(\"\) on line 14 that is never closed",
        ),
        "upload-repeated-rows": (
            upload(CSV_HEADER + GOOD_ROWS + b"question 3,answer 3\n" * 12),
            r"has 12 repeated row\(s\): line 14 repeats line 5; line 15 repeats line 5.*can land in both the training "
            r"and the held-out split",
        ),
        "upload-row-too-long": (
            lambda: check_inputs(
                FinetuneConfig(max_length=64),
                parse_upload(CSV_HEADER + GOOD_ROWS + b"long,%s\n" % (b"word " * 100), "rows.csv"),
            ),
            r"example\(s\) \(line 14\) are longer than the maximum length of 64 tokens",
        ),
        # adapter names
        "adapter-name-parent": (lambda: check_name("../evil", "adapter name"), "path separator"),
        "adapter-name-absolute": (lambda: check_name("/etc/passwd", "adapter name"), "path separator"),
        "adapter-name-hidden": (lambda: check_name(".secret", "adapter name"), "starts with '.'"),
        "adapter-name-reserved": (lambda: check_name("con", "adapter name"), "reserved device name"),
        "adapter-name-empty": (lambda: check_name("   ", "adapter name"), "is empty"),
        "adapter-name-too-long": (lambda: check_name("a" * 65, "adapter name"), "at most 64"),
        "adapter-name-symbols": (lambda: check_name("my adapter!", "adapter name"), "may only use letters"),
        "adapter-rename-onto-existing": (lambda: rename_adapter(KEEP, KEEP), "already|same"),
        "adapter-delete-missing": (lambda: delete_adapter("never-trained"), "no adapter called"),
        # scaling ladders
        "ladder-rungs-out-of-range": (
            cli("ladder", "--corpus", "python-docs", "--rungs", "6", "--output", str(models / "new")),
            r"^A ladder has 3 to 5 rungs \(fewer draw no line, more do not fit a lesson\); got 6\.$",
        ),
        "ladder-corpus-too-small": (
            lambda: check_ladder(LadderConfig(), python_docs_text()[:20_000]),
            r"^The corpus is too small for the largest rung: it has 18,000 characters to train on.*Use a text of at "
            r"least 170,667 characters, or fewer steps per rung\.$",
        ),
        "ladder-out-of-memory": (
            lambda: _with_free_memory(100_000_000, check_ladder, LadderConfig(), python_docs_text()),
            r"^The largest rung \(1\.79M parameters\) would need about .* but only 100 MB is free\. Fewer rungs",
        ),
        "ladder-output-not-a-ladder": (
            lambda: reopen_ladder(models / "a-job", LadderConfig()),
            r"a-job' already holds files and is not a ladder: give the ladder a new \(or empty\) folder",
        ),
        # API settings
        "api-url-not-http": (lambda: OpenAIBackend("m", base_url="ftp://example.com/v1"), "http"),
        "api-url-garbage": (lambda: OpenAIBackend("m", base_url="not a url"), "http"),
        "api-model-empty": (lambda: OpenAIBackend("  ", base_url="http://127.0.0.1:1/v1"), "Name the model"),
        "api-connection-refused": (
            lambda: OpenAIBackend("m", base_url="http://127.0.0.1:9/v1", max_retries=0).next_token("Hi"),
            "No server is running at 127.0.0.1:9 ",
        ),
        "api-url-bad-port": (lambda: OpenAIBackend("m", base_url="http://127.0.0.1:99999/v1"), "http"),
        "api-url-with-credentials": (
            lambda: OpenAIBackend("m", base_url=f"http://user:{SECRET}@127.0.0.1:9/v1", max_retries=0).next_token("Hi"),
            r"^No server is running at 127\.0\.0\.1:9 ",
        ),
        "server-backend-unknown": (
            lambda: _with_env({DEFAULT_BACKEND_ENV: "remote"}, server_default_backend),
            r"^LLM_LAB_BACKEND, set where LLM Lab was started, must be 'local' or 'openai'",
        ),
        "api-url-not-allowed": (
            lambda: _with_env(
                {ALLOWED_BASE_URLS_ENV: "https://api.openai.com/v1"}, OpenAIBackend, "m", "http://10.0.0.5/v1"
            ),
            r"may only contact the API servers it was started with \(LLM_LAB_API_BASE_URLS\): https://api\.openai",
        ),
    }
    if api_url:
        refused |= {
            "api-wrong-key": (
                lambda: OpenAIBackend("needs-key", base_url=api_url, api_key=SECRET).next_token("Hi", chat=True),
                "rejected the API key|API key",
            ),
            "api-slow-server": (
                lambda: OpenAIBackend("slow", base_url=api_url, timeout=1, max_retries=0).next_token("Hi", chat=True),
                "did not answer within 1 s",
            ),
            "api-unknown-model": (
                lambda: OpenAIBackend("nope", base_url=api_url).next_token("Hi", chat=True),
                "nope",
            ),
            "api-error-page-body": (
                lambda: OpenAIBackend("gpt-nope", base_url=api_url).next_token("Hi", chat=True),
                r"^(?!.*does not exist).*answered 404 Not Found for model 'gpt-nope'",
            ),
            "api-web-page-answer": (
                lambda: list_models(api_url.replace("/v1", "/web-page/v1")),
                r"^(?!.*intranet).*not in the OpenAI API's format",
            ),
            "api-model-list-not-openai": (
                lambda: list_models(api_url.replace("/v1", "/json-list/v1")),
                r"^(?!.*internal-host).*not a list of models",
            ),
        }
    accepted: dict[str, Callable] = {
        "prompt-control-characters": lambda: _round_trip(lm, "tab\there, bell\x07, null\x00 end"),
        "prompt-emoji": lambda: _round_trip(lm, "Rockets 🚀 and families 👩‍👩‍👧 and flags 🇫🇷"),
        "prompt-mixed-scripts": lambda: _round_trip(lm, "Привет, 你好, مرحبا, שלום, नमस्ते"),
        "temperature-zero-is-greedy": lambda: SamplingSettings(temperature=0).validate(lm.vocab_size),
        "top-k-whole-vocab": lambda: SamplingSettings(top_k=lm.vocab_size).validate(lm.vocab_size),
        "min-p-one": lambda: SamplingSettings(min_p=1.0).validate(lm.vocab_size),
        "upload-csv-injection": _csv_injection_is_data_and_exports_inert,
        "promptlab-link-bad-values": _bad_link_values_fall_back,
        "adapter-deleted-while-chosen": lambda: _adapter_deleted_while_chosen(lm),
        "link-tree-bad-values": _tree_link_falls_back,
        "room-html-name-and-guess": lambda: _html_in_a_room_is_text(lm, rooms.store),
        "teacher-secret-wrong": lambda: _with_env({TEACHER_SECRET_ENV: "the-right-one"}, _a_guess_is_a_student),
        "ladder-cancelled": _a_cancelled_ladder_keeps_and_shows_its_finished_rungs,
        "api-other-url-no-server-key": lambda: _with_env(
            {"OPENAI_API_KEY": SECRET, "OPENAI_BASE_URL": "https://api.openai.com/v1"}, _server_key_stays_home
        ),
    }
    return refused, accepted


FOUR_EXAMPLES = "good => positive\nbad => negative\nfine => positive\nawful => negative"


def variants(lm, chosen: list[PromptVariant], items: str = "nice => positive") -> object:
    """Run ``chosen`` on typed items with four typed examples (refused before anything is asked)."""
    return run_variants(LocalBackend(lm), typed_task(items, FOUR_EXAMPLES), chosen)


def _bad_link_values_fall_back() -> None:
    defaults = starting_variants(task_from_dataset(load_dataset("sentiment")))
    chosen, warnings = variants_from_params({"variants": "9", "t1": "no slot", "k2": "²"}, defaults, 8)
    assert chosen == list(defaults[:2]) and len(warnings) == 3
    assert "Variant A's template in the link has no {input} or is too long: using the default." in warnings


def _with_env(env: dict[str, str], call: Callable, *args: object, **kwargs: object) -> object:
    """``call(*args, **kwargs)`` with ``env`` set, as the server would have been started."""
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            mp.setenv(name, value)
        return call(*args, **kwargs)


def _with_free_memory(free_bytes: int, call: Callable, *args: object) -> object:
    """``call(*args)`` on a machine where only ``free_bytes`` of memory are free."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("core.pretrain.architecture._available_bytes", lambda device: free_bytes)
        return call(*args)


def _a_cancelled_ladder_keeps_and_shows_its_finished_rungs() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        result = cancelled_after_first_rung(Path(tmp) / "ladder")
        shown = read_ladder(Path(tmp) / "ladder").result
        assert shown.status == result.status == "cancelled"
        assert [r.number for r in shown.rungs] == [r.number for r in result.rungs] == [1]
        assert shown.stopped is not None and shown.stopped.number == 2 and shown.stopped.partial
        assert not (Path(tmp) / "ladder" / "rung-3").exists()


def _adapter_deleted_while_chosen(lm) -> None:
    """Chosen in one tab, deleted in another: the first says so on its next run, not silently."""
    from streamlit.testing.v1 import AppTest

    from tests.test_app import APP

    saved_adapter_job(lm, "in-use")
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.sidebar.selectbox(key="adapter").set_value("in-use").run()
    delete_adapter("in-use")
    at.run()
    assert not at.exception and at.session_state["adapter"] == ""
    gone = "The adapter 'in-use' is gone (renamed or deleted): back to the base model."
    assert gone in [w.value for w in at.warning]


def _tree_link_falls_back() -> None:
    """A hand-edited tree link: every bad value is said and replaced by its default, nothing refused."""
    settings, warnings = from_query({"mode": "forest", "w": "40", "d": "x", "node": "1,a"})
    assert settings == TreeSettings()
    assert warnings == [
        "The link's mode 'forest' is not one of branches, beams, samples. Showing branches.",
        "The link's depth 'x' is not a whole number. Using 4 instead.",
        "The beam width must be between 1 and 16; got 40. Using 3 instead.",
        "The link's node '1,a' is not a list of token ids. The tree opens from the prompt.",
    ]


def _html_in_a_room_is_text(lm, store: RoomStore) -> None:
    """Stored as typed; the reveal's chart (plotly reads some HTML) and the pages show it escaped."""
    code = open_room(store, lm, "The capital of France is").room.code
    store.add_guess(code, "phone-m", "<b>Mallory</b>", "<img src=x onerror=alert(1)>")
    assert [(g.name, g.text) for g in store.guesses(code)] == [("<b>Mallory</b>", "<img src=x onerror=alert(1)>")]
    labels = reveal_figure(score_round(store, lm, code)).data[0].y
    assert labels[0].startswith("&lt;img src=x onerror=") and "<img" not in "".join(labels)
    assert escape("<b>Mallory</b>") == "&lt;b&gt;Mallory&lt;/b&gt;"


def _a_guess_is_a_student() -> None:
    assert not is_teacher("the-right-on") and not is_teacher("") and is_teacher("the-right-one")


def _server_key_stays_home() -> None:
    for base_url in ("http://127.0.0.1:8080/v1", "https://api.openai.com.evil.example/v1"):
        assert resolve_api_key(base_url, None, server_key=True) == NO_KEY_PLACEHOLDER
    assert resolve_api_key("https://api.openai.com/v1", None, server_key=True) == SECRET


def _round_trip(lm, text: str) -> None:
    tokens = encode_prompt(lm, text).tokens
    assert lm.tokenizer.decode([t.id for t in tokens], skip_special_tokens=True) == text


def _csv_injection_is_data_and_exports_inert() -> None:
    formula = '=HYPERLINK("http://evil.example","click")'
    quoted = formula.replace('"', '""')  # CSV's own quoting
    dataset = parse_upload(CSV_HEADER + f'"{quoted}",positive\n'.encode() + GOOD_ROWS, "rows.csv")
    assert formula in [e.prompt for e in dataset.train + dataset.eval], "kept verbatim as the model's input"
    exported = safe_csv([{"prompt": formula}])
    assert "'=HYPERLINK" in exported and "\n=HYPERLINK" not in exported


def _doc_ids() -> set[str]:
    return set(re.findall(r"^\| `([a-z0-9-]+)` \|", DOC.read_text(encoding="utf-8"), flags=re.MULTILINE))


@pytest.fixture(scope="module")
def cases(lm, strict_server, bad_models, rooms):  # noqa: F811 (the imported fixture)
    return catalogue(lm, strict_server, bad_models, rooms)


def _all_ids() -> list[str]:
    return sorted(_doc_ids())


@pytest.mark.parametrize("case", _all_ids())
def test_catalogue_case(case, cases):
    refused, accepted = cases
    assert case in refused or case in accepted, f"{case} is in docs/bad-input.md but has no test"
    if case in accepted:
        accepted[case]()
        return
    attempt, message = refused[case]
    with pytest.raises(LabError) as info:
        attempt()
    text = str(info.value)
    assert re.search(message, text), f"{case}: {text!r} does not say {message!r}"
    assert SECRET not in text and "Traceback" not in text


def test_every_tested_case_is_documented(cases):
    refused, accepted = cases
    assert set(refused) | set(accepted) == _doc_ids()


def test_no_upload_accepts_archives():
    """Zips are only ever downloaded (an adapter), never unpacked from a person: no zip bomb to defuse."""
    pages = Path(__file__).resolve().parent.parent / "pages"
    for page in pages.glob("*.py"):
        for types in re.findall(r"file_uploader\([^)]*type=\[([^\]]*)\]", page.read_text(encoding="utf-8")):
            assert "zip" not in types and "gz" not in types, page.name
