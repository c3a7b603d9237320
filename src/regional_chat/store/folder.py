"""The embedded store: FAISS vectors, a SQLite chunk store, bm25s and a manifest in an index folder.

Layout of an index folder::

    index/
      CURRENT             # the name of the live generation, replaced atomically
      .lock               # held (flock) by the one build that may run at a time
      gen-000007/         # one complete, never-modified generation
        manifest.json     # format, model, dimension, chunking, a hash of every document
        vectors.faiss     # the vectors, ids = chunk ids: exact (flat) or IVF (see index_kinds.py)
        store.sqlite      # documents and chunks, readable with any SQLite client
        lexical/          # the BM25 index over the same chunks
        sentences/        # the encoder's vectors of every sentence and English word (sentences.py;
                          #   multilingual encoders, for Russian and Kazakh questions)

A build writes a new generation in a temporary folder beside the live one
and switches ``CURRENT`` to it only when everything is on disk, so killing a
build at any moment leaves the previous generation live and intact.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import sys
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from ..chunking import Chunker
from ..documents import sha256_file
from ..embedding import Embedder, make_embedder
from .. import index_kinds
from ..settings import Settings
from ..facets import context_header, headed, lexical_header
from ..types import BuildReport, Chunk, Document, IndexInfo
from .catalogue import Catalogue
from .sentences import (
    SENTENCES, SentenceVectors, is_current, load_sentence_vectors, reads_across, sentence_counts, write_sentence_vectors,
)
from .manifest import (
    REPAIR_COMMAND, REPAIR_HINT, DocEntry, IndexCorruptError, IndexNotFoundError, IndexStateError, Manifest, Plan, build_lock,
    BuildRequest, build_report, documents_to_embed, plan_build, reason_of,
)

CURRENT = "CURRENT"
MANIFEST = "manifest.json"
VECTORS = "vectors.faiss"
STORE = "store.sqlite"
LEXICAL = "lexical"


log = logging.getLogger(__name__)
_faiss = index_kinds._faiss  # one place that imports faiss lazily, with the install hint


# --------------------------------------------------------------------------- chunk store


_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    doc_id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    metadata TEXT NOT NULL,          -- JSON object
    content_hash TEXT NOT NULL,
    text TEXT NOT NULL,
    pages TEXT NOT NULL DEFAULT '[]' -- JSON list: the character offset where each page starts (PDF)
);
CREATE TABLE IF NOT EXISTS chunks (
    chunk_id INTEGER PRIMARY KEY,    -- the FAISS id
    doc_id TEXT NOT NULL REFERENCES documents(doc_id),
    seq INTEGER NOT NULL,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    text TEXT NOT NULL               -- documents.text[start:end]
);
CREATE INDEX IF NOT EXISTS chunks_by_doc ON chunks(doc_id, seq);
"""


