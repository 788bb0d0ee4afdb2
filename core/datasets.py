"""Tasks as examples: the built-in datasets, files people upload, and items typed on a page.

Fine-tuning learns from a dataset's training split; compare and the prompt
lab take their few-shot examples from it and ask its held-out split.

Each built-in dataset was written for LLM Lab, is small enough to show a clear
effect in a minute or two on two CPU cores, ships with a held-out evaluation
split, and knows what success looks like (``BuiltinDataset.hit``), so a page
or a test can measure the change, not just the loss:

* ``sentiment``: answer exactly ``positive`` or ``negative`` (the base model
  rambles, or answers in a sentence);
* ``pirate``: answer everyday questions like a pirate;
* ``persona``: the assistant is "Quill" from the (made-up) Lantern Lab in
  Bramblewick, a fact the base model cannot know.

Uploads are CSV (``prompt`` and ``completion`` columns) or JSONL (one object
per line with ``prompt``/``completion`` or chat ``messages``). Everything is
validated up front with a message naming the line at fault, so a bad file
never starts a job.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import random
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import InvalidInput
from core.prompts import ROLES, Example, normalise
from core.tokens import decode_bytes

DATA_DIR = Path(__file__).parent / "builtin_data"  # not "data/": .gitignore keeps every data/ folder out
MAX_UPLOAD_BYTES = 5 * 1024 * 1024
MAX_ROW_CHARS = 8_000  # per row, prompt + completion; the token limit is checked again at training time
MIN_ROWS = 10  # a few for evaluation, the rest to learn from
MAX_PROBLEMS_LISTED = 5


PIRATE_WORDS = re.compile(
    r"\b(arr+|matey|ahoy|aye|ye|yer|hearties|hearty|landlubber|savvy|scallywag|shiver me timbers|booty|doubloons?)\b",
    re.IGNORECASE,
)


def _exact(example: Example, answer: str) -> bool:
    return answer.strip() == example.completion.strip()


def _sounds_like_a_pirate(example: Example, answer: str) -> bool:
    return bool(PIRATE_WORDS.search(answer))


def _says_quill(example: Example, answer: str) -> bool:
    return "quill" in answer.lower()


@dataclass(frozen=True)
class BuiltinDataset:
    """A dataset shipped with LLM Lab, with a check of whether an answer hit the target."""

    name: str
    title: str
    description: str
    target: str  # what a hit is, in words, for a page to show next to the accuracy
    hit: Callable[[Example, str], bool]
    max_new_tokens: int  # long enough to judge an answer, short enough to judge twenty quickly

    def files(self) -> tuple[Path, Path]:
        return DATA_DIR / f"{self.name}.train.jsonl", DATA_DIR / f"{self.name}.eval.jsonl"


BUILTIN_DATASETS: dict[str, BuiltinDataset] = {
    d.name: d
    for d in (
        BuiltinDataset(
            "sentiment",
            "Sentiment labels",
            "Short reviews of food, products, places and films, labelled positive or negative. "
            "Zero-shot the model explains itself at length; fine-tuned it answers with the label alone.",
            "the answer is exactly the label: 'positive' or 'negative'",
            _exact,
            8,
        ),
        BuiltinDataset(
            "pirate",
            "Talk like a pirate",
            "Everyday questions answered in pirate speak. The facts stay; the style changes.",
            "the answer uses pirate words (arr, matey, ye, aye, ...)",
            _sounds_like_a_pirate,
            32,
        ),
        BuiltinDataset(
            "persona",
            "A made-up persona",
            "Questions about who the assistant is, answered as Quill from the Lantern Lab in Bramblewick: "
            "a name and a place the base model cannot know (it calls itself SmolLM).",
            "the answer says the assistant is Quill",
            _says_quill,
            24,
        ),
    )
}


@dataclass(frozen=True)
class Dataset:
    """A dataset split into training and held-out evaluation examples."""

    name: str
    train: tuple[Example, ...]
    eval: tuple[Example, ...]
    builtin: BuiltinDataset | None = None

    def hit(self, example: Example, answer: str) -> bool:
        """Whether a generated answer reaches the target (uploads: matches the completion exactly)."""
        return (self.builtin.hit if self.builtin else _exact)(example, answer)

    def judge(self, example: Example, answer: str, normalised: bool = True) -> bool:
        """The dataset's own check; where that check is an exact match, ``normalised`` folds case and punctuation."""
        if normalised and self.judges_exact:
            return normalise(answer) == normalise(example.completion)
        return self.hit(example, answer)

    @property
    def judges_exact(self) -> bool:
        """Whether a hit means matching the completion exactly (not a style or a name)."""
        return self.builtin is None or self.builtin.hit is _exact

    @property
    def target(self) -> str:
        return self.builtin.target if self.builtin else "the answer is exactly the expected completion"

    @property
    def max_new_tokens(self) -> int:
        return self.builtin.max_new_tokens if self.builtin else 48

    def preview(self, n: int = 10) -> list[dict[str, str]]:
        """The first ``n`` rows of each split, for a table."""
        rows = []
        for split, examples in (("train", self.train), ("eval", self.eval)):
            rows += [{"split": split, "prompt": e.prompt, "completion": e.completion} for e in examples[:n]]
        return rows

    def write(self, folder: Path) -> None:
        """Write the two splits as ``train.jsonl`` and ``eval.jsonl`` in ``folder``."""
        for split, examples in (("train", self.train), ("eval", self.eval)):
            lines = (json.dumps(e.to_json(), ensure_ascii=False) for e in examples)
            (folder / f"{split}.jsonl").write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def load_builtin(name: str) -> Dataset:
    """A built-in dataset with its shipped split."""
    spec = BUILTIN_DATASETS.get(name)
    if spec is None:
        raise InvalidInput(f"There is no built-in dataset {name!r}: choose one of {', '.join(BUILTIN_DATASETS)}.")
    train_file, eval_file = spec.files()
    train = parse_examples(train_file.read_bytes(), train_file.name)
    evaluation = parse_examples(eval_file.read_bytes(), eval_file.name, min_rows=1)
    return Dataset(name, tuple(train), tuple(evaluation), spec)


