"""Chunks for a question: dense (FAISS) and lexical (BM25) retrieval, and their fusion.

``LexicalIndex`` is BM25 over chunk texts, stored as the sparse score matrix
that bm25s keeps (numpy + JSON files, no pickle). ``fuse`` merges the two
ranked candidate lists. ``Retriever`` asks both retrievers for
``settings.candidates`` chunks, fuses them and returns ``types.Hit`` values.

The defaults (tokenisation, BM25 variant and parameters, fusion method and
weight) were chosen on SQuAD v1.1 dev by ``bench/tune_retrieval.py``; see
bench/README.md for the numbers.
"""

from __future__ import annotations

import json
import os
import shutil
from array import array
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator, Protocol, Sequence

import numpy as np

from .store import BM25_B, BM25_K1
from .text import TOKEN_FORMAT, WORD, Tokenizer, script_of
from .settings import FUSION_METHODS, MODES, Settings
from .types import Chunk, Filter, Hit

if TYPE_CHECKING:  # bm25s and PyStemmer load only when a lexical index is built or loaded
    import bm25s

    from .embedding import Embedder
    from .facets import Understood

BM25_METHODS = ("robertson", "lucene", "atire", "bm25l", "bm25+")

_TOKENIZER_FILE = "tokenizer.json"
_IDS_FILE = "ids.npy"

# --------------------------------------------------------------------------- lexical index


class LexicalIndexError(RuntimeError):
    """The lexical index on disk is missing, incomplete or of another format."""