class ChunkStore:
    """The SQLite chunk store. Readers share one connection behind a lock."""

    def __init__(self, path: Path, *, readonly: bool) -> None:
        self.path = path
        if readonly:
            uri = f"file:{path}?mode=ro&immutable=1"  # a generation is never modified once live
            self._db = sqlite3.connect(uri, uri=True, check_same_thread=False)
        else:
            self._db = sqlite3.connect(path, check_same_thread=False)
            self._db.executescript(_SCHEMA)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(documents)")}
            if "pages" not in columns:  # a store copied from a generation written before pages were kept
                self._db.execute("ALTER TABLE documents ADD COLUMN pages TEXT NOT NULL DEFAULT '[]'")
            self._db.execute("PRAGMA journal_mode=OFF")  # the whole generation is thrown away on failure
            self._db.execute("PRAGMA synchronous=OFF")
        self._lock = threading.Lock()
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(documents)")}
        self._pages_column = "pages" if "pages" in columns else "'[]'"  # generations written before pages were kept

    def close(self) -> None:
        self._db.close()

    def add_document(self, doc: Document) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO documents (doc_id, title, metadata, content_hash, text, pages) VALUES (?, ?, ?, ?, ?, ?)",
            (doc.doc_id, doc.title, json.dumps(dict(doc.metadata), ensure_ascii=False), doc.content_hash, doc.text, json.dumps(list(doc.pages))),
        )

    def add_chunks(self, chunks: Sequence[Chunk]) -> None:
        self._db.executemany(
            "INSERT OR REPLACE INTO chunks VALUES (?, ?, ?, ?, ?, ?)",
            [(c.chunk_id, c.doc_id, c.seq, c.start, c.end, c.text) for c in chunks],
        )

    def remove_documents(self, doc_ids: Sequence[str]) -> np.ndarray:
        """Delete documents and their chunks; returns the deleted chunk ids."""
        removed: list[int] = []
        for doc_id in doc_ids:
            removed.extend(r[0] for r in self._db.execute("SELECT chunk_id FROM chunks WHERE doc_id = ?", (doc_id,)))
            self._db.execute("DELETE FROM chunks WHERE doc_id = ?", (doc_id,))
            self._db.execute("DELETE FROM documents WHERE doc_id = ?", (doc_id,))
        return np.array(removed, dtype=np.int64)

    def commit(self) -> None:
        self._db.commit()

    def count_chunks(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0])

    def chunks(self, ids: Sequence[int]) -> list[Chunk | None]:
        if not len(ids):
            return []
        wanted = [int(i) for i in ids]
        found: dict[int, Chunk] = {}
        with self._lock:
            for start in range(0, len(wanted), 500):
                part = wanted[start : start + 500]
                marks = ",".join("?" * len(part))
                for row in self._db.execute(f"SELECT chunk_id, doc_id, seq, start, end, text FROM chunks WHERE chunk_id IN ({marks})", part):
                    found[row[0]] = Chunk(*row)
        return [found.get(i) for i in wanted]

    def chunk_ids(self) -> np.ndarray:
        with self._lock:
            rows = self._db.execute("SELECT chunk_id FROM chunks ORDER BY chunk_id").fetchall()
        return np.array([r[0] for r in rows], dtype=np.int64)

    def iter_chunks(self, batch: int = 5000) -> Iterator[Chunk]:
        """Every chunk, ordered by id, read in batches so memory stays flat."""
        last = -1
        while True:
            with self._lock:
                rows = self._db.execute(
                    "SELECT chunk_id, doc_id, seq, start, end, text FROM chunks WHERE chunk_id > ? ORDER BY chunk_id LIMIT ?",
                    (last, batch),
                ).fetchall()
            if not rows:
                return
            for row in rows:
                yield Chunk(*row)
            last = rows[-1][0]

    def document(self, doc_id: str) -> Document | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT doc_id, text, title, content_hash, metadata, {self._pages_column} FROM documents WHERE doc_id = ?", (doc_id,)
            ).fetchone()
        if row is None:
            return None
        return Document(doc_id=row[0], text=row[1], title=row[2], content_hash=row[3], metadata=json.loads(row[4]), pages=tuple(json.loads(row[5])))

    def iter_document_metadata(self) -> Iterator[tuple[str, str, dict[str, str]]]:
        """(doc_id, title, metadata) of every document, ordered by id."""
        with self._lock:
            rows = self._db.execute("SELECT doc_id, title, metadata FROM documents ORDER BY doc_id").fetchall()
        for doc_id, title, metadata in rows:
            yield doc_id, title, json.loads(metadata)

    def chunk_ids_of(self, doc_ids: Sequence[str]) -> np.ndarray:
        """The chunk ids of these documents, sorted."""
        found: list[int] = []
        with self._lock:
            for start in range(0, len(doc_ids), 500):
                part = list(doc_ids[start : start + 500])
                marks = ",".join("?" * len(part))
                found.extend(r[0] for r in self._db.execute(f"SELECT chunk_id FROM chunks WHERE doc_id IN ({marks})", part))
        return np.array(sorted(found), dtype=np.int64)

    def doc_chunks(self, doc_id: str) -> list[Chunk]:
        with self._lock:
            rows = self._db.execute(
                "SELECT chunk_id, doc_id, seq, start, end, text FROM chunks WHERE doc_id = ? ORDER BY seq", (doc_id,)
            ).fetchall()
        return [Chunk(*r) for r in rows]


# --------------------------------------------------------------------------- the loaded index


