"""Inside the model: what each layer would predict (the logit lens), and where each token looks.

A transformer keeps one vector per position, the residual stream, and every
layer adds to it. The *logit lens* (nostalgebraist, 2020) reads that vector
after each layer as if it were the last: through the model's final
normalisation and its output head, into a distribution over the next token.
Early layers mostly echo the input; the answer (" Paris" after "The capital
of France is") surfaces only in late layers. The last reading *is* the
model's prediction.

One forward pass gives both views: ``output_hidden_states`` for the lens and
``output_attentions`` for the attention weights (``core.attention``). LLM Lab
adds no hook (transformers installs its own output-capture hooks once, idle
unless a caller asks for outputs), and the only setting touched, the
attention implementation, is restored inside the model's lock before anyone
else can run it. Results are memoised per (model, token ids), like next-token
distributions; log-probabilities are float64, from float32 logits.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import torch

from core.attention import AttentionMaps, attention_maps, eager_attention, transformers_model
from core.distributions import TokenProb
from core.errors import InvalidInput
from core.models import LoadedModel
from core.result_cache import ResultCache
from core.tokens import check_fits, display_token, encode_prompt, token_text

TOP_K = 5  # alternatives kept per cell: the page's hover and the CLI show them
MAX_INSIDE_TOKENS = 128  # every position is read at every layer: the cost and the charts' width grow with it
FINAL_NORM_NAMES = ("norm", "ln_f", "final_layernorm", "final_layer_norm", "final_norm")
ROWS_PER_HEAD_CALL = 256  # several layers go through the head at once, so its weights are read once for all

INSIDE_CACHE: ResultCache[ModelInternals] = ResultCache(capacity=8)
COMPARISON_CACHE: ResultCache[InsideComparison] = ResultCache(capacity=4)


@dataclass(eq=False)
class LogitLens:
    """What the model would predict after each layer, at every position of a prompt.

    Reading ``l`` is taken after ``l`` layers: reading 0 is the token
    embeddings (before any layer), reading ``n_layers`` the model's real
    output. Shapes: ``top_ids`` and ``top_logprobs`` are
    ``[n_layers + 1, n_positions, TOP_K]`` (most likely first; float64
    log-probabilities); ``last_logprobs`` is ``[n_layers + 1, vocab]``
    (float32): every token's log-probability at the last position, so any
    token's rise through the layers can be followed there.
    """

    model: str
    token_ids: tuple[int, ...]
    top_ids: torch.Tensor
    top_logprobs: torch.Tensor
    last_logprobs: torch.Tensor
    tokenizer: Any = field(repr=False)

    @property
    def n_layers(self) -> int:
        return int(self.top_ids.shape[0]) - 1

    @property
    def n_positions(self) -> int:
        return int(self.top_ids.shape[1])

    def decode(self, token_id: int) -> str:
        return token_text(self.tokenizer, token_id)

    @cached_property
    def input_tokens(self) -> list[str]:
        """The prompt's tokens as text, one per position."""
        return [self.decode(i) for i in self.token_ids]

    @cached_property
    def top1_tokens(self) -> list[list[str]]:
        """``[n_layers + 1][n_positions]``: each reading's most likely next token, as text."""
        return [[self.decode(int(i)) for i in row] for row in self.top_ids[:, :, 0]]

    @property
    def top1_probs(self) -> torch.Tensor:
        """``[n_layers + 1, n_positions]`` float64: the probability of each reading's most likely token."""
        return self.top_logprobs[:, :, 0].exp()

    def top(self, layer: int, position: int) -> list[TokenProb]:
        """The ``TOP_K`` most likely next tokens read after ``layer`` layers at ``position``."""
        return [
            TokenProb(int(i), self.decode(int(i)), math.exp(float(lp)), float(lp))
            for i, lp in zip(self.top_ids[layer, position], self.top_logprobs[layer, position], strict=True)
        ]

    @property
    def final_top_id(self) -> int:
        """The model's own most likely next token after the whole prompt."""
        return int(self.top_ids[-1, -1, 0])

    def prob_by_layer(self, token_id: int) -> list[float]:
        """``token_id``'s probability at the last position after each layer (embeddings first)."""
        return self.last_logprobs[:, token_id].double().exp().tolist()

    def candidates_to_track(self, n_final: int = 10) -> list[int]:
        """Tokens worth following: the model's final top ``n_final``, then any layer's favourite at the end."""
        final = torch.topk(self.last_logprobs[-1], n_final).indices.tolist()
        favourites = self.top_ids[:, -1, 0].tolist()
        return list(dict.fromkeys(final + favourites[::-1]))