class LexicalIndex:
    """BM25 over chunk texts, with bm25s's sparse score matrix.

    Build it with ``LexicalIndex.build`` or ``LexicalIndex.load``; the
    constructor only wraps parts that already agree with each other.

    Scores are precomputed per (chunk, term) at build time, so a search sums a
    few columns of a CSC matrix and selects the top k with ``argpartition``:
    its cost grows with the number of chunks that contain the query's terms.
    """

    def __init__(self, bm25: "bm25s.BM25 | SavedBM25", ids: np.ndarray, tokenizer: Tokenizer) -> None:
        num_docs = int(bm25.scores["num_docs"])
        if ids.ndim != 1 or len(ids) != num_docs:
            raise LexicalIndexError(f"the lexical index has {num_docs} rows but {len(ids)} chunk ids.")
        self._bm25 = bm25
        self._ids = ids.astype(np.int64, copy=False)
        self._order = np.argsort(self._ids, kind="stable")  # for chunk_id -> row look-ups
        self.tokenizer = tokenizer

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def params(self) -> dict[str, object]:
        """The BM25 variant and parameters the scores were computed with."""
        bm = self._bm25
        return {"method": bm.method, "k1": bm.k1, "b": bm.b, "delta": bm.delta}

    # ----- build

    @classmethod
    def build(cls, ids: Sequence[int] | Iterable[int], texts: Iterable[str], **params: object) -> "LexicalIndex":
        """Index ``texts`` (one per chunk id) in one streaming pass.

        Only the term ids and counts of each text are kept (a few bytes per
        distinct term of a chunk), never the texts or token lists, so ``texts``
        can be a generator over a million chunks.

        Args:
            ids: the chunk id of each text, in the same order.
            texts: the chunk texts.
            params: BM25 and tokeniser parameters, see ``from_pairs``.

        Returns:
            The index, ready to search.
        """
        return cls.from_pairs(_pairs(ids, texts), **params)  # type: ignore[arg-type]

    @classmethod
    def from_pairs(
        cls,
        pairs: Iterable[tuple[int, str]],
        *,
        method: str = "atire",
        k1: float = BM25_K1,
        b: float = BM25_B,
        delta: float = 0.5,
        stem: bool = True,
        stopwords: str = "nltk",
    ) -> "LexicalIndex":
        """Index (chunk_id, text) pairs in one streaming pass.

        Args:
            pairs: the chunk id and text of each chunk.
            method: the bm25s variant: robertson, lucene, atire, bm25l or bm25+. The
                defaults (atire, k1 0.9, b 0.9, stemmed, NLTK stop words) won on SQuAD;
                robertson is not advised: its idf is 0 for a term in half of the
                chunks or more, so in a small corpus some words can never match.
            k1, b, delta: BM25 parameters (delta only for bm25l and bm25+).
            stem, stopwords: see ``Tokenizer``.

        Returns:
            The index, ready to search.
        """
        import bm25s
        from bm25s.scoring import _select_idf_scorer, _select_tfc_scorer
        from scipy import sparse

        if method not in BM25_METHODS:
            raise ValueError(f"method must be one of {', '.join(BM25_METHODS)}; got {method!r}.")
        if k1 < 0 or not 0 <= b <= 1 or delta < 0:
            raise ValueError(f"BM25 needs k1 >= 0, 0 <= b <= 1 and delta >= 0; got k1={k1}, b={b}, delta={delta}.")
        tokenizer = Tokenizer(stem=stem, stopwords=stopwords)
        stemmers, stop = tokenizer.stemmers(), tokenizer.stopword_set()

        id_list = array("q")
        terms = array("i")  # term id of each distinct term of each chunk, chunk after chunk
        counts = array("f")  # how often it occurs in that chunk
        distinct = array("q", [0])  # running total of distinct terms: the CSR row pointer
        lengths = array("f")  # tokens per chunk
        vocab: dict[str, int] = {}
        for chunk_id, text in pairs:
            id_list.append(int(chunk_id))
            tokens = Tokenizer.tokens_with(text, stemmers, stop)
            for term, n in Counter(tokens).items():
                terms.append(vocab.setdefault(term, len(vocab)))
                counts.append(n)
            distinct.append(len(terms))
            lengths.append(len(tokens))
        chunk_ids = np.frombuffer(id_list, dtype=np.int64).copy()
        if len(np.unique(chunk_ids)) != len(chunk_ids):
            raise ValueError("chunk ids must be unique.")

        n_docs, n_vocab = len(chunk_ids), len(vocab)
        term_arr = np.frombuffer(terms, dtype=np.int32)
        tf = np.frombuffer(counts, dtype=np.float32)
        indptr = np.frombuffer(distinct, dtype=np.int64)
        doc_len = np.frombuffer(lengths, dtype=np.float32)
        avg_len = float(doc_len.mean()) if n_docs else 0.0
        df = np.bincount(term_arr, minlength=n_vocab)

        # bm25s's own formulas, so scores equal what bm25s.BM25.index() computes.
        bm = bm25s.BM25(k1=k1, b=b, delta=delta, method=method, backend="numpy", csc_backend="scipy")
        idf_fn, tfc_fn = _select_idf_scorer(bm.idf_method), _select_tfc_scorer(method)
        idf = np.fromiter((idf_fn(int(d), N=n_docs) if d else 0.0 for d in df), dtype=np.float32, count=n_vocab)
        nonoccurrence = None
        if method in bm.methods_requiring_nonoccurrence:
            zero = tfc_fn(tf_array=0, l_d=avg_len, l_avg=avg_len, k1=k1, b=b, delta=delta)
            nonoccurrence = (idf * np.float32(zero)).astype(np.float32)

        data = np.empty(len(term_arr), dtype=np.float32)
        block = 1 << 22  # compute in blocks of entries to bound the temporaries
        for lo in range(0, len(term_arr), block):
            hi = min(lo + block, len(term_arr))
            rows = np.searchsorted(indptr, np.arange(lo, hi), side="right") - 1
            t = term_arr[lo:hi]
            part = idf[t] * tfc_fn(tf_array=tf[lo:hi], l_d=doc_len[rows], l_avg=avg_len, k1=k1, b=b, delta=delta)
            if nonoccurrence is not None:
                part = part - nonoccurrence[t]
            data[lo:hi] = part
        csc = sparse.csr_matrix((data, term_arr, indptr), shape=(n_docs, n_vocab)).tocsc()
        csc.sort_indices()
        bm.scores = {
            "data": csc.data.astype(np.float32, copy=False),
            "indices": csc.indices.astype(np.int32, copy=False),
            "indptr": csc.indptr,
            "num_docs": n_docs,
        }
        bm.vocab_dict = vocab
        bm.unique_token_ids_set = set(vocab.values())
        bm.nonoccurrence_array = nonoccurrence
        return cls(bm, chunk_ids, tokenizer)

    # ----- files

    def save(self, folder: Path) -> None:
        """Write the index into ``folder`` (created; replaced if it holds a lexical index).

        Files: bm25s's ``*.index.npy`` / ``*.index.json``, ``ids.npy`` (chunk id
        of each row) and ``tokenizer.json``. Written beside and renamed into
        place, so a crash never leaves a half-written index under ``folder``.
        """
        folder = Path(folder)
        if folder.exists() and not (folder / _TOKENIZER_FILE).is_file():
            raise LexicalIndexError(f"{folder} exists and is not a lexical index; refusing to replace it.")
        if isinstance(self._bm25, SavedBM25):
            raise LexicalIndexError("a lexical index read from disk is saved where it was read; build one to save it elsewhere.")
        tmp = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
        if tmp.exists():
            shutil.rmtree(tmp)
        self._bm25.save(str(tmp), show_progress=False)
        np.save(tmp / _IDS_FILE, self._ids, allow_pickle=False)
        (tmp / _TOKENIZER_FILE).write_text(json.dumps(self.tokenizer.as_dict(), indent=2) + "\n", encoding="utf-8")
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)

    @classmethod
    def load(cls, folder: Path, *, mmap: bool = False) -> "LexicalIndex":
        """Read an index that ``save`` wrote.

        Args:
            folder: the folder given to ``save``.
            mmap: memory-map the score arrays instead of reading them (for very large indexes).

        The files are read with numpy (:class:`SavedBM25`): bm25s itself (and the scipy and tqdm it
        imports, a quarter of a second) loads only to build.
        """
        folder = Path(folder)
        manifest = folder / _TOKENIZER_FILE
        if not manifest.is_file() or not (folder / _IDS_FILE).is_file():
            raise LexicalIndexError(f"no lexical index in {folder}: rebuild the index (regional-chat build).")
        config = json.loads(manifest.read_text(encoding="utf-8"))
        if config.get("format") != TOKEN_FORMAT or config.get("word") != WORD.pattern:
            raise LexicalIndexError(
                f"the lexical index in {folder} was tokenised by another version (format {config.get('format')}); "
                "rebuild the index (regional-chat build --full)."
            )
        tokenizer = Tokenizer(stem=bool(config["stem"]), stopwords=str(config["stopwords"]))
        ids = np.load(folder / _IDS_FILE, allow_pickle=False)
        return cls(SavedBM25(folder, mmap=mmap), ids, tokenizer)

    # ----- search

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        """The ``k`` best chunks for ``query`` as (chunk_id, BM25 score), best first.

        Only chunks that contain at least one query term are returned; a query
        without index terms (empty, only stop words, unknown words) gives [].
        """
        found, _ = self.search_and_score(query, k, ())
        return found

    def search_and_score(
        self, query: str, k: int, chunk_ids: Sequence[int], allowed: np.ndarray | None = None
    ) -> tuple[list[tuple[int, float]], list[float | None]]:
        """``search(query, k)``, plus the BM25 score of each of ``chunk_ids`` from the same pass.

        The scores of ``chunk_ids`` are None when the query has no index term or
        the chunk is not in this index. A chunk without any query term scores 0.0
        (BM25L and BM25+ give every chunk a floor: the sum of the terms' non-occurrence scores).
        ``allowed`` (chunk ids) keeps the ranked list to those chunks (a filter).
        """
        if k < 1:
            raise ValueError(f"k must be positive, got {k}.")
        term_ids = self._term_ids(query)
        if not term_ids:
            return [], [None] * len(chunk_ids)
        scores = self._bm25.get_scores_from_ids(term_ids)
        floor = 0.0
        if self._bm25.nonoccurrence_array is not None:  # BM25L/BM25+ give every chunk this much
            floor = float(self._bm25.nonoccurrence_array[np.asarray(term_ids)].sum())
        ranked = scores
        if allowed is not None:
            rows = self._rows(np.asarray(allowed, dtype=np.int64))
            ranked = np.full_like(scores, floor)  # at the floor a chunk is never ranked
            keep = rows[rows >= 0]
            ranked[keep] = scores[keep]
        top = self._top(ranked, k, floor)
        extra: list[float | None] = []
        if len(chunk_ids):
            rows = self._rows(np.asarray(chunk_ids, dtype=np.int64))
            extra = [None if r < 0 else float(scores[r]) for r in rows.tolist()]
        return top, extra

    def _term_ids(self, query: str) -> list[int]:
        vocab = self._bm25.vocab_dict
        tokens = self.tokenizer.tokens(query)
        return [vocab[t] for t in tokens if t in vocab]

    def _top(self, scores: np.ndarray, k: int, floor: float) -> list[tuple[int, float]]:
        # Select among matching chunks only: usually far fewer than all, and
        # argpartition over a million scores costs more than the scoring itself.
        rows = np.flatnonzero(scores > floor)
        if k < len(rows):
            rows = rows[np.argpartition(scores[rows], len(rows) - k)[len(rows) - k :]]
        # best first; equal scores in row (= build) order, so results are reproducible
        rows = rows[np.lexsort((rows, -scores[rows]))]
        return [(int(self._ids[r]), float(scores[r])) for r in rows]

    def _rows(self, chunk_ids: np.ndarray) -> np.ndarray:
        """The row of each chunk id, or -1 where the id is not in the index."""
        if not len(self._ids):
            return np.full(len(chunk_ids), -1, dtype=np.int64)
        pos = np.minimum(np.searchsorted(self._ids, chunk_ids, sorter=self._order), len(self._ids) - 1)
        rows = self._order[pos]
        return np.where(self._ids[rows] == chunk_ids, rows, -1)


