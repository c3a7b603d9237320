"""PDF -> Document: the text layer page by page (pypdf), with the offset where each page starts.

``Document.text`` is the pages' text joined by a blank line; ``Document.pages[i]``
is where page ``i + 1`` starts in it, so a quote's page is ``document.page_at(start)``.
A page without text (a scan) keeps its place in ``pages`` (it starts where the next
page with text does) and is named in a warning; a PDF with no text at all, one that
needs a password and a damaged one raise ``DocumentError``.
"""

from __future__ import annotations

import io

from ..documents import DocumentError
from ..types import Document
from ._common import captured_log, check_size, clean, make_document, properties

MAX_BYTES = 64 * 1024 * 1024
PAGE_SEPARATOR = "\n\n"

# pypdf logs a warning for every oddity it works around. Most are harmless ("Multiple
# definitions in dictionary"); these say the file's structure was damaged and rebuilt,
# so some text may be missing: they become a warning of the build.
_DAMAGE = ("xref", "startxref", "eof marker", "trailer", "/root", "object stream", "invalid pdf header", "stream has ended")


def read(rel: str, data: bytes) -> tuple[Document, list[str]]:
    """Read a PDF file's text layer.

    Args:
        rel: the file's path relative to the corpus: the document id, and the name in messages.
        data: the file's bytes.

    Returns:
        The document (``pages`` set, metadata ``title``/``author``/``subject``/``keywords``/``date``
        from the PDF's info dictionary where present) and the warnings about it.

    Raises:
        DocumentError: too large, damaged, encrypted with a password, or without any text layer.
    """
    check_size(rel, data, MAX_BYTES)
    from pypdf import PdfReader
    from pypdf.errors import DependencyError

    warnings: list[str] = []
    with captured_log("pypdf") as records:
        try:
            reader = PdfReader(io.BytesIO(data))
            if reader.is_encrypted:
                # Many PDFs are "encrypted" only to set permissions, with an empty user password.
                try:
                    opened = reader.decrypt("")
                except DependencyError as exc:
                    raise DocumentError(f"{rel}: is encrypted with a cipher that needs an extra package ({exc}); skipped. Save an unencrypted copy to index it.") from None
                if not opened:
                    raise DocumentError(f"{rel}: is encrypted with a password; skipped. Save a copy without the password to index it.")
            page_objects = list(reader.pages)
            metadata = _metadata(reader)
        except DocumentError:
            raise
        except Exception as exc:  # pypdf raises many types for a damaged file; none may stop the build
            raise DocumentError(f"{rel}: is not a readable PDF ({_why(exc, records)}); skipped. It may be truncated or damaged: download it again, or open it in a PDF viewer and save a new copy.") from None
        texts: list[str] = []
        unread: set[int] = set()  # pages pypdf failed on: named in their own warning, not called scanned
        for number, page in enumerate(page_objects, start=1):
            try:
                texts.append(clean(page.extract_text() or ""))
            except Exception as exc:
                texts.append("")
                unread.add(number)
                warnings.append(f"{rel}: page {number} could not be read ({type(exc).__name__}: {exc}); its text is not indexed.")
        damage = [r.getMessage() for r in records if any(word in r.getMessage().lower() for word in _DAMAGE)]
    if damage:
        more = f"; {len(damage) - 1} more" if len(damage) > 1 else ""
        warnings.insert(0, f"{rel}: is damaged and was read as far as possible (pypdf: {damage[0]}{more}); some text may be missing.")
    if not page_objects:
        raise DocumentError(f"{rel}: has no pages; skipped.")
    empty = [n for n, t in enumerate(texts, start=1) if not t]
    if len(empty) == len(texts):
        raise DocumentError(f"{rel}: has no text layer (a scanned PDF?); skipped. Run OCR on it to index it.")
    if empty:
        scanned = [n for n in empty if n not in unread]
        if scanned:
            label = "page" if len(scanned) == 1 else "pages"
            verb = "has" if len(scanned) == 1 else "have"
            warnings.append(f"{rel}: {label} {_numbers(scanned)} {verb} no text layer (scanned?); indexed the other {len(texts) - len(empty)} pages.")
    text, pages = _join(texts)
    return make_document(rel, data, text, title=metadata.get("title", ""), metadata=metadata, pages=pages), warnings


def _join(texts: list[str]) -> tuple[str, tuple[int, ...]]:
    """The pages' text joined, and where each page starts; an empty page starts where the next page with text does."""
    parts: list[str] = []
    starts: list[int | None] = []
    position = 0
    for text in texts:
        if not text:
            starts.append(None)
            continue
        if parts:
            position += len(PAGE_SEPARATOR)
        starts.append(position)
        parts.append(text)
        position += len(text)
    following = position  # after the last page with text: the end of the text
    for i in range(len(starts) - 1, -1, -1):
        if starts[i] is None:
            starts[i] = following
        following = starts[i]
    return PAGE_SEPARATOR.join(parts), tuple(int(s) for s in starts)


def _metadata(reader) -> dict[str, str]:
    try:
        info = reader.metadata
    except Exception:  # a damaged info dictionary costs the metadata, not the text
        return {}
    if not info:
        return {}
    out = properties(info, ("title", "author", "subject"), created="creation_date")  # /CreationDate
    keywords = info.get("/Keywords")
    if isinstance(keywords, str) and clean(keywords):
        out["keywords"] = clean(keywords)
    return out


def _why(exc: Exception, records: list) -> str:
    message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    logged = [r.getMessage() for r in records]
    return message + (f"; {logged[0]}" if logged else "")


def _numbers(numbers: list[int]) -> str:
    shown = ", ".join(str(n) for n in numbers[:20])
    return shown + (f" and {len(numbers) - 20} more" if len(numbers) > 20 else "")