class Index:
    """One loaded, read-only index generation.

    Use :func:`load_index` to get one. Searching is thread-safe.
    """

    def __init__(self, root: Path, path: Path, manifest: Manifest, vectors: Any, store: ChunkStore) -> None:
        self.root = root  # the index folder (holds CURRENT)
        self.path = path  # this generation's folder
        self.manifest = manifest
        self._vectors = vectors
        self.store = store
        self._lexical = None
        self._lexical_lock = threading.Lock()
        self._catalogue: "Catalogue | None" = None  # the documents' facets, read on the first filtered question
        self._sentences: SentenceVectors | None | bool = False  # False: not read yet

    @property
    def generation(self) -> str:
        return self.path.name

    def __len__(self) -> int:
        return int(self._vectors.ntotal)

    def search(self, vectors: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[list[tuple[int, float]]]:
        """Per query vector, the ``k`` nearest chunks as (chunk_id, cosine), best first.

        ``allowed`` (chunk ids) restricts the search to those chunks inside FAISS (an
        ``IDSelector``), so a filter never leaves fewer than ``k`` hits while more
        allowed chunks exist (on IVF kinds, four times the cells are probed).
        """
        queries = np.ascontiguousarray(np.atleast_2d(vectors), dtype=np.float32)
        k = max(1, min(k, len(self)))
        if allowed is None:
            scores, ids = self._vectors.search(queries, k)
        elif not len(allowed):
            return [[] for _ in queries]
        else:
            faiss = _faiss()
            selector = faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64))
            if hasattr(self._vectors, "nprobe"):
                params = faiss.SearchParametersIVF(sel=selector, nprobe=min(int(self._vectors.nlist), 4 * int(self._vectors.nprobe)))
            else:
                params = faiss.SearchParameters(sel=selector)
            scores, ids = self._vectors.search(queries, min(k, len(allowed)), params=params)
        # ties are broken by id, so equal scores do not come back in insertion order
        # (which differs between an incremental and a full build)
        return [
            sorted(((int(i), float(s)) for i, s in zip(row_ids, row_scores) if i != -1), key=lambda p: (-p[1], p[0]))
            for row_ids, row_scores in zip(ids, scores)
        ]

    @property
    def catalogue(self) -> "Catalogue":
        """Every document's facets (country, date, source), read from the store once per generation."""
        if self._catalogue is None:
            with self._lexical_lock:
                if self._catalogue is None:
                    self._catalogue = Catalogue(self.store)
        return self._catalogue

    @property
    def sentence_vectors(self) -> SentenceVectors | None:
        """The encoder's vectors of the index's sentences and English words (read on first use), or None.

        None when the generation has none (an English-only encoder, ``Settings.sentence_vectors``
        off) or when they cannot be used: answers are then the same, embedding what they need
        per question; ``regional-chat check`` names a damaged file and the next build rewrites it.
        """
        if self._sentences is False:
            with self._lexical_lock:
                if self._sentences is False:
                    try:
                        self._sentences = load_sentence_vectors(self.path, self.manifest.model, self.manifest.dim)
                    except ValueError as exc:
                        log.warning("%s: cross-lingual questions embed their sentences per question", exc)
                        self._sentences = None
        return self._sentences  # type: ignore[return-value]

    def chunks(self, ids: Sequence[int]) -> list[Chunk]:
        """The chunks with these ids, in the same order (ids not in the index are left out)."""
        return [c for c in self.store.chunks(ids) if c is not None]

    def iter_chunks(self) -> Iterator[Chunk]:
        return self.store.iter_chunks()

    def document(self, doc_id: str) -> Document:
        doc = self.store.document(doc_id)
        if doc is None:
            raise KeyError(f"no document {doc_id!r} in the index")
        return doc

    def doc_ids(self) -> list[str]:
        return sorted(self.manifest.documents)

    @property
    def lexical(self):
        """The BM25 index over the same chunks (loaded on first use)."""
        if self._lexical is None:
            with self._lexical_lock:
                if self._lexical is None:
                    from ..retrieval import LexicalIndex

                    folder = self.path / LEXICAL
                    if not folder.is_dir():
                        raise IndexCorruptError(f"the BM25 index {folder} is missing: {REPAIR_HINT}.")
                    try:
                        self._lexical = LexicalIndex.load(folder)
                    except Exception as exc:  # bm25s and numpy raise ValueError, OSError, EOFError, KeyError...
                        raise IndexCorruptError(
                            f"the BM25 index in {folder} is damaged ({reason_of(exc)}): {REPAIR_HINT}."
                        ) from exc
        return self._lexical

    def info(self) -> IndexInfo:
        size = sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file())
        m = self.manifest
        number = _generation_number(self.path.name)  # a generation's: load_folder opened it through current_generation
        return IndexInfo(str(self.path), "folder", number, len(m.documents), m.chunks, m.model, m.dim, dict(m.chunking),
                         m.built_at, m.corpus, m.index_kind, dict(m.index_params), size, sentence_counts(self.path))

    def close(self) -> None:
        self.store.close()


