"""Files of the corpus -> Document values: one reader per format.

``.txt`` and ``.md`` files are one document each, with optional YAML front
matter (``title``, ``date``, ``source``, ``country``, ...). ``.jsonl`` files
hold one document a line: ``text``, plus any other fields as metadata and
``id`` when given. ``.pdf`` (the text layer, with page offsets), ``.html``/``.htm``
(the main text, without navigation and boilerplate) and ``.docx`` files are one
document each, read by the modules of ``regional_chat.ingest``. A file that is
binary, not UTF-8, damaged, encrypted or without text is skipped with a warning
that names it; the rest of the corpus is still read.
"""

from __future__ import annotations

import datetime
import errno
import hashlib
import json
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from . import ingest  # the readers' registry only: each format's library loads with its first file
from .types import Document

SUFFIXES = (".txt", ".md", ".jsonl", ".pdf", ".html", ".htm", ".docx")
SUPPORTED = ", ".join(SUFFIXES[:-1]) + " or " + SUFFIXES[-1]  # for messages: ".txt, .md, ... or .docx"
MAX_TEXT_FILE_BYTES = 32 * 1024 * 1024  # a single .txt/.md/.html document; JSON Lines files are streamed
MAX_TITLE_CHARS = 200


@dataclass(frozen=True)
class Notice:
    """A warning in a file's document stream.

    ``skipped``: something was left out of the index (a bad line of a .jsonl file); otherwise the
    document was indexed and the notice says what is missing from it (a PDF page without a text
    layer, a damaged PDF read as far as possible).
    """

    text: str
    skipped: bool

    def __str__(self) -> str:
        return self.text


class CorpusError(ValueError):
    """The corpus cannot be used at all (missing, or holds no document)."""


class DocumentError(ValueError):
    """One file cannot be read as documents; the build skips it with a warning."""


@dataclass(frozen=True)
class SourceFile:
    """A file of the corpus, as listed before it is read."""

    path: Path
    rel: str  # path relative to the corpus root, with forward slashes: the document id
    size: int
    mtime_ns: int


def list_files(corpus: str | Path, warn: Callable[[str], None] | None = None) -> list[SourceFile]:
    """The corpus files in a stable order: a folder is walked recursively; a single file is itself.

    Hidden files and folders (a leading dot) are passed over. A symbolic link is
    read only when it resolves to a file inside the corpus folder: a link that
    points outside it (``/etc/hostname``), a link to a folder, a broken link and
    a link loop are skipped with a warning naming them, so dropping a link into
    ``corpus/`` can never index (and quote) a file the corpus does not hold.

    Args:
        corpus: a folder, or one file of a supported type (``SUFFIXES``).
        warn: called with one message per skipped link or unreadable entry.

    Raises:
        CorpusError: the corpus does not exist or is not a folder or a supported file.
    """
    warn = warn or (lambda msg: None)
    root = Path(corpus)
    if root.is_file():
        if root.suffix.lower() not in SUFFIXES:
            raise CorpusError(f"{root}: not a corpus file (supported: {', '.join(SUFFIXES)}).")
        st = root.stat()
        return [SourceFile(root, root.name, st.st_size, st.st_mtime_ns)]
    if not root.is_dir():
        raise CorpusError(f"corpus {root} does not exist: create it and put {SUPPORTED} files in it.")
    real_root = root.resolve()
    found: list[SourceFile] = []
    for dirpath, dirnames, filenames in os.walk(root):  # never follows links to folders
        kept = []
        for name in sorted(d for d in dirnames if not d.startswith(".")):
            folder = Path(dirpath) / name
            if folder.is_symlink():
                warn(f"{folder.relative_to(root).as_posix()}: a link to a folder; links to folders are not followed, skipped.")
            else:
                kept.append(name)
        dirnames[:] = kept
        for name in sorted(filenames):
            if name.startswith(".") or Path(name).suffix.lower() not in SUFFIXES:
                continue
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                problem = _link_problem(path, real_root)
                if problem:
                    warn(f"{rel}: {problem}; skipped.")
                    continue
            try:
                st = path.stat()
            except OSError as exc:
                if path.exists() or path.is_symlink():  # not a file that vanished while listing
                    warn(f"{rel}: cannot be read ({exc.strerror}); skipped.")
                continue
            if not stat.S_ISREG(st.st_mode):
                warn(f"{rel}: not a regular file; skipped.")
                continue
            found.append(SourceFile(path, rel, st.st_size, st.st_mtime_ns))
    return sorted(found, key=lambda f: f.rel)


