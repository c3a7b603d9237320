"""What the format readers share: decoding, text clean-up, titles and metadata values, the Document they return, libraries' logs kept quiet."""

from __future__ import annotations

import datetime
import json
import logging
import re
import threading
from contextlib import contextmanager
from typing import Iterator, Mapping

from ..documents import DocumentError, sha256, too_large
from ..types import Document

MAX_TITLE_CHARS = 200

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


def make_document(
    rel: str, data: bytes, text: str, *, title: str = "", metadata: Mapping[str, str] | None = None, pages: tuple[int, ...] = (), fold: bool = True
) -> Document:
    """The Document of one file (or one line of a JSON Lines file): its id is ``rel``, its hash that of ``data``,
    the title falls back to the first line.

    ``fold``: metadata values on one line, empty ones dropped (what a page's or a PDF's fields need); False keeps
    the values a user wrote (front matter, JSON fields) as written.
    """
    if not text.strip():
        raise DocumentError(f"{rel}: has no text; skipped.")
    items = (metadata or {}).items()
    meta = {k: " ".join(str(v).split()) for k, v in items if v is not None and str(v).strip()} if fold else {k: v for k, v in items if v is not None}
    return Document(
        doc_id=rel,
        text=text,
        title=clip_title(title or first_line(text)),
        content_hash=sha256(data),
        metadata=meta,
        pages=pages,
    )


def decode_utf8(rel: str, data: bytes) -> str:
    """A text file's bytes as text (UTF-8, a BOM allowed).

    One rule for NUL, wherever it sits: no text document holds one, and a NUL that
    reached the index would be quoted (and printed) as part of an answer.
    """
    nul = data.find(b"\x00")
    if nul >= 0:
        raise binary_error(rel, nul)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DocumentError(f"{rel}: is not UTF-8 (byte {exc.start}); skipped. Save it as UTF-8 to index it.") from exc


def binary_error(rel: str, nul: int) -> DocumentError:
    return DocumentError(f"{rel}: holds a NUL byte at byte {nul:,} (binary, or damaged text); skipped.")


def first_line(text: str) -> str:
    for line in text.splitlines():
        line = line.strip().lstrip("#").strip()
        if line:
            return line
    return ""


def clip_title(title: str) -> str:
    title = " ".join(title.split())
    return title if len(title) <= MAX_TITLE_CHARS else title[: MAX_TITLE_CHARS - 1].rstrip() + "…"


def scalar(value: object) -> str:
    """A metadata value (YAML front matter, a JSON field) as the string the index keeps."""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float, bool)) or value is None:
        return str(value)
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()  # YAML reads 2024-03-14 as a date
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)


def properties(source: object, fields: tuple[str, ...], created: str) -> dict[str, str]:
    """A file's own properties as metadata: each of ``fields`` that reads as text (cleaned), and ``date`` from the
    ``created`` attribute (a datetime). A property that fails to read (damaged, unparseable date) is left out:
    no value rather than a wrong one, and the text is indexed all the same."""
    out: dict[str, str] = {}
    for name in fields:
        try:
            value = getattr(source, name)
        except Exception:  # noqa: BLE001 - a damaged property costs that property only
            continue
        if isinstance(value, str) and clean(value):
            out[name] = clean(value)
    try:
        when = getattr(source, created)
    except Exception:  # noqa: BLE001
        when = None
    if when is not None:
        out["date"] = when.date().isoformat()
    return out


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
