"""The encoder's vectors of every sentence and English word of an index, computed once by the build.

A Russian or Kazakh question is answered across languages (``reading/crosslingual.py``): every
sentence of the passages read is embedded and compared with the question, and the question's
words are aligned with the English words of the best sentence. Embedded per question, that was
most of a Russian question's time (about 190 and 50 of 320 ms on 2 cores); the same sentences and
words come back question after question, so a build embeds them once, beside the chunk vectors,
and the assistant looks them up (:func:`with_known_vectors`). What is not in the table (a question's
own words, an index built without it, a sentence cut another way by a later version) is embedded
as before: the table changes how fast an answer comes, never what it is (to the quantisation's
2e-5 on a cosine: float16).

Layout, in a generation folder (plain numpy files, covered by the manifest's checksums)::

    sentences/
      meta.json               # format, the encoder's name and dimension, how vectors are stored
      passage.keys.npy        # uint64, sorted: blake2b-64 of each sentence's text
      passage.vectors.npy     # float16 (n, dim): the unit vectors, in the keys' order
      query.keys.npy ...      # the same for single words, embedded as queries (as the answerer aligns them)

float16 is half of float32: 0.77 kB a sentence or word at 384 dimensions. int8 rows with a scale each
would halve that again, but moved cosines by up to 7e-4 (float16: 2e-5), enough to change one short
answer of the 149 domain questions (bench/bench_domain.py, 2026-12-07).
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from ..chunking import chunk_sentences
from ..embedding import unit_rows
from ..text import english_words
from ..types import Chunk, Document

SENTENCES = "sentences"  # the folder in a generation
FORMAT = 1
KINDS = ("passage", "query")  # sentences are embedded as passages, words as queries (see reading/answerer.py)


def reads_across(embedder: object) -> bool:
    """Whether questions over an index of ``embedder`` can be answered across languages (it reads a non-Latin script)."""
    scripts = getattr(embedder, "scripts", None)
    return not scripts or any(s != "latin" for s in scripts)


def text_key(text: str) -> int:
    """The 64-bit key of a text in the table (blake2b of its UTF-8; 30,000 texts collide with odds of 1 in 4e10)."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


def _keys(texts: Sequence[str]) -> np.ndarray:
    return np.fromiter((text_key(t) for t in texts), dtype=np.uint64, count=len(texts))


