"""The Milvus backend: the index in Milvus collections, embedded (milvus-lite) or on a server.

Collections, for the name ``p`` (``regional_chat`` unless the location says ``#name``)::

    p_meta          one row (id 0) naming the live generation N, and each generation's manifest
                    (the same JSON as an embedded index's manifest.json) cut into parts
    p_g<N>_chunks   a row per chunk: its id, document, offsets and verbatim text; its BM25 terms
                    (the text after its document's lexical header, through the embedded store's
                    tokenizer: stop words dropped, Snowball stems, space-separated; a Milvus BM25
                    function fills a sparse vector from them); the dense vector (inner product on
                    unit vectors = cosine)
    p_g<N>_docs     a row per part of a document: its text in parts of at most 16,000 characters
                    (a VARCHAR holds 65,535 bytes), title, metadata and pages as JSON

A build writes a complete new generation (unchanged documents are copied from the live one with
their vectors: nothing is embedded twice), flushes it, writes its manifest, and only then updates
the row that names the live generation: one upsert, the equivalent of the embedded store's
``CURRENT`` file (an alias per collection would take two switches, and a reader between them would
pair new chunks with old documents). A killed build leaves collections that no reader looks at;
the next build drops them. The generation before the live one is kept, for readers that loaded it
moments ago.

Fusion of dense and BM25 results is done by ``retrieval.Retriever`` exactly as for the embedded
store: Milvus answers the two searches (and the BM25 scores of the dense candidates) and the
fusion, its weight and its z-scores are the same code. BM25 gets the same terms as bm25s: Milvus's
analyzers cannot stem English or Russian (milvus-lite has only ``standard`` and ``jieba``), so the
terms are made here, with ``text.Tokenizer``, for chunks and questions alike, and the
``standard`` analyzer only splits them at the spaces. What still differs: Milvus's idf is Lucene's
(bm25s's default is ATIRE's), the same k1 and b are set; milvus-lite returns scores negated
(milvus-lite issue #343), so the absolute value is used.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import tempfile
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from ..chunking import Chunker
from ..embedding import Embedder, make_embedder
from ..facets import context_header, headed, lexical_header
from ..settings import Settings
from .catalogue import Catalogue
from .manifest import DocEntry, IndexCorruptError, IndexMismatchError, IndexNotFoundError, IndexStateError, Manifest, BuildRequest, build_lock, build_report, documents_to_embed, plan_build
from ..text import Tokenizer
from ..types import BuildReport, Chunk, Document, IndexInfo
from . import BM25_B, BM25_K1, MILVUS

DEFAULT_NAME = "regional_chat"
TEXT_PART = 16_000  # characters of a document per row: at most 64,000 bytes of UTF-8, under VARCHAR's 65,535
MAX_CHUNK_CHARS = 16_000
MANIFEST_PART = 16_000
_BATCH = 1000
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,150}$")
_POINTER = 0  # the meta row naming the live generation
# How the BM25 terms of a generation were made; a manifest that says otherwise is rebuilt, not mixed.
TERMS = {**Tokenizer().as_dict(), "k1": BM25_K1, "b": BM25_B}


class MilvusStoreError(IndexStateError):
    """The Milvus store cannot be reached or does not hold what it should."""


@dataclass(frozen=True)
class Location:
    """A parsed ``milvus:<target>[#name]``: ``target`` is a file (milvus-lite) or a server URI."""

    target: str
    name: str

    @property
    def server(self) -> bool:
        return self.target.startswith(("http://", "https://", "tcp://", "grpc://"))

    def __str__(self) -> str:
        return f"{MILVUS}{self.target}" + ("" if self.name == DEFAULT_NAME else f"#{self.name}")


def parse(location: str) -> Location:
    """``milvus:./rc.db``, ``milvus:http://127.0.0.1:19530#speeches`` -> :class:`Location`."""
    if not location.startswith(MILVUS):
        raise ValueError(f"a Milvus location starts with {MILVUS!r}, got {location!r}.")
    target, _, name = location[len(MILVUS) :].partition("#")
    name = name or DEFAULT_NAME
    if not target:
        raise ValueError(f"{location!r} names no Milvus file or server: write milvus:./index.db or milvus:http://host:19530.")
    if not _NAME.match(name):
        raise ValueError(f"{name!r} cannot name Milvus collections: letters, digits and _ only, not starting with a digit.")
    return Location(target, name)


class _QuietIterator(logging.Filter):
    """milvus-lite has no MVCC timestamp to give a query iterator; pymilvus warns on every page, needlessly."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "failed to get mvccTs" not in record.getMessage()


# pymilvus pings the server every 10 s even with no call in flight. A gRPC server's default policy
# (milvus-lite's `server` keeps it) allows one ping per 5 minutes without data, answers the third
# early ping with GOAWAY "too many pings", and the next connection to that URI in this process
# fails once: a `serve` left idle two minutes refused its next question. Ping only during calls,
# no more often than the default policy allows.
QUIET_KEEPALIVE = {"grpc.keepalive_permit_without_calls": 0, "grpc.keepalive_time_ms": 300_000}


def connect(location: Location) -> Any:
    """A MilvusClient for the location (milvus-lite for a file path, the server for a URI)."""
    try:
        from pymilvus import MilvusClient

        log = logging.getLogger("pymilvus.client.iterator.query_iterator")
        if not any(isinstance(f, _QuietIterator) for f in log.filters):
            log.addFilter(_QuietIterator())
    except ImportError as exc:  # an optional backend: say how to get it
        raise MilvusStoreError("the Milvus store needs pymilvus and milvus-lite: pip install 'regional-chat[milvus]'.") from exc
    try:
        if location.server:
            return MilvusClient(uri=location.target, grpc_options=QUIET_KEEPALIVE)
        path = Path(location.target)
        if path.parent and not path.parent.is_dir():
            raise MilvusStoreError(f"{path.parent} does not exist: create the folder for the Milvus file first.")
        return MilvusClient(str(path))
    except MilvusStoreError:
        raise
    except Exception as exc:  # pymilvus raises its own MilvusException, grpc and OS errors
        hint = "" if location.server else (
            " A milvus-lite file is open in one process at a time: stop the process that has it (a `serve`?),"
            " or run `milvus-lite server` and point every process at its URI."
        )
        raise MilvusStoreError(f"cannot open the Milvus store {location} ({type(exc).__name__}: {exc}).{hint}") from exc


def release(location: str) -> None:
    """Let another process open a milvus-lite file this process opened (its embedded server stops).

    milvus-lite keeps one in-process server per file until the process exits; clients opened on
    the file in this process stop working. Nothing happens for a server URI.
    """
    loc = parse(location)
    if loc.server:
        return
    from milvus_lite.server_manager import server_manager_instance

    server_manager_instance.release_server(str(Path(loc.target)))


def doc_key(doc_id: str) -> int:
    """A signed 64-bit key for a document id: filters compare integers, never quoted strings."""
    return int.from_bytes(hashlib.sha256(doc_id.encode("utf-8")).digest()[:8], "big", signed=True)


def _ids_expr(field: str, values: Sequence[int]) -> str:
    return f"{field} in [{','.join(str(int(v)) for v in values)}]"


# --------------------------------------------------------------------------- schema


def _meta_name(loc: Location) -> str:
    return f"{loc.name}_meta"


def _chunks_name(loc: Location, generation: int) -> str:
    return f"{loc.name}_g{generation}_chunks"


def _docs_name(loc: Location, generation: int) -> str:
    return f"{loc.name}_g{generation}_docs"


def _create_meta(client: Any, name: str) -> None:
    from pymilvus import DataType

    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("generation", DataType.INT64)
    schema.add_field("part", DataType.INT64)
    schema.add_field("body", DataType.VARCHAR, max_length=65535)
    schema.add_field("v", DataType.FLOAT_VECTOR, dim=2)  # every collection needs a vector; this one is unused
    params = client.prepare_index_params()
    params.add_index(field_name="v", index_type="FLAT", metric_type="L2")
    client.create_collection(name, schema=schema, index_params=params, consistency_level="Strong")


def _create_chunks(client: Any, name: str, dim: int) -> None:
    from pymilvus import DataType, Function, FunctionType

    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)  # the chunk id
    schema.add_field("doc_id", DataType.VARCHAR, max_length=4096)
    schema.add_field("doc_key", DataType.INT64)
    schema.add_field("seq", DataType.INT64)
    schema.add_field("start", DataType.INT64)
    schema.add_field("end", DataType.INT64)
    schema.add_field("text", DataType.VARCHAR, max_length=65535)  # verbatim: document.text[start:end]
    schema.add_field("terms", DataType.VARCHAR, max_length=65535, enable_analyzer=True, analyzer_params={"type": "standard"})
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=dim)
    schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
    schema.add_function(Function(name="bm25", function_type=FunctionType.BM25, input_field_names=["terms"], output_field_names=["sparse"]))
    params = client.prepare_index_params()
    params.add_index(field_name="vec", index_type="FLAT", metric_type="IP")  # exact, as the embedded store's default
    params.add_index(field_name="sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25", params={"bm25_k1": BM25_K1, "bm25_b": BM25_B})
    params.add_index(field_name="doc_key", index_type="INVERTED")
    client.create_collection(name, schema=schema, index_params=params, consistency_level="Strong")


def _create_docs(client: Any, name: str) -> None:
    from pymilvus import DataType

    schema = client.create_schema(auto_id=True, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("doc_id", DataType.VARCHAR, max_length=4096)
    schema.add_field("doc_key", DataType.INT64)
    schema.add_field("part", DataType.INT64)
    schema.add_field("title", DataType.VARCHAR, max_length=4096)
    schema.add_field("metadata", DataType.VARCHAR, max_length=65535)
    schema.add_field("content_hash", DataType.VARCHAR, max_length=64)
    schema.add_field("pages", DataType.VARCHAR, max_length=65535)
    schema.add_field("text", DataType.VARCHAR, max_length=65535)
    schema.add_field("v", DataType.FLOAT_VECTOR, dim=2)
    params = client.prepare_index_params()
    params.add_index(field_name="v", index_type="FLAT", metric_type="L2")
    params.add_index(field_name="doc_key", index_type="INVERTED")
    client.create_collection(name, schema=schema, index_params=params, consistency_level="Strong")


def _doc_rows(doc: Document) -> list[dict[str, Any]]:
    meta = json.dumps(dict(doc.metadata), ensure_ascii=False)
    pages = json.dumps(list(doc.pages))
    if len(meta.encode("utf-8")) > 65535 or len(pages) > 65535:
        raise MilvusStoreError(f"{doc.doc_id}: its metadata or page list is over the 65,535 bytes a Milvus VARCHAR holds.")
    parts = [doc.text[i : i + TEXT_PART] for i in range(0, len(doc.text), TEXT_PART)] or [""]
    key = doc_key(doc.doc_id)
    return [
        {"doc_id": doc.doc_id, "doc_key": key, "part": n, "title": doc.title[:1000], "metadata": meta if n == 0 else "",
         "content_hash": doc.content_hash, "pages": pages if n == 0 else "", "text": part, "v": [0.0, 0.0]}
        for n, part in enumerate(parts)
    ]


# --------------------------------------------------------------------------- generations


def live_generation(client: Any, loc: Location) -> int | None:
    """The live generation's number, or None when nothing was built under this name."""
    if not client.has_collection(_meta_name(loc)):
        return None
    client.load_collection(_meta_name(loc))  # a store opened by a new process starts with its collections released
    rows = client.get(_meta_name(loc), ids=[_POINTER], output_fields=["generation"])
    return int(rows[0]["generation"]) if rows else None


def read_manifest(client: Any, loc: Location, generation: int):
    """The manifest of one generation (``manifest.Manifest``), from its parts in the meta collection."""
    rows = client.query(_meta_name(loc), filter=f"generation == {generation} and id != {_POINTER}", output_fields=["part", "body"])
    if not rows:
        raise IndexCorruptError(f"{loc}: generation {generation} has no manifest: rebuild with `regional-chat build --full --index {loc}`.")
    text = "".join(r["body"] for r in sorted(rows, key=lambda r: r["part"]))
    return Manifest.parse(text, f"{loc} generation {generation}")


def _generations(client: Any, loc: Location) -> set[int]:
    pattern = re.compile(rf"^{re.escape(loc.name)}_g(\d+)_(?:chunks|docs)$")
    return {int(m.group(1)) for name in client.list_collections() if (m := pattern.match(name))}


def _drop_generation(client: Any, loc: Location, generation: int) -> None:
    for name in (_chunks_name(loc, generation), _docs_name(loc, generation)):
        if client.has_collection(name):
            client.drop_collection(name)
    if client.has_collection(_meta_name(loc)):
        client.delete(_meta_name(loc), filter=f"generation == {generation} and id != {_POINTER}")


def live_path(location: str) -> str | None:
    """``MilvusIndex.path`` of the live generation ("milvus:...@g3"), or None when nothing is built."""
    loc = parse(location)
    client = connect(loc)
    try:
        generation = live_generation(client, loc)
    finally:
        client.close()
    return None if generation is None else f"{loc}@g{generation}"


def recorded_model_name(location: str) -> str | None:
    """The embedding model name in the live generation's manifest, or None when there is none."""
    loc = parse(location)
    try:
        client = connect(loc)
        try:
            generation = live_generation(client, loc)
            return read_manifest(client, loc, generation).model if generation is not None else None
        finally:
            client.close()
    except Exception:  # unreachable, empty or damaged: the caller falls back to the default model
        return None


# --------------------------------------------------------------------------- the read side


class MilvusLexical:
    """BM25 through Milvus, with ``retrieval.LexicalIndex``'s search interface."""

    def __init__(self, client: Any, collection: str) -> None:
        self._client = client
        self._collection = collection

    def _search(self, query: str, k: int, expr: str = "") -> list[tuple[int, float]]:
        terms = " ".join(Tokenizer().tokens(query))  # as the chunks' terms were made
        if not terms or k < 1:  # empty, or only stop words
            return []
        found = self._client.search(
            self._collection, [terms], anns_field="sparse", limit=min(k, 16384), filter=expr,
            search_params={"metric_type": "BM25"}, output_fields=[],
        )[0]
        # milvus-lite returns BM25 negated, a server positive (milvus-lite #343): the size is the score
        pairs = [(int(h["id"]), abs(float(h["distance"]))) for h in found]
        return sorted(pairs, key=lambda p: (-p[1], p[0]))

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        return self._search(query, k)

    def search_and_score(
        self, query: str, k: int, chunk_ids: Sequence[int], allowed: np.ndarray | None = None
    ) -> tuple[list[tuple[int, float]], list[float | None]]:
        """As ``LexicalIndex.search_and_score``: the top ``k``, and the BM25 score of each of ``chunk_ids``."""
        if k < 1:
            raise ValueError(f"k must be positive, got {k}.")
        if allowed is not None and not len(allowed):
            return [], [None] * len(chunk_ids)
        top = self._search(query, k, _ids_expr("id", allowed) if allowed is not None else "")
        if not top:  # no chunk holds a term of the query
            return [], [None] * len(chunk_ids)
        extra: list[float | None] = []
        if len(chunk_ids):
            scored = dict(self._search(query, len(chunk_ids), _ids_expr("id", chunk_ids)))
            extra = [scored.get(int(c), 0.0) for c in chunk_ids]
        return top, extra


class _Documents:
    """The document side of a generation, in the shape ``catalogue.Catalogue`` reads."""

    def __init__(self, client: Any, docs: str, chunks: str) -> None:
        self._client, self._docs, self._chunks = client, docs, chunks

    def iter_document_metadata(self) -> Iterator[tuple[str, str, dict[str, str]]]:
        rows = _query_all(self._client, self._docs, "part == 0", ["doc_id", "title", "metadata"])
        for row in sorted(rows, key=lambda r: r["doc_id"]):
            yield row["doc_id"], row["title"], json.loads(row["metadata"] or "{}")

    def chunk_ids_of(self, doc_ids: Sequence[str]) -> np.ndarray:
        found: list[int] = []
        keys = [doc_key(d) for d in doc_ids]
        for i in range(0, len(keys), _BATCH):
            rows = _query_all(self._client, self._chunks, _ids_expr("doc_key", keys[i : i + _BATCH]), ["id"])
            found.extend(int(r["id"]) for r in rows)
        return np.array(sorted(found), dtype=np.int64)


def _query_all(client: Any, collection: str, expr: str, fields: list[str]) -> list[dict[str, Any]]:
    """Every row matching ``expr`` (queries are capped per call; the iterator pages through)."""
    out: list[dict[str, Any]] = []
    iterator = client.query_iterator(collection, batch_size=_BATCH, filter=expr, output_fields=fields)
    try:
        while True:
            page = iterator.next()
            if not page:
                return out
            out.extend(page)
    finally:
        iterator.close()


class MilvusIndex:
    """One generation of a Milvus store, opened for reading: the same read side as ``folder.Index``."""

    def __init__(self, location: Location, client: Any, generation: int, manifest: Any) -> None:
        self.location = location
        self.root = str(location)
        self.path = f"{location}@g{generation}"  # compared by the assistant to tell a rebuilt index
        self.manifest = manifest
        self._client = client
        self._number = generation
        self._chunks = _chunks_name(location, generation)
        self._docs = _docs_name(location, generation)
        self._lexical = MilvusLexical(client, self._chunks)
        self._catalogue: Catalogue | None = None
        self._lock = threading.Lock()

    @property
    def generation(self) -> str:
        return f"g{self._number}"

    def __len__(self) -> int:
        return int(self.manifest.chunks)

    def search(self, vectors: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[list[tuple[int, float]]]:
        queries = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        if allowed is not None and not len(allowed):
            return [[] for _ in queries]
        k = max(1, min(k, len(self), 16384))
        found = self._client.search(
            self._chunks, [q.tolist() for q in queries], anns_field="vec", limit=k,
            filter=_ids_expr("id", allowed) if allowed is not None else "", search_params={"metric_type": "IP"}, output_fields=[],
        )
        return [sorted(((int(h["id"]), float(h["distance"])) for h in row), key=lambda p: (-p[1], p[0])) for row in found]

    @property
    def lexical(self) -> MilvusLexical:
        return self._lexical

    @property
    def catalogue(self):
        if self._catalogue is None:
            with self._lock:
                if self._catalogue is None:
                    self._catalogue = Catalogue(_Documents(self._client, self._docs, self._chunks))
        return self._catalogue

    @property
    def sentence_vectors(self) -> None:
        """None: a Milvus store keeps no sentence vectors (cross-lingual answers embed them per question)."""
        return None

    def chunks(self, ids: Sequence[int]) -> list[Chunk]:
        if not len(ids):
            return []
        rows = self._client.get(self._chunks, ids=[int(i) for i in ids], output_fields=["doc_id", "seq", "start", "end", "text"])
        by_id = {int(r["id"]): Chunk(int(r["id"]), r["doc_id"], int(r["seq"]), int(r["start"]), int(r["end"]), r["text"]) for r in rows}
        return [by_id[int(i)] for i in ids if int(i) in by_id]

    def iter_chunks(self) -> Iterator[Chunk]:
        rows = _query_all(self._client, self._chunks, "", ["doc_id", "seq", "start", "end", "text"])
        for r in sorted(rows, key=lambda r: int(r["id"])):
            yield Chunk(int(r["id"]), r["doc_id"], int(r["seq"]), int(r["start"]), int(r["end"]), r["text"])

    def document(self, doc_id: str) -> Document:
        rows = _query_all(self._client, self._docs, f"doc_key == {doc_key(doc_id)}", ["doc_id", "part", "title", "metadata", "content_hash", "pages", "text"])
        rows = sorted((r for r in rows if r["doc_id"] == doc_id), key=lambda r: r["part"])
        if not rows:
            raise KeyError(f"no document {doc_id!r} in the index")
        first = rows[0]
        return Document(
            doc_id=doc_id, text="".join(r["text"] for r in rows), title=first["title"], content_hash=first["content_hash"],
            metadata=json.loads(first["metadata"] or "{}"), pages=tuple(json.loads(first["pages"] or "[]")),
        )

    def doc_ids(self) -> list[str]:
        return sorted(self.manifest.documents)

    def info(self) -> IndexInfo:
        m = self.manifest
        return IndexInfo(str(self.location), "milvus", self._number, len(m.documents), m.chunks, m.model, m.dim, dict(m.chunking),
                         m.built_at, m.corpus, m.index_kind, dict(m.index_params))

    def close(self) -> None:
        """Let the store go (a milvus-lite file can be open in one process at a time)."""
        self._client.close()


def load_milvus(location: str, settings: Settings | None = None, embedder: Embedder | None = None) -> MilvusIndex:
    """Open the live generation of the Milvus store at ``location`` (``milvus:<file-or-URI>[#name]``).

    Raises:
        IndexNotFoundError: nothing has been built there yet.
        IndexCorruptError: the generation's collections or manifest are missing or disagree.
        IndexMismatchError: built with another model or other chunk settings.
    """
    loc = parse(location)
    client = connect(loc)
    generation = live_generation(client, loc)
    if generation is None:
        raise IndexNotFoundError(f"no index at {loc}: run `regional-chat build --index {loc}` first.")
    manifest = read_manifest(client, loc, generation)
    if settings is not None or embedder is not None:
        settings = settings or Settings()
        manifest.check_compatible(embedder or make_embedder(settings), settings, str(loc))
    if manifest.index_params.get("terms") != TERMS:
        raise IndexMismatchError(f"{loc}: its BM25 terms were made by another version: rebuild with `regional-chat build --full --store {loc}`.")
    chunks = _chunks_name(loc, generation)
    if not client.has_collection(chunks) or not client.has_collection(_docs_name(loc, generation)):
        raise IndexCorruptError(f"{loc}: the collections of generation {generation} are missing: rebuild with `regional-chat build --full --index {loc}`.")
    client.load_collection(chunks)
    client.load_collection(_docs_name(loc, generation))
    stored = _count(client, chunks)
    if stored != manifest.chunks:
        raise IndexCorruptError(f"{loc}: generation {generation} holds {stored} chunks, its manifest says {manifest.chunks}: rebuild with --full.")
    return MilvusIndex(loc, client, generation, manifest)


def _count(client: Any, collection: str) -> int:
    return int(client.query(collection, filter="", output_fields=["count(*)"])[0]["count(*)"])


# --------------------------------------------------------------------------- the build


def build_milvus(request: BuildRequest, location: str) -> BuildReport:
    """Bring the Milvus store at ``location`` up to date with the request's corpus (``build.build_index`` for Milvus)."""
    loc = parse(location)
    # Milvus has no lock to take: builds on one machine take turns on a file lock named after the store
    # (two machines building into one store at once is not guarded: schedule one builder)
    with build_lock(_lock_folder(loc), wait=request.wait):
        return _build_locked(loc, request)


def _lock_folder(loc: Location) -> Path:
    key = hashlib.sha256(f"{loc.target}#{loc.name}".encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / "regional-chat-milvus-locks" / key


def _build_locked(loc: Location, request: BuildRequest) -> BuildReport:
    corpus, settings, warn, on_progress, full, started = (
        request.corpus, request.settings, request.warn, request.on_progress, request.full, request.started)
    client = connect(loc)
    try:
        embedder = request.embedder or make_embedder(settings)
        if not client.has_collection(_meta_name(loc)):
            _create_meta(client, _meta_name(loc))
        live = live_generation(client, loc)
        old = read_manifest(client, loc, live) if live is not None and not full else None
        if old is not None:
            try:
                old.check_compatible(embedder, settings, str(loc))
            except IndexMismatchError:
                if old.chunking.get("context") != settings.chunking()["context"] and old.model == embedder.name:
                    warn(f"the index was built with context {old.chunking.get('context')!r}: every document is embedded again.")
                    old = None
                else:
                    raise
        if old is not None and old.index_params.get("terms") != TERMS:
            warn("the store's BM25 terms were made another way: every document is indexed again.")
            old = None
        plan, documents = plan_build(request.files, request.listing, old, corpus, warn)
        if old is not None and not plan.changes and not plan.stats_changed:
            return build_report(plan, documents, old.chunks, 0, started, full)
        # leftovers of a killed build (numbers past the live one) are nobody's: drop them first
        for stale in _generations(client, loc):
            if live is None or stale > live:
                _drop_generation(client, loc, stale)
        new = max(_generations(client, loc) | {live or 0}) + 1
        chunks_name, docs_name = _chunks_name(loc, new), _docs_name(loc, new)
        _create_chunks(client, chunks_name, embedder.dim)
        _create_docs(client, docs_name)
        try:
            entries: dict[str, DocEntry] = dict(plan.kept)
            if old is not None and plan.kept:
                _copy_documents(client, loc, live, new, sorted(plan.kept))
            written = _write_new(client, chunks_name, docs_name, plan, settings, embedder, on_progress)
            entries.update(written)
            client.flush(chunks_name)
            client.flush(docs_name)
            total = _count(client, chunks_name)
            if total != sum(e.chunks for e in entries.values()):
                raise MilvusStoreError(f"{loc}: generation {new} holds {total} chunks, expected {sum(e.chunks for e in entries.values())}; the live index is unchanged.")
            manifest = Manifest(
                model=embedder.name, dim=embedder.dim, chunking=settings.chunking(), documents=dict(sorted(entries.items())),
                files=dict(sorted(plan.files.items())), chunks=total, built_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                corpus=str(corpus.resolve()), index_kind="milvus-flat", index_params={"store": str(loc), "terms": TERMS},
            )
            _write_manifest(client, loc, new, manifest.to_json())
            # the switch: one upsert of the row readers start from
            client.upsert(_meta_name(loc), [{"id": _POINTER, "generation": new, "part": 0, "body": "", "v": [0.0, 0.0]}])
            client.flush(_meta_name(loc))
        except BaseException:
            _drop_generation(client, loc, new)
            raise
        for older in _generations(client, loc) - {new, live}:
            _drop_generation(client, loc, older)
        return build_report(plan, documents, total, sum(e.chunks for e in written.values()), started, full)
    finally:
        client.close()


def _write_manifest(client: Any, loc: Location, generation: int, text: str) -> None:
    parts = [text[i : i + MANIFEST_PART] for i in range(0, len(text), MANIFEST_PART)]
    rows = [{"id": generation * 1_000_000 + n + 1, "generation": generation, "part": n, "body": part, "v": [0.0, 0.0]} for n, part in enumerate(parts)]
    for i in range(0, len(rows), 100):
        client.insert(_meta_name(loc), rows[i : i + 100])
    client.flush(_meta_name(loc))


def _copy_documents(client: Any, loc: Location, old: int, new: int, doc_ids: Sequence[str]) -> None:
    """Unchanged documents and their chunks, vectors included, from generation ``old`` to ``new``."""
    fields = ["id", "doc_id", "doc_key", "seq", "start", "end", "text", "terms", "vec"]
    doc_fields = ["doc_id", "doc_key", "part", "title", "metadata", "content_hash", "pages", "text", "v"]
    keys = [doc_key(d) for d in doc_ids]
    client.load_collection(_chunks_name(loc, old))
    client.load_collection(_docs_name(loc, old))
    for i in range(0, len(keys), 200):
        expr = _ids_expr("doc_key", keys[i : i + 200])
        rows = _query_all(client, _chunks_name(loc, old), expr, fields)
        for j in range(0, len(rows), _BATCH):
            client.insert(_chunks_name(loc, new), [{f: r[f] for f in fields} for r in rows[j : j + _BATCH]])
        docs = _query_all(client, _docs_name(loc, old), expr, doc_fields)
        if docs:
            client.insert(_docs_name(loc, new), [{f: r[f] for f in doc_fields} for r in docs])


def _write_new(client: Any, chunks_name: str, docs_name: str, plan: Any, settings: Settings, embedder: Embedder, on_progress) -> dict[str, Any]:
    """Read, chunk, embed and insert the added and changed documents; returns doc id -> ``manifest.DocEntry``."""
    chunker = Chunker(settings.chunk_tokens, settings.chunk_overlap, embedder.count_tokens, embedder.max_tokens)
    counts: dict[str, DocEntry] = {}
    buffer: list[tuple[Chunk, str, str]] = []  # chunk, dense text, BM25 terms
    tokenizer = Tokenizer()
    stemmers, stop = tokenizer.stemmers(), tokenizer.stopword_set()
    total = sum(len(v) for v in plan.to_embed.values())

    def flush() -> None:
        if not buffer:
            return
        vectors = embedder.embed_passages([dense for _, dense, _ in buffer])
        rows = [
            {"id": c.chunk_id, "doc_id": c.doc_id, "doc_key": doc_key(c.doc_id), "seq": c.seq, "start": c.start, "end": c.end,
             "text": c.text, "terms": terms, "vec": np.asarray(v, dtype=np.float32).tolist()}
            for (c, _, terms), v in zip(buffer, vectors)
        ]
        for i in range(0, len(rows), _BATCH):
            client.insert(chunks_name, rows[i : i + _BATCH])
        buffer.clear()

    for item in documents_to_embed(plan):
        header = context_header(item.metadata) if settings.context_headers else ""
        lex = lexical_header(item.metadata) if settings.context_headers else ""
        chunks = chunker.chunks(item)
        for c in chunks:
            if len(c.text) > MAX_CHUNK_CHARS:
                raise MilvusStoreError(f"{item.doc_id}: a chunk of {len(c.text):,} characters is over the {MAX_CHUNK_CHARS:,} a Milvus row holds.")
            terms = " ".join(Tokenizer.tokens_with(headed(lex, c.text), stemmers, stop))
            buffer.append((c, headed(header, c.text), terms))
        client.insert(docs_name, _doc_rows(item))
        counts[item.doc_id] = DocEntry(item.content_hash, len(chunks))
        if on_progress is not None:
            on_progress(len(counts), total)
        if len(buffer) >= settings.embed_buffer:
            flush()
    flush()
    return counts