class SavedBM25:
    """An index bm25s saved, read with numpy alone: what a search uses of ``bm25s.BM25``, nothing more.

    The files are bm25s's (``params``, ``vocab``, the CSC ``data``/``indices``/``indptr`` arrays and,
    for BM25L and BM25+, the non-occurrence scores); the scores are summed as bm25s sums them
    (``np.add.at`` over each query term's column, in the saved dtype), so a search ranks and scores
    exactly as ``bm25s.BM25.load(...).get_scores_from_ids`` does (tests/test_retrieval.py compares them).
    """

    NONOCCURRENCE = ("bm25l", "bm25+")

    def __init__(self, folder: Path, mmap: bool = False) -> None:
        folder = Path(folder)
        try:
            params = json.loads((folder / "params.index.json").read_text(encoding="utf-8"))
            self.vocab_dict: dict[str, int] = json.loads((folder / "vocab.index.json").read_text(encoding="utf-8"))
            mode = "r" if mmap else None
            arrays = {name: np.load(folder / f"{name}.csc.index.npy", allow_pickle=False, mmap_mode=mode) for name in ("data", "indices", "indptr")}
        except (OSError, ValueError) as exc:
            raise LexicalIndexError(f"the lexical index in {folder} cannot be read ({exc}); rebuild the index (regional-chat build --full).") from exc
        self.method = str(params["method"])
        self.k1, self.b, self.delta = float(params["k1"]), float(params["b"]), float(params["delta"])
        self.dtype = np.dtype(params.get("dtype", "float32"))
        self.int_dtype = np.dtype(params.get("int_dtype", "int32"))
        self.scores = dict(arrays, num_docs=int(params["num_docs"]))
        self.nonoccurrence_array = None
        if self.method in self.NONOCCURRENCE:
            path = folder / "nonoccurrence_array.index.npy"
            if not path.is_file():
                raise LexicalIndexError(f"the lexical index in {folder} is {self.method} but has no {path.name}; rebuild the index.")
            self.nonoccurrence_array = np.load(path, allow_pickle=False)

    def get_scores_from_ids(self, term_ids: Sequence[int]) -> np.ndarray:
        """Every chunk's BM25 score for the query terms ``term_ids`` (ids into ``vocab_dict``)."""
        data, indices, indptr = self.scores["data"], self.scores["indices"], self.scores["indptr"]
        ids = np.asarray(term_ids, dtype=self.int_dtype)
        if int(ids.max(initial=0)) >= len(indptr) - 1:
            raise ValueError(f"term id {int(ids.max())} is not in this index ({len(indptr) - 1} terms).")
        scores = np.zeros(self.scores["num_docs"], dtype=self.dtype)
        for start, end in zip(indptr[ids], indptr[ids + 1]):
            np.add.at(scores, indices[start:end], data[start:end])
        if self.nonoccurrence_array is not None:
            scores += self.nonoccurrence_array[ids].sum()
        return scores


