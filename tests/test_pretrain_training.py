"""Real pretraining from random weights: the loss falls, the samples become words, the saved model loads anywhere.

One foreground run through the CLI is shared by the module's tests (a few
hundred steps of a 0.1M-parameter model on a made-up text); one background
job is started and cancelled. Waits have a generous deadline only so a
broken job cannot hang the suite; nothing asserts on speed.
"""

import contextlib
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import torch

from core.cli import main
from core.distributions import next_token_distribution
from core.jobs.folder import JobFolder, read_job
from core.jobs.lock import running_job
from core.jobs.stop import request_stop
from core.models import load_model
from core.pretrain import PretrainConfig, job_samples, list_tiny_models, start_pretrain_job
from core.pretrain.corpus import Corpus, tiny_sentences_text
from core.pretrain.library import PRETRAIN
from core.tokens import encode_prompt
from tests.conftest import ROOT, wait_for

pytestmark = pytest.mark.slow
STEPS = 200
GRAMMAR_WORDS = set(re.findall(r"[a-z]+", tiny_sentences_text()))
RESULT_KEYS = {"model_dir", "parameters", "loss_first", "loss_last", "seconds"}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A 200-step run of a 2-layer, 64-wide model on 53,000 characters of made-up sentences: (--json result, job)."""
    root = tmp_path_factory.mktemp("pretrain")
    text = root / "sentences.txt"
    text.write_text(tiny_sentences_text(1500, seed=1))
    argv = [
        "pretrain", "--text-file", str(text), "--output", str(root / "job"), "--json",
        "--layers", "2", "--d-model", "64", "--heads", "4", "--context", "32",
        "--max-steps", str(STEPS), "--sample-every", "50",
    ]  # fmt: skip
    out = io.StringIO()
    niceness, threads = os.nice(0), torch.get_num_threads()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out):
        mp.setenv("LLM_LAB_DATA", str(root / "data"))
        assert main(argv) == 0
    lines = out.getvalue().strip().splitlines()
    assert len(lines) == 1, "with --json, stdout holds only the result"
    assert (os.nice(0), torch.get_num_threads()) == (niceness, threads), "a foreground run leaves its caller as it was"
    return json.loads(lines[0]), root / "job"


def grammar_share(text: str) -> float:
    """The share of a sample's words that are words of the made-up language."""
    words = re.findall(r"[a-z]+", text)
    return sum(w in GRAMMAR_WORDS for w in words) / max(1, len(words))


def test_the_loss_falls_substantially(tiny_run):
    result, job_dir = tiny_run
    assert set(result) >= RESULT_KEYS
    assert (result["steps"], result["partial"], result["status"]) == (STEPS, False, "done")
    assert result["loss_last"] < 0.4 * result["loss_first"]
    assert result["eval_loss_after"] < result["eval_loss_before"] - 2.0, "held-out text is predicted better too"
    state = read_job(job_dir)
    assert (state.kind, state.status, state.progress) == (PRETRAIN.name, "done", 1.0)
    assert [m["step"] for m in state.metrics if m["loss"] is not None] == list(range(1, STEPS + 1))


def test_the_samples_change_from_noise_to_words(tiny_run):
    _, job_dir = tiny_run
    samples = job_samples(job_dir)
    assert [s["step"] for s in samples] == [0, 50, 100, 150, 200]
    assert len({s["text"] for s in samples}) == len(samples), "every sample differs"
    corpus_start = (job_dir / "corpus.txt").read_text().split(" ")[0] + " "
    assert all(s["prompt"] == corpus_start and len(s["text"]) == 100 for s in samples), "one fixed prompt"
    first, last = grammar_share(samples[0]["text"]), grammar_share(samples[-1]["text"])
    assert first < 0.3 < 0.7 < last, (samples[0]["text"], samples[-1]["text"])


def test_the_saved_model_is_a_plain_transformers_folder_with_a_card(tiny_run):
    result, job_dir = tiny_run
    model_dir = Path(result["model_dir"])
    assert model_dir == job_dir / "model"
    names = {p.name for p in model_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "README.md"} <= names
    assert not any(n.endswith((".bin", ".pt", ".pkl")) for n in names), "safetensors only"
    card = (model_dir / "README.md").read_text()
    assert "2 layers, width 64, 4 heads" in card and f"{STEPS} of {STEPS}" in card
    training = json.loads((model_dir / "training.json").read_text())
    assert training["parameters"] == result["parameters"] and training["tokens_seen"] == STEPS * 16 * 32
    assert not list(job_dir.glob(".*")), "no temp folders left"


def test_load_model_reads_it_like_any_model_and_it_has_learned_the_grammar(tiny_run):
    result, _ = tiny_run
    lm = load_model(result["model_dir"])
    assert lm.n_parameters == result["parameters"] and lm.context_length == 32
    dist = next_token_distribution(lm, encode_prompt(lm, "the cat ").ids)
    assert abs(float(dist.probs.sum()) - 1) < 1e-9
    verbs = {"sees", "likes", "follows", "draws", "finds", "carries", "hears", "paints"}
    verb_initials = {v[0] for v in verbs}  # 7 of the 29 tokens: a guess at random puts 24% on them
    assert dist.top(1)[0].token in verb_initials, dist.top(5)
    assert sum(t.prob for t in dist.top(lm.vocab_size) if t.token in verb_initials) > 0.45, dist.top(8)


def test_the_cli_explorer_path_loads_it_in_a_fresh_process(tiny_run):
    result, _ = tiny_run
    out = subprocess.run(
        [sys.executable, "-m", "core", "next-token", "--model", result["model_dir"], "--prompt", "the dog ", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout)
    assert answer["model"] == "model" and answer["prompt_tokens"] == 8  # one token per character
    assert len(answer["tokens"]) == 10 and all(len(t["token"]) == 1 for t in answer["tokens"])


def test_a_background_job_runs_at_low_priority_and_cancel_saves_a_partial_model(tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_LAB_DATA", str(tmp_path / "data"))
    config = PretrainConfig(layers=1, d_model=32, heads=2, context=16, max_steps=5000, batch_size=4, sample_every=0)
    job = start_pretrain_job(config, Corpus("sentences.txt", tiny_sentences_text(300)), name="cancelled")
    assert running_job(PRETRAIN) == job.resolve()
    state = wait_for(job, lambda s: s.step >= 3 or s.finished)
    assert state.status == "running", state.error
    assert psutil.Process(JobFolder(job).process().pid).nice() >= 10, "the job yields to the app"
    request_stop(job)
    state = wait_for(job, lambda s: s.finished)
    assert (state.status, state.partial) == ("cancelled", True)
    assert 3 <= state.step < 5000
    [saved] = list_tiny_models()
    assert (saved.name, saved.partial) == ("cancelled", True) and "stopped early: partial" in saved.card
    assert load_model(str(saved.path)).n_parameters == saved.parameters
    assert [s["step"] for s in job_samples(job)] == [0, state.step], "a sample before, and one where it stopped"
    assert running_job(None) is None, "the lock is released when the job ends"
