"""The llama.cpp engine: llama.cpp's own numbers, the same on every page, and torch where it cannot serve."""

import json

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from core.bench.batching import run_together
from core.distributions import clear_memos, next_token_distribution, score_text
from core.embedded import embedded_gguf_path
from core.finetune.adapters import resolve_adapter
from core.generation import TokenStream
from core.lens import model_internals
from core.models import LLAMACPP, MODEL_CACHE, TORCH, load_model, model_key, why_not_llamacpp
from core.tokens import encode_prompt
from tests.adapters import saved_adapter_job
from tests.test_app import APP, bars

llama_cpp = pytest.importorskip("llama_cpp")

TEXT = "The capital of France is Paris, and the capital of Italy is Rome. Both cities are old"


@pytest.fixture(scope="module")
def fast():
    """The embedded model on llama.cpp; taken out of the shared cache afterwards, as other tests expect it."""
    lm = load_model(engine=LLAMACPP)
    yield lm
    with MODEL_CACHE._lock:
        MODEL_CACHE._models.pop(lm.key, None)


@pytest.fixture
def roomy_cache(monkeypatch):
    """Room for the benchmark's extra models (bfloat16), dropped afterwards: the embedded model is never evicted."""
    monkeypatch.setattr(MODEL_CACHE, "capacity", 8)
    kept = dict(MODEL_CACHE._models)
    yield
    with MODEL_CACHE._lock:
        for key in set(MODEL_CACHE._models) - set(kept):
            del MODEL_CACHE._models[key]


def llama_logits(ids: list[int], **settings) -> torch.Tensor:
    """llama-cpp-python's own logits for every position of ``ids``, read in one pass."""
    llm = llama_cpp.Llama(model_path=str(embedded_gguf_path()), n_ctx=512, logits_all=True, verbose=False, **settings)
    llm.eval(ids)
    return torch.from_numpy(np.array(llm.scores[: len(ids)]))


def test_the_distribution_is_llama_cpps_own(fast):
    """llama.cpp's defaults (flash attention "auto" is on for a CPU): the same logits, so the same softmax."""
    ids = encode_prompt(fast, "The capital of France is").ids
    expected = llama_logits(ids, flash_attn=True)
    clear_memos()
    dist = next_token_distribution(fast, ids)
    assert torch.equal(dist.logits, expected[-1])
    assert float((dist.probs - torch.softmax(expected[-1].double(), -1)).abs().max()) < 1e-12
    assert fast.runs_on == "llama.cpp · Q4_1 GGUF" and fast.key.engine == LLAMACPP
    long_ids = fast.tokenizer(TEXT * 4)["input_ids"]  # past 64 tokens, where llama.cpp's own pass changes kernels
    from core.engine.llamacpp import UBATCH

    assert torch.equal(fast.forward(long_ids)[0], llama_logits(long_ids, flash_attn=True, n_ubatch=UBATCH))


def test_explorer_generation_and_score_show_the_same_numbers(fast):
    ids = fast.tokenizer(TEXT)["input_ids"]
    clear_memos()
    scored = score_text(fast, TEXT, alternatives=5)  # one pass over the whole text
    clear_memos()
    fast.llama.forget()
    decoded = fast.llama.stats.decoded_tokens
    stream = TokenStream(fast, ids[:3])  # the explorer's steered path: one token read at a time
    steps = [stream.append(token) for token in ids[3:]]
    assert fast.llama.stats.decoded_tokens - decoded == len(ids) - 1  # a token at a time, never a re-read
    for step, token in zip(steps, scored.tokens[3:], strict=True):
        assert step.chosen.prob == pytest.approx(token.prob, abs=1e-12)
        assert step.rank == token.rank
        assert [a.id for a in step.alternatives[:5]] == [a.id for a in token.alternatives]
    clear_memos()
    fast.llama.forget()
    prefix = ids[:10]  # a prompt typed afresh into the explorer
    assert next_token_distribution(fast, prefix).token_prob(ids[10]).prob == pytest.approx(
        scored.tokens[10].prob, abs=1e-12
    )


def test_a_class_at_once_gets_what_each_gets_alone(fast):
    prompts = [fast.tokenizer(f"Student {i} asks what a {topic} is")["input_ids"] for i, topic in enumerate("abcdef")]
    alone = []
    for ids in prompts:
        clear_memos()
        fast.llama.forget()
        alone.append(next_token_distribution(fast, ids).logits)
    clear_memos()
    fast.llama.forget()
    rounds, requests = fast.llama.stats.rounds, fast.llama.stats.requests
    got: dict[int, torch.Tensor] = {}
    run_together(
        [
            lambda i=i, ids=ids: got.__setitem__(i, next_token_distribution(fast, ids).logits)
            for i, ids in enumerate(prompts)
        ]
    )
    assert fast.llama.stats.rounds - rounds < fast.llama.stats.requests - requests  # some shared a pass
    for i, logits in enumerate(alone):
        assert torch.equal(got[i], logits)


