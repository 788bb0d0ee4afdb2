"""The one-pass GGUF conversion (core.gguf) writes the folder transformers' own GGUF loader writes."""

import json

import pytest
import torch
from safetensors import safe_open

from core.embedded import embedded_gguf_path
from core.gguf import NotReplayable, _config_dict


@pytest.mark.slow
def test_the_one_pass_conversion_equals_transformers_own_load(tmp_path, monkeypatch):
    from core import models
    from core.gguf import read_gguf

    gguf = embedded_gguf_path()
    read_gguf(gguf)  # the embedded model is covered: no fallback hides behind the comparison below
    monkeypatch.setenv("LLM_LAB_CACHE", str(tmp_path / "cache"))
    fast = models.convert_gguf(gguf)
    reference = tmp_path / "reference"
    reference.mkdir()
    models._read_gguf_with_transformers(gguf).save(reference)

    with safe_open(fast / "model.safetensors", "pt") as a, safe_open(reference / "model.safetensors", "pt") as b:
        names = sorted(b.keys())
        assert sorted(a.keys()) == names and len(names) == 272
        for name in names:
            x, y = a.get_tensor(name), b.get_tensor(name)
            assert x.dtype == y.dtype == torch.float32, name
            assert torch.equal(x, y), name
    files = sorted(p.name for p in reference.iterdir())
    assert sorted(p.name for p in fast.iterdir()) == files
    for name in files:
        if name.endswith(".json"):
            assert json.loads((fast / name).read_text()) == json.loads((reference / name).read_text()), name


def test_an_architecture_the_replay_does_not_cover_goes_to_transformers():
    metadata = {"general.architecture": "gemma3", "gemma3.context_length": 8192}
    with pytest.raises(NotReplayable):
        _config_dict(metadata, ("token_embd.weight",))
    with pytest.raises(NotReplayable):  # mistral ships as "llama": transformers renames it, the replay does not
        _config_dict({"general.architecture": "llama", "general.name": "mistral-7b"}, ())
