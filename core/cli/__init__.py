"""``python -m core``: the same engine as the pages, from a terminal.

Every subcommand prints a readable table, or with ``--json`` one JSON object
whose shape scripts and checks rely on. Errors a person can fix are printed
as one sentence on stderr with exit status 2, never as a traceback. Each
module here registers the commands of one area.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from core.cli import bench, compare, explore, ladder, promptlab, room, train, tree
from core.cli.common import Handler, add_model_options, fail, print_table
from core.errors import LabError

COMMAND_MODULES = (explore, compare, promptlab, train, ladder, bench, tree, room)


def _quiet_transformers() -> None:
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description="LLM Lab's engine from the command line.")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(handler=handler)
        add_model_options(p)
        return p

    for module in COMMAND_MODULES:
        module.register(add)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _quiet_transformers()
    try:
        result = args.handler(args)
    except LabError as exc:
        return fail(str(exc))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        getattr(args, "printer", print_table)(result)
    return 0
