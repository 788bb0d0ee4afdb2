"""What every ``python -m core`` command shares: the model options, loading, rows and printing."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from core.embedded import EMBEDDED_MODEL
from core.errors import InvalidInput
from core.models import DEFAULT_DTYPE, DTYPES, ENGINES, LLAMACPP, LoadedModel

if TYPE_CHECKING:
    from core.backends.base import Backend, BackendStep

Handler = Callable[[argparse.Namespace], dict[str, Any]]
Adder = Callable[[str, Handler, str], argparse.ArgumentParser]


def add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=EMBEDDED_MODEL, help="'embedded' (default), a .gguf file, a HF id or folder")
    p.add_argument("--dtype", default=DEFAULT_DTYPE, choices=list(DTYPES))
    p.add_argument("--device", default="auto", help="auto (CUDA if present), cpu or cuda")
    p.add_argument(
        "--engine",
        choices=list(ENGINES),
        default=None,
        help="llamacpp: llama.cpp on the GGUF itself (faster; no adapters, lens or attention: those run on torch); "
        "torch: the transformers model. Default: LLM_LAB_ENGINE, else llamacpp where it can run",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")


def add_backend_options(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group(
        "API backend", "Any OpenAI-compatible server. The API key is read from OPENAI_API_KEY only."
    )
    group.add_argument("--backend", choices=["local", "openai"], default="local", help="where the model runs")
    group.add_argument(
        "--base-url", default=None, help="the server's API root, e.g. http://127.0.0.1:8080/v1 (default: OpenAI's)"
    )
    group.add_argument("--timeout", type=float, default=None, help="seconds to wait for each answer (default 30)")


def add_adapter_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--adapter", default=None, help="a LoRA adapter: its folder, its job folder or its saved name")


def model(args: argparse.Namespace) -> LoadedModel:
    """The model the options name, with ``--adapter`` switched on where the command has that option.

    An explicit ``--engine llamacpp`` that cannot serve (not a GGUF, an
    adapter on) says on stderr why the answer comes from torch instead.
    """
    from core.models import default_engine, load_model, why_not_llamacpp

    engine = args.engine or default_engine()
    lm = load_model(args.model, args.dtype, args.device, engine=engine)
    if isinstance(getattr(args, "adapter", None), str):  # compare's --adapter is a list: its own columns
        from core.finetune.adapters import resolve_adapter

        lm = lm.with_adapter(resolve_adapter(args.adapter))
    if args.engine == LLAMACPP and lm.llama is None:
        why = why_not_llamacpp(args.model, args.device) or "llama.cpp cannot run a LoRA adapter."
        print(f"note: {why} This runs on {lm.runs_on}.", file=sys.stderr)
    return lm


def answered_by(source: Backend) -> dict[str, str]:
    """Where a command's numbers come from, as its JSON says it: the server's ``base_url``, or the local engine."""
    base_url = getattr(source, "base_url", None)
    return {"base_url": base_url} if base_url else {"runs_on": source.lm.runs_on}


def backend(args: argparse.Namespace) -> Backend:
    """Where the answers come from: the local model, or the server ``--base-url`` names."""
    if getattr(args, "backend", "local") == "local":
        from core.backends.local import LocalBackend

        return LocalBackend(model(args))
    from core.backends.openai_api import DEFAULT_TIMEOUT_S, OpenAIBackend

    if args.model == EMBEDDED_MODEL:
        raise InvalidInput("With --backend openai, --model must name a model on the server (e.g. gpt-4o-mini).")
    # The key comes only from OPENAI_API_KEY, never a flag that `ps` would show. It is the key of whoever runs
    # the command, for the server they name: given as their own, not as the shared app's key, which goes
    # only to the base URL the app was configured with.
    return OpenAIBackend(
        args.model,
        base_url=args.base_url,
        api_key=os.environ.get("OPENAI_API_KEY"),
        timeout=args.timeout or DEFAULT_TIMEOUT_S,
    )


def token_row(token: str, token_id: int | None, prob: float | None, logprob: float | None) -> dict[str, Any]:
    return {"token": token, "id": token_id, "prob": prob, "logprob": logprob}


def stream(steps: Iterable[BackendStep], echo: bool) -> tuple[list[BackendStep], float]:
    """Collect generated steps, printing each token as it comes when ``echo``; also the seconds it took."""
    collected = []
    started = time.perf_counter()
    for step in steps:
        collected.append(step)
        if echo:
            print(step.chosen.token, end="", flush=True)
    if echo:
        print()
    return collected, time.perf_counter() - started


def print_table(result: dict[str, Any]) -> None:
    """A result as ``key: value`` lines, then its token rows as a table (columns those the rows have)."""
    from core.tokens import display_token

    for key, value in result.items():
        if key in ("tokens", "prompt", "text"):
            continue
        if isinstance(value, float):
            value = f"{value:.4f}"
        print(f"{key:>24}: {value}")
    rows = result.get("tokens")
    if not rows:
        return
    print()
    columns = [c for c in ("id", "prob", "logprob", "rank", "special") if c in rows[0]]
    widths = {"id": 7, "prob": 9, "logprob": 9, "rank": 6, "special": 8}
    header = f"{'#':>4}  {'token':<20}" + "".join(f" {c:>{widths[c]}}" for c in columns)
    print(header)
    print("-" * len(header))
    for n, row in enumerate(rows):
        cells = {
            "id": "—" if row.get("id") is None else str(row["id"]),
            "prob": "—" if row.get("prob") is None else f"{row['prob']:.2%}",
            "logprob": "—" if row.get("logprob") is None else f"{row['logprob']:.3f}",
            "rank": "—" if row.get("rank") is None else str(row["rank"]),
            "special": "yes" if row.get("special") else "",
        }
        line = f"{n:>4}  {display_token(row['token'])[:20]:<20}" + "".join(f" {cells[c]:>{widths[c]}}" for c in columns)
        print(line)


def fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2