def current_generation(root: Path) -> Path | None:
    """The live generation folder of the index at ``root``, or None when there is none yet."""
    pointer = root / CURRENT
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise IndexCorruptError(f"{pointer} cannot be read ({exc}): {REPAIR_HINT}.") from exc
    if _generation_number(name) is None:  # builds only ever write gen-NNNNNN there
        raise IndexCorruptError(f"{pointer} does not name a generation ({name!r}): {REPAIR_HINT}.")
    path = root / name
    if not path.is_dir():
        raise IndexCorruptError(f"{pointer} names {name}, which is missing: {REPAIR_HINT}.")
    return path


def load_folder(index_dir: str | Path, settings: Settings | None = None, embedder: Embedder | None = None) -> Index:
    """Open the live generation of the index folder at ``index_dir`` (``store.load_index`` for a folder)."""
    root = Path(index_dir)
    path = current_generation(root)
    if path is None:
        raise IndexNotFoundError(f"no index at {root}: run `regional-chat build` first.")
    manifest = Manifest.read(path / MANIFEST)
    if settings is not None or embedder is not None:
        settings = settings or Settings()
        manifest.check_compatible(embedder or make_embedder(settings), settings, root)
    vectors = _read_vectors(path / VECTORS)
    store_path = path / STORE
    if not store_path.is_file():
        raise IndexCorruptError(f"the chunk store {store_path} is missing: {REPAIR_HINT}.")
    try:
        store = ChunkStore(store_path, readonly=True)
        stored = store.count_chunks()
    except sqlite3.DatabaseError as exc:
        raise IndexCorruptError(f"the chunk store {store_path} is damaged ({exc}): {REPAIR_HINT}.") from exc
    if index_kinds.kind_of(vectors) != manifest.index_kind:
        raise IndexCorruptError(
            f"{path / VECTORS} is a {index_kinds.kind_of(vectors)} index but the manifest says {manifest.index_kind}: {REPAIR_HINT}."
        )
    if stored != vectors.ntotal or stored != manifest.chunks or vectors.d != manifest.dim:
        store.close()
        raise IndexCorruptError(
            f"the index at {root} is inconsistent ({vectors.ntotal} vectors, {stored} stored chunks, "
            f"manifest says {manifest.chunks}): {REPAIR_HINT}."
        )
    return Index(root, path, manifest, vectors, store)


def _read_vectors(path: Path) -> Any:
    faiss = _faiss()
    if not path.is_file():
        raise IndexCorruptError(f"the vectors file {path} is missing: {REPAIR_HINT}.")
    try:
        return faiss.read_index(str(path))
    except RuntimeError as exc:
        raise IndexCorruptError(f"the vectors file {path} is damaged ({reason_of(exc)}): {REPAIR_HINT}.") from exc


# --------------------------------------------------------------------------- checksums


PARTS = {VECTORS: "vectors", STORE: "store"}  # any other file belongs to the lexical index or the sentence vectors


def _part_of(rel: str) -> str:
    if rel.startswith(SENTENCES + "/"):
        return "sentences"  # a cache of the encoder's vectors: the next build writes it again from the chunks
    return PARTS.get(rel, "lexical" if rel.startswith(LEXICAL + "/") else "other")


def file_checksums(folder: Path) -> dict[str, str]:
    """SHA-256 of every file of a generation folder but its manifest, by path relative to it."""
    return {
        f.relative_to(folder).as_posix(): sha256_file(f)
        for f in sorted(folder.rglob("*"))
        if f.is_file() and f.relative_to(folder).as_posix() != MANIFEST
    }


@dataclass(frozen=True)
class Damage:
    """One file of a generation that is not as its manifest recorded it."""

    path: Path
    part: str  # "manifest", "vectors", "store", "lexical", "sentences", "other", or "unverified" (no checksums recorded)
    problem: str

    def line(self) -> str:
        return f"{self.path}: {self.problem}"


def verify_generation(path: Path) -> list[Damage]:
    """Every file of the generation at ``path`` checked, byte for byte, against its manifest's SHA-256.

    Returns:
        What is damaged (empty when every file is intact). A generation written
        before checksums were recorded gives one ``unverified`` entry.
    """
    try:
        manifest = Manifest.read(path / MANIFEST)
    except IndexStateError as exc:
        return [Damage(path / MANIFEST, "manifest", str(exc))]
    return verify_files(path, manifest)


