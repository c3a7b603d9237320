"""Where an index lives: the embedded store (FAISS + bm25s + SQLite in an index folder) or Milvus.

An index location is a folder path (the embedded store, ``regional_chat.index``) or
``milvus:<target>``: ``milvus:./rc.db`` (a file: milvus-lite, embedded in this process) or
``milvus:http://host:19530`` (a Milvus server or a ``milvus-lite server`` process). An optional
``#name`` after the target names the collections (default ``regional_chat``), so one server holds
several indexes.

Both backends offer the same read side to retrieval and the assistant (what :class:`Store`
lists) and keep the same build promises: content hashes decide what is embedded, and a build
becomes visible only once it is complete (a new generation, switched in one step).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Protocol, Sequence

import numpy as np

if TYPE_CHECKING:
    from ..types import Chunk, Document

MILVUS = "milvus:"


def is_milvus(location: str | Path | None) -> bool:
    """True when an index location names a Milvus store (``milvus:<file-or-URI>``)."""
    return isinstance(location, str) and location.startswith(MILVUS)


class Store(Protocol):
    """What retrieval, filters and the assistant read from a loaded index, on either backend."""

    manifest: object  # index.Manifest: model, dimension, chunking, every document's hash

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
        """Every document's facets (``index.Catalogue``): what filters and question understanding read."""
        ...

    def chunks(self, ids: Sequence[int]) -> "list[Chunk]": ...

    def iter_chunks(self) -> "Iterator[Chunk]": ...

    def document(self, doc_id: str) -> "Document": ...

    def doc_ids(self) -> list[str]: ...

    def info(self) -> object: ...

    def close(self) -> None: ...
