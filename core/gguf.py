"""A GGUF file turned into a float32 safetensors folder in one pass over the file.

transformers can load a GGUF itself (``from_pretrained(gguf_file=...)``), and
that is what LLM Lab did first: 17-24 s on two cores for the 135M embedded
model, almost none of it dequantizing. Profiled, its legacy path builds
``gguf.GGUFReader`` three times (the tokenizer's config, the model's config,
the weights), each time walking the 49k-token vocabulary and 49k merges
element by element; rebuilds gguf's tensor-name map once per submodule (~400
times); then builds the model twice and copies its state dict.

Here the file is read once: the metadata with transformers' own fast reader
(string arrays skipped), the config by replaying the legacy loader's renaming
on that metadata, the tokenizer through its fast GGUF reader, and the weights
as raw slices of the memory-mapped file, dequantized with gguf's numpy
kernels and passed through the legacy loader's tensor processors (the Q/K
un-permutation) under a name map computed once on a weightless model. The
result is the same folder, tensor for tensor and file for file
(``tests/test_convert.py``), in about a second.

The replay covers the architectures it was checked on (``FAST_ARCHITECTURES``);
any other GGUF goes through transformers' own loader, slower but the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

# Architectures whose config and tensors the replay reproduces exactly (checked: SmolLM2, a llama).
# The legacy loader special-cases others (mistral names, t5, gemma, qwen MoE, gpt-oss, lfm2, …).
FAST_ARCHITECTURES = frozenset({"llama"})
_F32, _F16 = 0, 1  # ggml type ids of tensors stored as plain floats


class NotReplayable(Exception):
    """This GGUF needs transformers' own loader (an architecture or a config the replay does not cover)."""


def _config_dict(metadata: dict[str, Any], tensor_names: tuple[str, ...]) -> dict[str, Any]:
    """The config dict transformers' ``load_gguf_checkpoint`` builds, for the covered architectures."""
    from transformers.integrations import GGUF_CONFIG_DEFAULTS_MAPPING, GGUF_CONFIG_MAPPING

    architecture = metadata["general.architecture"]
    if architecture not in FAST_ARCHITECTURES or "mistral" in str(metadata.get("general.name", "")):
        raise NotReplayable(architecture)
    config: dict[str, Any] = {"tie_word_embeddings": all(n != "output.weight" for n in tensor_names)}
    for key, value in (GGUF_CONFIG_DEFAULTS_MAPPING.get(architecture) or {}).items():
        config.setdefault(key, value)
    for gguf_key, value in metadata.items():
        prefix, _, config_key = gguf_key.partition(".")
        renames = GGUF_CONFIG_MAPPING.get(prefix)
        if not renames or config_key not in renames:
            continue
        new_key = renames[config_key]
        if new_key == -1 or new_key is None:
            continue
        if isinstance(value, list) and len(value) == 1:  # the legacy reader unwraps one-element arrays
            value = value[0]
        config[new_key] = value
    if "vocab_size" not in config:  # the legacy loader counts the tokenizer's tokens: not replayed
        raise NotReplayable("vocab_size")
    return config


def _key_map(model: Any, processor: Any, architecture: str) -> dict[str, str]:
    """``{gguf tensor name: parameter name}``, from gguf's name map built once for the whole model."""
    from gguf import MODEL_ARCH_NAMES, get_tensor_name_map

    arch = next(k for k, v in MODEL_ARCH_NAMES.items() if v == architecture)
    name_map = get_tensor_name_map(arch, model.config.num_hidden_layers)
    mapping = {}
    for hf_name in model.state_dict():
        base, _, suffix = processor.preprocess_name(hf_name).rpartition(".")
        gguf_name = name_map.get_name(base)
        if gguf_name is not None:
            mapping[f"{gguf_name}.{suffix}"] = hf_name
    return mapping


def _dequantized(raw: np.ndarray, ggml_type: int, shape: tuple[int, ...]) -> np.ndarray:
    """One tensor's values as float32, from its bytes in the file."""
    from gguf import GGMLQuantizationType
    from gguf.quants import dequantize

    if ggml_type == _F32:
        return np.frombuffer(raw, dtype=np.float32).reshape(shape).copy()  # a writable copy, not the map
    if ggml_type == _F16:
        return np.frombuffer(raw, dtype=np.float16).astype(np.float32).reshape(shape)
    rows = int(np.prod(shape[:-1]))
    return dequantize(np.asarray(raw).reshape(rows, -1), GGMLQuantizationType(ggml_type)).reshape(shape)


@dataclass
class ConvertedModel:
    """A GGUF model read into memory: float32 tensors under their transformers names, its config and tokenizer."""

    tensors: dict[str, torch.Tensor]
    config: Any
    tokenizer: Any

    def save(self, folder: Path) -> None:
        """Write the model folder ``from_pretrained`` loads: weights, config, generation config, tokenizer."""
        from safetensors.torch import save_file
        from transformers import GenerationConfig

        save_file(self.tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
        self.config.save_pretrained(folder)
        GenerationConfig.from_model_config(self.config).save_pretrained(folder)
        self.tokenizer.save_pretrained(folder)


def read_gguf(gguf: Path) -> ConvertedModel:
    """Read and dequantize ``gguf`` in one pass.

    Raises ``NotReplayable`` for a GGUF the replay does not cover (nothing is
    half-done), and whatever the readers raise for a damaged file.
    """
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.integrations.gguf.reader import GgufHeader, read_gguf_metadata
    from transformers.modeling_gguf_pytorch_utils import TENSOR_PROCESSORS, TensorProcessor
    from transformers.tokenization_utils_tokenizers import TokenizersBackend

    metadata, tensor_names = read_gguf_metadata(str(gguf))
    config_dict = _config_dict(metadata, tensor_names)
    header = GgufHeader.from_file(str(gguf))
    config = AutoConfig.for_model(**config_dict)
    config.dtype = torch.float32
    with torch.device("meta"):  # the parameter names and shapes, no memory
        skeleton = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    config.architectures = [type(skeleton).__name__]
    architecture = metadata["general.architecture"]
    processor = TENSOR_PROCESSORS.get(architecture, TensorProcessor)(config=config_dict)
    key_map = _key_map(skeleton, processor, architecture)

    blob = np.memmap(str(gguf), mode="r", dtype=np.uint8)
    tensors: dict[str, torch.Tensor] = {}
    for info in header.tensors:
        start = header.data_start + info.offset
        values = _dequantized(blob[start : start + info.nbytes], info.ggml_type, info.shape)
        result = processor.process(weights=values, name=info.name, tensor_key_mapping=key_map, parsed_parameters={})
        if result.name in key_map:
            tensors[key_map[result.name]] = torch.from_numpy(np.ascontiguousarray(result.weights, dtype=np.float32))
    expected = set(skeleton.state_dict()) - ({"lm_head.weight"} if config.tie_word_embeddings else set())
    if expected - set(tensors):
        raise NotReplayable(f"missing tensors, e.g. {sorted(expected - set(tensors))[0]}")
    tokenizer = TokenizersBackend.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    return ConvertedModel(tensors, config, tokenizer)