def verify_files(path: Path, manifest: Manifest) -> list[Damage]:
    """The files of the generation at ``path`` checked against ``manifest``'s checksums (see verify_generation)."""
    if not manifest.checksums:
        return [Damage(path / MANIFEST, "unverified", "records no checksums (written by an earlier version)")]
    damage = []
    for rel, expected in sorted(manifest.checksums.items()):
        file = path / rel
        if not file.is_file():
            damage.append(Damage(file, _part_of(rel), "missing"))
            continue
        try:
            actual = sha256_file(file)
        except OSError as exc:
            damage.append(Damage(file, _part_of(rel), f"cannot be read ({exc.strerror})"))
            continue
        if actual != expected:
            damage.append(Damage(file, _part_of(rel), f"altered: its SHA-256 is {actual[:12]}…, the manifest recorded {expected[:12]}…"))
    if manifest.index_kind in index_kinds.EXACT_STORAGE and VECTORS in manifest.checksums and not any(d.part == "vectors" for d in damage):
        damage += _vector_damage(path / VECTORS)
    return damage


# A vector no embedder wrote: every Embedder gives L2-normalised rows (embedding.unit_rows; zero for a text with no
# words), so a row off unit length by more than this is not what was embedded. Loose enough for indexes built before
# unit_rows normalised bfloat16 output again (norms 1 +- 0.002).
UNIT_TOLERANCE = 0.01


def off_unit_rows(vectors: np.ndarray, block: int = 65536) -> np.ndarray:
    """Positions of the rows that are not finite, or neither of unit length nor zero (in blocks: no full-size temporary)."""
    bad = []
    for lo in range(0, len(vectors), block):
        part = np.asarray(vectors[lo : lo + block], dtype=np.float64)
        norms = np.sqrt(np.einsum("ij,ij->i", part, part))
        ok = np.isfinite(norms) & ((np.abs(norms - 1.0) <= UNIT_TOLERANCE) | (norms == 0.0))
        bad.append(np.flatnonzero(~ok) + lo)
    return np.concatenate(bad) if bad else np.zeros(0, dtype=np.int64)


def _vector_damage(file: Path) -> list[Damage]:
    """The vectors of an exact-kind file that no embedder wrote, as damage.

    Such a file can match its checksum: before 3a327ed, a repair of a lost chunk store copied the reused
    vectors from memory FAISS had freed, and recorded the checksum of what it wrote.
    """
    try:
        ids, vectors = index_kinds.exact_vectors(_read_vectors(file))
    except (IndexCorruptError, ValueError) as exc:
        return [Damage(file, "vectors", str(exc))]
    bad = off_unit_rows(vectors)
    if not len(bad):
        return []
    return [Damage(file, "vectors", f"{len(bad)} of {len(ids)} vectors are not of unit length (chunk id {int(ids[bad[0]])} the first): "
                                    "no embedder wrote them")]


@dataclass(frozen=True)
class CheckReport:
    """What ``regional-chat check`` found."""

    path: Path  # the live generation
    files: int  # files checked
    bytes: int
    damage: tuple[Damage, ...]

    @property
    def ok(self) -> bool:
        return not self.damage

    def lines(self) -> list[str]:
        if self.ok:
            return [f"ok: {self.files} files, {self.bytes / 1e6:.1f} MB of {self.path} match their SHA-256 checksums."]
        return [f"damaged: {d.line()}" for d in self.damage] + [f"The index at {self.path.parent} is damaged: {REPAIR_COMMAND}."]


def check_index(index_dir: str | Path = "index") -> CheckReport:
    """Verify every byte of the live generation at ``index_dir`` against its manifest.

    Raises:
        IndexNotFoundError: nothing has been built there yet.
        IndexCorruptError: ``CURRENT`` is unreadable or names a missing generation.
    """
    root = Path(index_dir)
    path = current_generation(root)
    if path is None:
        raise IndexNotFoundError(f"no index at {root}: run `regional-chat build` first.")
    damage = verify_generation(path)
    files = [f for f in path.rglob("*") if f.is_file()]
    return CheckReport(path, len(files), sum(f.stat().st_size for f in files), tuple(damage))


# --------------------------------------------------------------------------- building


def _new_flat_index(dim: int) -> Any:
    return index_kinds.new_flat(dim)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(path: Path) -> None:
    for f in path.rglob("*"):
        if f.is_file():
            with open(f, "rb") as handle:
                os.fsync(handle.fileno())
    _fsync_dir(path)


def _generation_number(name: str) -> int | None:
    """6 for "gen-000006"; None for a name that is not a generation's."""
    digits = name.removeprefix("gen-")
    return int(digits) if digits != name and digits.isdigit() else None


def _next_generation_name(root: Path) -> str:
    numbers = [n for n in (_generation_number(p.name) for p in root.glob("gen-*")) if n is not None]
    return f"gen-{max(numbers, default=0) + 1:06d}"


