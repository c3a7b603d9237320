"""Frozen values that the pipeline stages hand to each other.

documents -> chunks -> vectors -> index -> hits -> answer. Every value that
points into a document carries the document id and character offsets, so
``document.text[x.start:x.end] == x.text`` can always be checked.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping


def _frozen_mapping(value: Mapping[str, str] | None) -> Mapping[str, str]:
    return MappingProxyType(dict(value or {}))


@dataclass(frozen=True)
class Document:
    """One document of the corpus: its text and what is known about it.

    ``doc_id`` is the path relative to the corpus root, plus ``#<id>`` for a
    line of a JSON Lines file. ``text`` is the body that offsets point into
    (YAML front matter, when present, is not part of it). ``content_hash`` is
    the SHA-256 of the bytes the document was read from.
    """

    doc_id: str
    text: str
    title: str
    content_hash: str
    metadata: Mapping[str, str] = field(default_factory=dict)
    pages: tuple[int, ...] = ()  # character offset where each page starts (PDF: pages[0] == 0); () when the format has no pages

    def __post_init__(self) -> None:
        object.__setattr__(self, "metadata", _frozen_mapping(self.metadata))
        pages = tuple(int(p) for p in self.pages)
        if pages and (pages[0] != 0 or any(b < a for a, b in zip(pages, pages[1:])) or pages[-1] > len(self.text)):
            raise ValueError(f"{self.doc_id}: pages must start at 0 and rise within the text, got {pages[:5]}...")
        object.__setattr__(self, "pages", pages)

    def page_at(self, offset: int) -> int | None:
        """The 1-based page holding character ``offset``, or None when the document has no pages."""
        if not self.pages:
            return None
        import bisect

        return bisect.bisect_right(self.pages, offset)

    @property
    def source(self) -> str:
        """The document's source URL when its metadata names one, else ''."""
        return self.metadata.get("source", "") or self.metadata.get("url", "")

    @property
    def date(self) -> str:
        return self.metadata.get("date", "")


@dataclass(frozen=True)
class Chunk:
    """A run of whole sentences of one document: ``document.text[start:end] == text``."""

    chunk_id: int  # stable, signed 64-bit; the FAISS id
    doc_id: str
    seq: int  # position of the chunk within its document
    start: int
    end: int
    text: str


_DATE = re.compile(r"\d{4}(?:-\d{2}(?:-\d{2})?)?")


@dataclass(frozen=True)
class Filter:
    """Which documents a question may be answered from: every part that is set must hold.

    ``countries`` are ISO 3166-1 alpha-3 codes (any of them matches a document's
    ``country``/``country_iso3`` metadata, whatever name or code it uses);
    ``since`` and ``until`` are inclusive ISO dates or their prefixes ("2010",
    "2010-05", "2010-05-31") compared with the document's ``date`` or ``year``;
    ``sources`` match the document's source or URL as substrings; ``paths`` are
    glob patterns on the document id (``speeches/*.jsonl#KAZ*``); ``fields`` are
    (metadata field, value) pairs that must be equal. A document without the
    metadata a part asks about does not match that part. ``exclude_paths`` are
    glob patterns on the document id that a document must match none of (the
    evaluation asks a question with its own article left out this way).
    """

    countries: tuple[str, ...] = ()
    since: str = ""
    until: str = ""
    sources: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    fields: tuple[tuple[str, str], ...] = ()
    exclude_paths: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("countries", "sources", "paths", "exclude_paths"):
            value = getattr(self, name)
            if isinstance(value, str):
                raise ValueError(f"Filter.{name} must be a tuple of strings, not one string ({value!r}).")
            object.__setattr__(self, name, tuple(str(v) for v in value))
        if any(not p.strip() for p in self.exclude_paths):
            # an empty pattern matches no document id: it would silently exclude nothing
            raise ValueError(f"Filter.exclude_paths holds an empty pattern: {self.exclude_paths!r}.")
        for name in ("since", "until"):
            value = str(getattr(self, name) or "").strip()
            if value and not _DATE.fullmatch(value):
                raise ValueError(f"Filter.{name} must be a year or an ISO date (2010, 2010-05, 2010-05-31), got {value!r}.")
            object.__setattr__(self, name, value)
        if self.since and self.until and self.since[: len(self.until)] > self.until:
            raise ValueError(f"Filter.since ({self.since}) is after Filter.until ({self.until}).")
        if isinstance(self.fields, Mapping):
            object.__setattr__(self, "fields", tuple(sorted((str(k), str(v)) for k, v in self.fields.items())))
        else:
            object.__setattr__(self, "fields", tuple((str(k), str(v)) for k, v in self.fields))

    def __bool__(self) -> bool:
        return bool(self.countries or self.since or self.until or self.sources or self.paths or self.fields or self.exclude_paths)


