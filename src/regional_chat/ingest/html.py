"""HTML -> Document: the page's main text (trafilatura), without navigation, footers and other boilerplate.

Headings, paragraphs and list items become paragraphs separated by a blank line;
a table row becomes a line with its cells separated by `` | ``. The page's title,
date, canonical URL (``url`` and ``source``), site name and author become metadata.
"""

from __future__ import annotations

import codecs
import re

from ..documents import MAX_TEXT_FILE_BYTES, DocumentError
from ..types import Document
from ._common import binary_error, captured_log, check_size, clean, make_document

MAX_BYTES = MAX_TEXT_FILE_BYTES

_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9._:\-]+)""", re.IGNORECASE)
# WHATWG Encoding: browsers read these labels as windows-1252, and so do pages written for them.
_AS_WINDOWS_1252 = {"iso-8859-1", "iso8859-1", "latin1", "latin-1", "l1", "ascii", "us-ascii", "cp819", "ibm819"}
_BLOCKS = {"p", "head", "list", "item", "quote", "code", "div", "section", "note", "main", "doc", "comments"}
_BREAK = "\x00"  # marks a <lb/> while whitespace is collapsed: the decoded page holds no NUL


def read(rel: str, data: bytes) -> tuple[Document, list[str]]:
    """Read an HTML page's main text and metadata.

    Args:
        rel: the file's path relative to the corpus: the document id, and the name in messages.
        data: the file's bytes (the encoding comes from a BOM, else ``<meta charset>``, else UTF-8).

    Returns:
        The document (metadata ``title``, ``date``, ``url``, ``source``, ``sitename``, ``author`` where
        the page gives them) and the warnings about it (none so far: a page is read or refused).

    Raises:
        DocumentError: too large, binary, not in its declared (or any known) encoding, or without main text.
    """
    check_size(rel, data, MAX_BYTES)
    page = _decode(rel, data)
    from trafilatura import bare_extraction

    with captured_log("trafilatura"), captured_log("htmldate"), captured_log("courlan"):
        try:
            result = bare_extraction(
                page,
                with_metadata=True,
                include_comments=False,
                include_tables=True,
                deduplicate=False,
                # the page's own dates only, and old documents too (htmldate ignores dates before 1995 by default)
                date_extraction_params={"original_date": True, "min_date": "1900-01-01"},
            )
        except Exception as exc:  # lxml or trafilatura on a page they cannot parse
            raise DocumentError(f"{rel}: could not be parsed as HTML ({type(exc).__name__}: {exc}); skipped.") from None
    body = getattr(result, "body", None) if result is not None else None
    paragraphs = _paragraphs(body) if body is not None else []
    text = "\n\n".join(paragraphs)
    if not text or _all_boilerplate(page, paragraphs):
        raise DocumentError(f"{rel}: has no main text (only navigation, boilerplate or nothing); skipped. Save the article's text as .txt to index it.")
    metadata: dict[str, str] = {}
    for key in ("title", "author", "date", "url", "sitename"):
        value = getattr(result, key, None)
        if isinstance(value, str) and clean(value):
            metadata[key] = clean(value)
    if "url" in metadata:
        metadata["source"] = metadata["url"]
    return make_document(rel, data, text, title=metadata.get("title", ""), metadata=metadata), []


def _decode(rel: str, data: bytes) -> str:
    for bom, codec in ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be")):
        if data.startswith(bom):
            return _strict(rel, data[len(bom) :], codec, f"starts with a {codec.upper()} byte order mark")
    nul = data.find(b"\x00")
    if nul >= 0:
        raise binary_error(rel, nul)
    match = _CHARSET.search(data[:4096])
    if match:
        label = match.group(1).decode("ascii").lower()
        codec = "cp1252" if label in _AS_WINDOWS_1252 else label
        try:
            codecs.lookup(codec)
        except LookupError:
            raise DocumentError(f"{rel}: declares the unknown charset {label!r}; skipped. Save it as UTF-8 to index it.") from None
        return _strict(rel, data, codec, f"declares charset {label!r}")
    return _strict(rel, data, "utf-8", "declares no charset and is not UTF-8")


def _strict(rel: str, data: bytes, codec: str, why: str) -> str:
    try:
        text = data.decode(codec)
    except UnicodeDecodeError as exc:
        raise DocumentError(f"{rel}: {why}, but byte {exc.start:,} is not {codec}; skipped. Save it as UTF-8 to index it.") from None
    if "\x00" in text:
        raise DocumentError(f"{rel}: holds a NUL character at character {text.index(chr(0)):,} (binary, or damaged text); skipped.")
    return text


def _all_boilerplate(page: str, paragraphs: list[str]) -> bool:
    """Whether every paragraph is only link, navigation, header or footer text of the page.

    When a page has no main text, trafilatura falls back to whatever text there is:
    on a page of menus that is "Home About", which must not be indexed as a document.
    """
    import lxml.html

    try:
        tree = lxml.html.document_fromstring(page)
    except Exception:
        return False
    chrome = tree.xpath("//a | //nav | //header | //footer | //aside | //*[@role='navigation']")
    boilerplate = " ".join(" ".join(element.text_content().split()) for element in chrome)
    return all(" ".join(p.split()) in boilerplate for p in paragraphs)


def _paragraphs(body) -> list[str]:
    """The paragraphs of trafilatura's XML body, in order."""
    out: list[str] = []
    current: list[str] = []

    def flush() -> None:
        text = _squash("".join(current))
        current.clear()
        if text:
            out.append(text)

    def visit(element) -> None:
        tag = element.tag if isinstance(element.tag, str) else ""
        if tag == "table":
            flush()
            rows = [_squash(" | ".join(_squash("".join(cell.itertext())) for cell in row if isinstance(cell.tag, str))) for row in element.iter("row")]
            rows = [r for r in rows if r.strip(" |")]
            if rows:
                out.append("\n".join(rows))
        elif tag == "lb":
            current.append(_BREAK)
        elif tag == "graphic":
            pass
        else:
            block = tag in _BLOCKS
            if block:
                flush()
            current.append(element.text or "")
            for child in element:
                visit(child)
            if block:
                flush()
        current.append(element.tail or "")

    current.append(body.text or "")
    for child in body:
        visit(child)
    flush()
    return out


def _squash(text: str) -> str:
    """HTML's whitespace collapsed: one space between words; a <lb/> kept as a line break."""
    lines = (" ".join(clean(line).split()) for line in text.split(_BREAK))
    return "\n".join(line for line in lines if line)
