"""Every document of a generation with its facets: what filters and question understanding read (both backends)."""

from __future__ import annotations

from typing import Iterator, Protocol, Sequence

import numpy as np

from ..facets import Facets
from ..types import Filter


class DocumentSource(Protocol):
    """What a catalogue reads from a backend: the SQLite chunk store, or a Milvus generation's documents."""

    def iter_document_metadata(self) -> Iterator[tuple[str, str, dict[str, str]]]: ...

    def chunk_ids_of(self, doc_ids: Sequence[str]) -> np.ndarray: ...

class Catalogue:
    """The documents of one generation with their facets: what filters and question understanding read.

    Built once per loaded generation (a generation never changes), a few hundred
    bytes a document; the chunk ids of a filter's documents are looked up in the
    store per question.
    """

    def __init__(self, store: DocumentSource) -> None:
        from ..facets import facets

        self._store = store
        self.entries: list[tuple[str, Facets, dict[str, str], str]] = []
        for doc_id, title, metadata in store.iter_document_metadata():
            meta = dict(metadata)
            self.entries.append((doc_id, facets(meta, title), meta, str(meta.get("source", "") or meta.get("url", ""))))
        self._facets = {doc_id: f for doc_id, f, _, _ in self.entries}  # read by every question: built once

    def doc_ids(self, flt: Filter) -> list[str]:
        from ..facets import matches

        return [doc_id for doc_id, f, meta, source in self.entries if matches(flt, doc_id, f, meta, source)]

    def chunk_ids(self, flt: Filter) -> np.ndarray:
        """The ids of every chunk whose document passes ``flt``, sorted."""
        return self._store.chunk_ids_of(self.doc_ids(flt))

    def chunk_ids_of(self, doc_ids: Sequence[str]) -> np.ndarray:
        return self._store.chunk_ids_of(doc_ids)

    def facets_of(self) -> dict[str, Facets]:
        """doc_id -> its facets (the catalogue's own mapping: do not change it)."""
        return self._facets

    def countries(self) -> list[str]:
        """The ISO codes the documents' metadata names, sorted."""
        return sorted({c for _, f, _, _ in self.entries for c in f.countries})

    def years(self) -> list[int]:
        return sorted({f.year for _, f, _, _ in self.entries if f.year is not None})