@dataclass(frozen=True)
class _Table:
    keys: np.ndarray  # uint64, sorted
    vectors: np.ndarray  # float16 (n, dim)

    def locate(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(which of ``keys`` the table holds, the rows of those it holds, in order)."""
        if not len(self.keys):
            return np.zeros(len(keys), dtype=bool), np.zeros(0, dtype=np.int64)
        at = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        hit = self.keys[at] == keys
        return hit, at[hit]

    def find(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(which texts are in the table, their unit float32 vectors in order)."""
        hit, rows = self.locate(_keys(texts))
        return hit, unit_rows(np.asarray(self.vectors[rows]))

    @staticmethod
    def read(folder: Path, kind: str, dim: int) -> "_Table":
        # memory-mapped: a question touches a few dozen rows, and a large corpus's table need not fit in memory
        keys = np.load(folder / f"{kind}.keys.npy", allow_pickle=False, mmap_mode="r")
        vectors = np.load(folder / f"{kind}.vectors.npy", allow_pickle=False, mmap_mode="r")
        n = len(keys)
        if (keys.dtype != np.uint64 or vectors.dtype != np.float16 or keys.ndim != 1 or vectors.shape != (n, dim)
                or (n > 1 and not bool(np.all(keys[1:] > keys[:-1])))):
            raise ValueError(f"the {kind} table in {folder} is not {n} sorted keys with {dim}-dimensional float16 rows")
        return _Table(keys, vectors)



class SentenceVectors:
    """The vectors a build stored for one encoder: look texts up by kind ("passage" sentences, "query" words)."""

    def __init__(self, model: str, dim: int, tables: dict[str, _Table]) -> None:
        self.model = model
        self.dim = dim
        self._tables = tables

    def __len__(self) -> int:
        return sum(len(t.keys) for t in self._tables.values())

    def find(self, kind: str, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(a mask of the ``texts`` found, their unit float32 vectors in order)."""
        table = self._tables.get(kind)
        if table is None:
            return np.zeros(len(texts), dtype=bool), np.zeros((0, self.dim), np.float32)
        return table.find(texts)

    @classmethod
    def read(cls, folder: Path, model: str, dim: int) -> "SentenceVectors":
        """The table in ``folder``, for the encoder ``model`` of ``dim`` dimensions.

        Raises:
            ValueError: the folder holds vectors of another encoder or a damaged file
                (``regional-chat check`` names it; the next build writes it again).
        """
        try:
            meta = _meta(folder)
            if not _describes(meta, model, dim):
                raise ValueError(f"{folder / 'meta.json'} describes {meta.get('model')!r} vectors (format {meta.get('format')}), not {model!r}")
            return cls(model, dim, {kind: _Table.read(folder, kind, dim) for kind in KINDS})
        except (OSError, ValueError, EOFError) as exc:
            raise ValueError(f"the sentence vectors in {folder} cannot be used ({exc})") from exc


def _meta(folder: Path) -> dict[str, Any]:
    """The table's ``meta.json``. Raises OSError or ValueError when it is missing or not a JSON object."""
    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    if not isinstance(meta, dict):
        raise ValueError(f"{folder / 'meta.json'} is not a JSON object")
    return meta


def _describes(meta: dict[str, Any], model: str, dim: int) -> bool:
    """Whether ``meta`` describes a table of this format made by the encoder ``model`` of ``dim`` dimensions."""
    return meta.get("format") == FORMAT and meta.get("model") == model and meta.get("dim") == dim


def load_sentence_vectors(generation: Path, model: str, dim: int) -> SentenceVectors | None:
    """The generation's sentence vectors, or None when it has none (built without them, or by an earlier version)."""
    folder = generation / SENTENCES
    if not folder.is_dir():
        return None
    return SentenceVectors.read(folder, model, dim)


def is_current(generation: Path, model: str, dim: int) -> bool:
    """Whether the generation holds sentence vectors of this format and encoder (its ``meta.json`` only is read)."""
    try:
        return _describes(_meta(generation / SENTENCES), model, dim)
    except (OSError, ValueError):
        return False


def sentence_counts(generation: Path) -> dict[str, int]:
    """What ``regional-chat info`` says of the generation's sentence vectors: {"sentences", "words", "bytes"}, or {}."""
    folder = generation / SENTENCES
    try:
        meta = _meta(folder)
        return {"sentences": int(meta["passages"]), "words": int(meta["queries"]),
                "bytes": sum(f.stat().st_size for f in folder.iterdir() if f.is_file())}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def texts_of(documents: Iterable[tuple[Document, Sequence[Chunk]]]) -> tuple[list[str], list[str]]:
    """(every sentence, every English word) the cross-lingual answerer can ask vectors for: ``documents`` gives
    each document with its chunks (chunk ids are hashes, so chunks in id order would load a document per chunk)."""
    sentences: dict[str, None] = {}
    words: dict[str, None] = {}
    for doc, chunks in documents:
        for chunk in chunks:
            for a, b in chunk_sentences(doc.text, chunk.start, chunk.end):
                sentence = doc.text[a:b]
                if sentence not in sentences:
                    sentences[sentence] = None
                    words.update(dict.fromkeys(english_words(sentence)))
    return list(sentences), list(words)


def write_sentence_vectors(
    folder: Path,
    documents: Iterable[tuple[Document, Sequence[Chunk]]],
    embedder: Any,
    *,
    old: Path | None = None,
    progress: bool = False,
) -> tuple[int, int]:
    """Write the table of the sentences and words of ``documents`` (each with its chunks) into ``folder``; returns
    (texts in it, texts embedded).

    Texts already in ``old`` (the previous generation's table, which the caller has checked against its
    manifest's checksums; used only when it was made by the same encoder) are taken from it, so a build
    embeds the sentences of new documents only.
    """
    before: SentenceVectors | None = None
    if old is not None:
        try:
            before = SentenceVectors.read(old, embedder.name, embedder.dim)
        except ValueError:
            before = None
    sentences, words = texts_of(documents)
    folder.mkdir()
    total = embedded = 0
    for kind, texts in zip(KINDS, (sentences, words)):
        texts = sorted(set(texts), key=text_key)
        keys = _keys(texts)
        np.save(folder / f"{kind}.keys.npy", keys, allow_pickle=False)
        # written in place on disk rather than held in memory: about 0.77 kB a text at 384 dimensions
        vectors = np.lib.format.open_memmap(folder / f"{kind}.vectors.npy", mode="w+", dtype=np.float16, shape=(len(texts), embedder.dim))
        known = np.zeros(len(texts), dtype=bool)
        if before is not None:
            table = before._tables[kind]
            known, rows = table.locate(keys)
            vectors[known] = table.vectors[rows]
        missing = np.flatnonzero(~known)
        missing = missing[np.argsort([len(texts[i]) for i in missing], kind="stable")]  # batches of like lengths pad less
        embed = embedder.embed_passages if kind == "passage" else embedder.embed_queries
        for start, stop in _batches(len(missing), 512, progress, kind):
            rows = missing[start:stop]
            vectors[rows] = unit_rows(embed([texts[i] for i in rows])).astype(np.float16)
        vectors.flush()
        del vectors
        total += len(texts)
        embedded += len(missing)
    meta = {"format": FORMAT, "model": embedder.name, "dim": int(embedder.dim), "stored": "float16 unit rows",
            "passages": len(sentences), "queries": len(words)}
    (folder / "meta.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    return total, embedded


def _batches(n: int, size: int, progress: bool, kind: str) -> Iterator[tuple[int, int]]:
    bar = None
    if progress and n:
        from tqdm import tqdm

        bar = tqdm(total=n, unit="text", desc="sentence vectors" if kind == "passage" else "word vectors", file=sys.stderr, dynamic_ncols=True)
    for start in range(0, n, size):
        yield start, min(n, start + size)
        if bar is not None:
            bar.update(min(n, start + size) - start)
    if bar is not None:
        bar.close()


class KnownVectorsEmbedder:
    """An embedder that takes the vectors of texts a build stored from its table and embeds only the rest.

    Passed to the answerer in place of the index's embedder: ``embed_passages`` and
    ``embed_queries`` give the same vectors either way (to the table's quantisation).
    """

    def __init__(self, embedder: Any, table: SentenceVectors) -> None:
        self.embedder = embedder
        self.table = table
        self.name = embedder.name
        self.dim = embedder.dim
        self.max_tokens = embedder.max_tokens
        self.scripts = getattr(embedder, "scripts", None)
        self.found = 0  # texts answered from the table so far (tests and benchmarks read it)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self.embedder.count_tokens(texts)

    def _embed(self, kind: str, texts: Sequence[str], embed: Callable[[Sequence[str]], np.ndarray]) -> np.ndarray:
        texts = list(texts)
        hit, known = self.table.find(kind, texts)
        self.found += int(hit.sum())
        if hit.all():
            return known
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        out[hit] = known
        out[~hit] = unit_rows(embed([t for t, h in zip(texts, hit) if not h]))
        return out

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed("passage", texts, self.embedder.embed_passages)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed("query", texts, self.embedder.embed_queries)


def with_known_vectors(embedder: Any, table: SentenceVectors | None) -> Any:
    """``embedder``, answering from ``table`` first when it holds this encoder's vectors."""
    if table is None or table.model != getattr(embedder, "name", None) or table.dim != getattr(embedder, "dim", None):
        return embedder
    return KnownVectorsEmbedder(embedder, table)
