"""Fine-tuning data: built-in datasets, upload validation, splitting, formatting and the config."""

import json
import re

import pytest

from core.datasets import (
    BUILTIN_DATASETS,
    MAX_UPLOAD_BYTES,
    MIN_ROWS,
    load_dataset,
    parse_upload,
    split_examples,
)
from core.errors import InvalidInput
from core.finetune.config import FinetuneConfig
from core.finetune.encoding import IGNORE_INDEX, encode_example, encode_examples
from core.prompts import Example


def jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def rows(n: int) -> list[dict]:
    return [{"prompt": f"Question number {i}?", "completion": f"Answer {i}."} for i in range(n)]


@pytest.mark.parametrize("name", list(BUILTIN_DATASETS))
def test_builtin_datasets_have_held_out_splits_that_meet_their_own_targets(name):
    ds = load_dataset(name)
    assert 60 <= len(ds.train) <= 150
    assert 15 <= len(ds.eval) <= 30
    assert not {e.prompt for e in ds.train} & {e.prompt for e in ds.eval}, "eval prompts must be held out"
    # The reference completions are, by definition, hits: the target check and the data agree.
    assert all(ds.hit(e, e.completion) for e in ds.train + ds.eval)


def test_sentiment_eval_split_is_balanced_and_targets_are_exact_labels():
    ds = load_dataset("sentiment")
    labels = [e.completion for e in ds.eval]
    assert labels.count("positive") == labels.count("negative")
    example = ds.eval[0]
    assert not ds.hit(example, f"The sentiment is {example.completion}.")


def test_pirate_and_persona_targets_are_judged_on_the_answer():
    pirate, persona = load_dataset("pirate"), load_dataset("persona")
    assert pirate.hit(pirate.eval[0], "Arr, matey, boil it for nine minutes.")
    assert not pirate.hit(pirate.eval[0], "Boil it for nine minutes.")
    assert persona.hit(persona.eval[0], "I'm Quill.")
    assert not persona.hit(persona.eval[0], "I am SmolLM, trained by Hugging Face.")


def test_unknown_dataset_name_is_refused():
    with pytest.raises(InvalidInput, match="neither a built-in dataset"):
        load_dataset("no-such-dataset")


def test_csv_upload_is_split_deterministically_by_seed():
    text = "prompt,completion\n" + "".join(f'"Q{i}, with a comma",A{i}\n' for i in range(20))
    a = parse_upload(text.encode(), "mine.csv", eval_fraction=0.25, seed=1)
    b = parse_upload(text.encode(), "mine.csv", eval_fraction=0.25, seed=1)
    c = parse_upload(text.encode(), "mine.csv", eval_fraction=0.25, seed=2)
    assert a == b
    assert {e.prompt for e in a.eval} != {e.prompt for e in c.eval}
    assert (len(a.train), len(a.eval)) == (15, 5)
    assert a.name == "mine"
    assert a.eval[0].prompt.startswith("Q") and ", with a comma" in a.eval[0].prompt


def test_split_always_holds_out_at_least_one_example():
    train, held_out = split_examples([Example(f"p{i}", "c") for i in range(10)], 0.01, seed=0)
    assert (len(train), len(held_out)) == (9, 1)


def test_jsonl_chat_messages_keep_the_system_message_as_context():
    def messages(n: int) -> list[dict[str, str]]:
        return [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": f"Hi {n}?"},
            {"role": "assistant", "content": f"Hello {n}."},
        ]

    ds = parse_upload(jsonl([{"messages": messages(n)} for n in range(MIN_ROWS)]), "chat.jsonl")
    example = ds.train[0]
    n = int(example.prompt.removeprefix("Hi ").removesuffix("?"))
    assert (example.completion, example.context) == (f"Hello {n}.", (("system", "You are terse."),))
    assert example.to_json() == {"messages": messages(n)}