def _progress(total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="doc", desc="embedding", file=sys.stderr, dynamic_ncols=True)


def build_folder(request: BuildRequest, root: Path, *, progress: bool = False) -> BuildReport:
    """Bring the index folder ``root`` up to date with the request's corpus (``build.build_index`` for a folder)."""
    corpus, settings, warn, on_progress, full = request.corpus, request.settings, request.warn, request.on_progress, request.full
    with build_lock(root, wait=request.wait):
        _remove_stale(root)
        embedder = request.embedder or make_embedder(settings)
        old_path, old, reuse, repairs, damaged = (None, None, None, [], set()) if full else _live_state(root, embedder, warn)
        force = bool(repairs)  # a damaged part is rewritten even when the corpus has not changed
        full = full or (old is None and bool(repairs))
        if old is not None and _only_context_differs(old.chunking, settings.chunking()):
            warn(
                f"the index was built with context {old.chunking.get('context', 'none')!r} and the settings ask for "
                f"{settings.chunking()['context']!r}: every document is embedded again."
            )
            old_path, old, full = None, None, True
        if old is not None:
            old.check_compatible(embedder, settings, root)
            target = index_kinds.choose_kind(old.chunks, old.dim, settings, old.index_kind)
            if settings.index_kind != "auto" and target != old.index_kind and old.index_kind not in index_kinds.EXACT_STORAGE:
                warn(
                    f"the index holds {old.index_kind} (compressed) vectors and the settings ask for {target}: "
                    "every document is embedded again."
                )
                old_path, old, full = None, None, True
        plan, documents = plan_build(request.files, request.listing, old, corpus, warn)
        kind_changes = old is not None and index_kinds.choose_kind(old.chunks, old.dim, settings, old.index_kind) != old.index_kind
        # an index from before sentence vectors gets them once, without embedding its chunks again
        force = force or (old_path is not None and _wants_sentences(settings, embedder) and not is_current(old_path, embedder.name, embedder.dim))
        if old is not None and not plan.changes and not plan.stats_changed and not kind_changes and not force:
            return build_report(plan, documents, old.chunks, 0, request.started, full)
        tmp = root / f".tmp-{uuid.uuid4().hex[:12]}"
        tmp.mkdir()
        try:
            chunks_total, embedded = _write_generation(
                tmp, old_path, old, plan, corpus, settings, embedder, progress, on_progress, reuse,
                # its table was checked with the rest of the generation (_live_state): reused unless damaged
                old_sentences=old_path / SENTENCES if old_path is not None and not damaged & {"sentences", "unverified"} else None,
            )
            _fsync_tree(tmp)
            name = _next_generation_name(root)
            os.rename(tmp, root / name)
            _fsync_dir(root)
            _point_current(root, name)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        # a damaged generation is not kept as the one before: nothing should open it again
        _drop_old_generations(root, keep={name, old_path.name if old_path and not repairs else ""})
        return build_report(plan, documents, chunks_total, embedded, request.started, full, repairs)