def _pairs(ids: Iterable[int], texts: Iterable[str]) -> Iterator[tuple[int, str]]:
    id_iter = iter(ids)
    for text in texts:
        chunk_id = next(id_iter, None)
        if chunk_id is None:
            raise ValueError("there are more texts than ids.")
        yield int(chunk_id), text
    if next(id_iter, None) is not None:
        raise ValueError("there are more ids than texts.")


# --------------------------------------------------------------------------- fusion


@dataclass(frozen=True)
class Fused:
    """One chunk after fusion: its fused score and the raw scores it came with."""

    chunk_id: int
    score: float
    dense: float | None
    lexical: float | None


def fuse(
    dense: Sequence[tuple[int, float]],
    lexical: Sequence[tuple[int, float]],
    *,
    method: str = "zscore",
    weight: float = 0.4,
    rrf_k: int = 60,
) -> list[Fused]:
    """Merge two ranked candidate lists (best first) into one, best first.

    Methods:
        ``rrf``: reciprocal-rank fusion, ``weight / (rrf_k + dense_rank) +
        (1 - weight) / (rrf_k + lexical_rank)`` with 1-based ranks; a list that
        misses the chunk adds 0. With weight 0.5 this orders like plain RRF.
        ``minmax``: ``weight * d + (1 - weight) * l`` where d and l are the raw
        scores scaled to [0, 1] over their list (all 1.0 when a list's scores are
        equal); a list that misses the chunk gives it 0, its lowest value.
        ``zscore``: as minmax, but scaled to mean 0 and standard deviation 1 over
        the list; a missing chunk gets the lowest value of that list.

    Args:
        dense: (chunk_id, cosine) pairs.
        lexical: (chunk_id, BM25 score) pairs.
        method: rrf, minmax or zscore. zscore with weight 0.4 measured best on
            SQuAD (recall@5 95.8 against 95.8 for minmax and 95.4 for rrf, tuned).
        weight: the dense share, from 0 (lexical only) to 1 (dense only).
        rrf_k: the rank offset of ``rrf``.

    Returns:
        Every chunk of either list once; ties keep dense order, then lexical order.
    """
    if method not in FUSION_METHODS:
        raise ValueError(f"method must be one of {', '.join(FUSION_METHODS)}; got {method!r}.")
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight must be between 0 and 1, got {weight}.")
    if rrf_k < 0:
        raise ValueError(f"rrf_k must not be negative, got {rrf_k}.")
    raw_dense = dict(dense)
    raw_lexical = dict(lexical)
    if len(raw_dense) != len(dense) or len(raw_lexical) != len(lexical):
        raise ValueError("a candidate list names the same chunk twice.")
    order = list(raw_dense) + [c for c in raw_lexical if c not in raw_dense]
    if method == "rrf":
        d_part = {c: 1.0 / (rrf_k + rank) for rank, (c, _) in enumerate(dense, 1)}
        l_part = {c: 1.0 / (rrf_k + rank) for rank, (c, _) in enumerate(lexical, 1)}
        d_missing = l_missing = 0.0
    else:
        d_part, d_missing = _normalise(raw_dense, method)
        l_part, l_missing = _normalise(raw_lexical, method)
    fused = [
        Fused(
            chunk_id=c,
            score=weight * d_part.get(c, d_missing) + (1.0 - weight) * l_part.get(c, l_missing),
            dense=raw_dense.get(c),
            lexical=raw_lexical.get(c),
        )
        for c in order
    ]
    fused.sort(key=lambda f: -f.score)  # stable: ties keep the order above
    return fused


