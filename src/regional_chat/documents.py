"""Files of the corpus -> Document values: the corpus listed, each file handed to its format's reader.

``.txt`` and ``.md`` files are one document each, with optional YAML front
matter (``title``, ``date``, ``source``, ``country``, ...). ``.jsonl`` files
hold one document a line: ``text``, plus any other fields as metadata and
``id`` when given. ``.pdf`` (the text layer, with page offsets), ``.html``/``.htm``
(the main text, without navigation and boilerplate) and ``.docx`` files are one
document each. Every format's reader is a module of ``regional_chat.ingest``. A file that is
binary, not UTF-8, damaged, encrypted or without text is skipped with a warning
that names it; the rest of the corpus is still read.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from . import ingest  # the readers' registry only: each format's library loads with its first file
from .types import Document

SUFFIXES = (".txt", ".md", ".jsonl", ".pdf", ".html", ".htm", ".docx")
SUPPORTED = ", ".join(SUFFIXES[:-1]) + " or " + SUFFIXES[-1]  # for messages: ".txt, .md, ... or .docx"
MAX_TEXT_FILE_BYTES = 32 * 1024 * 1024  # a single .txt/.md/.html document; JSON Lines files are streamed


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
    if suffix == ".jsonl":  # streamed line by line: one file may hold a whole collection
        from .ingest.jsonl import read_lines

        yield from read_lines(source)
        return
    yield from _read_with(ingest.reader(suffix), ingest.max_bytes(suffix), source)


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
