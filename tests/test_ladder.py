"""The scaling ladder: rungs, the power law, bits per character, a real tiny ladder through the CLI, Cancel.

The CLI run is shared by the module's tests: three rungs of 4 steps on
12,000 characters of Python's documentation (well under a minute). Nothing
asserts on speed; the numbers checked are computed from what the run wrote.
"""

import contextlib
import io
import itertools
import json
import math
import time

import psutil
import pytest

from core.cli import main
from core.datasets import load_dataset
from core.errors import InvalidInput
from core.jobs.folder import JobFolder, read_job
from core.jobs.lock import running_job
from core.ladder import (
    LADDER,
    LadderConfig,
    bits_per_char,
    check_ladder,
    fit_power_law,
    ladders_root,
    list_ladders,
    read_ladder,
    start_ladder_job,
)
from core.ladder.config import rung_learning_rate
from core.ladder.reference import reference_score
from core.ladder.task import SizedModel, score_across_sizes
from core.models import load_model, load_unshared
from core.pretrain.corpus import Corpus, python_docs_text
from tests.ladders import TINY, cancelled_after_first_rung, tiny_text

VOCAB = 107  # Python's documentation, as characters, with the special tokens
STEPS = 4
ROW_KEYS = {"parameters", "eval_loss", "bits_per_char", "train_flops", "seconds"}


@pytest.mark.parametrize("rungs", [3, 4, 5])
def test_every_ladder_spans_the_same_two_decades_in_even_steps(rungs):
    plan = LadderConfig(rungs=rungs).plan(VOCAB)
    sizes = [r.parameters for r in plan]
    assert len(sizes) == rungs and sizes == sorted(set(sizes))
    assert 10_000 < sizes[0] < 25_000 and 1_500_000 < sizes[-1] < 2_500_000
    ratios = [b / a for a, b in itertools.pairwise(sizes)]
    assert max(ratios) / min(ratios) < 1.3, "the rungs are spread evenly on a log scale"
    assert all(r.size.d_model % r.size.heads == 0 and 16 <= r.size.d_model / r.size.layers <= 64 for r in plan)
    rates = [r.learning_rate for r in plan]
    assert rates == sorted(rates, reverse=True) and rates[0] == rung_learning_rate(sizes[0]), "smaller: faster"


@pytest.mark.parametrize("rungs", [2, 6, 0, True, "3"])
def test_a_rung_count_outside_3_to_5_is_refused(rungs):
    with pytest.raises(InvalidInput, match=r"^A ladder has 3 to 5 rungs"):
        LadderConfig(rungs=rungs).validate()


def test_the_fit_recovers_a_power_law_from_noisy_points():
    sizes = [17e3, 61e3, 2.1e5, 6.2e5, 1.8e6]
    wobble = [1.01, 0.99, 1.005, 0.995, 1.0]  # ±1 % of noise, deterministic
    fit = fit_power_law(sizes, [12 * n**-0.18 * w for n, w in zip(sizes, wobble, strict=True)])
    assert fit.b == pytest.approx(0.18, abs=0.01) and fit.a == pytest.approx(12, rel=0.15)
    assert 0.98 < fit.r2 < 1.0, "noise costs a little r², never all of it"
    exact = fit_power_law(sizes, [12 * n**-0.18 for n in sizes])
    assert (exact.a, exact.b, exact.r2) == pytest.approx((12, 0.18, 1.0), rel=1e-9)
    assert exact.predict(1e8) == pytest.approx(12 * 1e8**-0.18)


def test_the_fit_with_an_irreducible_loss_recovers_c_and_needs_four_rungs():
    sizes = [17e3, 61e3, 2.1e5, 6.2e5, 1.8e6]
    fit = fit_power_law(sizes, [30 * n**-0.3 + 0.8 for n in sizes], offset=True)
    assert (fit.a, fit.b, fit.c) == pytest.approx((30, 0.3, 0.8), rel=1e-3)
    assert fit_power_law(sizes, [30 * n**-0.3 + 0.8 for n in sizes]).r2 < fit.r2, "without c the line bends"
    with pytest.raises(InvalidInput, match="needs at least 4 finished rungs"):
        fit_power_law(sizes[:3], [2.0, 1.5, 1.2], offset=True)


def test_bits_per_character_convert_nats_per_token_by_the_text_they_spell():
    assert bits_per_char(math.log(2), 100, 100) == pytest.approx(1.0), "one bit per character-token"
    assert bits_per_char(math.log(4), 100, 400) == pytest.approx(0.5), "2 bits a token, 4 characters a token"
    with pytest.raises(InvalidInput):
        bits_per_char(1.0, 10, 0)


def test_smollm2s_reference_is_its_scored_loss_per_character(lm):
    text = "The quick brown fox jumps over the lazy dog. " * 6
    score = reference_score(lm, text)
    ids = lm.tokenizer(text)["input_ids"]
    assert score.tokens == len(ids) - 1, "every token but the first is predicted"
    assert score.characters == len(lm.tokenizer.decode(ids[1:]))
    assert 0.05 < score.bits_per_char < 3.0 and score.parameters == lm.n_parameters


@pytest.fixture(scope="module")
def cli_ladder(tmp_path_factory):
    """``python -m core ladder`` on a text file: (its --json result, the ladder's folder, the argv)."""
    root = tmp_path_factory.mktemp("ladder")
    text = root / "docs.txt"
    text.write_text(python_docs_text()[:12_000], encoding="utf-8")
    argv = ["ladder", "--text-file", str(text), "--rungs", "3", "--seed", "1", "--steps", str(STEPS)]
    argv += ["--no-reference", "--output", str(root / "ladder"), "--json"]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(argv) == 0
    lines = out.getvalue().strip().splitlines()
    assert len(lines) == 1, "with --json, stdout holds only the result"
    return json.loads(lines[0]), root / "ladder", argv


