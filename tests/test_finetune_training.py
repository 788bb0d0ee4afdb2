"""Real fine-tuning on the embedded model: a short run that changes the answers, cancel, crash, kill.

Every job here trains SmolLM2-135M for real. Waits have a generous deadline
only so a broken job cannot hang the suite; nothing asserts on speed.
"""

import json
import os
import signal
from pathlib import Path

import pytest

from core.adapter_host import is_adapter_dir
from core.backends import LocalBackend
from core.cli import main
from core.datasets import Dataset, load_dataset
from core.distributions import SamplingSettings, next_token_distribution
from core.finetune import FINETUNE, FinetuneConfig, list_adapters, resolve_adapter, start_job
from core.finetune.jobs import ADAPTER_SUBDIR
from core.jobs.folder import DIED, JobFolder, read_job
from core.jobs.lock import running_job
from core.jobs.stop import request_stop
from core.jobs.training import TrainingResult
from core.models import LoadedModel
from core.prompts import Example, prompt_ids
from tests.conftest import wait_for

pytestmark = pytest.mark.slow
RESULT_KEYS = {
    "adapter_dir",
    "steps",
    "train_loss_first",
    "train_loss_last",
    "eval_loss_before",
    "eval_loss_after",
    "train_tokens_per_second",
    "seconds",
    "partial",
}


def greedy_answer(lm: LoadedModel, example: Example, max_new_tokens: int) -> str:
    """The model's most likely answer to ``example``'s prompt, special tokens removed."""
    return LocalBackend(lm).reply(example, SamplingSettings(temperature=0), None, max_new_tokens).text


def held_out_accuracy(lm: LoadedModel, dataset: Dataset) -> float:
    """The share of greedy answers to the eval split that hit the dataset's target."""
    hits = [dataset.hit(e, greedy_answer(lm, e, dataset.max_new_tokens)) for e in dataset.eval]
    return sum(hits) / len(hits)


def test_cli_result_has_the_documented_shape_and_the_eval_loss_falls(sentiment_run):
    result, job_dir = sentiment_run
    assert set(result) >= RESULT_KEYS
    assert (result["steps"], result["partial"], result["status"]) == (25, False, "done")
    assert result["eval_loss_after"] < result["eval_loss_before"] / 3
    assert result["train_loss_last"] < result["train_loss_first"]
    assert result["train_tokens_per_second"] > 0
    assert Path(result["adapter_dir"]) == job_dir / "adapter"


def test_the_answer_to_a_training_prompt_becomes_exactly_the_label(sentiment_run, lm):
    result, _ = sentiment_run
    example = load_dataset("sentiment").train[0]
    base_answer = greedy_answer(lm, example, 16)
    assert base_answer != example.completion, "zero-shot the base model answers in a sentence"
    adapted = lm.with_adapter(resolve_adapter(result["adapter_dir"]))
    assert greedy_answer(adapted, example, 16) == example.completion
    dist = next_token_distribution(adapted, prompt_ids(lm.tokenizer, example))
    assert dist.top(1)[0].token == example.completion and dist.model == f"{lm.display_name} + job"
    assert lm.model.__class__.__name__ == "LlamaForCausalLM", "the shared base model is left untouched"


def test_held_out_accuracy_rises(sentiment_run, lm):
    result, _ = sentiment_run
    dataset = load_dataset("sentiment")
    before = held_out_accuracy(lm, dataset)
    after = held_out_accuracy(lm.with_adapter(resolve_adapter(result["adapter_dir"])), dataset)
    assert after > before
    assert after >= 0.75