@dataclass(frozen=True)
class Hit:
    """A chunk found for a question, with the scores that ranked it.

    ``dense`` and ``lexical`` are the raw cosine and BM25 scores (None when
    that retriever did not return the chunk); ``score`` is the fused score the
    hits are ordered by.
    """

    chunk: Chunk
    score: float
    dense: float | None = None
    lexical: float | None = None
    preferred: bool = False  # its document matches what the question names (a country, a year): ranked first


@dataclass(frozen=True)
class Quote:
    """A verbatim slice of a document: ``document.text[start:end] == text``.

    ``highlight`` is the short answer's (start, end) relative to ``text``, or
    None when no short answer was found inside this quote.
    """

    doc_id: str
    title: str
    source: str
    start: int
    end: int
    text: str
    score: float
    highlight: tuple[int, int] | None = None
    date: str = ""
    language: str = ""  # "english", "russian" or "kazakh" (text.language_of): the page says when it is not the question's
    page: int | None = None  # the 1-based page of the original (PDF) where the quote starts; None for formats without pages

    def display(self) -> tuple[str, tuple[int, int] | None]:
        """The quote reflowed for reading (hard line breaks inside sentences joined, hyphenated
        line ends mended) and its highlight in that text; ``text`` stays the verbatim slice."""
        from .text import reflow

        flowed = reflow(self.text)
        return flowed.text, (flowed.span(*self.highlight) if self.highlight is not None else None)

    @property
    def highlighted_text(self) -> str:
        """The highlighted short answer, or '' when there is none."""
        if self.highlight is None:
            return ""
        return self.text[self.highlight[0] : self.highlight[1]]