def _only_context_differs(built: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """True when two chunking records differ in the context header only (an index from before headers counts)."""
    rest = lambda d: {k: v for k, v in d.items() if k != "context"}  # noqa: E731
    return rest(built) == rest(wanted) and built.get("context", "none") != wanted.get("context")


def _live_state(root: Path, embedder: Embedder, warn: Callable[[str], None]) -> tuple[Path | None, Manifest | None, dict[int, np.ndarray] | None, list[str], set[str]]:
    """The live generation a build starts from, checked byte for byte: (path, manifest, reusable vectors, repairs,
    the parts found damaged or unverified: what a build must not copy from it).

    What is damaged decides what is rebuilt, and nothing more:

    * the BM25 files, or no checksums recorded (an index from an earlier
      version that still loads): a new generation from the old one; the BM25
      index is always rebuilt from the chunk store;
    * the chunk store: every document is read and chunked again from the
      corpus, and the vectors of the chunks that are unchanged are taken from
      the intact vectors file instead of being embedded again (exact kinds;
      compressed kinds cannot give them back and are embedded again);
    * the vectors file, the manifest or the ``CURRENT`` pointer: everything is
      embedded again, since nothing says which vectors can be trusted;
    * the sentence vectors: embedded again from the chunks (not copied).

    Each repair is a line of the build report and a warning.
    """
    try:
        path = current_generation(root)
    except IndexCorruptError as exc:
        warn(f"{exc}; rebuilding the index from the corpus.")
        return None, None, None, [f"{root / CURRENT}: unusable; the index was rebuilt from the corpus"], set()
    if path is None:
        return None, None, None, [], set()
    try:
        manifest = Manifest.read(path / MANIFEST)  # read once: it holds a hash per document and can be large
    except IndexStateError as exc:
        line = f"{path / MANIFEST}: {exc}"
        warn(f"{line}.")
        return None, None, None, [f"{line}; the index was rebuilt from the corpus"], set()
    damage = verify_files(path, manifest)
    parts = {d.part for d in damage}
    if not damage:
        return path, manifest, None, [], set()
    if parts == {"unverified"}:
        try:  # the structural checks load_index makes, and the BM25 files
            probe = load_folder(root)
            try:
                probe.lexical  # noqa: B018 - loads (and so checks) the BM25 files
            finally:
                probe.close()
        except IndexStateError as exc:
            warn(f"{exc}; rebuilding the index from the corpus.")
            return None, None, None, [f"{path}: unusable ({exc}); the index was rebuilt from the corpus"], set()
        return path, manifest, None, [f"{path / MANIFEST}: recorded no checksums; they are recorded now"], parts
    lines = [d.line() for d in damage]
    for line in lines:
        warn(f"{line}.")
    if parts & {"vectors", "other"}:
        return None, None, None, [f"{line}; the index was rebuilt from the corpus" for line in lines], parts
    if "store" in parts:
        reuse = None
        if manifest.index_kind in index_kinds.EXACT_STORAGE and manifest.dim == embedder.dim and manifest.model == embedder.name:
            ids, vectors = index_kinds.exact_vectors(_read_vectors(path / VECTORS))
            reuse = {int(i): np.array(v) for i, v in zip(ids, vectors)}
        return None, None, reuse, [f"{line}; the documents were read again from the corpus" for line in lines], parts
    return path, manifest, None, [f"{line}; it was rebuilt" for line in lines], parts


def _remove_stale(root: Path) -> None:
    """Delete what killed builds left: ``.tmp-*`` generation folders and ``.tmp-CURRENT-<pid>`` pointer files.

    Called with the build lock held, so no other build is writing them.
    """
    for stale in root.glob(".tmp-*"):
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)


def _write_generation(
    tmp: Path,
    old_path: Path | None,
    old: Manifest | None,
    plan: Plan,
    corpus: Path,
    settings: Settings,
    embedder: Embedder,
    progress: bool,
    on_progress: Callable[[int, int], None] | None,
    reuse: dict[int, np.ndarray] | None = None,
    old_sentences: Path | None = None,
) -> tuple[int, int]:
    """Write a complete generation into ``tmp``; returns (chunks in it, chunks embedded).

    ``reuse`` maps chunk ids to vectors already computed (from an intact vectors
    file whose chunk store was lost): those chunks are not embedded again.
    ``old_sentences``: an intact sentence-vector table whose rows are copied, not embedded again.
    """
    faiss = _faiss()
    if old_path is not None:
        shutil.copyfile(old_path / STORE, tmp / STORE)
        vectors = _read_vectors(old_path / VECTORS)
    else:
        vectors = _new_flat_index(embedder.dim)
    store = ChunkStore(tmp / STORE, readonly=False)
    try:
        gone = store.remove_documents(sorted(plan.removed | plan.changed))
        if len(gone):
            vectors.remove_ids(faiss.IDSelectorBatch(gone))

        chunker = Chunker(settings.chunk_tokens, settings.chunk_overlap, embedder.count_tokens, embedder.max_tokens)
        entries: dict[str, DocEntry] = dict(plan.kept)
        total_docs = sum(len(v) for v in plan.to_embed.values())
        bar = _progress(total_docs, progress)
        buffer: list[Chunk] = []
        headers: dict[str, str] = {}  # doc_id -> context header, for the documents in the buffer
        embedded = 0
        done_docs = 0

        def flush() -> None:
            nonlocal embedded
            if not buffer:
                return
            known = reuse or {}
            fresh = [c for c in buffer if c.chunk_id not in known]
            new = iter(embedder.embed_passages([headed(headers.get(c.doc_id, ""), c.text) for c in fresh]) if fresh else ())
            vecs = np.array([known[c.chunk_id] if c.chunk_id in known else next(new) for c in buffer], dtype=np.float32)
            vectors.add_with_ids(vecs, np.array([c.chunk_id for c in buffer], dtype=np.int64))
            store.add_chunks(buffer)
            embedded += len(fresh)
            buffer.clear()
            headers.clear()

        for item in documents_to_embed(plan):
            chunks = chunker.chunks(item)
            if settings.context_headers:
                headers[item.doc_id] = context_header(item.metadata)
            store.add_document(item)
            buffer.extend(chunks)
            entries[item.doc_id] = DocEntry(item.content_hash, len(chunks))
            done_docs += 1
            if bar is not None:
                bar.update(1)
            if on_progress is not None:
                on_progress(done_docs, total_docs)
            if len(buffer) >= settings.embed_buffer:
                flush()
        flush()
        if bar is not None:
            bar.close()
        store.commit()
        stored = store.count_chunks()
        if stored != vectors.ntotal:
            raise IndexCorruptError(f"internal error: {vectors.ntotal} vectors but {stored} chunks stored")
        vectors, kind, kind_params = _settle_kind(vectors, old, embedder.dim, settings)
        _build_lexical(store, tmp / LEXICAL, settings.context_headers)
        if _wants_sentences(settings, embedder):
            write_sentence_vectors(
                tmp / SENTENCES, ((store.document(d), store.doc_chunks(d)) for d, _, _ in store.iter_document_metadata()), embedder,
                old=old_sentences,
                progress=progress,
            )
    finally:
        store.close()
    faiss.write_index(vectors, str(tmp / VECTORS))
    checksums = file_checksums(tmp)  # read back from disk: what a later check compares against
    manifest = Manifest(
        model=embedder.name,
        dim=embedder.dim,
        chunking=settings.chunking(),
        documents=dict(sorted(entries.items())),
        files=dict(sorted(plan.files.items())),
        chunks=int(vectors.ntotal),
        built_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        corpus=str(corpus.resolve()),
        index_kind=kind,
        index_params=kind_params,
        checksums=checksums,
    )
    (tmp / MANIFEST).write_text(manifest.to_json(), encoding="utf-8")
    return int(vectors.ntotal), embedded


