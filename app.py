"""Serve the chat at http://127.0.0.1:7860: flags and environment in, regional_chat.web does the rest.

    python app.py [--host 127.0.0.1] [--port 7860] [--corpus corpus] [--index index] [--read-only]

The index is built or brought up to date from the corpus first (only new and
changed documents are embedded). A login for the page comes from
REGIONAL_CHAT_AUTH=user:password (not a flag: flags show up in `ps`).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    p = argparse.ArgumentParser(description="Serve the regional-chat web chat.")
    p.add_argument("--host", default=env("REGIONAL_CHAT_HOST", "127.0.0.1"), help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=int(env("REGIONAL_CHAT_PORT", "7860")), help="port (default 7860)")
    p.add_argument("--corpus", default=env("REGIONAL_CHAT_CORPUS", "corpus"), help="documents folder (default corpus)")
    p.add_argument("--index", default=env("REGIONAL_CHAT_INDEX", "index"), help="index folder (default index)")
    p.add_argument("--model", default=env("REGIONAL_CHAT_MODEL"), help="'minilm' (default), a model folder, or hashing:<dim>")
    p.add_argument("--read-only", action="store_true", default=env("REGIONAL_CHAT_READ_ONLY", "") not in ("", "0", "false"),
                   help="no panel to add documents")
    p.add_argument("--concurrency", type=int, default=int(env("REGIONAL_CHAT_CONCURRENCY", "4")), help="questions answered at once (default 4)")
    p.add_argument("--max-upload-mb", type=float, default=10.0, help="size limit of an added file (default 10)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from regional_chat.documents import CorpusError
    from regional_chat.embedding import EmbedderError
    from regional_chat.index import IndexStateError
    from regional_chat.settings import Settings
    from regional_chat import web

    try:
        web.serve(
            args.corpus, args.index, Settings(**({"model": args.model} if args.model else {})),
            host=args.host, port=args.port, read_only=args.read_only, auth=web.parse_auth(os.environ.get("REGIONAL_CHAT_AUTH")),
            concurrency=args.concurrency, max_upload_mb=args.max_upload_mb,
        )
    except (CorpusError, IndexStateError, EmbedderError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
