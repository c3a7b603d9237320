"""Where an index lives: the embedded store (FAISS + bm25s + SQLite in an index folder) or Milvus.

An index location is a folder path (the embedded store, ``store.folder``) or
``milvus:<target>``: ``milvus:./rc.db`` (a file: milvus-lite, embedded in this process) or
``milvus:http://host:19530`` (a Milvus server or a ``milvus-lite server`` process). An optional
``#name`` after the target names the collections (default ``regional_chat``), so one server holds
several indexes.

Both backends offer the same read side to retrieval and the assistant (what :class:`Store`
lists) and keep the same build promises: content hashes decide what is embedded, and a build
becomes visible only once it is complete (a new generation, switched in one step).

    __init__.py   the protocol, and what dispatches on a location: load_index, live_generation, recorded_model
    manifest.py   the manifest, the plan of a build, the build lock and the errors, shared by both backends
    catalogue.py  every document's facets, for filters (both backends)
    folder.py     the embedded backend: FAISS + bm25s + SQLite in generations of an index folder
    milvus.py     the Milvus backend: generations of collections in milvus-lite or a server

Building is ``build.build_index``, which dispatches the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Protocol, Sequence

import numpy as np

if TYPE_CHECKING:
    from ..embedding import Embedder
    from ..settings import Settings
    from ..types import Chunk, Document

MILVUS = "milvus:"
# BM25's k1 and b, on both stores (bm25s in the folder, Milvus's BM25 index): they won on SQuAD with
# ATIRE's idf (bench/bench_bm25.py)
BM25_K1, BM25_B = 0.9, 0.9


def is_milvus(location: str | Path | None) -> bool:
    """True when an index location names a Milvus store (``milvus:<file-or-URI>``)."""
    return isinstance(location, str) and location.startswith(MILVUS)


class Store(Protocol):
    """What retrieval, filters and the assistant read from a loaded index, on either backend."""

    manifest: object  # store.manifest.Manifest: model, dimension, chunking, every document's hash

    @property
    def generation(self) -> str: ...

    def __len__(self) -> int: ...

    def search(self, vectors: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[list[tuple[int, float]]]:
        """Per query vector, the ``k`` nearest chunks as (chunk_id, cosine), best first, within ``allowed`` ids."""
        ...

    @property
    def lexical(self) -> object:
        """The BM25 side: ``search_and_score(query, k, chunk_ids, allowed)`` as ``retrieval.LexicalIndex``."""
        ...

    @property
    def catalogue(self) -> object:
        """Every document's facets (``store.catalogue.Catalogue``): what filters and question understanding read."""
        ...

    @property
    def sentence_vectors(self) -> object:
        """The encoder's vectors of every sentence and English word (``store.sentences.SentenceVectors``), or None
        when the store keeps none: cross-lingual answers then embed what they need per question."""
        ...

    def chunks(self, ids: Sequence[int]) -> "list[Chunk]": ...

    def iter_chunks(self) -> "Iterator[Chunk]": ...

    def document(self, doc_id: str) -> "Document": ...

    def doc_ids(self) -> list[str]: ...

    def info(self) -> object: ...

    def close(self) -> None: ...


def load_index(location: str | Path = "index", settings: "Settings | None" = None, embedder: "Embedder | None" = None) -> Store:
    """Open the live generation of the index at ``location``.

    Args:
        location: the folder ``regional-chat build`` wrote, or ``milvus:<file-or-URI>[#name]``.
        settings: when given (with or without ``embedder``), the index must have been built
            with the same model and chunking, or ``IndexMismatchError`` is raised.
        embedder: the embedder questions will be embedded with (checked against the manifest).

    Raises:
        IndexNotFoundError: nothing has been built there yet.
        IndexCorruptError: files are missing or unreadable.
        IndexMismatchError: built with another model or other chunk settings.
    """
    if is_milvus(location):
        from .milvus import load_milvus

        return load_milvus(str(location), settings, embedder)
    from .folder import load_folder

    return load_folder(location, settings, embedder)


def live_generation(location: str | Path) -> str | None:
    """What names the live generation now (compared with a loaded index's ``path``); None when none is built.

    A cheap check (a file read, or one Milvus row) that lets a serving process notice a build
    made by another process and switch to it.
    """
    if is_milvus(location):
        from .milvus import live_path

        return live_path(str(location))
    from .folder import current_generation

    path = current_generation(Path(location))
    return str(path) if path is not None else None


def recorded_model(location: str | Path) -> str | None:
    """The ``--model`` value that built the index at ``location`` ("minilm", "e5", "hashing:64").

    None when nothing is built there, the index is unreadable, or it was built with a model
    folder (which only its path names). Commands given no ``--model`` use this, so an index
    built with e5 keeps being searched and updated with e5 whatever the default is.
    """
    from ..e5 import MODEL_NAME as E5_MODEL_NAME
    from ..embedding import MINILM_NAME

    if is_milvus(location):
        from .milvus import recorded_model_name

        name = recorded_model_name(str(location)) or ""
    else:
        from .folder import MANIFEST, current_generation
        from .manifest import IndexCorruptError, Manifest

        try:
            path = current_generation(Path(location))
            name = Manifest.read(path / MANIFEST).model if path is not None else ""
        except (IndexCorruptError, OSError, ValueError, KeyError):
            return None
    if name == MINILM_NAME:
        return "minilm"
    if name.startswith(E5_MODEL_NAME):
        return "e5"
    if name.startswith("hashing:"):
        return name
    return None