def fuse_filled(
    dense: Sequence[tuple[int, float]],
    lexical: Sequence[tuple[int, float]],
    lexical_of_dense: Sequence[float | None],
    *,
    method: str,
    weight: float,
    rrf_k: int = 60,
) -> list[Fused]:
    """``fuse`` after filling BM25's list with the dense candidates it did not rank.

    They go after its list with their true (lower) BM25 scores (``lexical_of_dense``, one per
    dense candidate, None where the question has no index term): a longer ranked list, so a
    dense-only chunk is scaled by what BM25 thinks of it rather than by a guess (+0.2 to 0.3
    recall@5 on SQuAD, see bench/README.md).
    """
    ranked = {c for c, _ in lexical}
    extra = [(c, b) for (c, _), b in zip(dense, lexical_of_dense) if b is not None and c not in ranked]
    extra.sort(key=lambda pair: -pair[1])
    return fuse(dense, list(lexical) + extra, method=method, weight=weight, rrf_k=rrf_k)


def _normalise(scores: dict[int, float], method: str) -> tuple[dict[int, float], float]:
    """Scaled scores and the value a chunk missing from the list gets."""
    if not scores:
        return {}, 0.0
    values = np.fromiter(scores.values(), dtype=np.float64, count=len(scores))
    if method == "minmax":
        low, high = float(values.min()), float(values.max())
        if high == low:
            return dict.fromkeys(scores, 1.0), 0.0
        return {c: (s - low) / (high - low) for c, s in scores.items()}, 0.0
    mean, std = float(values.mean()), float(values.std())
    if std == 0.0:
        return dict.fromkeys(scores, 0.0), 0.0
    scaled = {c: (s - mean) / std for c, s in scores.items()}
    return scaled, (float(values.min()) - mean) / std


