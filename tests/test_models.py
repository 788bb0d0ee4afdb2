"""Loading: the embedded GGUF, the on-disk cache, local folders, and clear failures."""

import pytest
import torch

from core.errors import InvalidInput, ModelLoadError
from core.models import load_model
from core.tokens import encode_prompt


def test_loaded_models_are_shared(lm):
    assert load_model() is lm
    assert lm.display_name == "SmolLM2-135M-Instruct"
    assert 130e6 < lm.n_parameters < 140e6
    assert lm.context_length == 8192


@pytest.mark.slow
def test_the_on_disk_cache_gives_the_same_logits_as_the_gguf(lm):
    from transformers import AutoModelForCausalLM

    from core.embedded import embedded_gguf_path

    gguf = embedded_gguf_path()
    direct = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name).eval()
    ids = encode_prompt(lm, "The capital of France is").ids
    with torch.inference_mode():
        expected = direct(input_ids=torch.tensor([ids])).logits[0].float()
    cached, _ = lm.forward(ids)
    assert torch.allclose(cached, expected, atol=1e-4)


def test_a_local_folder_goes_through_the_same_path(lm, tmp_path):
    """The converted folder, loaded by path, is just another local model."""
    folder = tmp_path / "smol"
    folder.symlink_to(lm.source, target_is_directory=True)
    other = load_model(str(folder))
    assert other is not lm and other.display_name == "smol"
    ids = encode_prompt(lm, "Hello").ids
    a, _ = lm.forward(ids, last_only=True)
    b, _ = other.forward(ids, last_only=True)
    assert torch.equal(a, b)


def test_another_architecture_loads_from_a_folder(tmp_path, lm):
    from transformers import GPT2Config, GPT2LMHeadModel

    folder = tmp_path / "tiny-gpt2"
    GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=lm.vocab_size)).save_pretrained(folder)
    lm.tokenizer.save_pretrained(folder)
    tiny = load_model(str(folder))
    from core.distributions import next_token_distribution

    dist = next_token_distribution(tiny, encode_prompt(tiny, "Hello there").ids)
    assert abs(float(dist.probs.sum()) - 1) < 1e-5
    assert tiny.n_parameters < 2e6


def test_a_model_that_is_not_a_causal_lm_is_refused_by_name(tmp_path, lm):
    from transformers import BertConfig, BertModel

    folder = tmp_path / "encoder-only"
    BertModel(
        BertConfig(num_hidden_layers=1, hidden_size=32, num_attention_heads=2, intermediate_size=64)
    ).save_pretrained(folder)
    lm.tokenizer.save_pretrained(folder)
    with pytest.raises(ModelLoadError, match="not a causal language model") as err:
        load_model(str(folder))
    assert str(folder) in str(err.value)


def test_an_unknown_model_id_is_refused_by_name():
    with pytest.raises(ModelLoadError, match="no-such-org/no-such-model"):
        load_model("no-such-org/no-such-model")


@pytest.mark.parametrize(("kwargs", "message"), [({"name": " "}, "empty"), ({"dtype": "int3"}, "dtype")])
def test_bad_load_settings(kwargs, message):
    with pytest.raises(InvalidInput, match=message):
        load_model(**kwargs)


def test_bfloat16_is_a_choice():
    lm16 = load_model(dtype="bfloat16")
    assert lm16.model.dtype == torch.bfloat16
    from core.distributions import next_token_distribution

    dist = next_token_distribution(lm16, encode_prompt(lm16, "The capital of France is").ids)
    assert dist.top(1)[0].token == " Paris"
    assert dist.logits.dtype == torch.float32


def test_an_unreachable_hub_is_reported_without_waiting_for_retries(monkeypatch):
    import socket

    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    with pytest.raises(ModelLoadError, match="Hugging Face Hub cannot be reached"):
        load_model("someone/not-downloaded-model")