@pytest.mark.slow
def test_the_cli_prints_the_documented_shape_with_consistent_numbers(cli_ladder):
    result, _, _ = cli_ladder
    assert result["status"] == "done" and len(result["rungs"]) == 3
    assert all(set(row) >= ROW_KEYS for row in result["rungs"])
    sizes = [row["parameters"] for row in result["rungs"]]
    assert sizes == sorted(sizes) and sizes[-1] > 50 * sizes[0]
    for row in result["rungs"]:
        assert row["tokens"] == STEPS * 4 * 256, "every rung read the same tokens"
        assert row["train_flops"] == 6 * row["parameters"] * row["tokens"]
        assert row["bits_per_char"] == pytest.approx(row["eval_loss"] / math.log(2)), "characters are the tokens"
    fit = result["fit"]
    assert set(fit) >= {"a", "b", "c", "r2"} and 0 <= fit["r2"] <= 1 and fit["c"] == 0
    bits = [row["bits_per_char"] for row in result["rungs"]]
    assert fit["a"] * sizes[0] ** -fit["b"] == pytest.approx(bits[0], rel=0.2)


@pytest.mark.slow
def test_a_saved_ladder_reopens_from_its_files_without_retraining(cli_ladder):
    result, folder, argv = cli_ladder
    ladder = read_ladder(folder)
    assert [r.summary() for r in ladder.result.rungs] == result["rungs"]
    assert all(len(r.curve) >= STEPS and r.sample for r in ladder.result.rungs), "curves and samples are kept"
    weights = folder / "rung-3" / "ladder-rung-3" / "model.safetensors"
    before = weights.stat().st_mtime_ns
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(argv) == 0
    assert json.loads(out.getvalue())["rungs"] == result["rungs"] and weights.stat().st_mtime_ns == before


@pytest.mark.slow
def test_the_same_folder_with_other_settings_is_refused(cli_ladder, capsys):
    _, _, argv = cli_ladder
    other = [a if a != "1" else "2" for a in argv]  # --seed 2
    assert main(other) == 2
    assert "holds a ladder trained with other settings (seed 1 there, 2 asked)" in capsys.readouterr().err


@pytest.mark.slow
def test_each_rung_is_a_plain_model_that_takes_the_task_and_fails_it_honestly(cli_ladder):
    _, folder, _ = cli_ladder
    ladder = read_ladder(folder)
    assert load_model(ladder.result.rungs[0].model_dir).n_parameters == ladder.result.rungs[0].parameters
    models = [
        SizedModel(f"rung-{r.number}", f"rung {r.number}", "rung", lambda d=r.model_dir: load_unshared(d))
        for r in ladder.result.rungs
    ]
    task = score_across_sizes(models, load_dataset("sentiment"), 2)
    assert [s.parameters for s in task.scores] == [r.parameters for r in ladder.result.rungs]
    for score in task.scores:
        assert score.error is None and score.accuracy == 0.0, "four steps of Python's docs teach no task"
        assert all(0 < a.p_expected < 1e-3 for a in score.answers), "but the expected answer has a probability"


def test_a_corpus_too_small_for_the_largest_rung_is_refused_before_anything_is_written():
    with pytest.raises(InvalidInput, match=r"too small for the largest rung: it has 18,000 characters to train on"):
        check_ladder(LadderConfig(), python_docs_text()[:20_000])


@pytest.mark.slow
def test_cancel_keeps_the_finished_rungs_and_leaves_the_stopped_one_out_of_the_fit(tmp_path):
    result = cancelled_after_first_rung(tmp_path / "ladder")
    assert result.status == "cancelled" and [r.number for r in result.rungs] == [1]
    assert result.stopped is not None and result.stopped.number == 2 and result.stopped.partial
    assert result.stopped.steps < result.stopped.max_steps and result.fit is None, "one point draws no line"
    assert not (tmp_path / "ladder" / "rung-3").exists(), "no rung starts after a cancel"
    again = read_ladder(tmp_path / "ladder")
    assert again.state.status == "cancelled" and again.result.rungs == result.rungs, "kept on disk, read back"
    assert result.output_dir == str(tmp_path / "ladder")


@pytest.mark.slow
def test_a_page_started_ladder_runs_as_its_own_process_at_low_priority(tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_LAB_DATA", str(tmp_path / "data"))
    corpus = Corpus("notes.txt", tiny_text())
    job = start_ladder_job(LadderConfig(corpus=corpus.name, **{**TINY, "steps": 5}), corpus, name="background")
    assert running_job(LADDER) == job.resolve() and job.parent == ladders_root()
    deadline = time.monotonic() + 600
    seen_nice = None
    while read_job(job).active and time.monotonic() < deadline:
        process = JobFolder(job).process()
        with contextlib.suppress(psutil.Error, AttributeError):
            seen_nice = psutil.Process(process.pid).nice()
        time.sleep(0.2)
    ladder = read_ladder(job)
    assert ladder.state.status == "done", ladder.state.error
    assert [r.number for r in ladder.result.rungs] == [1, 2, 3] and ladder.result.fit is not None
    assert ladder.state.step == ladder.state.max_steps == 15, "the ladder's step counts every rung's steps"
    assert seen_nice is not None and seen_nice >= 10, "the job yields to the app"
    assert running_job(None) is None, "the lock is released when the ladder ends"
    assert [j.name for j in list_ladders()] == ["background"]