@dataclass(eq=False)
class ModelInternals:
    """One prompt seen from inside one model: its logit lens and, where it gives them, its attention weights."""

    lens: LogitLens
    attention: AttentionMaps | None
    attention_missing: str = ""  # why ``attention`` is None

    def require_attention(self) -> AttentionMaps:
        if self.attention is None:
            raise InvalidInput(self.attention_missing)
        return self.attention


@dataclass(eq=False)
class InsideComparison:
    """The same prompt through a base model and a fine-tuned version of it.

    ``total_variation`` is ``[n_layers + 1, n_positions]`` (float64): for each
    cell of the lens, half the summed absolute difference between the two
    models' next-token distributions there. It is the largest difference in
    probability the two give to any set of tokens: 0 where they agree, 1 where
    they share no probability mass.
    """

    base: ModelInternals
    tuned: ModelInternals
    total_variation: torch.Tensor

    def attention_difference(self, layer: int, head: int | None = None) -> torch.Tensor:
        """``[n_positions, n_positions]``: the tuned model's attention weights minus the base's."""
        tuned = self.tuned.require_attention().pattern(layer, head)
        return tuned - self.base.require_attention().pattern(layer, head)


@dataclass
class _Pass:
    """What one forward pass hands back, before the lens reads it."""

    hidden: tuple[torch.Tensor, ...]  # [n_positions, hidden] per reading but the last, embeddings first
    logits: torch.Tensor  # [n_positions, vocab]: the model's own output, the last reading
    attention: AttentionMaps | None
    attention_missing: str


def check_inside_length(lm: LoadedModel, n_tokens: int) -> None:
    check_fits(lm, n_tokens)
    if n_tokens > MAX_INSIDE_TOKENS:
        raise InvalidInput(
            f"The prompt has {n_tokens:,} tokens; the inside view reads at most {MAX_INSIDE_TOKENS} "
            "(every layer at every position). Shorten it."
        )


def _forward(lm: LoadedModel, ids: Sequence[int]) -> _Pass:
    input_ids = torch.tensor([list(ids)], dtype=torch.long, device=lm.model.device)
    with lm.using() as model, torch.inference_mode():
        lm.forward_calls += 1
        with eager_attention(model) as eager:
            out = model(input_ids=input_ids, output_hidden_states=True, output_attentions=eager, use_cache=False)
        implementation = transformers_model(model).config._attn_implementation
    if not out.hidden_states:
        raise InvalidInput(f"{lm.display_name} does not return its hidden states, so its layers cannot be read.")
    missing = ""
    if not eager:
        missing = (
            f"{lm.display_name} cannot show its attention weights: its {implementation} attention never forms "
            "them, and its code cannot switch to eager attention."
        )
    elif not out.attentions:
        missing = f"{lm.display_name} does not return its attention weights, so they cannot be shown."
    # transformers hands back the last hidden state already through the final norm; the logits stand for it
    return _Pass(
        hidden=tuple(h[0] for h in out.hidden_states[:-1]),
        logits=out.logits[0].float(),
        attention=attention_maps(out.attentions) if not missing else None,
        attention_missing=missing,
    )


def _final_norm(model: Any) -> Any:
    """The normalisation applied before the output head: the model's last module of a known name outside its layers."""
    for path, module in model.named_modules():
        parts = path.split(".")
        if parts[-1] in FINAL_NORM_NAMES and not any(p.isdigit() for p in parts):
            return module
    raise InvalidInput(
        f"The logit lens needs the final normalisation layer, and a {type(model).__name__} has none LLM Lab knows "
        f"(it looks for {', '.join(FINAL_NORM_NAMES)})."
    )


def _read_out(model: Any, hidden: torch.Tensor) -> torch.Tensor:
    """Hidden states ``[rows, hidden]`` through the final norm and the output head: logits ``[rows, vocab]``."""
    inner = transformers_model(model)
    logits = inner.get_output_embeddings()(_final_norm(inner)(hidden)).float()
    cap = getattr(inner.config, "final_logit_softcapping", None)  # Gemma 2's head squashes its logits: so must we
    return torch.tanh(logits / cap) * cap if cap else logits


