"""What an index generation holds, what a build must change, and the errors of both backends.

The manifest is the index describing itself (model, dimension, chunking, a content hash of every
document and the size and time of every file); the embedded store writes it as
``manifest.json`` beside the vectors, the Milvus store as rows of its meta collection. A build
compares the corpus with the live manifest (``plan_changes``) and embeds only what is new or
changed; builds on one machine take turns on ``build_lock``.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from ..documents import SUPPORTED, CorpusError, DocumentError, Notice, SourceFile, list_files, read_documents
from ..embedding import Embedder
from ..settings import Settings
from ..types import BuildReport, Document

FORMAT_VERSION = 1
LOCK = ".lock"


class IndexStateError(RuntimeError):
    """The index cannot be used as it is; the message says what to run."""


class IndexNotFoundError(IndexStateError):
    pass


class IndexCorruptError(IndexStateError):
    pass


class IndexMismatchError(IndexStateError):
    pass


class IndexBusyError(IndexStateError):
    pass


REBUILD_HINT = "run `regional-chat build --full` to rebuild it from the corpus"
REPAIR_COMMAND = "run `regional-chat build` to repair it"
REPAIR_HINT = f"{REPAIR_COMMAND} (`regional-chat check` lists what is damaged)"


def reason_of(exc: BaseException) -> str:
    """The first line of an exception's message, with its type: FAISS and bm25s write whole C++ traces."""
    first = (str(exc).strip().splitlines() or [""])[0][:200]
    return f"{exc.__class__.__name__}: {first}" if first else exc.__class__.__name__


# --------------------------------------------------------------------------- manifest


@dataclass(frozen=True)
class DocEntry:
    content_hash: str
    chunks: int


@dataclass(frozen=True)
class FileEntry:
    size: int
    mtime_ns: int
    docs: tuple[str, ...]


@dataclass(frozen=True)
class Manifest:
    """What an index generation holds and how it was built."""

    model: str
    dim: int
    chunking: dict[str, Any]
    documents: dict[str, DocEntry]
    files: dict[str, FileEntry]
    chunks: int
    built_at: str
    corpus: str
    index_kind: str = "flat"
    index_params: dict[str, Any] = field(default_factory=dict)  # IVF cells and probes, why the kind changed
    checksums: dict[str, str] = field(default_factory=dict)  # SHA-256 of every other file of the generation
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        return json.dumps(
            {
                "format_version": self.format_version,
                "model": self.model,
                "dim": self.dim,
                "chunking": self.chunking,
                "index_kind": self.index_kind,
                "index_params": self.index_params,
                "built_at": self.built_at,
                "corpus": self.corpus,
                "chunks": self.chunks,
                "documents": {k: {"hash": v.content_hash, "chunks": v.chunks} for k, v in self.documents.items()},
                "files": {k: {"size": v.size, "mtime_ns": v.mtime_ns, "docs": list(v.docs)} for k, v in self.files.items()},
                "checksums": self.checksums,
            },
            ensure_ascii=False,
            indent=1,
        )

    @classmethod
    def read(cls, path: Path) -> "Manifest":
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            raise IndexCorruptError(f"{path} is missing: {REPAIR_HINT}.") from exc
        except OSError as exc:
            raise IndexCorruptError(f"{path} is unreadable or corrupt ({reason_of(exc)}): {REPAIR_HINT}.") from exc
        return cls.parse(text, str(path))

    @classmethod
    def parse(cls, text: str, where: str) -> "Manifest":
        """A manifest from its JSON (``where`` names it in errors: a file, or a Milvus generation)."""
        try:
            raw = json.loads(text)
            if raw.get("format_version") != FORMAT_VERSION:
                raise IndexMismatchError(
                    f"{where} has index format {raw.get('format_version')!r}; this version reads {FORMAT_VERSION}: {REBUILD_HINT}."
                )
            return cls(
                model=str(raw["model"]),
                dim=int(raw["dim"]),
                chunking=dict(raw["chunking"]),
                documents={k: DocEntry(str(v["hash"]), int(v["chunks"])) for k, v in raw["documents"].items()},
                files={k: FileEntry(int(v["size"]), int(v["mtime_ns"]), tuple(v["docs"])) for k, v in raw["files"].items()},
                chunks=int(raw["chunks"]),
                built_at=str(raw["built_at"]),
                corpus=str(raw.get("corpus", "")),
                index_kind=str(raw.get("index_kind", "flat")),
                index_params=dict(raw.get("index_params", {})),
                checksums={str(k): str(v) for k, v in raw.get("checksums", {}).items()},
            )
        except IndexMismatchError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise IndexCorruptError(f"{where} is unreadable or corrupt ({reason_of(exc)}): {REPAIR_HINT}.") from exc

    def check_compatible(self, embedder: Embedder, settings: Settings, where: Path | str) -> None:
        """Refuse an index built with another model or other chunk settings."""
        if self.model != embedder.name or self.dim != embedder.dim:
            raise IndexMismatchError(
                f"the index at {where} was built with model {self.model} ({self.dim} dimensions), "
                f"but the settings ask for {embedder.name} ({embedder.dim} dimensions): {REBUILD_HINT}."
            )
        if self.chunking != settings.chunking():
            raise IndexMismatchError(
                f"the index at {where} was built with chunking {self.chunking}, "
                f"but the settings ask for {settings.chunking()}: {REBUILD_HINT}."
            )