# --------------------------------------------------------------------------- retriever


class DenseIndex(Protocol):
    """What the retriever needs of the loaded FAISS index (store/folder.py provides it)."""

    def search(self, vectors: np.ndarray, k: int) -> list[list[tuple[int, float]]]: ...

    def chunks(self, ids: Sequence[int]) -> list[Chunk]: ...

    def iter_chunks(self) -> Iterator[Chunk]: ...


class Retriever:
    """Dense, lexical or hybrid search over one index.

    Holds no state that a search changes, so one Retriever can serve several
    threads at once (the embedder serialises its own forward passes).

    Args:
        index: the loaded dense index (``search``, ``chunks``).
        lexical: the BM25 index over the same chunks (a :class:`LexicalIndex`, or the Milvus
            store's ``MilvusLexical``: anything with ``search_and_score``).
        embedder: embeds questions; only used by ``search``.
        settings: ``candidates`` per retriever, ``fusion`` and ``fusion_weight``.
    """

    def __init__(self, index: DenseIndex, lexical: LexicalIndex, embedder: "Embedder", settings: Settings) -> None:
        for name in ("search", "chunks"):
            if not callable(getattr(index, name, None)):
                raise TypeError(f"index must have a {name}() method, got {type(index).__name__}.")
        if not callable(getattr(lexical, "search_and_score", None)):  # bm25s here, or the Milvus store's BM25
            raise TypeError(f"lexical must be a LexicalIndex (or have its search_and_score), got {type(lexical).__name__}.")
        self.index = index
        self.lexical = lexical
        self.embedder = embedder
        self.settings = settings

    def search(
        self, question: str, k: int, mode: str = "hybrid", *, where: Filter | None = None, prefer: "Understood | None" = None
    ) -> list[Hit]:
        """The ``k`` best chunks for ``question``, best first.

        Args:
            question: the question as the user asked it.
            k: how many hits to return at most.
            mode: ``"dense"``, ``"lexical"`` or ``"hybrid"``.
            where: only chunks of documents that pass this filter (applied inside
                FAISS and BM25, so ``k`` hits come back whenever that many exist).
            prefer: what the question names (``facets.understand``): chunks of
                documents that match it rank first (a boost, not a filter).

        Returns:
            Hits ordered by ``score`` (the cosine in dense mode, the BM25 score in
            lexical mode, the fused score in hybrid mode), preferred hits first.
        """
        _check(mode, k)
        vector = None if mode == "lexical" else self.embedder.embed_queries([question])[0]
        return self.search_vector(question, vector, k, mode, where=where, prefer=prefer)

    def search_vector(
        self,
        question: str,
        question_vector: np.ndarray | None,
        k: int,
        mode: str = "hybrid",
        *,
        where: Filter | None = None,
        prefer: "Understood | None" = None,
    ) -> list[Hit]:
        """``search`` with the question already embedded (``question_vector`` of shape (dim,)).

        ``question_vector`` may be None only in lexical mode.
        """
        _check(mode, k)
        if mode != "lexical" and question_vector is None:
            raise ValueError(f"mode {mode!r} needs the question's vector.")
        allowed = self._catalogue().chunk_ids(where) if where else None
        dense, lexical, lexical_of_dense = self._candidates(question, question_vector, k, mode, allowed)
        shares: dict[int, float] = {}
        if prefer:
            # The documents the question names may not be among the candidates at all (a
            # speech rarely names its own country or year): search them apart and merge,
            # on raw scores, so that fusion sees one list per retriever.
            shares = self._preferred(prefer, allowed)
            if shares:
                ids = np.array(sorted(shares), dtype=np.int64)
                more = self._candidates(question, question_vector, k, mode, ids)
                dense, lexical, lexical_of_dense = _merge((dense, lexical, lexical_of_dense), more)
        if mode == "dense":
            fused = [Fused(c, s, s, b) for (c, s), b in zip(dense, lexical_of_dense)]
        elif mode == "lexical":
            fused = [Fused(c, s, None, s) for c, s in lexical]
        else:
            weight = self.settings.fusion_weight if self.reads(question) else 0.0
            fused = fuse_filled(dense, lexical, lexical_of_dense, method=self.settings.fusion, weight=weight)
        if shares:
            fused.sort(key=lambda f: -shares.get(f.chunk_id, 0.0))  # stable: by score within each share
        fused = fused[:k]
        chunks = self.index.chunks([f.chunk_id for f in fused])
        return [
            Hit(chunk=chunk, score=f.score, dense=f.dense, lexical=f.lexical, preferred=shares.get(f.chunk_id, 0.0) > 0)
            for f, chunk in zip(fused, chunks)
        ]

    def _candidates(
        self, question: str, question_vector: np.ndarray | None, k: int, mode: str, allowed: np.ndarray | None
    ) -> tuple[list[tuple[int, float]], list[tuple[int, float]], list[float | None]]:
        wanted = max(k, self.settings.candidates)
        dense: list[tuple[int, float]] = []
        if mode != "lexical":
            vector = np.asarray(question_vector, dtype=np.float32).reshape(1, -1)
            dense = self.index.search(vector, wanted, allowed)[0] if allowed is not None else self.index.search(vector, wanted)[0]
        # One BM25 pass both ranks chunks and scores the dense candidates (cheap:
        # the score vector is computed anyway), so every dense hit has its BM25 score.
        lexical, lexical_of_dense = self.lexical.search_and_score(question, wanted, [c for c, _ in dense], allowed)
        return dense, lexical, lexical_of_dense

    def _catalogue(self):
        catalogue = getattr(self.index, "catalogue", None)
        if catalogue is None:
            raise TypeError(f"filters need an index with a catalogue of its documents; {type(self.index).__name__} has none.")
        return catalogue

    def _preferred(self, prefer: "Understood", allowed: np.ndarray | None) -> dict[int, float]:
        """chunk id -> the share of what the question names that its document matches (only shares > 0)."""
        catalogue = self._catalogue()
        by_share: dict[float, list[str]] = {}
        for doc_id, f in catalogue.facets_of().items():
            share = prefer.share(f)
            if share > 0:
                by_share.setdefault(share, []).append(doc_id)
        allowed_set = set(allowed.tolist()) if allowed is not None else None
        shares: dict[int, float] = {}
        for share, doc_ids in by_share.items():
            for chunk_id in catalogue.chunk_ids_of(doc_ids).tolist():
                if allowed_set is None or chunk_id in allowed_set:
                    shares[chunk_id] = share
        return shares


    def reads(self, question: str) -> bool:
        """Whether the embedding model reads the question's script (its ``scripts``; any when unset).

        Hybrid search ranks by BM25 alone for a question the model cannot read: the packaged
        MiniLM is English, and on Russian XQuAD its cosine finds the paragraph within five for
        a third of the questions, against 97% for BM25 (docs/QUALITY.md).
        """
        scripts = getattr(self.embedder, "scripts", None)
        return not scripts or script_of(question) in scripts