def test_the_job_folder_records_metrics_status_and_a_model_card(sentiment_run):
    result, job_dir = sentiment_run
    state = read_job(job_dir)
    assert (state.status, state.progress, state.partial, state.error) == ("done", 1.0, False, None)
    train_rows = [m for m in state.metrics if m["loss"] is not None]
    eval_rows = [m for m in state.metrics if m["eval_loss"] is not None]
    assert [m["step"] for m in train_rows] == list(range(1, 26))
    assert all(m["tokens_per_second"] > 0 and m["learning_rate"] > 0 for m in train_rows)
    assert eval_rows[0]["step"] == 0 and eval_rows[-1]["step"] == 25 and len(eval_rows) >= 3
    assert eval_rows[-1]["eval_loss"] == result["eval_loss_after"]
    adapter = job_dir / "adapter"
    assert {"adapter_config.json", "adapter_model.safetensors", "README.md", "training.json"} <= {
        p.name for p in adapter.iterdir()
    }
    card = (adapter / "README.md").read_text()
    assert "SmolLM2-135M-Instruct" in card and "sentiment" in card and "r 8, alpha 16" in card
    assert not list(job_dir.glob(".*")), "no temp folders left behind"


@pytest.fixture
def small_upload(tmp_path, monkeypatch):
    """A 12-row upload (10 to train, 2 to evaluate), so background jobs spend their time training."""
    monkeypatch.setenv("LLM_LAB_DATA", str(tmp_path / "data"))
    path = tmp_path / "reviews.jsonl"
    rows = [e.to_json() for e in load_dataset("sentiment").train[:12]]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_cancel_mid_run_leaves_a_loadable_partial_adapter(small_upload, lm):
    job = start_job(FinetuneConfig(dataset=small_upload, max_steps=500, batch_size=1, evals_during_training=0))
    assert running_job(FINETUNE) == job.resolve()
    state = wait_for(job, lambda s: s.step >= 2 or s.finished)
    assert state.status == "running" and state.eta is not None and state.elapsed > 0
    request_stop(job)
    state = wait_for(job, lambda s: s.finished)
    assert (state.status, state.partial) == ("cancelled", True)
    assert 2 <= state.step < 500 and state.result["partial"] is True
    adapter_dir = Path(state.result_as(TrainingResult).output_dir)
    assert adapter_dir == (job / ADAPTER_SUBDIR).resolve() and is_adapter_dir(adapter_dir)
    [info] = list_adapters()
    assert info.partial and "stopped early: partial" in info.card
    example = load_dataset("sentiment").train[0]
    dist = next_token_distribution(lm.with_adapter(resolve_adapter(adapter_dir)), prompt_ids(lm.tokenizer, example))
    assert abs(float(dist.probs.sum()) - 1) < 1e-9
    assert running_job() is None, "the lock is released when the job ends"


def test_a_job_that_crashes_shows_as_failed_with_its_error(small_upload):
    job = start_job(FinetuneConfig(dataset=small_upload, max_steps=5, target_modules=["no_such_proj"]))
    state = wait_for(job, lambda s: s.finished)
    assert state.status == "failed"
    assert "no_such_proj" in state.error and "q_proj" in state.error, state.error
    assert state.result is None and not is_adapter_dir(job / ADAPTER_SUBDIR)
    assert "no_such_proj" in (job / "job.log").read_text()
    assert running_job() is None


def test_a_killed_job_is_reported_as_failed_and_frees_the_machine(small_upload):
    job = start_job(FinetuneConfig(dataset=small_upload, max_steps=500, batch_size=1, evals_during_training=0))
    wait_for(job, lambda s: s.step >= 1 or s.finished)
    os.kill(JobFolder(job).process().pid, signal.SIGKILL)
    state = wait_for(job, lambda s: s.finished)
    assert state.status == "failed" and state.error.startswith(DIED)
    assert running_job() is None, "a dead job's lock is stale"
    next_job = start_job(FinetuneConfig(dataset=small_upload, max_steps=1, evals_during_training=0))
    assert wait_for(next_job, lambda s: s.finished).status == "done"


def test_estimate_times_a_real_step(small_upload, capsys):
    assert main(["finetune", "--dataset", "sentiment", "--max-steps", "30", "--estimate", "--json"]) == 0
    estimate = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert estimate["steps"] == 30 and estimate["seconds_per_step"] > 0 and estimate["eval_seconds"] > 0
    assert estimate["total_seconds"] > 30 * estimate["seconds_per_step"]
