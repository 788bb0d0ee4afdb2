"""The engine in a process of its own (a class server): the same numbers as the engine in this process.

One model is loaded here with ``LLM_LAB_ENGINE_PROCESS=1`` and compared with
the shared ``lm`` fixture, whose passes run in this process: the same weights,
the same batching code, so the same answer (same top-10 ids, every
probability within 1e-4) for prompts, steps continuing a cache and passes
that return every position, one at a time or many at once.
"""

import gc

import pytest
import torch

from core import models
from core.distributions import PREFIX_CACHE, SamplingSettings, clear_memos, next_token_distribution
from core.engine.process import PROCESS_ENV, RemoteKV
from core.finetune.adapters import resolve_adapter
from core.generation import generate
from core.models import load_model, load_unshared
from tests.adapters import saved_adapter_job
from tests.test_engine import PROMPTS, same_answer, together
from ui.session import runs_on_words


@pytest.fixture(scope="module")
def remote_lm():
    model = load_unshared("embedded", device="cpu").in_engine_process()
    assert model.process is not None, "the engine process started"
    yield model
    clear_memos()


def test_a_class_server_s_shared_model_runs_in_an_engine_process_and_a_ladder_rung_does_not(monkeypatch):
    monkeypatch.setenv(PROCESS_ENV, "1")
    monkeypatch.setattr(models, "MODEL_CACHE", models._ModelCache(capacity=1))
    assert load_model("embedded", device="cpu").process is not None
    assert load_unshared("embedded", device="cpu").process is None, "a model loaded for a moment spawns nothing"


def test_the_weights_are_shared_with_the_engine_process_not_copied(remote_lm):
    assert all(p.is_shared() for p in remote_lm.model.parameters())


def test_prompts_sent_at_one_moment_get_the_answers_the_engine_here_gives(lm, remote_lm):
    ids = [lm.tokenizer(p)["input_ids"] for p in PROMPTS]
    remote = together([lambda i=i: remote_lm.forward(i, None, last_only=True) for i in ids])
    for (logits, past), i in zip(remote, ids, strict=True):
        assert isinstance(past, RemoteKV) and past.length == len(i)
        same_answer(logits[-1], lm.forward(i, None, last_only=True)[0][-1])


def test_passes_sent_in_one_message_each_get_their_own_answer_and_a_bad_one_fails_alone(lm, remote_lm):
    ids = [lm.tokenizer(p)["input_ids"] for p in PROMPTS[:2]]
    _, past = remote_lm.forward(ids[0], None, last_only=True)
    stale = RemoteKV(10**9, past.store, past.length)  # names no cache the child keeps
    step = lm.tokenizer(" the")["input_ids"][-1]
    wave = remote_lm.process.submit_many([(ids[1], None, True), ([step], stale, True), ([step], past, True)])
    same_answer(wave[0].result()[0][-1], lm.forward(ids[1], None, last_only=True)[0][-1])
    with pytest.raises(RuntimeError, match="KeyError"):
        wave[1].result()
    _, local_past = lm.forward(ids[0], None, last_only=True)
    same_answer(wave[2].result()[0][-1], lm.forward([step], local_past, last_only=True)[0][-1])


def test_a_cache_continued_in_the_engine_process_gives_every_step_as_here(lm, remote_lm):
    ids = lm.tokenizer(PROMPTS[1])["input_ids"]
    _, remote_past = remote_lm.forward(ids, None, last_only=True)
    _, local_past = lm.forward(ids, None, last_only=True)
    for token in lm.tokenizer(" a wise old owl")["input_ids"]:
        remote_logits, remote_past = remote_lm.forward([token], remote_past, last_only=True)
        local_logits, local_past = lm.forward([token], local_past, last_only=True)
        same_answer(remote_logits[-1], local_logits[-1])
    assert remote_past.length == local_past.length


def test_a_pass_over_every_position_comes_back_whole(lm, remote_lm):
    ids = lm.tokenizer(PROMPTS[3])["input_ids"]
    remote, _ = remote_lm.forward(ids, None, last_only=False)
    local, _ = lm.forward(ids, None, last_only=False)
    assert remote.shape == local.shape == (len(ids), lm.vocab_size)
    for position in range(len(ids)):
        same_answer(remote[position], local[position])


def test_generation_through_the_engine_process_is_the_generation_here(lm, remote_lm):
    ids = lm.tokenizer(PROMPTS[0])["input_ids"]
    settings = SamplingSettings(temperature=0.8, top_k=40)
    remote = [s.chosen.id for s in generate(remote_lm, ids, 8, settings, seed=7)]
    local = [s.chosen.id for s in generate(lm, ids, 8, settings, seed=7)]
    assert remote == local


def test_an_adapter_view_runs_here_on_the_weights_it_switches(remote_lm, tmp_path, monkeypatch):
    """The engine process runs the base model only: an adapter's passes stay in this process, adapter on."""
    monkeypatch.setenv("LLM_LAB_DATA", str(tmp_path))
    job = saved_adapter_job(remote_lm, "remote-mix", random_weights=True, seed=5)
    view = remote_lm.with_adapter(resolve_adapter(job.path))
    ids = remote_lm.tokenizer(PROMPTS[2])["input_ids"]
    tuned, past = view.forward(ids, None, last_only=True)
    base, _ = remote_lm.forward(ids, None, last_only=True)
    assert not isinstance(past, RemoteKV) and not view.runs_in_engine_process
    assert float((torch.softmax(tuned[-1], -1) - torch.softmax(base[-1], -1)).abs().max()) > 1e-4


def test_a_stopped_engine_process_is_a_clear_error_not_a_hang():
    model = load_unshared("embedded", device="cpu").in_engine_process()
    model.process._process.kill()
    model.process._process.join(timeout=10)
    with pytest.raises(RuntimeError, match="engine process stopped"):
        model.forward([1, 2, 3], None, last_only=True)


def test_a_view_says_whether_its_passes_run_in_the_engine_process(lm, remote_lm):
    assert remote_lm.runs_in_engine_process and not lm.runs_in_engine_process
    assert runs_on_words(remote_lm) == "torch · float32, in an engine process of its own"
    assert runs_on_words(lm) == lm.runs_on == "torch · float32"


def test_an_evicted_model_s_engine_process_ends_once_no_cache_handle_names_it(monkeypatch):
    """A class server that switches models keeps no engine process (and its weights) of the model it dropped."""
    from core import distributions

    monkeypatch.setenv(PROCESS_ENV, "1")
    cache = models._ModelCache(capacity=1)
    cache.on_evict(distributions._forget_model)  # as core.distributions does on the server's cache
    monkeypatch.setattr(models, "MODEL_CACHE", cache)
    lm = load_model("embedded", device="cpu")
    child, key = lm.process._process, lm.key
    ids = lm.tokenizer(PROMPTS[0])["input_ids"]
    next_token_distribution(lm, ids)
    assert PREFIX_CACHE.longest(lm.key, [*ids, 13])[0] is not None, "the distribution's cache is kept"
    _, held = lm.forward(ids, None, True)  # a session still holding a handle
    del lm
    cache.clear()
    assert PREFIX_CACHE.longest(key, [*ids, 13])[0] is None, "eviction dropped it"
    gc.collect()
    child.join(timeout=2)
    assert child.is_alive(), "a handle still names a cache the child keeps"
    del held
    gc.collect()
    child.join(timeout=30)
    assert not child.is_alive(), "the last handle gone, the engine process ended"
