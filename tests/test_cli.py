"""``python -m core`` at its edges: what a command prints for input that once gave a traceback.

Each of these crashed or misled once (issue 14): a table without
probabilities, a file nested too deep to parse, a seed too big for torch, a
negative number of alternatives or of prompts, a refused run that left a
failed job behind. Bad input must end as one sentence on stderr and status 2.
"""

from __future__ import annotations

import pytest

from core.cli import main


def refused(argv: list[str], capsys) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and captured.err.count("\n") == 1, captured.err
    return captured.err


def test_tokenize_prints_its_table_though_tokens_have_no_probabilities(capsys):
    assert main(["tokenize", "--prompt", "hello world"]) == 0
    table = capsys.readouterr().out
    assert "special" in table and "␣world" in table and "prob" not in table


def test_a_deeply_nested_upload_is_one_sentence_for_the_estimate_too(tmp_path, capsys):
    nested = tmp_path / "nested.jsonl"
    nested.write_text("[" * 100_000 + "]" * 100_000 + "\n")
    error = refused(["finetune", "--dataset", str(nested), "--estimate"], capsys)
    assert "line 1: nested too deeply to be a row" in error


@pytest.mark.parametrize("seed", [str(10**23), str(-(2**63) - 1)])
def test_a_seed_out_of_torch_s_range_is_one_sentence(seed, capsys):
    error = refused(["generate", "--prompt", "Hi", "--max-new-tokens", "2", "--seed", seed], capsys)
    assert "The seed must be a whole number from -2^63 to 2^64 - 1" in error


@pytest.mark.parametrize("command", [["generate", "--prompt", "Hi"], ["score", "--text", "Hi there"]])
def test_alternatives_are_named_as_the_setting_they_are(command, capsys):
    error = refused([*command, "--alternatives", "-3"], capsys)
    assert "The number of alternatives must be between 1" in error and "top-k" not in error


def test_compare_refuses_a_negative_limit(capsys):
    error = refused(["compare", "--dataset", "sentiment", "--limit", "-1"], capsys)
    assert "--limit must be a whole number from 1" in error


def test_a_run_refused_for_a_long_row_leaves_no_job_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LLM_LAB_DATA", str(tmp_path / "data"))
    rows = tmp_path / "rows.csv"
    good = "".join(f"question {n},answer {n}\n" for n in range(12))  # lines 2 to 13
    rows.write_text("prompt,completion\n" + good + "long," + "word " * 100 + "\n")
    job = tmp_path / "job"
    error = refused(["finetune", "--dataset", str(rows), "--output", str(job), "--max-length", "64"], capsys)
    assert "(line 14) are longer than the maximum length of 64 tokens" in error
    assert not job.exists(), "a refused run leaves no failed job behind"
