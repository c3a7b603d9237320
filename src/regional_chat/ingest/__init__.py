"""Documents in: readers for the corpus formats that are not plain text (PDF, HTML, DOCX), and upload staging.

One module per format, each with ``read(rel, data) -> (Document, warnings)``
that raises ``documents.DocumentError`` when the file cannot be indexed.
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

READERS: dict[str, str] = {".pdf": "pdf", ".html": "html", ".htm": "html", ".docx": "docx"}  # suffix -> module

Reader = Callable[[str, bytes], "tuple[Document, list[str]]"]


def _module(suffix: str):
    try:
        name = READERS[suffix.lower()]
    except KeyError:
        raise ValueError(f"no reader for {suffix!r} files (readers: {', '.join(READERS)})") from None
    return importlib.import_module(f"{__name__}.{name}")


def reader(suffix: str) -> Reader:
    """The ``read`` function for files ending in ``suffix`` (".pdf", ".html", ".htm", ".docx")."""
    return _module(suffix).read


def max_bytes(suffix: str) -> int:
    """The largest file of this type that is read at all (checked before its bytes are loaded)."""
    return _module(suffix).MAX_BYTES