@dataclass(frozen=True)
class Answer:
    """What the assistant says to a question.

    ``found`` is True when the documents answer it: ``quotes`` then hold the
    sentences that say so, the first with the short answer highlighted. When it
    is False, ``quotes`` is empty and ``related`` lists the closest passages (not
    an answer); an evaluation that asks with ``abstain=False`` gets the quotes
    the reader would have given, with ``found`` still False.
    """

    question: str
    found: bool
    confidence: float
    quotes: tuple[Quote, ...] = ()
    related: tuple[Quote, ...] = ()
    search_query: str = ""  # the question as expanded from the history, if it was
    understood: str = ""  # what the search was narrowed or steered to: "Searched Kazakhstan, 1993"

    def __post_init__(self) -> None:
        if self.found and not self.quotes:
            raise ValueError("an Answer that is found must carry the quotes that say so.")
        object.__setattr__(self, "quotes", tuple(self.quotes))
        object.__setattr__(self, "related", tuple(self.related))

    @property
    def short(self) -> str:
        """The short answer: the highlighted span of the first quote ('' when there is none)."""
        return self.quotes[0].highlighted_text if self.quotes else ""

    @property
    def shown(self) -> str:
        """What would be shown first had it answered: the short answer, else the first quote ('' without quotes)."""
        return self.short or (self.quotes[0].text if self.quotes else "")

    def headline(self) -> str:
        """The line shown first: :attr:`shown` when found, else :data:`NOT_ANSWERED`."""
        return self.shown if self.found else NOT_ANSWERED

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: every field (tuples as lists) and ``short``; what ``/ask`` and ``ask --json`` return."""
        return {**dataclasses.asdict(self), "short": self.short}


NOT_ANSWERED = "The documents do not answer this question."  # what a refusal says, in the CLI and the web page


@dataclass(frozen=True)
class BuildReport:
    """What one ``build`` did."""

    added: int
    changed: int
    removed: int
    unchanged: int
    skipped: tuple[str, ...]  # files that could not be read, with the reason
    documents: int
    chunks: int
    chunks_embedded: int
    seconds: float
    full: bool
    repaired: tuple[str, ...] = ()  # damaged files of the live index found and rebuilt, with what was done
    warnings: tuple[str, ...] = ()  # documents indexed with something missing (a PDF page without a text layer)

    def summary(self) -> str:
        text = (
            f"{self.added} added, {self.changed} changed, {self.removed} removed, "
            f"{self.unchanged} unchanged; {self.documents} documents, {self.chunks} chunks "
            f"({self.chunks_embedded} embedded) in {self.seconds:.2f} s"
        )
        if self.skipped:
            text += f"; {len(self.skipped)} file(s) skipped"
        if self.warnings:
            text += f"; {len(self.warnings)} warning(s) on documents indexed"
        if self.repaired:
            text += f"; repaired {len(self.repaired)} damaged file(s) of the index"
        return text


@dataclass(frozen=True)
class IndexInfo:
    """A loaded index as ``regional-chat info`` shows it, the same fields on either store (``--json`` prints them)."""

    location: str  # the live generation's folder, or the Milvus store (milvus:<file-or-URI>)
    store: str  # "folder" or "milvus"
    generation: int
    documents: int
    chunks: int
    model: str
    dim: int
    chunking: dict[str, Any]
    built_at: str
    corpus: str
    index_kind: str  # the vectors' index: flat, ivf-flat, ... (folder), milvus-flat
    index_params: dict[str, Any] = field(default_factory=dict)
    size_bytes: int | None = None  # on disk; None where the store does not tell (Milvus)
    sentence_vectors: dict[str, int] = field(default_factory=dict)  # {"sentences", "words", "bytes"} the build stored; {} none

    def lines(self) -> list[str]:
        where = f" (Milvus, generation {self.generation})" if self.store == "milvus" else ""
        lines = [
            f"index:      {self.location}{where}",
            f"corpus:     {self.corpus}",
            f"documents:  {self.documents}",
            f"chunks:     {self.chunks}",
            f"model:      {self.model} ({self.dim} dimensions)",
            f"chunking:   {self.chunking.get('chunk_tokens')} tokens, {self.chunking.get('chunk_overlap')} sentence(s) overlap",
            f"vectors:    {self.index_kind}{_kind_details(self.index_params)}",
            f"built at:   {self.built_at}",
        ]
        if self.size_bytes is not None:
            lines.append(f"on disk:    {self.size_bytes / 1e6:.1f} MB")
        sv = self.sentence_vectors
        if sv:
            lines.append(f"sentences:  {sv.get('sentences', 0):,} sentences and {sv.get('words', 0):,} English words embedded for "
                         f"Russian and Kazakh questions ({sv.get('bytes', 0) / 1e6:.1f} MB)")
        return lines


def _kind_details(params: Mapping[str, Any]) -> str:
    parts = []
    if "nlist" in params:
        parts.append(f"{params['nlist']} lists, {params['nprobe']} probed per search")
    if params.get("switched_from"):
        parts.append(f"switched from {params['switched_from']} at {params.get('switched_at_chunks')} chunks")
    return f" ({'; '.join(parts)})" if parts else ""