@pytest.mark.parametrize(
    ("raw", "filename", "message"),
    [
        (b"question,answer\nq,a\n", "data.csv", "missing the column"),
        (jsonl([*rows(12), {"prompt": "p", "completion": "  "}]), "d.jsonl", r"line 13: the completion is empty"),
        (jsonl([*rows(12), {"prompt": "p"}]), "d.jsonl", "line 13: missing 'completion'"),
        (jsonl(rows(12)) + b"{not json}\n", "d.jsonl", "line 13: not valid JSON"),
        (jsonl([*rows(12), {"prompt": "p" * 9000, "completion": "c"}]), "d.jsonl", "more than the 8,000 allowed"),
        ("prompt,completion\ncafé,crème\n".encode("latin-1"), "d.csv", "not valid UTF-8"),
        (jsonl(rows(MIN_ROWS - 1)), "d.jsonl", f"needs at least {MIN_ROWS}"),
        (b"x" * (MAX_UPLOAD_BYTES + 1), "d.jsonl", "limited to 5 MB"),
        (jsonl(rows(12)), "d.txt", "not a .csv or .jsonl file"),
        (b"", "d.csv", "is empty"),
        (jsonl([*rows(12), {"messages": [{"role": "user", "content": "only a question"}]}]), "d.jsonl", "line 13"),
        (
            jsonl([*rows(12), {"messages": [{"role": "assistant", "content": "a"}, {"role": "user", "content": "q"}]}]),
            "d.jsonl",
            "must end with a user message followed by the assistant reply",
        ),
    ],
)
def test_bad_uploads_are_refused_with_a_message_naming_the_problem(raw, filename, message):
    with pytest.raises(InvalidInput, match=message):
        parse_upload(raw, filename)


def test_many_bad_rows_are_summarised_not_all_listed():
    bad = [{"prompt": "", "completion": "c"}] * 8
    with pytest.raises(InvalidInput, match=r"has 8 bad row\(s\).*\(and 3 more\)"):
        parse_upload(jsonl(rows(12) + bad), "d.jsonl")


@pytest.mark.slow
def test_chat_examples_mask_the_prompt_and_end_with_the_end_of_turn_token(lm):
    example = load_dataset("sentiment").train[0]
    row = encode_example(lm.tokenizer, example)
    learned = [t for t, label in zip(row["input_ids"], row["labels"], strict=True) if label != IGNORE_INDEX]
    assert lm.tokenizer.decode(learned) == example.completion + "<|im_end|>"
    n_prompt = row["labels"].count(IGNORE_INDEX)
    prompt_text = lm.tokenizer.decode(row["input_ids"][:n_prompt])
    assert prompt_text.endswith("<|im_start|>assistant\n") and example.prompt in prompt_text
    assert row["labels"][:n_prompt] == [IGNORE_INDEX] * n_prompt


@pytest.mark.slow
def test_rows_longer_than_the_max_length_are_refused_not_truncated(lm):
    examples = load_dataset("pirate").train
    with pytest.raises(InvalidInput, match="longer than the maximum length of 40 tokens") as info:
        encode_examples(lm.tokenizer, examples, 40, "training")
    assert re.search(r"training example\(s\) \(line \d+", str(info.value)), "rows are named by their line"


def test_config_defaults_are_valid_and_round_trip():
    config = FinetuneConfig().validate()
    assert (config.r, config.alpha, config.target_modules, config.precision) == (8, 16, ["q_proj", "v_proj"], "auto")
    assert 2e-4 <= config.learning_rate <= 1e-3
    assert FinetuneConfig.from_dict(json.loads(json.dumps(config.to_json()))) == config


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"max_steps": 10, "epochs": 1.0}, "either a number of steps or a number of epochs"),
        ({"max_steps": None}, "either a number of steps or a number of epochs"),
        ({"max_steps": 0}, "number of steps must be a whole number"),
        ({"learning_rate": 0}, "learning rate must be a number above 0"),
        ({"dropout": 1.0}, "dropout must be a number at least 0 and below 1"),
        ({"r": 2.5}, "rank r must be a whole number"),
        ({"target_modules": []}, "at least one target module"),
        ({"precision": "int8"}, "Unknown precision"),
        ({"dataset": " "}, "Choose a dataset"),
    ],
)
def test_bad_config_values_are_refused_with_the_field_named(changes, message):
    with pytest.raises(InvalidInput, match=message):
        FinetuneConfig(**changes).validate()


def test_unknown_config_keys_are_refused():
    with pytest.raises(InvalidInput, match="Unknown config setting"):
        FinetuneConfig.from_dict({"learning_rat": 0.1})