def _readings(lm: LoadedModel, run: _Pass) -> Iterator[torch.Tensor]:
    """Each reading's ``[n_positions, vocab]`` float64 log-probabilities, embeddings first, the model's output last."""
    n_positions = run.hidden[0].shape[0]
    per_call = max(1, ROWS_PER_HEAD_CALL // n_positions)
    for start in range(0, len(run.hidden), per_call):
        with lm.using() as model, torch.inference_mode():
            logits = _read_out(model, torch.cat(run.hidden[start : start + per_call]))
        for layer_logits in logits.split(n_positions):
            yield torch.log_softmax(layer_logits.double(), dim=-1)
    yield torch.log_softmax(run.logits.double(), dim=-1)


@dataclass
class _Reading:
    """What the lens keeps of one reading: the top tokens everywhere, every token at the last position."""

    top_ids: torch.Tensor  # [n_positions, TOP_K]
    top_logprobs: torch.Tensor  # [n_positions, TOP_K] float64
    last_logprobs: torch.Tensor  # [vocab] float32

    @classmethod
    def of(cls, logprobs: torch.Tensor) -> _Reading:
        top = torch.topk(logprobs, TOP_K, dim=-1)
        return cls(top.indices.cpu(), top.values.cpu(), logprobs[-1].float().cpu())


def _lens(lm: LoadedModel, ids: Sequence[int], readings: Sequence[_Reading]) -> LogitLens:
    return LogitLens(
        model=lm.display_name,
        token_ids=tuple(ids),
        top_ids=torch.stack([r.top_ids for r in readings]),
        top_logprobs=torch.stack([r.top_logprobs for r in readings]),
        last_logprobs=torch.stack([r.last_logprobs for r in readings]),
        tokenizer=lm.tokenizer,
    )


def model_internals(lm: LoadedModel, ids: Sequence[int]) -> ModelInternals:
    """The logit lens and attention weights of ``lm`` on ``ids``, memoised per (model, ids).

    They read the hidden states and attention of the torch model: a llama.cpp
    view steps aside to torch (``LoadedModel.on_torch``), which has them.
    """
    lm = lm.on_torch()
    check_inside_length(lm, len(ids))

    def compute() -> ModelInternals:
        run = _forward(lm, ids)
        lens = _lens(lm, ids, [_Reading.of(logprobs) for logprobs in _readings(lm, run)])
        return ModelInternals(lens, run.attention, run.attention_missing)

    return INSIDE_CACHE.get_or_compute((lm.key, tuple(ids)), compute)


def compare_models(base: LoadedModel, tuned: LoadedModel, ids: Sequence[int]) -> InsideComparison:
    """``base`` and ``tuned`` (e.g. ``base`` with a LoRA adapter) on the same ``ids``, cell by cell; memoised.

    Both lenses are read in step, one layer at a time, so the distance between
    the full distributions is computed without keeping either; each side is
    also stored as that model's ``model_internals``. Both run on torch, as ``model_internals``.
    """
    base, tuned = base.on_torch(), tuned.on_torch()
    check_inside_length(base, len(ids))

    def compute() -> InsideComparison:
        runs = (_forward(base, ids), _forward(tuned, ids))
        if len(runs[0].hidden) != len(runs[1].hidden) or runs[0].logits.shape != runs[1].logits.shape:
            raise InvalidInput(
                f"{base.display_name} and {tuned.display_name} differ in shape, so their layers cannot be "
                "compared: compare a model with an adapter trained on it."
            )
        kept: tuple[list[_Reading], list[_Reading]] = ([], [])
        variation = []
        for base_logprobs, tuned_logprobs in zip(_readings(base, runs[0]), _readings(tuned, runs[1]), strict=True):
            variation.append(0.5 * (tuned_logprobs.exp() - base_logprobs.exp()).abs().sum(dim=-1).cpu())
            kept[0].append(_Reading.of(base_logprobs))
            kept[1].append(_Reading.of(tuned_logprobs))
        sides = []
        for lm, run, readings in zip((base, tuned), runs, kept, strict=True):
            internals = ModelInternals(_lens(lm, ids, readings), run.attention, run.attention_missing)
            INSIDE_CACHE.put((lm.key, tuple(ids)), internals)
            sides.append(internals)
        return InsideComparison(sides[0], sides[1], torch.stack(variation))

    return COMPARISON_CACHE.get_or_compute((base.key, tuned.key, tuple(ids)), compute)


def single_token_id(lm: LoadedModel, text: str) -> int:
    """The id of ``text`` if the model reads it as exactly one token (``" Paris"``, with its space)."""
    if not text:
        raise InvalidInput("Type the token to follow, such as ' Paris' with its leading space.")
    ids = lm.tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(ids) != 1:
        pieces = " + ".join(display_token(token_text(lm.tokenizer, i)) for i in ids)
        raise InvalidInput(
            f"{display_token(text)} is {pieces} for {lm.display_name}: give a single token to follow, "
            "such as ' Paris' with its leading space."
        )
    return int(ids[0])


def reading_label(layer: int) -> str:
    """How pages and the CLI name a reading: 'embeddings' before the first layer, else 'layer l'."""
    return "embeddings" if layer == 0 else f"layer {layer}"


def _token_row(t: TokenProb) -> dict[str, Any]:
    return {"token": t.token, "id": t.id, "prob": t.prob, "logprob": t.logprob}


def lens_report(
    lm: LoadedModel,
    prompt: str,
    chat: bool = False,
    track: str | None = None,
    attention_layer: int | None = None,
    head: int | None = None,
) -> dict[str, Any]:
    """What ``python -m core lens`` prints: every reading's top tokens at every position, a token
    followed through the layers (default: the model's answer) and, if asked, one layer's attention."""
    if head is not None and attention_layer is None:
        raise InvalidInput("A head belongs to a layer: give --attention-layer too.")
    prompt_tokens = encode_prompt(lm, prompt, chat=chat)
    inside = model_internals(lm, prompt_tokens.ids)
    lens = inside.lens
    tracked = lens.final_top_id if track is None else single_token_id(lm, track)
    report: dict[str, Any] = {
        "model": lm.display_name,
        "runs_on": lm.on_torch().runs_on,
        "prompt": prompt_tokens.text,
        "input_tokens": [{"token": t.text, "id": t.id} for t in prompt_tokens.tokens],
        "n_layers": lens.n_layers,
        "readings": [
            {
                "layer": layer,
                "label": reading_label(layer),
                "positions": [[_token_row(t) for t in lens.top(layer, p)] for p in range(lens.n_positions)],
            }
            for layer in range(lens.n_layers + 1)
        ],
        "tracked": {"token": lens.decode(tracked), "id": tracked, "prob_by_layer": lens.prob_by_layer(tracked)},
    }
    if attention_layer is not None:
        weights = inside.require_attention().pattern(attention_layer, head)
        report["attention"] = {"layer": attention_layer, "head": head, "weights": weights.tolist()}
    return report


def lens_table(report: dict[str, Any], width: int = 13) -> str:
    """``lens_report`` as text: layers down (the output on top), positions across, each cell 'token prob'."""
    inputs = [display_token(t["token"])[: width - 1] for t in report["input_tokens"]]
    lines = [
        f"{report['model']}: the most likely next token after each layer, at each position of the prompt",
        "",
        f"{'':>11} " + "".join(f"{t:<{width}}" for t in inputs),
    ]
    for reading in reversed(report["readings"]):
        cells = (f"{display_token(top[0]['token'])[: width - 6]} {top[0]['prob']:.0%}" for top in reading["positions"])
        lines.append(f"{reading['label']:>11} " + "".join(f"{c:<{width}}" for c in cells))
    tracked = report["tracked"]
    lines += ["", f"{display_token(tracked['token'])} at the last position, after each layer:"]
    probs = [f"{'emb' if n == 0 else n}: {p:.1%}" for n, p in enumerate(tracked["prob_by_layer"])]
    lines += ["  " + "  ".join(probs[i : i + 8]) for i in range(0, len(probs), 8)]
    if "attention" in report:
        attention = report["attention"]
        which = "the mean of all heads" if attention["head"] is None else f"head {attention['head']}"
        lines += ["", f"Attention in layer {attention['layer']}, {which} (row: token reading; column: token read)"]
        lines.append(f"{'':>{width}}" + "".join(f"{t[:7]:>8}" for t in inputs))
        for i, (token, row) in enumerate(zip(inputs, attention["weights"], strict=True)):
            # a causal model never reads ahead: the cells after the diagonal are dots, not 0 %
            lines.append(
                f"{token:>{width}}" + "".join(f"{w:>8.0%}" if j <= i else f"{'·':>8}" for j, w in enumerate(row))
            )
    return "\n".join(lines)
