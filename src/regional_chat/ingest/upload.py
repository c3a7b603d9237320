"""Upload staging: files a user sends are checked with the corpus's own readers, then copied into the corpus.

Also the exposure policy (:func:`uploads_allowed`): whether a server may stage uploads at all.
Nothing here knows about a web framework; ``web.py`` calls :func:`stage_uploads` and renders
what it returns, and the index is brought up to date afterwards (``service.LiveIndex.rebuild``).
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import unicodedata
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..documents import SUFFIXES, DocumentError, Notice, SourceFile, read_documents


class UploadError(ValueError):
    """An uploaded file is refused; the message says why and is shown to the user."""


@dataclass(frozen=True)
class Staged:
    """What :func:`stage_uploads` did: the files now in the corpus, and every refusal or warning."""

    added: tuple[Path, ...] = ()
    problems: tuple[str, ...] = ()


def uploads_allowed(host: str, read_only: bool, auth: object | None) -> bool:
    """Adding documents is on unless read-only, or served beyond loopback without a login."""
    if read_only:
        return False
    if auth:
        return True
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def clean_filename(name: str) -> str:
    """A safe file name for the corpus folder: no folders, no hidden files, an allowed type.

    Raises:
        UploadError: the name has no usable part or is not a corpus file type (documents.SUFFIXES).
    """
    base = unicodedata.normalize("NFKC", name).replace("\\", "/").split("/")[-1]  # no folders, either slash
    stem, suffix = os.path.splitext(base)
    if suffix.lower() not in SUFFIXES:
        raise UploadError(f"{name!r}: only {', '.join(SUFFIXES)} files can be added.")
    stem = re.sub(r"[^\w.\-]+", "-", stem, flags=re.UNICODE)
    stem = re.sub(r"-{2,}", "-", re.sub(r"\.{2,}", ".", stem)).strip(".-_")[:100]  # no leading dot: not hidden
    if not stem:
        raise UploadError(f"{name!r}: the file name has no usable characters.")
    return stem + suffix.lower()


def _free_target(folder: Path, name: str) -> Path:
    """``folder/name``, or ``name-2``, ``name-3``... when taken: an upload never overwrites a document."""
    stem, suffix = Path(name).stem, Path(name).suffix
    target, n = folder / name, 2
    while target.exists() or target.is_symlink():
        target, n = folder / f"{stem}-{n}{suffix}", n + 1
    return target


def add_upload(corpus_dir: str | Path, path: str | Path, max_bytes: int, original_name: str | None = None) -> tuple[Path, list[str]]:
    """Copy one uploaded file into the corpus folder after checking it; returns (where, warnings).

    The file is read with the corpus's own readers first, so what is refused
    here is exactly what the index build would skip.

    Raises:
        UploadError: wrong type, too large, unreadable, or holds no document.
    """
    source = Path(path)
    name = clean_filename(original_name or source.name)
    size = source.stat().st_size
    if size > max_bytes:
        raise UploadError(f"{name}: {size / 1e6:.1f} MB is over the {max_bytes / 1e6:.0f} MB limit.")
    corpus = Path(corpus_dir).resolve()
    corpus.mkdir(parents=True, exist_ok=True)
    staged = corpus / f".upload-{uuid.uuid4().hex[:12]}{Path(name).suffix}"  # hidden: the index build passes it over
    try:
        shutil.copyfile(source, staged)
        warnings, documents = [], 0
        try:
            for item in read_documents(SourceFile(staged, name, size, 0)):
                if isinstance(item, Notice):
                    warnings.append(item.text)  # a bad line of a .jsonl file, a PDF page without text
                else:
                    documents += 1
        except DocumentError as exc:
            raise UploadError(str(exc)) from None
        if documents == 0:
            raise UploadError(f"{name}: holds no document with text.")
        target = _free_target(corpus, name)
        if target.resolve().parent != corpus:
            raise UploadError(f"{name}: would land outside the corpus folder.")
        os.replace(staged, target)
        return target, warnings
    finally:
        staged.unlink(missing_ok=True)


def stage_uploads(corpus_dir: str | Path, paths: Sequence[str | Path], max_bytes: int) -> Staged:
    """Add each uploaded file to the corpus folder (see :func:`add_upload`); one refused file does not stop the others.

    Returns:
        A :class:`Staged`: the files added, and the refusals and reading warnings, in order.
    """
    added: list[Path] = []
    problems: list[str] = []
    for path in paths:
        try:
            target, warnings = add_upload(corpus_dir, path, max_bytes)
        except UploadError as exc:
            problems.append(str(exc))
            continue
        added.append(target)
        problems += warnings
    return Staged(tuple(added), tuple(problems))