def within_margin(hits: Sequence[Hit], margin: float | None) -> list[Hit]:
    """The hits whose score is within ``margin`` of the best one's (all of them when ``margin`` is None).

    For hybrid hits fused by z-score (``fuse(method="zscore")``), where a difference of scores means the
    same from question to question: a passage far under the best is seldom where the answer is, and
    reading it costs as much as reading the best one.
    """
    hits = list(hits)
    if margin is None or not hits:
        return hits
    best = max(h.score for h in hits)
    return [h for h in hits if h.score >= best - margin]


def _merge(first, second):
    """Two (dense, lexical, lexical-of-dense) candidate sets as one, each list best first, each chunk once."""
    d1, l1, b1 = first
    d2, l2, b2 = second
    dense_scores = dict(d1)
    bm25_of = {c: b for (c, _), b in zip(d1, b1)}
    for (c, s), b in zip(d2, b2):
        dense_scores.setdefault(c, s)
        bm25_of.setdefault(c, b)
    dense = sorted(dense_scores.items(), key=lambda p: (-p[1], p[0]))
    lexical = sorted({**dict(l2), **dict(l1)}.items(), key=lambda p: (-p[1], p[0]))
    return dense, lexical, [bm25_of[c] for c, _ in dense]


def _check(mode: str, k: int) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}.")
    if k < 1:
        raise ValueError(f"k must be positive, got {k}.")
