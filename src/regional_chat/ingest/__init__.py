"""Documents in: a reader for every corpus format, and upload staging.

One module per format: ``text`` (.txt, .md), ``jsonl``, ``pdf``, ``html``, ``docx``. Each but
``jsonl`` has ``read(rel, data) -> (Document, warnings)`` that raises ``documents.DocumentError``
when the file cannot be indexed; ``jsonl.read_lines`` streams a file's lines instead.
``documents.read_documents`` dispatches to them by suffix. Importing this
package is cheap: a reader's library (pypdf, trafilatura, python-docx) is
imported when its first file is read. ``ingest.upload`` checks files a user
sends with those same readers and copies them into the corpus.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from ..types import Document

# suffix -> "module" (its read) or "module:function"; .jsonl is streamed by jsonl.read_lines
READERS: dict[str, str] = {".txt": "text", ".md": "text:read_markdown", ".pdf": "pdf", ".html": "html", ".htm": "html", ".docx": "docx"}

Reader = Callable[[str, bytes], "tuple[Document, list[str]]"]


def _module(suffix: str):
    try:
        name = READERS[suffix.lower()].split(":")[0]
    except KeyError:
        raise ValueError(f"no reader for {suffix!r} files (readers: {', '.join(READERS)})") from None
    return importlib.import_module(f"{__name__}.{name}")


def reader(suffix: str) -> Reader:
    """The read function for files ending in ``suffix`` (".txt", ".md", ".pdf", ".html", ".htm", ".docx")."""
    function = READERS.get(suffix.lower(), "").partition(":")[2] or "read"
    return getattr(_module(suffix), function)


def max_bytes(suffix: str) -> int:
    """The largest file of this type that is read at all (checked before its bytes are loaded)."""
    return _module(suffix).MAX_BYTES