# --------------------------------------------------------------------------- what a build changes


@contextmanager
def build_lock(root: Path, wait: bool = False) -> Iterator[None]:
    """Hold the index's build lock; a second build refuses (or waits with ``wait=True``).

    flock is released by the kernel when the process dies, even by kill -9,
    so a killed build never leaves a stale lock behind.
    """
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            raise IndexBusyError(
                f"another build is running on {root} (pid {holder}); wait for it to finish, or pass --wait."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the lock


@dataclass
class Plan:
    """What a build has to do, worked out from the corpus listing and the old manifest."""

    to_embed: dict[str, list[str]] = field(default_factory=dict)  # file rel -> doc ids (added or changed)
    unchanged: set[str] = field(default_factory=set)
    added: set[str] = field(default_factory=set)
    changed: set[str] = field(default_factory=set)
    removed: set[str] = field(default_factory=set)
    kept: dict[str, DocEntry] = field(default_factory=dict)  # unchanged documents' old entries
    files: dict[str, FileEntry] = field(default_factory=dict)
    sources: dict[str, SourceFile] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # about documents indexed anyway (a page without text)
    stats_changed: bool = False

    @property
    def changes(self) -> bool:
        return bool(self.added or self.changed or self.removed)


@dataclass(frozen=True)
class BuildRequest:
    """What ``build.build_index`` hands a store's build: the corpus as listed, what to build it with, whom to tell.

    The corpus is listed before any lock is taken or model loaded, so that a missing or empty corpus fails at once.
    """

    corpus: Path
    files: list[SourceFile]
    listing: list[str]  # what listing skipped (also given to warn)
    settings: Settings
    embedder: Embedder | None  # None: the one settings.model names, loaded once the lock is held
    full: bool
    wait: bool
    warn: Callable[[str], None]
    on_progress: Callable[[int, int], None] | None
    started: float  # time.perf_counter() when the build was asked for


def list_corpus(corpus: Path, warn: Callable[[str], None]) -> tuple[list[SourceFile], list[str]]:
    """The corpus's files, and what was skipped while listing it (each also given to ``warn``).

    Raises:
        CorpusError: the corpus is missing or holds no supported file (before any lock or model).
    """
    listing: list[str] = []

    def skip(msg: str) -> None:
        warn(msg)
        listing.append(msg)

    files = list_files(corpus, warn=skip)
    if not files:
        raise CorpusError(f"corpus {corpus} holds no {SUPPORTED} file: add documents and build again.")
    return files, listing


def documents_to_embed(plan: Plan) -> Iterator[Document]:
    """The plan's added and changed documents, read again from their files in the plan's order."""
    for rel, wanted_ids in plan.to_embed.items():
        wanted = set(wanted_ids)
        for item in read_documents(plan.sources[rel]):
            if not isinstance(item, Notice) and item.doc_id in wanted:
                yield item


def plan_build(files: list[SourceFile], listing: list[str], old: Manifest | None, corpus: Path,
               warn: Callable[[str], None]) -> tuple[Plan, int]:
    """``plan_changes``, the listing's skips first, and how many readable documents the corpus holds.

    Raises:
        CorpusError: no file could be read.
    """
    plan = plan_changes(files, old, warn)
    plan.skipped[:0] = listing
    documents = len(plan.unchanged) + len(plan.added) + len(plan.changed)
    if documents == 0:
        raise CorpusError(
            f"corpus {corpus} holds no readable document ({len(plan.skipped)} file(s) skipped): "
            f"add {SUPPORTED} files with text and build again."
        )
    return plan, documents


def plan_changes(files: list[SourceFile], old: Manifest | None, warn: Callable[[str], None]) -> Plan:
    plan = Plan()
    old_docs = old.documents if old else {}
    seen: set[str] = set()
    for source in files:
        plan.sources[source.rel] = source
        prev = old.files.get(source.rel) if old else None
        if prev is not None and prev.size == source.size and prev.mtime_ns == source.mtime_ns:
            # same size and modification time as last build: trust it, as git and make do
            for doc_id in prev.docs:
                plan.unchanged.add(doc_id)
                plan.kept[doc_id] = old_docs[doc_id]
            plan.files[source.rel] = prev
            seen.update(prev.docs)
            continue
        plan.stats_changed = True
        try:
            doc_ids: list[str] = []
            for item in read_documents(source):
                if isinstance(item, Notice):
                    warn(item.text)
                    (plan.skipped if item.skipped else plan.warnings).append(item.text)
                    continue
                if item.doc_id in seen:
                    msg = f"{source.rel}: document id {item.doc_id!r} is used twice in the corpus; the later one is skipped."
                    warn(msg)
                    plan.skipped.append(msg)
                    continue
                seen.add(item.doc_id)
                doc_ids.append(item.doc_id)
                before = old_docs.get(item.doc_id)
                if before is not None and before.content_hash == item.content_hash:
                    plan.unchanged.add(item.doc_id)
                    plan.kept[item.doc_id] = before
                else:
                    (plan.changed if before is not None else plan.added).add(item.doc_id)
                    plan.to_embed.setdefault(source.rel, []).append(item.doc_id)
        except DocumentError as exc:
            plan.skipped.append(str(exc))
            if prev is not None:
                # the file was indexed before and is unreadable now: keep what was indexed
                warn(f"{exc} The previously indexed version is kept.")
                for doc_id in prev.docs:
                    plan.unchanged.add(doc_id)
                    plan.kept[doc_id] = old_docs[doc_id]
                plan.files[source.rel] = prev
                seen.update(prev.docs)
            else:
                warn(str(exc))
            continue
        plan.files[source.rel] = FileEntry(source.size, source.mtime_ns, tuple(doc_ids))
    plan.removed = set(old_docs) - seen
    if old and set(old.files) - set(plan.files):
        plan.stats_changed = True
    return plan


def build_report(plan: Plan, documents: int, chunks: int, embedded: int, started: float, full: bool, repairs: Sequence[str] = ()) -> BuildReport:
    return BuildReport(
        added=len(plan.added),
        changed=len(plan.changed),
        removed=len(plan.removed),
        unchanged=len(plan.unchanged),
        skipped=tuple(plan.skipped),
        warnings=tuple(plan.warnings),
        documents=documents,
        chunks=chunks,
        chunks_embedded=embedded,
        seconds=time.perf_counter() - started,
        full=full,
        repaired=tuple(repairs),
    )
