"""Retrieval: BM25 over chunks, fusion, and the Retriever, on a tiny hand-written corpus."""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pytest

from regional_chat.embedding import HashingEmbedder
from regional_chat.retrieval import Fused, LexicalIndex, LexicalIndexError, Retriever, fuse, within_margin
from regional_chat.text import Tokenizer
from regional_chat.settings import Settings
from regional_chat.types import Chunk

faiss = pytest.importorskip("faiss")

TEXTS = [
    "Astana is the capital of Kazakhstan since 1997.",
    "Bishkek is the capital of Kyrgyzstan.",
    "Nursultan Nazarbayev was the first president of Kazakhstan.",
    "Астана — столица Казахстана с 1997 года.",
    "The Aral Sea has shrunk since the 1960s.",
]
IDS = [101, 102, 103, 104, 105]


def make_chunks() -> list[Chunk]:
    return [Chunk(chunk_id=i, doc_id=f"doc{n}.txt", seq=0, start=0, end=len(t), text=t) for n, (i, t) in enumerate(zip(IDS, TEXTS))]


class TinyIndex:
    """A stand-in for store/folder.py's loaded index: IndexIDMap2(IndexFlatIP) plus a dict of chunks."""

    def __init__(self, chunks: Sequence[Chunk], embedder: HashingEmbedder) -> None:
        self._chunks = {c.chunk_id: c for c in chunks}
        self._faiss = faiss.IndexIDMap2(faiss.IndexFlatIP(embedder.dim))
        self._faiss.add_with_ids(embedder.embed_passages([c.text for c in chunks]), np.array([c.chunk_id for c in chunks], dtype=np.int64))
        self.path = Path("/nonexistent")

    def search(self, vectors: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
        scores, ids = self._faiss.search(vectors, k)
        return [[(int(i), float(s)) for i, s in zip(row_ids, row_scores) if i >= 0] for row_ids, row_scores in zip(ids, scores)]

    def chunks(self, ids: Sequence[int]) -> list[Chunk]:
        return [self._chunks[i] for i in ids]

    def iter_chunks(self) -> Iterator[Chunk]:
        return iter(self._chunks.values())


@pytest.fixture()
def lexical() -> LexicalIndex:
    return LexicalIndex.build(IDS, iter(TEXTS))  # a generator-like iterable: built in one pass


@pytest.fixture()
def retriever(lexical: LexicalIndex) -> Retriever:
    embedder = HashingEmbedder(64)
    settings = Settings(model="hashing:64", candidates=5, top_k=5, fusion="rrf", fusion_weight=0.5)
    return Retriever(TinyIndex(make_chunks(), embedder), lexical, embedder, settings)


# ----- tokenisation


def test_tokens_are_lowercased_stemmed_and_stopword_free_in_both_languages() -> None:
    tok = Tokenizer()
    assert tok.tokens("The Presidents of Kazakhstan were running") == ["presid", "kazakhstan", "run"]
    assert tok.tokens("Столица Казахстана и её президенты") == ["столиц", "казахста", "президент"]
    assert Tokenizer(stem=False).tokens("The Presidents, covid-19") == ["presidents", "covid", "19"]
    assert Tokenizer(stopwords="none", stem=False).tokens("the of") == ["the", "of"]


def test_unknown_stopword_list_is_refused() -> None:
    with pytest.raises(ValueError, match="stopwords must be one of"):
        Tokenizer(stopwords="german")


# ----- lexical index


def bm25_atire(tf: int, df: int, n: int, doc_len: int, avg: float, k1: float = 0.9, b: float = 0.9) -> float:
    return math.log(n / df) * tf * (k1 + 1) / (tf + k1 * (1 - b + b * doc_len / avg))


def bm25_lucene(tf: int, df: int, n: int, doc_len: int, avg: float, k1: float = 1.2, b: float = 0.75) -> float:
    idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
    return idf * tf / (tf + k1 * (1 - b + b * doc_len / avg))


# Terms per chunk after stop words and stemming: astana capit kazakhstan sinc 1997 (5);
# bishkek capit kyrgyzstan (3); nursultan nazarbayev first presid kazakhstan (5);
# аста столиц казахста 1997 год (5); aral sea shrunk sinc 1960s (5)
AVG_LEN = (5 + 3 + 5 + 5 + 5) / 5


def test_default_bm25_is_atire_worked_by_hand(lexical: LexicalIndex) -> None:
    assert lexical.params == {"method": "atire", "k1": 0.9, "b": 0.9, "delta": 0.5}
    hits = lexical.search("Nazarbayev", 5)
    assert [c for c, _ in hits] == [103]
    assert hits[0][1] == pytest.approx(bm25_atire(1, 1, 5, 5, AVG_LEN), rel=1e-6)
    hits = lexical.search("capital", 5)
    assert [c for c, _ in hits] == [102, 101]  # the shorter chunk first
    assert hits[0][1] == pytest.approx(bm25_atire(1, 2, 5, 3, AVG_LEN), rel=1e-6)
    assert hits[1][1] == pytest.approx(bm25_atire(1, 2, 5, 5, AVG_LEN), rel=1e-6)
    two_terms = dict(lexical.search("capital Kazakhstan", 5))
    assert two_terms[101] == pytest.approx(2 * bm25_atire(1, 2, 5, 5, AVG_LEN), rel=1e-6)


def test_lucene_variant_worked_by_hand() -> None:
    index = LexicalIndex.build(IDS, TEXTS, method="lucene", k1=1.2, b=0.75)
    hits = index.search("capital", 5)
    assert [c for c, _ in hits] == [102, 101]
    assert hits[0][1] == pytest.approx(bm25_lucene(1, 2, 5, 3, AVG_LEN), rel=1e-6)
    assert hits[1][1] == pytest.approx(bm25_lucene(1, 2, 5, 5, AVG_LEN), rel=1e-6)


def test_build_gives_the_same_scores_as_bm25s_own_index() -> None:
    import bm25s

    tok = Tokenizer()
    for method in ("lucene", "robertson", "atire", "bm25l", "bm25+"):
        ours = LexicalIndex.build(IDS, TEXTS, method=method, k1=1.5, b=0.6)
        reference = bm25s.BM25(method=method, k1=1.5, b=0.6)
        reference.index([tok.tokens(t) for t in TEXTS], show_progress=False, create_empty_token=False)
        query = tok.tokens("capital of Kazakhstan 1997 столица")
        theirs = reference.get_scores(query)
        hits = dict(ours.search(" ".join(["capital of Kazakhstan 1997 столица"]), 5))
        np.testing.assert_allclose([hits.get(i, theirs[n]) for n, i in enumerate(IDS)], theirs, rtol=1e-5)


def test_stopword_only_empty_and_unknown_queries_return_nothing(lexical: LexicalIndex) -> None:
    assert lexical.search("the of and is", 5) == []
    assert lexical.search("", 5) == []
    assert lexical.search("zanzibar", 5) == []
    assert lexical.search("что это и как", 5) == []


def test_russian_query_finds_the_russian_chunk(lexical: LexicalIndex) -> None:
    hits = lexical.search("Какая столица у Казахстана?", 5)
    assert [c for c, _ in hits] == [104]


def test_search_and_score_scores_other_chunks_from_the_same_pass(lexical: LexicalIndex) -> None:
    hits, scores = lexical.search_and_score("capital", 1, [101, 105, 999])
    assert [c for c, _ in hits] == [102]
    assert scores[0] == pytest.approx(dict(lexical.search("capital", 5))[101])
    assert scores[1:] == [0.0, None]


def test_save_and_load_give_identical_results(lexical: LexicalIndex, tmp_path: Path) -> None:
    folder = tmp_path / "gen-1" / "lexical"
    lexical.save(folder)
    assert {p.name for p in folder.iterdir()} >= {"ids.npy", "tokenizer.json", "params.index.json", "vocab.index.json"}
    assert not list(folder.glob("*.pkl"))
    loaded = LexicalIndex.load(folder)
    for query in ("capital of Kazakhstan", "столица", "Aral Sea 1960s", "the"):
        assert loaded.search(query, 5) == lexical.search(query, 5)
    assert LexicalIndex.load(folder, mmap=True).search("capital", 5) == lexical.search("capital", 5)
    lexical.save(folder)  # replacing an existing lexical index is allowed
    assert LexicalIndex.load(folder).search("Bishkek", 1) == lexical.search("Bishkek", 1)


@pytest.mark.parametrize("method", ["atire", "lucene", "bm25+"])
def test_a_loaded_index_scores_every_chunk_as_bm25s_loading_the_same_files(method: str, tmp_path: Path) -> None:
    import bm25s

    index = LexicalIndex.build(IDS, TEXTS, method=method, k1=1.5, b=0.6)
    index.save(tmp_path / "lexical")
    loaded = LexicalIndex.load(tmp_path / "lexical")
    reference = bm25s.BM25.load(str(tmp_path / "lexical"), allow_pickle=False, show_progress=False, backend="numpy")
    assert loaded.params == index.params and loaded._bm25.vocab_dict == reference.vocab_dict
    for query in ("capital of Kazakhstan 1997 столица", "Aral Sea", "Bishkek capital capital"):
        terms = loaded._term_ids(query)
        ours, theirs = loaded._bm25.get_scores_from_ids(terms), reference.get_scores_from_ids(terms)
        assert ours.dtype == theirs.dtype and np.array_equal(ours, theirs), (method, query)
    with pytest.raises(LexicalIndexError, match="saved where it was read"):
        loaded.save(tmp_path / "elsewhere")


def test_loading_and_searching_a_lexical_index_imports_neither_bm25s_nor_scipy(lexical: LexicalIndex, tmp_path: Path) -> None:
    import subprocess
    import sys

    lexical.save(tmp_path / "lexical")
    probe = (
        "import sys; from pathlib import Path; from regional_chat.retrieval import LexicalIndex; "
        f"hits = LexicalIndex.load(Path({str(tmp_path / 'lexical')!r})).search('capital of Kazakhstan', 5); "
        "print([c for c, _ in hits], sorted(m for m in ('bm25s', 'scipy', 'tqdm') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip()
    assert out == f"{[c for c, _ in lexical.search('capital of Kazakhstan', 5)]} []"


def test_load_refuses_a_missing_index_and_save_refuses_a_foreign_folder(lexical: LexicalIndex, tmp_path: Path) -> None:
    with pytest.raises(LexicalIndexError, match="no lexical index"):
        LexicalIndex.load(tmp_path)
    (tmp_path / "notes").mkdir()
    with pytest.raises(LexicalIndexError, match="refusing"):
        lexical.save(tmp_path / "notes")


def test_build_refuses_mismatched_or_duplicate_ids() -> None:
    with pytest.raises(ValueError, match="more texts than ids"):
        LexicalIndex.build([1], ["a b", "c d"])
    with pytest.raises(ValueError, match="more ids than texts"):
        LexicalIndex.build([1, 2], ["a b"])
    with pytest.raises(ValueError, match="unique"):
        LexicalIndex.build([1, 1], ["a b", "c d"])


# ----- fusion


DENSE = [(1, 0.9), (2, 0.8), (3, 0.5)]
LEXICAL = [(3, 12.0), (4, 8.0), (1, 2.0)]


def test_rrf_worked_by_hand() -> None:
    fused = fuse(DENSE, LEXICAL, method="rrf", weight=0.5, rrf_k=60)
    expected = {
        1: 0.5 / 61 + 0.5 / 63,
        3: 0.5 / 63 + 0.5 / 61,
        2: 0.5 / 62,
        4: 0.5 / 62,
    }
    # 1 and 3 tie exactly, as do 2 and 4: ties keep dense order, then lexical order
    assert [f.chunk_id for f in fused] == [1, 3, 2, 4]
    for f in fused:
        assert f.score == pytest.approx(expected[f.chunk_id], abs=1e-15)
    assert fused[3] == Fused(chunk_id=4, score=pytest.approx(0.5 / 62), dense=None, lexical=8.0)


def test_minmax_weighted_sum_worked_by_hand() -> None:
    fused = fuse(DENSE, LEXICAL, method="minmax", weight=0.7)
    # dense scaled: 1 -> 1, 2 -> 0.75, 3 -> 0;  lexical scaled: 3 -> 1, 4 -> 0.6, 1 -> 0
    expected = {1: 0.7, 2: 0.7 * 0.75, 3: 0.3, 4: 0.3 * 0.6}
    assert [f.chunk_id for f in fused] == [1, 2, 3, 4]
    for f in fused:
        assert f.score == pytest.approx(expected[f.chunk_id], abs=1e-12)


def test_zscore_gives_missing_chunks_the_lowest_value_of_the_list() -> None:
    fused = {f.chunk_id: f.score for f in fuse(DENSE, LEXICAL, method="zscore", weight=0.5)}
    d = np.array([0.9, 0.8, 0.5])
    lx = np.array([12.0, 8.0, 2.0])
    dz, lz = (d - d.mean()) / d.std(), (lx - lx.mean()) / lx.std()
    assert fused[4] == pytest.approx(0.5 * dz.min() + 0.5 * lz[1])
    assert fused[2] == pytest.approx(0.5 * dz[1] + 0.5 * lz.min())


def test_fusion_weight_extremes_reproduce_one_list() -> None:
    assert [f.chunk_id for f in fuse(DENSE, LEXICAL, method="minmax", weight=1.0)][:3] == [1, 2, 3]
    assert [f.chunk_id for f in fuse(DENSE, LEXICAL, method="minmax", weight=0.0)][:3] == [3, 4, 1]


def test_fuse_validates_its_arguments() -> None:
    with pytest.raises(ValueError, match="method"):
        fuse(DENSE, LEXICAL, method="sum")
    with pytest.raises(ValueError, match="weight"):
        fuse(DENSE, LEXICAL, weight=1.5)
    with pytest.raises(ValueError, match="twice"):
        fuse([(1, 0.5), (1, 0.4)], [])
    assert fuse([], []) == []


# ----- retriever


def test_name_only_query_is_found_lexically_and_hybrid_keeps_it_first(retriever: Retriever) -> None:
    lexical = retriever.search("Nazarbayev", 3, mode="lexical")
    assert [h.chunk.chunk_id for h in lexical] == [103]
    assert lexical[0].dense is None and lexical[0].lexical == lexical[0].score
    hybrid = retriever.search("Nazarbayev", 3, mode="hybrid")
    assert hybrid[0].chunk.chunk_id == 103
    assert hybrid[0].chunk.text == TEXTS[2]
    assert hybrid[0].lexical == pytest.approx(lexical[0].score)
    assert hybrid[0].dense is not None


def test_dense_mode_orders_by_cosine_and_fills_bm25_scores(retriever: Retriever) -> None:
    embedder = retriever.embedder
    question = "capital of Kyrgyzstan"
    hits = retriever.search(question, 5, mode="dense")
    q = embedder.embed_queries([question])[0]
    cosines = {i: float(v @ q) for i, v in zip(IDS, embedder.embed_passages(TEXTS))}
    # 102 shares "capital of kyrgyzstan", 101 and 103 share fewer words; 104 and 105 share none and tie at 0
    assert [h.chunk.chunk_id for h in hits][:3] == [102, 101, 103]
    assert {h.chunk.chunk_id for h in hits[3:]} == {104, 105}
    assert [round(h.score, 6) for h in hits] == [0.707107, 0.408248, 0.204124, 0.0, 0.0]
    for h in hits:
        assert h.score == h.dense == pytest.approx(cosines[h.chunk.chunk_id], abs=1e-6)
    lexical = dict(retriever.lexical.search(question, 5))
    assert {h.chunk.chunk_id: h.lexical for h in hits} == {i: pytest.approx(lexical.get(i, 0.0)) for i in IDS}


def test_hybrid_is_rrf_of_the_two_lists(retriever: Retriever) -> None:
    question = "capital of Kazakhstan"
    dense = [(h.chunk.chunk_id, h.dense) for h in retriever.search(question, 5, mode="dense")]
    lexical = [(h.chunk.chunk_id, h.lexical) for h in retriever.search(question, 5, mode="lexical")]
    # the dense candidates BM25 did not rank follow its list with their own BM25 score (0.0 here)
    assert {c for c, _ in lexical} == {101, 102, 103}
    extra = [(c, 0.0) for c, _ in dense if c not in {101, 102, 103}]
    expected = fuse(dense, lexical + extra, method="rrf", weight=0.5)
    hits = retriever.search(question, 5)
    assert [(h.chunk.chunk_id, h.score) for h in hits] == [(f.chunk_id, pytest.approx(f.score)) for f in expected]
    assert hits[0].chunk.chunk_id == 101  # in both lists, first in the lexical one
    assert all(h.lexical is not None for h in hits)  # BM25 filled for dense-only chunks too


def test_search_vector_does_not_embed_again(retriever: Retriever) -> None:
    embedder = retriever.embedder
    vector = embedder.embed_queries(["Aral Sea"])[0]
    calls = embedder.calls
    hits = retriever.search_vector("Aral Sea", vector, 2)
    assert embedder.calls == calls
    assert hits[0].chunk.chunk_id == 105
    assert retriever.search("Aral Sea", 2) == hits


def test_stopword_only_question_gives_dense_hits_without_bm25(retriever: Retriever) -> None:
    assert retriever.search("the of and", 3, mode="lexical") == []
    hits = retriever.search("the of and", 3, mode="hybrid")
    assert len(hits) == 3 and all(h.lexical is None and h.dense is not None for h in hits)


def test_retriever_validates_mode_k_and_vector(retriever: Retriever) -> None:
    with pytest.raises(ValueError, match="mode"):
        retriever.search("x", 3, mode="sparse")
    with pytest.raises(ValueError, match="k must be positive"):
        retriever.search("x", 0)
    with pytest.raises(ValueError, match="vector"):
        retriever.search_vector("x", None, 3, mode="hybrid")
    assert retriever.search_vector("Bishkek", None, 3, mode="lexical")[0].chunk.chunk_id == 102


def test_concurrent_searches_agree_with_serial_ones(retriever: Retriever) -> None:
    questions = ["capital of Kazakhstan", "Aral Sea", "столица", "Nazarbayev president", "Bishkek 1997"]
    expected = {q: retriever.search(q, 5) for q in questions}
    failures: list[str] = []

    def worker(offset: int) -> None:
        for n in range(40):
            q = questions[(n + offset) % len(questions)]
            if retriever.search(q, 5) != expected[q]:
                failures.append(q)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


def test_settings_validate_fusion() -> None:
    with pytest.raises(ValueError, match="fusion must be"):
        Settings(fusion="sum")
    with pytest.raises(ValueError, match="fusion_weight"):
        Settings(fusion_weight=-0.1)


def test_a_two_chunk_corpus_still_matches_words() -> None:
    # robertson's idf is 0 for a term in half of the chunks, which would hide every word here
    index = LexicalIndex.build([1, 2], ["Astana is the capital", "Bishkek is a city"])
    assert [c for c, _ in index.search("capital", 2)] == [1]
    assert [c for c, _ in index.search("Bishkek", 2)] == [2]


def test_hybrid_leans_on_bm25_alone_for_a_script_the_model_does_not_read(lexical: LexicalIndex) -> None:
    settings = Settings(model="hashing:64", candidates=5, top_k=5, fusion="zscore", fusion_weight=0.9)
    reads_any = HashingEmbedder(64)
    latin_only = HashingEmbedder(64)
    latin_only.scripts = ("latin",)
    index = TinyIndex(make_chunks(), reads_any)
    question = "Казахстана столица года Bishkek Aral Sea"  # more Cyrillic than Latin letters
    by_bm25 = [c for c, _ in lexical.search(question, 5)]
    english_model = Retriever(index, lexical, latin_only, settings)
    assert not english_model.reads(question) and english_model.reads("capital of Kazakhstan")
    ranked = [h.chunk.chunk_id for h in english_model.search(question, 5, "hybrid")]
    assert ranked[: len(by_bm25)] == by_bm25
    # a model that reads any script keeps its 0.9 share of the ranking, which here reorders BM25's list
    multilingual = [h.chunk.chunk_id for h in Retriever(index, lexical, reads_any, settings).search(question, 5, "hybrid")]
    assert multilingual[: len(by_bm25)] != by_bm25


def test_within_margin_keeps_the_hits_near_the_best_in_their_order() -> None:
    from regional_chat.types import Hit

    hits = [Hit(Chunk(i, "d", i, 0, 1, "x"), score=s) for i, s in enumerate([2.0, 3.1, 0.5, 1.7])]  # a preferred hit can come first
    assert [h.chunk.chunk_id for h in within_margin(hits, 1.5)] == [0, 1, 3]
    assert [h.chunk.chunk_id for h in within_margin(hits, 0.1)] == [1]
    assert within_margin(hits, None) == hits and within_margin([], 1.0) == []
