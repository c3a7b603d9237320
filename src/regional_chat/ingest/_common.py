"""What the format readers share: text clean-up, the Document they return, pypdf's log kept quiet."""

from __future__ import annotations

import logging
import re
import threading
from contextlib import contextmanager
from typing import Iterator, Mapping

from ..documents import DocumentError, _clip_title, _first_line, sha256, too_large
from ..types import Document

# C0 controls other than tab and newline (and DEL): never quoted, never shown. Form feeds
# and NULs come out of PDF text layers; a NUL that reached the index would be quoted.
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def clean(text: str) -> str:
    """Text as the index keeps it: newlines for line ends, no control characters, no trailing spaces."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROLS.sub("", text)
    return "\n".join(line.rstrip() for line in text.split("\n")).strip()


def check_size(rel: str, data: bytes, limit: int) -> None:
    if len(data) > limit:
        raise too_large(rel, len(data), limit)


def make_document(rel: str, data: bytes, text: str, *, title: str = "", metadata: Mapping[str, str] | None = None, pages: tuple[int, ...] = ()) -> Document:
    """The Document of one file: its id is ``rel``, its hash that of the file's bytes, the title falls back to the first line."""
    if not text.strip():
        raise DocumentError(f"{rel}: has no text; skipped.")
    meta = {k: " ".join(str(v).split()) for k, v in (metadata or {}).items() if v is not None and str(v).strip()}
    return Document(
        doc_id=rel,
        text=text,
        title=_clip_title(title or _first_line(text)),
        content_hash=sha256(data),
        metadata=meta,
        pages=pages,
    )


class _ThreadRecords(logging.Handler):
    """Keeps the records one thread logs (two builds may read PDFs at the same time)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.thread = threading.get_ident()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.records.append(record)


_lock = threading.Lock()
_active: dict[str, int] = {}
_propagate: dict[str, bool] = {}


@contextmanager
def captured_log(name: str) -> Iterator[list[logging.LogRecord]]:
    """Collect the warnings logger ``name`` (and its children) logs in this thread, instead of printing them.

    The logger stops propagating to the root logger while any reader holds it, so
    a library's remarks about a file reach the user once, as the reader's warning,
    and not as a stack of lines on stderr.
    """
    logger = logging.getLogger(name)
    handler = _ThreadRecords()
    with _lock:
        if not _active.get(name):
            _propagate[name] = logger.propagate
            logger.propagate = False
        _active[name] = _active.get(name, 0) + 1
        logger.addHandler(handler)
    try:
        yield handler.records
    finally:
        with _lock:
            logger.removeHandler(handler)
            _active[name] -= 1
            if not _active[name]:
                logger.propagate = _propagate.pop(name)
