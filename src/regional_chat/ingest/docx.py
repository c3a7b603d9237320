"""DOCX -> Document: the body's headings, paragraphs and tables in order (python-docx).

Each heading and paragraph is a paragraph of the text, separated by a blank line; a
table row becomes a line with its cells separated by `` | ``. Headers, footers,
footnotes, comments and text boxes are not read. The core properties (title, author,
subject, keywords, created) become metadata, ``created`` as the ISO ``date``.
"""

from __future__ import annotations

import io
import zipfile

from ..documents import DocumentError
from ..types import Document
from ._common import check_size, clean, make_document, properties

MAX_BYTES = 64 * 1024 * 1024
MAX_UNZIPPED_BYTES = 512 * 1024 * 1024  # what the parts may inflate to: a small "zip bomb" must not fill the memory

_SAVE_AS = "Open it in Word or LibreOffice and save it as .docx to index it."


def read(rel: str, data: bytes) -> tuple[Document, list[str]]:
    """Read a Word .docx file's body text and core properties.

    Args:
        rel: the file's path relative to the corpus: the document id, and the name in messages.
        data: the file's bytes.

    Returns:
        The document (metadata ``title``, ``author``, ``subject``, ``keywords``, ``date`` where set)
        and the warnings about it (a table that could not be read).

    Raises:
        DocumentError: too large, not a ZIP archive, a ZIP of something else, or without text.
    """
    check_size(rel, data, MAX_BYTES)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
            unzipped = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, ValueError, OSError, EOFError):
        raise DocumentError(f"{rel}: is not a .docx file (not a ZIP archive, or a damaged one: an old .doc, or another format renamed?); skipped. {_SAVE_AS}") from None
    if "[Content_Types].xml" not in names or "word/document.xml" not in names:
        raise DocumentError(f"{rel}: is a ZIP archive but not a Word document (it has no word/document.xml); skipped. {_SAVE_AS}")
    if unzipped > MAX_UNZIPPED_BYTES:
        raise DocumentError(f"{rel}: would unpack to {unzipped:,} bytes, over the {MAX_UNZIPPED_BYTES:,}-byte limit; skipped.")
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        document = docx.Document(io.BytesIO(data))
        items = list(document.iter_inner_content())
    except Exception as exc:  # python-docx raises KeyError, ValueError, lxml errors... for a damaged file
        raise DocumentError(f"{rel}: is not a valid Word document ({type(exc).__name__}: {exc}); skipped. {_SAVE_AS}") from None
    warnings: list[str] = []
    blocks: list[str] = []
    heading = ""
    for number, item in enumerate(items, start=1):
        if isinstance(item, Paragraph):
            text = clean(item.text)
            if text:
                blocks.append(text)
                if not heading and _style(item).startswith(("Title", "Heading")):
                    heading = text
        elif isinstance(item, Table):
            try:
                rows = _rows(item)
            except Exception as exc:
                warnings.append(f"{rel}: a table (item {number} of the body) could not be read ({type(exc).__name__}: {exc}); its text is not indexed.")
                continue
            if rows:
                blocks.append("\n".join(rows))
    metadata = _metadata(document)
    text = "\n\n".join(blocks)
    return make_document(rel, data, text, title=metadata.get("title") or heading, metadata=metadata), warnings


def _style(paragraph) -> str:
    try:
        return paragraph.style.name or ""
    except Exception:  # a style id the styles part does not define
        return ""


def _rows(table) -> list[str]:
    rows = []
    for row in table.rows:
        cells, seen = [], set()
        for cell in row.cells:
            if cell._tc in seen:  # a merged cell is listed once per grid column it spans
                continue
            seen.add(cell._tc)
            cells.append(" ".join(clean(cell.text).split()))
        if any(cells):
            rows.append(" | ".join(cells))
    return rows


def _metadata(document) -> dict[str, str]:
    try:
        props = document.core_properties
    except Exception:
        return {}
    return properties(props, ("title", "author", "subject", "keywords"), created="created")  # dcterms:created
