"""Plain text and Markdown -> Document: one document a file, optional YAML front matter as metadata.

Front matter (``title``, ``date``, ``source``, ``country``, ...) between ``---`` lines at the top
becomes the document's metadata and is not part of its text. A block that is not a YAML mapping
is kept as text. The title is the front matter's, else (Markdown) the first heading, else the
first line.
"""

from __future__ import annotations

import re

from ..documents import MAX_TEXT_FILE_BYTES
from ..types import Document
from ._common import check_size, decode_utf8, make_document, scalar

MAX_BYTES = MAX_TEXT_FILE_BYTES

_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?\r?\n)?---[ \t]*(?:\r?\n|\Z)", re.DOTALL)
_HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", re.MULTILINE)


def read(rel: str, data: bytes) -> tuple[Document, list[str]]:
    """A .txt file (front matter allowed); no warnings: a text file is read or refused."""
    check_size(rel, data, MAX_BYTES)
    return parse_text_document(rel, data), []


def read_markdown(rel: str, data: bytes) -> tuple[Document, list[str]]:
    """A .md file: as :func:`read`, the first heading the title when the front matter gives none."""
    check_size(rel, data, MAX_BYTES)
    return parse_text_document(rel, data, markdown=True), []


def parse_text_document(rel: str, data: bytes, *, markdown: bool = False) -> Document:
    """A .txt or .md file's bytes -> Document (front matter kept as metadata, not text).

    Raises:
        DocumentError: binary, not UTF-8, or without text.
    """
    text = decode_utf8(rel, data)
    metadata: dict[str, str] = {}
    match = _FRONT_MATTER.match(text)
    if match:
        parsed = _yaml(match.group(1) or "")
        if parsed is not None:
            metadata = parsed
            text = text[match.end() :]
    title = metadata.get("title", "")
    if not title and markdown:
        heading = _HEADING.search(text)
        title = heading.group(1) if heading else ""
    return make_document(rel, data, text, title=title, metadata=metadata, fold=False)  # no text: DocumentError


def _yaml(block: str) -> dict[str, str] | None:
    import yaml

    try:
        value = yaml.safe_load(block) if block.strip() else {}
    except yaml.YAMLError:
        return None  # not front matter after all: keep it as text
    if not isinstance(value, dict):
        return None
    return {str(k): scalar(v) for k, v in value.items() if v is not None}
