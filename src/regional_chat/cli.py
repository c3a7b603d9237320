"""The command line: argument parsing only; the library does the work."""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

from .settings import Settings

DEFAULT_CORPUS = "corpus"
DEFAULT_INDEX = "index"


def _settings(args: argparse.Namespace) -> Settings:
    changes = {}
    for name in ("model", "dtype", "chunk_tokens", "chunk_overlap", "batch_size"):
        value = getattr(args, name, None)
        if value is not None:
            changes[name] = value
    return Settings(**changes)


def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=os.environ.get("REGIONAL_CHAT_MODEL"), help="'minilm' (default), a model folder, or hashing:<dim>")
    p.add_argument("--dtype", choices=("auto", "bfloat16", "float32"), help="model precision (default: auto)")


def _add_index_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--index", default=os.environ.get("REGIONAL_CHAT_INDEX", DEFAULT_INDEX), help="index folder (default: index)")


def cmd_build(args: argparse.Namespace) -> int:
    from .index import build_index

    report = build_index(
        args.corpus, args.index, _settings(args), full=args.full, progress=not args.quiet and sys.stderr.isatty() or args.progress, wait=args.wait
    )
    if args.json:
        print(json.dumps(asdict(report), indent=1))
    else:
        print(report.summary())
        for line in report.skipped:
            print(f"  skipped: {line}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .index import load_index

    index = load_index(args.index)
    info = index.info()
    if args.json:
        data = asdict(info)
        data["path"] = str(info.path)
        print(json.dumps(data, indent=1))
    else:
        print("\n".join(info.lines()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="regional-chat", description="Answers questions with verbatim quotes from the documents in corpus/.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("build", help="index the corpus (only new and changed documents are embedded)")
    p.add_argument("--corpus", default=os.environ.get("REGIONAL_CHAT_CORPUS", DEFAULT_CORPUS), help="folder or .jsonl/.txt/.md file (default: corpus)")
    _add_index_option(p)
    _add_model_options(p)
    p.add_argument("--chunk-tokens", type=int, dest="chunk_tokens", help="token budget of a chunk (default 200)")
    p.add_argument("--chunk-overlap", type=int, dest="chunk_overlap", help="sentences of overlap (default 1)")
    p.add_argument("--batch-size", type=int, dest="batch_size", help="texts per forward pass (default 64)")
    p.add_argument("--full", action="store_true", help="rebuild everything from scratch")
    p.add_argument("--wait", action="store_true", help="wait for a running build instead of refusing")
    p.add_argument("--progress", action="store_true", help="show the progress bar even when stderr is not a terminal")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("info", help="what the index holds")
    _add_index_option(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .documents import CorpusError
    from .embedding import EmbedderError
    from .index import IndexStateError

    try:
        return int(args.func(args) or 0)
    except (CorpusError, IndexStateError, EmbedderError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; the index is unchanged unless a build had finished.", file=sys.stderr)
        return 130