def test_an_adapter_the_lens_and_attention_step_aside_to_torch(fast, lm, tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_LAB_DATA", str(tmp_path))
    job = saved_adapter_job(lm, "llama-step-aside", random_weights=True)
    adapter = resolve_adapter(job.path)
    view = fast.with_adapter(adapter)
    assert view.llama is None and view.key.engine == TORCH and view.runs_on == "torch · float32"
    assert view.key == lm.with_adapter(adapter).key  # the torch adapter view's numbers, not a llama.cpp guess
    ids = encode_prompt(fast, "The capital of France is").ids
    assert model_internals(fast, ids) is model_internals(lm, ids)  # the lens of a llama.cpp model is torch's

    at = AppTest.from_file(APP, default_timeout=180)
    at.session_state["model_engine"] = LLAMACPP
    at.run()
    assert any("Runs on **llama.cpp · Q4_1 GGUF**" in c.value for c in at.sidebar.caption)
    at.sidebar.selectbox(key="adapter").set_value("llama-step-aside").run()
    assert any(
        "Runs on **torch · float32** — llama.cpp cannot run a LoRA adapter" in c.value for c in at.sidebar.caption
    )
    at.switch_page("pages/inside.py").run()
    assert not at.exception
    assert any("This page runs on **torch · float32**, not llama.cpp" in c.value for c in at.caption)


def test_the_explorer_on_llama_cpp_shows_its_numbers(fast):
    at = AppTest.from_file(APP, default_timeout=180)
    at.session_state["model_engine"] = LLAMACPP
    at.run()
    at.switch_page("pages/explorer.py").run()
    at.text_area(key="ex_prompt").set_value("The capital of France is").run()
    assert not at.exception
    label, prob = bars(at, 0)[0]
    top = next_token_distribution(fast, encode_prompt(fast, "The capital of France is").ids).top(1)[0]
    assert (label, prob) == (top.display, pytest.approx(top.prob))


def test_a_model_llama_cpp_cannot_run_stays_on_torch():
    assert "GGUF files" in why_not_llamacpp("gpt2")
    assert model_key("gpt2", engine=LLAMACPP).engine == TORCH
    assert why_not_llamacpp("embedded", "cpu") is None


@pytest.mark.slow  # loads the bfloat16 model and times every engine (a few tokens each)
def test_the_benchmark_reports_each_engine_against_llama_cpp(fast, roomy_cache, capsys, monkeypatch):
    from core.cli import main

    monkeypatch.delenv("LLM_LAB_ENGINE")  # the app's own default: llama.cpp where it can run
    argv = ["bench", "--json", "--skip-cold", "--repeats", "1", "--new-tokens", "2", "--decode-tokens", "1", "3"]
    assert main([*argv, "--agreement-tokens", "1", "--batch-sizes"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["generate_tokens_per_s_ratio_llamacpp"] > 0
    assert result["llamacpp_tokens_per_s"] > 0
    options = {(o["engine"], o["dtype"]): o for o in result["decode_options"]}
    assert set(options) == {(TORCH, "float32"), (TORCH, "bfloat16"), (LLAMACPP, "float32")}
    assert [key for key, o in options.items() if o["default"]] == [(LLAMACPP, "float32")]
    assert result["generate_tokens_per_s_ratio_llamacpp"] == options[LLAMACPP, "float32"]["ratio_llamacpp"]
    agreement = {row["runs_on"]: row for row in result["agreement_with_llamacpp"]}
    assert agreement["llama.cpp · Q4_1 GGUF"]["max_abs_dp"] == 0.0


@pytest.mark.slow  # loads the bfloat16 model
def test_without_llama_cpp_the_benchmark_says_why(roomy_cache, monkeypatch):
    from core import models
    from core.bench import engines

    why = "llama-cpp-python is not installed (test)."
    monkeypatch.setattr(models, "llamacpp_missing", lambda: why)
    monkeypatch.setattr(engines, "llamacpp_missing", lambda: why)
    result = engines.compare_engines("Hello there, how are", repeats=1, short=1, long=2).as_json()
    assert result["llamacpp_tokens_per_s"] is None and result["llamacpp_note"] == why
    assert result["generate_tokens_per_s_ratio_llamacpp"] is None
    llama = next(o for o in result["decode_options"] if o["engine"] == LLAMACPP)
    assert llama["tokens_per_s"] is None and why in llama["note"]