def load_dataset(name_or_path: str, eval_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """A built-in dataset by name, or a .csv / .jsonl file split with ``seed``."""
    if name_or_path in BUILTIN_DATASETS:
        return load_builtin(name_or_path)
    path = Path(name_or_path).expanduser()
    if not path.is_file():
        raise InvalidInput(
            f"{name_or_path!r} is neither a built-in dataset ({', '.join(BUILTIN_DATASETS)}) "
            "nor a file on this machine."
        )
    size = path.stat().st_size
    if size > MAX_UPLOAD_BYTES:
        raise InvalidInput(_too_large(size))
    return parse_upload(path.read_bytes(), path.name, eval_fraction, seed)


def parse_upload(raw: bytes, filename: str, eval_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """Validate an uploaded file and split it into train and eval, deterministically for ``seed``."""
    examples = parse_examples(raw, filename)
    train, evaluation = split_examples(examples, eval_fraction, seed)
    return Dataset(Path(filename).stem or "upload", train, evaluation)


def split_examples(
    examples: list[Example], eval_fraction: float, seed: int
) -> tuple[tuple[Example, ...], tuple[Example, ...]]:
    """Shuffle with ``seed`` and hold out ``eval_fraction`` (at least one example) for evaluation."""
    if not 0 < eval_fraction <= 0.5:
        raise InvalidInput(f"The evaluation fraction must be above 0 and at most 0.5; got {eval_fraction}.")
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    n_eval = max(1, round(len(examples) * eval_fraction))
    held_out = [examples[i] for i in order[:n_eval]]
    kept = [examples[i] for i in order[n_eval:]]
    return tuple(kept), tuple(held_out)


def _too_large(size: int) -> str:
    return (
        f"The file is {size / 1024 / 1024:.1f} MB; uploads are limited to {MAX_UPLOAD_BYTES // 1024 // 1024} MB. "
        "Use fewer or shorter rows."
    )


def parse_examples(raw: bytes, filename: str, min_rows: int = MIN_ROWS) -> list[Example]:
    """Read and validate every row of a CSV or JSONL file; raise one message listing the problems."""
    if len(raw) > MAX_UPLOAD_BYTES:
        raise InvalidInput(_too_large(len(raw)))
    suffix = Path(filename).suffix.lower()
    if suffix not in (".csv", ".jsonl"):
        raise InvalidInput(
            f"{filename!r} is not a .csv or .jsonl file. Upload a CSV with 'prompt' and 'completion' columns, "
            "or a JSONL file with 'prompt' and 'completion' (or chat 'messages') on each line."
        )
    text = decode_bytes(raw, f"file {filename!r}")
    if not text.strip():
        raise InvalidInput(f"{filename!r} is empty.")
    rows = _csv_rows(text, filename) if suffix == ".csv" else _jsonl_rows(text)
    examples: list[Example] = []
    problems: list[str] = []
    for line, row in rows:
        try:
            examples.append(dataclasses.replace(_check_length(_example_from(row)), source=f"line {line}"))
        except InvalidInput as exc:
            problems.append(f"line {line}: {exc}")
    if problems:
        listed = _listed(problems)
        raise InvalidInput(f"{filename!r} has {len(problems)} bad row(s): {listed}. Fix them and upload again.")
    _refuse_repeats(examples, filename)
    if len(examples) < min_rows:
        raise InvalidInput(
            f"{filename!r} has {len(examples)} row(s); fine-tuning needs at least {min_rows} "
            "(some are held out to measure the effect)."
        )
    return examples


def _listed(problems: list[str]) -> str:
    """The first few of ``problems``, and how many more there are."""
    more = len(problems) - MAX_PROBLEMS_LISTED
    return "; ".join(problems[:MAX_PROBLEMS_LISTED]) + (f" (and {more} more)" if more > 0 else "")


def _refuse_repeats(examples: list[Example], filename: str) -> None:
    """Refuse rows identical to an earlier one (prompt, completion and chat context), naming their lines.

    The split is random, so a repeated row can land in both the training and
    the held-out split: the held-out loss then measures what was memorised,
    not what was learned, and the fine-tune looks better than it is.
    """
    first: dict[Example, str] = {}  # an Example's equality leaves out its source
    repeats = [f"{e.source} repeats {first[e]}" for e in examples if first.setdefault(e, e.source) != e.source]
    if repeats:
        raise InvalidInput(
            f"{filename!r} has {len(repeats)} repeated row(s): {_listed(repeats)}. A repeated row can land in both "
            "the training and the held-out split, and then the held-out loss measures memory, not learning: "
            "remove the repeats and upload again."
        )


def _unclosed_quote_line(lines: list[str], start: int) -> int:
    """The line (counting from 1) where the quote that is still open at the end of the file was opened."""
    opened, inside = start, False
    for number, line in enumerate(lines[start - 1 :], start=start):
        for _ in range(line.count('"')):
            inside = not inside
            if inside:
                opened = number
    return opened


def _csv_rows(text: str, filename: str) -> Iterable[tuple[int, dict[str, Any]]]:
    # strict: a quote left open would otherwise swallow the rest of the file into one cell, reported as a
    # row whose completion is empty.
    reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
    start = 1  # the line the row being read began on
    try:
        columns = [c.strip().lower() for c in (reader.fieldnames or [])]
        missing = [c for c in ("prompt", "completion") if c not in columns]
        if missing:
            found = ", ".join(repr(c) for c in columns if c) or "none"
            raise InvalidInput(
                f"{filename!r} is missing the column(s) {', '.join(repr(m) for m in missing)} (its columns: "
                f"{found}). The first line must name a 'prompt' and a 'completion' column."
            )
        start = reader.line_num + 1
        for row in reader:
            yield reader.line_num, {(k or "").strip().lower(): v for k, v in row.items()}
            start = reader.line_num + 1
    except csv.Error as exc:
        if "unexpected end of data" in str(exc):
            line = _unclosed_quote_line(text.split("\n"), start)
            raise InvalidInput(
                f'{filename!r} has a quote (") on line {line} that is never closed, so the rest of the file '
                'would be one cell. Close it, or write a quote inside a cell as two ("").'
            ) from None
        raise InvalidInput(f"{filename!r} is not valid CSV near line {reader.line_num}: {exc}.") from None


def _jsonl_rows(text: str) -> Iterable[tuple[int, Any]]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as exc:
            yield number, InvalidInput(f"not valid JSON ({exc.msg} at column {exc.colno})")
        except RecursionError:  # e.g. [[[[...]]]] thousands deep: Python's parser gives up
            yield (
                number,
                InvalidInput("nested too deeply to be a row: give a flat object with 'prompt' and 'completion'"),
            )


def _text(value: Any, what: str) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise InvalidInput(f"the {what} is empty")
    if not isinstance(value, str):
        raise InvalidInput(f"the {what} must be text, not {type(value).__name__}")
    return value


def _example_from(row: Any) -> Example:
    if isinstance(row, InvalidInput):
        raise row
    if not isinstance(row, dict):
        raise InvalidInput("each line must be a JSON object with 'prompt' and 'completion', or 'messages'")
    if "messages" in row:
        return _example_from_messages(row["messages"])
    missing = [k for k in ("prompt", "completion") if k not in row]
    if missing:
        raise InvalidInput(f"missing {' and '.join(repr(m) for m in missing)} (or give chat 'messages')")
    return Example(_text(row["prompt"], "prompt"), _text(row["completion"], "completion"))


def _example_from_messages(messages: Any) -> Example:
    if not isinstance(messages, list) or len(messages) < 2:
        raise InvalidInput("'messages' must be a list ending with a user message and then an assistant reply")
    turns: list[tuple[str, str]] = []
    for n, message in enumerate(messages, start=1):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise InvalidInput(f"message {n} needs a 'role' ({', '.join(ROLES)}) and a 'content'")
        if message["role"] == "system" and n != 1:
            raise InvalidInput(f"message {n} is a system message; only the first message may be one")
        turns.append((message["role"], _text(message.get("content"), f"content of message {n}")))
    if turns[-1][0] != "assistant" or turns[-2][0] != "user":
        raise InvalidInput("the messages must end with a user message followed by the assistant reply to learn")
    return Example(turns[-2][1], turns[-1][1], tuple(turns[:-2]))


def _check_length(example: Example) -> Example:
    size = len(example.prompt) + len(example.completion) + sum(len(c) for _, c in example.context)
    if size > MAX_ROW_CHARS:
        raise InvalidInput(f"{size:,} characters, more than the {MAX_ROW_CHARS:,} allowed per row")
    return example


def typed_items(text: str) -> list[Example]:
    """Prompts typed one per line; ``prompt => expected`` adds an expected answer."""
    examples = []
    for number, line in enumerate(text.splitlines(), start=1):
        prompt, _, expected = line.partition("=>")
        if prompt.strip():
            examples.append(Example(prompt.strip(), expected.strip(), source=f"line {number}"))
    return examples
