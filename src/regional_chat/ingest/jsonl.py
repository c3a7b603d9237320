"""JSON Lines -> Documents: one document a line, streamed (one file may hold a whole collection).

Each line is an object with ``text``; its other fields become metadata, and ``id`` (else the
line number) names the document ``<file>#<id>``. A bad line (not JSON, not UTF-8, no text, a
repeated id, a NUL) is skipped with a :class:`~regional_chat.documents.Notice` naming its line;
the other lines are read. Each line's hash is its own, so editing one line re-reads one document.
"""

from __future__ import annotations

import json
from typing import Iterator

from ..documents import DocumentError, Notice, SourceFile
from ..types import Document
from ._common import binary_error, make_document, scalar


def read_lines(source: SourceFile) -> Iterator[Document | Notice]:
    """The documents of a .jsonl file, with a Notice for every line skipped.

    Raises:
        DocumentError: the file cannot be opened, is empty, or its first line holds a NUL (binary).
    """
    seen: set[str] = set()
    try:
        handle = source.path.open("rb")
    except OSError as exc:
        raise DocumentError(f"{source.rel}: cannot be read ({exc.strerror}).") from exc
    with handle:
        any_line = False
        offset = 0  # byte offset of the current line in the file
        for number, raw in enumerate(handle, start=1):
            line_start, offset = offset, offset + len(raw)
            if not raw.strip():
                continue
            any_line = True
            where = f"{source.rel}:{number}"
            nul = raw.find(b"\x00")
            if nul >= 0:
                if number == 1:
                    raise binary_error(source.rel, nul)
                yield Notice(f"{where}: holds a NUL byte at byte {line_start + nul:,} of the file; line skipped.", skipped=True)
                continue
            try:
                obj = json.loads(raw.decode("utf-8-sig"))
            except UnicodeDecodeError:
                yield Notice(f"{where}: not UTF-8; line skipped.", skipped=True)
                continue
            except json.JSONDecodeError as exc:
                yield Notice(f"{where}: not JSON ({exc.msg}); line skipped.", skipped=True)
                continue
            if not isinstance(obj, dict) or not isinstance(obj.get("text"), str) or not obj["text"].strip():
                yield Notice(f"{where}: has no \"text\" field with text; line skipped.", skipped=True)
                continue
            local_id = str(obj["id"]) if obj.get("id") not in (None, "") else str(number)
            doc_id = f"{source.rel}#{local_id}"
            if doc_id in seen:
                yield Notice(f"{where}: id {local_id!r} was already used in this file; line skipped.", skipped=True)
                continue
            text = obj["text"]
            metadata = {k: scalar(v) for k, v in obj.items() if k != "text" and v is not None}
            escaped = _first_nul(text, metadata)
            if escaped is not None:
                yield Notice(f"{where}: holds a NUL character (a \\u0000 escape) in {escaped}, line starts at byte {line_start:,}; line skipped.", skipped=True)
                continue
            seen.add(doc_id)
            yield make_document(doc_id, raw.rstrip(b"\r\n"), text, title=metadata.get("title", ""), metadata=metadata, fold=False)
        if not any_line:
            raise DocumentError(f"{source.rel}: is empty; skipped.")


def _first_nul(text: str, metadata: dict[str, str]) -> str | None:
    """Where a decoded JSON line holds a NUL character: '"text" at character N' or a field's name; None if nowhere."""
    at = text.find("\x00")
    if at >= 0:
        return f'"text" at character {at:,}'
    for key, value in metadata.items():
        if "\x00" in key or "\x00" in value:
            return f"field {key!r}"
    return None