def _wants_sentences(settings: Settings, embedder: Embedder) -> bool:
    """Whether a build stores the sentence vectors: asked for, and the encoder reads scripts the reader does not."""
    return settings.sentence_vectors and reads_across(embedder)


def _settle_kind(vectors: Any, old: Manifest | None, dim: int, settings: Settings) -> tuple[Any, str, dict[str, Any]]:
    """Move the vectors into the kind of index their number calls for; returns (index, kind, manifest params).

    New vectors are always added to the index they find (a fresh build starts
    flat), and only at the end is the kind chosen from the final count: the
    IVF cells are then trained on all the vectors of the corpus, not on
    whatever came first.
    """
    current = index_kinds.kind_of(vectors)
    n = int(vectors.ntotal)
    kind = index_kinds.choose_kind(n, dim, settings, current)
    params: dict[str, Any] = {}
    trained = False
    if kind != current:
        vectors = index_kinds.convert(vectors, kind)
        params = {"switched_from": current, "switched_at_chunks": n}
        trained = kind != "flat"
    else:
        if old is not None and old.index_kind == kind:  # keep the record of the last switch and training
            params = {k: v for k, v in old.index_params.items() if k in ("switched_from", "switched_at_chunks", "trained_at_chunks")}
        if index_kinds.needs_retraining(vectors, n):
            # the cells were sized for a corpus a quarter or four times this size: train them again
            vectors = index_kinds.convert(vectors, kind)
            trained = True
    if trained:
        params["trained_at_chunks"] = n
    params.update(index_kinds.describe(vectors))
    return vectors, kind, params


def _build_lexical(store: ChunkStore, folder: Path, headers: bool) -> None:
    """(Re)build the BM25 index from the chunk store (each chunk after its document's header, when ``headers``)."""
    from ..retrieval import LexicalIndex

    prefix = {doc_id: lexical_header(meta) for doc_id, _, meta in store.iter_document_metadata()} if headers else {}

    ids = store.chunk_ids()  # ordered by id, as iter_chunks yields them
    LexicalIndex.build(ids, (headed(prefix.get(c.doc_id, ""), c.text) for c in store.iter_chunks())).save(folder)


def _point_current(root: Path, name: str) -> None:
    """Switch CURRENT to ``name`` atomically (write a temp file, fsync, rename over)."""
    tmp = root / f".tmp-CURRENT-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(name + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, root / CURRENT)
    _fsync_dir(root)


def _drop_old_generations(root: Path, keep: set[str]) -> None:
    """Delete generations other than the live one and the one before it.

    The one before stays so that a process that loaded it moments ago can
    still open its files; it goes at the next build.
    """
    for path in root.glob("gen-*"):
        if path.name not in keep:
            shutil.rmtree(path, ignore_errors=True)