def _link_problem(link: Path, real_root: Path) -> str | None:
    """Why the symbolic link ``link`` must not be read, or None when it resolves to a file inside the corpus."""
    try:
        target = link.resolve(strict=True)
    except RuntimeError:  # Python < 3.13 reports a loop this way
        return "a symbolic link loop"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symbolic link loop"
        return f"a broken symbolic link (to {os.readlink(link)})"
    if not target.is_relative_to(real_root):
        return f"a symbolic link to {target}, outside the corpus folder"
    if not target.is_file():
        return f"a symbolic link to {target}, which is not a file"
    return None


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    """The SHA-256 of a file, read in 1 MB blocks (index files and model weights run to gigabytes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_documents(source: SourceFile) -> Iterator[Document | Notice]:
    """The documents of one file, in order, with :class:`Notice` s (a line skipped, pages without text) among them.

    Raises:
        DocumentError: the whole file is unreadable (binary, not UTF-8, empty, too large,
            damaged, encrypted, a PDF without a text layer).
    """
    suffix = source.path.suffix.lower()
    if suffix == ".jsonl":
        yield from _read_jsonl(source)
        return
    if suffix in ingest.READERS:
        yield from _read_with(ingest.reader(suffix), ingest.max_bytes(suffix), source)
        return
    markdown = suffix == ".md"
    yield from _read_with(lambda rel, data: (parse_text_document(rel, data, markdown=markdown), []), MAX_TEXT_FILE_BYTES, source)


def _read_with(read: Callable[[str, bytes], tuple[Document, list[str]]], limit: int, source: SourceFile) -> Iterator[Document | Notice]:
    if source.size > limit:  # before the bytes are loaded
        raise too_large(source.rel, source.size, limit)
    try:
        data = source.path.read_bytes()
    except OSError as exc:
        raise DocumentError(f"{source.rel}: cannot be read ({exc.strerror}).") from exc
    document, warnings = read(source.rel, data)
    for warning in warnings:  # the document itself is indexed: these say what is missing from it
        yield Notice(warning, skipped=False)
    yield document


def too_large(rel: str, size: int, limit: int) -> DocumentError:
    """The error for a file over the size limit of its type."""
    return DocumentError(f"{rel}: {size:,} bytes is over the {limit:,}-byte limit for one document; skipped. Split it into smaller files to index it.")


def _decode(rel: str, data: bytes) -> str:
    # One rule for NUL, wherever it sits: no text document holds one, and a NUL
    # that reached the index would be quoted (and printed) as part of an answer.
    nul = data.find(b"\x00")
    if nul >= 0:
        raise _binary(rel, nul)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DocumentError(f"{rel}: is not UTF-8 (byte {exc.start}); skipped. Save it as UTF-8 to index it.") from exc


_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?\r?\n)?---[ \t]*(?:\r?\n|\Z)", re.DOTALL)
_HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", re.MULTILINE)


def parse_text_document(rel: str, data: bytes, *, markdown: bool = False) -> Document:
    """A .txt or .md file's bytes -> Document (front matter kept as metadata, not text)."""
    text = _decode(rel, data)
    metadata: dict[str, str] = {}
    match = _FRONT_MATTER.match(text)
    if match:
        parsed = _yaml(match.group(1) or "")
        if parsed is not None:
            metadata = parsed
            text = text[match.end() :]
    if not text.strip():
        raise DocumentError(f"{rel}: has no text; skipped.")
    title = metadata.get("title", "")
    if not title and markdown:
        heading = _HEADING.search(text)
        title = heading.group(1) if heading else ""
    return Document(
        doc_id=rel,
        text=text,
        title=_clip_title(title or _first_line(text)),
        content_hash=sha256(data),
        metadata=metadata,
    )


def _yaml(block: str) -> dict[str, str] | None:
    import yaml

    try:
        value = yaml.safe_load(block) if block.strip() else {}
    except yaml.YAMLError:
        return None  # not front matter after all: keep it as text
    if not isinstance(value, dict):
        return None
    return {str(k): _scalar(v) for k, v in value.items() if v is not None}


def _scalar(value: object) -> str:
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


def _first_line(text: str) -> str:
    for line in text.splitlines():
        line = line.strip().lstrip("#").strip()
        if line:
            return line
    return ""


def _clip_title(title: str) -> str:
    title = " ".join(title.split())
    return title if len(title) <= MAX_TITLE_CHARS else title[: MAX_TITLE_CHARS - 1].rstrip() + "…"


def _binary(rel: str, nul: int) -> DocumentError:
    return DocumentError(f"{rel}: holds a NUL byte at byte {nul:,} (binary, or damaged text); skipped.")


def _first_nul(text: str, metadata: dict[str, str]) -> str | None:
    """Where a decoded JSON line holds a NUL character: '"text" at character N' or a field's name; None if nowhere."""
    at = text.find("\x00")
    if at >= 0:
        return f'"text" at character {at:,}'
    for key, value in metadata.items():
        if "\x00" in key or "\x00" in value:
            return f"field {key!r}"
    return None


def _read_jsonl(source: SourceFile) -> Iterator[Document | Notice]:
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
                    raise _binary(source.rel, nul)
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
            metadata = {k: _scalar(v) for k, v in obj.items() if k != "text" and v is not None}
            escaped = _first_nul(text, metadata)
            if escaped is not None:
                yield Notice(f"{where}: holds a NUL character (a \\u0000 escape) in {escaped}, line starts at byte {line_start:,}; line skipped.", skipped=True)
                continue
            seen.add(doc_id)
            yield Document(
                doc_id=doc_id,
                text=text,
                title=_clip_title(metadata.get("title") or _first_line(text)),
                content_hash=sha256(raw.rstrip(b"\r\n")),
                metadata=metadata,
            )
        if not any_line:
            raise DocumentError(f"{source.rel}: is empty; skipped.")
