"""Tune and measure retrieval on SQuAD v1.1 dev: dense, BM25, and their fusions.

Every paragraph is one passage; a question is answered when its own paragraph
is retrieved. Every fusion that Settings can be set to is ranked by the shipped
``Retriever`` itself (``search_vector``: the top candidates of each retriever, the
dense candidates that BM25 did not rank appended to the BM25 list with their own
BM25 scores, fusion, the cut to k), over each question's candidates found once;
only the comparisons it cannot be set to (no fill, another RRF k) call the fusion
functions directly. Tuning (tokenisation, BM25 variant and parameters, fusion method,
weight, RRF k and candidates) uses only the questions of the even-indexed
articles; the odd-indexed articles are held out, and all questions are
reported too. Russian XQuAD (BM25 only; MiniLM is an English model) checks
that stemming helps Cyrillic as well.

    .venv/bin/python bench/tune_retrieval.py            # writes bench/results/retrieval.json
    .venv/bin/python bench/tune_retrieval.py --scale 300000   # also times BM25 on synthetic chunks

Embeddings are cached under /tmp/rc-retrieval/ (.npy, keyed by a hash of the
texts and the model), so only the first run embeds.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from regional_chat.embedding import make_embedder  # noqa: E402
from regional_chat.retrieval import LexicalIndex, Retriever, fuse, fuse_filled  # noqa: E402
from regional_chat.settings import Settings  # noqa: E402
from regional_chat.types import Chunk  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
SQUAD = DATA / "squad-dev-v1.1.json"
XQUAD_RU = DATA / "xquad.ru.json"
CACHE = Path("/tmp/rc-retrieval")
RESULTS = ROOT / "bench" / "results" / "retrieval.json"
KS = (1, 5, 20)
MAX_CANDIDATES = 100


@dataclass(frozen=True)
class QA:
    """SQuAD as passages and questions; ``gold[i]`` is the passage of question i."""

    passages: list[str]
    questions: list[str]
    gold: np.ndarray
    article: np.ndarray  # article index of each question


def load_squad(path: Path) -> QA:
    passages, questions, gold, article = [], [], [], []
    for a, art in enumerate(json.loads(path.read_text(encoding="utf-8"))["data"]):
        for para in art["paragraphs"]:
            for qa in para["qas"]:
                questions.append(qa["question"])
                gold.append(len(passages))
                article.append(a)
            passages.append(para["context"])
    return QA(passages, questions, np.array(gold), np.array(article))


def embed_cached(texts: list[str], kind: str, settings: Settings) -> np.ndarray:
    key = hashlib.sha256(json.dumps([settings.model, settings.dtype, kind, texts]).encode("utf-8")).hexdigest()[:16]
    path = CACHE / f"squad-{kind}-{key}.npy"
    if path.is_file():
        return np.load(path)
    embedder = make_embedder(settings)
    started = time.perf_counter()
    vectors = embedder.embed_passages(texts) if kind == "passages" else embedder.embed_queries(texts)
    print(f"embedded {len(texts)} {kind} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


def dense_runs(q: np.ndarray, p: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
    """Exact inner-product top k (what IndexFlatIP returns), in blocks."""
    out: list[list[tuple[int, float]]] = []
    for lo in range(0, len(q), 2048):
        sims = q[lo : lo + 2048] @ p.T
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        for row, cand in zip(sims, top):
            cand = cand[np.argsort(-row[cand], kind="stable")]
            out.append([(int(c), float(row[c])) for c in cand])
    return out


def metrics(runs: list[list[int]], gold: np.ndarray, select: np.ndarray) -> dict[str, float]:
    """recall@k (percent) and MRR over the ranked lists (0 when the gold passage is absent)."""
    ranks = []
    for i in np.flatnonzero(select):
        run = runs[i]
        ranks.append(run.index(gold[i]) + 1 if gold[i] in run else 0)
    ranks = np.array(ranks)
    found = ranks > 0
    out = {f"recall@{k}": round(100.0 * float(np.mean(found & (ranks <= k))), 2) for k in KS}
    out["mrr"] = round(float(np.mean(np.where(found, 1.0 / np.maximum(ranks, 1), 0.0))), 4)
    out["questions"] = int(select.sum())
    return out


def ids_of(run: list[tuple[int, float]]) -> list[int]:
    return [c for c, _ in run]


def lexical_runs(index: LexicalIndex, questions: list[str], k: int) -> list[list[tuple[int, float]]]:
    return [index.search(q, k) for q in questions]


def lexical_with_fill(index: LexicalIndex, questions: list[str], dense, k: int):
    """BM25 top k of each question, and the BM25 score of each of its dense candidates."""
    runs, fills = [], []
    for q, d in zip(questions, dense):
        top, extra = index.search_and_score(q, k, [c for c, _ in d])
        runs.append(top)
        fills.append(dict(zip((c for c, _ in d), extra)))
    return runs, fills


@dataclass
class Candidates:
    """Each question's candidates from both retrievers, found once, served to the shipped Retriever as its indexes.

    The grid ranks every question once per configuration (hundreds of them); searching FAISS and
    BM25 again each time would cost minutes per configuration for lists that never change. The
    Retriever still does all that it does for a user's question: how many candidates it takes from
    each, the BM25 fill, the fusion and its weight (none for a question the encoder cannot read),
    the cut to k. Passages are the paragraphs: chunk id = paragraph number.
    """

    passages: list[str]
    questions: list[str]
    vectors: np.ndarray  # the questions' embeddings
    dense: list[list[tuple[int, float]]]  # best first, MAX_CANDIDATES per question
    lexical: list[list[tuple[int, float]]]
    fills: list[dict[int, float | None]]  # BM25 score of each dense candidate
    embedder: object  # what Retriever.reads asks (the encoder's scripts)
    _by_vector: dict[bytes, int] = field(init=False, repr=False)
    _by_question: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.vectors = np.asarray(self.vectors, dtype=np.float32)
        # a question asked twice has the same vector, text and candidates: either row will do
        self._by_vector = {v.tobytes(): i for i, v in enumerate(self.vectors)}
        self._by_question = {q: i for i, q in enumerate(self.questions)}

    def search(self, vectors: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[list[tuple[int, float]]]:
        assert allowed is None and k <= MAX_CANDIDATES
        return [self.dense[self._by_vector[v.tobytes()]][:k] for v in np.asarray(vectors, dtype=np.float32)]

    def search_and_score(self, question: str, k: int, chunk_ids, allowed: np.ndarray | None = None):
        assert allowed is None and k <= MAX_CANDIDATES
        i = self._by_question[question]
        return self.lexical[i][:k], [self.fills[i][c] for c in chunk_ids]

    def chunks(self, ids) -> list[Chunk]:
        return [Chunk(int(c), str(c), 0, 0, len(self.passages[c]), self.passages[c]) for c in ids]


def fused_runs(cands: Candidates, select, candidates: int, *, fill: bool = True, method: str, weight: float, rrf_k: int = 60) -> list[list[int]]:
    """The first max(KS) passages of each selected question under one fusion configuration.

    A configuration Settings can be set to (with the fill, RRF k 60) is ranked by the shipped
    Retriever, as a user's question is; the others call the same fusion functions directly.
    """
    out: list[list[int]] = [[] for _ in cands.dense]
    if fill and rrf_k == 60:
        settings = Settings(candidates=candidates, fusion=method, fusion_weight=weight)
        retriever = Retriever(cands, cands, cands.embedder, settings)  # type: ignore[arg-type]
        for i in np.flatnonzero(select):
            hits = retriever.search_vector(cands.questions[i], cands.vectors[i], max(KS), "hybrid")
            out[i] = [h.chunk.chunk_id for h in hits]
        return out
    for i in np.flatnonzero(select):
        d, lx = cands.dense[i][:candidates], cands.lexical[i][:candidates]
        if fill:
            fused = fuse_filled(d, lx, [cands.fills[i][c] for c, _ in d], method=method, weight=weight, rrf_k=rrf_k)
        else:
            fused = fuse(d, lx, method=method, weight=weight, rrf_k=rrf_k)
        out[i] = [f.chunk_id for f in fused][: max(KS)]
    return out


def tune_bm25(qa: QA, tune: np.ndarray) -> tuple[dict, list[dict]]:
    """Greedy: tokenisation first, then the BM25 variant, then k1 and b. Chosen by recall@5, then MRR."""
    ids = list(range(len(qa.passages)))
    questions = [q for q, s in zip(qa.questions, tune) if s]
    gold = qa.gold[tune]
    every = np.ones(len(questions), dtype=bool)
    tried: list[dict] = []

    def score(cfg: dict) -> tuple[float, float]:
        index = LexicalIndex.build(ids, qa.passages, **cfg)
        m = metrics([ids_of(r) for r in lexical_runs(index, questions, max(KS))], gold, every)
        tried.append({"config": dict(cfg), "tune": m})
        return m["recall@5"], m["mrr"]

    best = {"method": "lucene", "k1": 1.2, "b": 0.75, "stem": True, "stopwords": "nltk"}
    stages = [
        [{"stem": s, "stopwords": w} for s in (True, False) for w in ("nltk", "lucene", "none")],
        # not robertson: its idf is 0 for a term in half of the chunks or more, so in a
        # two-chunk corpus no word can ever match (it measured the same as lucene here)
        [{"method": m} for m in ("lucene", "atire", "bm25l", "bm25+")],
        [{"k1": k1, "b": b} for k1 in (0.6, 0.9, 1.2, 1.5, 2.0) for b in (0.3, 0.5, 0.75, 0.9)],
    ]
    for stage in stages:
        scored = [(score({**best, **change}), change) for change in stage]
        best = {**best, **max(scored, key=lambda t: t[0])[1]}
    if best["method"] in ("bm25l", "bm25+"):
        scored = [(score({**best, "delta": d}), d) for d in (0.25, 0.5, 1.0)]
        best["delta"] = max(scored, key=lambda t: t[0])[1]
    return best, tried


def tune_fusion(qa, cands: Candidates, tune) -> tuple[dict[str, dict], list[dict]]:
    """The best weight (and RRF k) of each fusion method on the tuning half, at Settings' candidates.

    20 and 100 candidates are measured too and kept in "tried".
    """
    default_candidates = Settings().candidates
    tried: list[dict] = []
    best: dict[str, dict] = {}
    weights = [round(w, 2) for w in np.arange(0.0, 1.0001, 0.05)]
    for method in ("rrf", "minmax", "zscore"):
        for candidates in (20, 50, 100):
            for rrf_k in (10, 30, 60) if method == "rrf" else (60,):
                for weight in weights:
                    cfg = {"method": method, "weight": weight, "rrf_k": rrf_k, "candidates": candidates}
                    runs = fused_runs(cands, tune, candidates, method=method, weight=weight, rrf_k=rrf_k)
                    m = metrics(runs, qa.gold, tune)
                    tried.append({"config": cfg, "tune": m})
                    if candidates != default_candidates:
                        continue  # measured (see "tried"), but the shipped Retriever takes Settings.candidates
                    if method not in best or (m["recall@5"], m["mrr"]) > (best[method]["tune"]["recall@5"], best[method]["tune"]["mrr"]):
                        best[method] = {"config": cfg, "tune": m}
    return best, tried


def russian_stemming() -> dict[str, dict]:
    """BM25 on XQuAD-ru, stemmed or not (tuned parameters otherwise)."""
    if not XQUAD_RU.is_file():
        return {}
    qa = load_squad(XQUAD_RU)
    every = np.ones(len(qa.questions), dtype=bool)
    out = {}
    for stem in (True, False):
        index = LexicalIndex.build(range(len(qa.passages)), qa.passages, stem=stem)
        out["stemmed" if stem else "not stemmed"] = metrics(
            [ids_of(r) for r in lexical_runs(index, qa.questions, max(KS))], qa.gold, every
        )
    return out


def scale_check(n: int, seed: int = 0) -> dict[str, float]:
    """Build BM25 over ``n`` synthetic chunks (Zipf-distributed words) from a generator; time 200 searches."""
    rng = np.random.default_rng(seed)
    vocab = np.array([f"w{i}x" for i in range(200_000)])

    def texts():
        for _ in range(n):
            words = vocab[np.minimum(rng.zipf(1.2, size=120), len(vocab)) - 1]
            yield " ".join(words)

    started = time.perf_counter()
    index = LexicalIndex.build(range(n), texts(), stem=False)
    built = time.perf_counter() - started
    queries = [" ".join(vocab[np.minimum(rng.zipf(1.3, size=6), len(vocab)) - 1]) for _ in range(200)]
    started = time.perf_counter()
    for q in queries:
        index.search(q, 50)
    per_query = (time.perf_counter() - started) / len(queries)
    import resource

    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # kB on Linux; includes the SQuAD part
    return {"chunks": n, "build_seconds": round(built, 1), "ms_per_query": round(1000 * per_query, 2),
            "postings": int(len(index._bm25.scores["data"])), "peak_rss_gb": round(peak_gb, 2)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=int, default=0, help="also time BM25 over this many synthetic chunks")
    args = parser.parse_args(argv)
    if not SQUAD.is_file():
        sys.exit(f"{SQUAD} is missing: this benchmark needs the shared evaluation data.")

    qa = load_squad(SQUAD)
    tune = qa.article % 2 == 0
    held_out = ~tune
    every = np.ones(len(qa.questions), dtype=bool)
    splits = {"held-out": held_out, "all": every}
    settings = Settings(dtype="bfloat16")

    p_vec = embed_cached(qa.passages, "passages", settings)
    q_vec = embed_cached(qa.questions, "questions", settings)
    dense = dense_runs(q_vec, p_vec, MAX_CANDIDATES)

    started = time.perf_counter()
    bm25_best, bm25_tried = tune_bm25(qa, tune)
    tune_seconds = time.perf_counter() - started
    ids = list(range(len(qa.passages)))
    started = time.perf_counter()
    lex_index = LexicalIndex.build(ids, qa.passages, **bm25_best)
    build_seconds = time.perf_counter() - started
    started = time.perf_counter()
    lexical = lexical_runs(lex_index, qa.questions, MAX_CANDIDATES)
    query_ms = 1000 * (time.perf_counter() - started) / len(qa.questions)
    lexical, fills = lexical_with_fill(lex_index, qa.questions, dense, MAX_CANDIDATES)
    default_index = LexicalIndex.build(ids, qa.passages, method="lucene", k1=1.5, b=0.75, stem=False, stopwords="lucene")
    lexical_plain = lexical_runs(default_index, qa.questions, max(KS))

    cands = Candidates(qa.passages, qa.questions, q_vec, dense, lexical, fills, make_embedder(settings))
    fusion_best, fusion_tried = tune_fusion(qa, cands, tune)

    rows: dict[str, dict] = {}

    def report(name: str, runs: list[list[int]] | None, config: dict, make=None) -> None:
        rows[name] = {"config": config}
        for split, select in splits.items():
            rows[name][split] = metrics(runs if runs is not None else make(select), qa.gold, select)

    report("dense (MiniLM, cosine)", [ids_of(r)[: max(KS)] for r in dense], {})
    report("BM25 (bm25s defaults: lucene k1=1.5 b=0.75, no stemming)", [ids_of(r) for r in lexical_plain],
           {"method": "lucene", "k1": 1.5, "b": 0.75, "stem": False, "stopwords": "lucene"})
    report("BM25 (tuned)", [ids_of(r)[: max(KS)] for r in lexical], bm25_best)
    # untuned references, as the prototype measured them (BM25 top 50 only, no fill)
    report("RRF (k=60, w=0.5, 50 candidates, no fill)", None, {"method": "rrf", "weight": 0.5, "rrf_k": 60, "candidates": 50},
           lambda s: fused_runs(cands, s, 50, fill=False, method="rrf", weight=0.5, rrf_k=60))
    report("min-max sum (w=0.5, 50 candidates, no fill)", None, {"method": "minmax", "weight": 0.5, "candidates": 50},
           lambda s: fused_runs(cands, s, 50, fill=False, method="minmax", weight=0.5))
    labels = {"rrf": "RRF", "minmax": "min-max weighted sum", "zscore": "z-score weighted sum"}
    for method, found in fusion_best.items():
        cfg = found["config"]
        report(f"{labels[method]} (tuned)", None, cfg,
               lambda s, c=cfg: fused_runs(cands, s, c["candidates"], method=c["method"], weight=c["weight"], rrf_k=c["rrf_k"]))
    best = max(fusion_best.values(), key=lambda f: (f["tune"]["recall@5"], f["tune"]["mrr"]))["config"]
    report(f"{labels[best['method']]} (tuned), without the BM25 fill", None, {**best, "fill": False},
           lambda s: fused_runs(cands, s, best["candidates"], fill=False, method=best["method"], weight=best["weight"], rrf_k=best["rrf_k"]))

    results = {
        "data": str(SQUAD.relative_to(ROOT.parent)),
        "passages": len(qa.passages),
        "questions": len(qa.questions),
        "tuning": "questions of even-indexed articles (%d); held-out: odd-indexed articles (%d)" % (tune.sum(), held_out.sum()),
        "model": "all-MiniLM-L6-v2, bfloat16",
        "rows": rows,
        "bm25": {"chosen": bm25_best, "tried": bm25_tried, "tuning_seconds": round(tune_seconds, 1),
                 "build_seconds": round(build_seconds, 2), "ms_per_query": round(query_ms, 3)},
        "fusion": {"chosen": fusion_best, "best": best, "tried": fusion_tried},
        "russian_xquad_bm25": russian_stemming(),
    }
    if args.scale:
        results["scale"] = scale_check(args.scale)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(markdown(results))


def markdown(results: dict) -> str:
    lines = [
        f"SQuAD v1.1 dev, {results['passages']} paragraphs as passages, {results['questions']} questions. "
        "Tuned on even-indexed articles; held-out = odd-indexed articles.",
        "",
        "| retriever | held-out R@1 | R@5 | R@20 | MRR | all R@1 | R@5 | R@20 | MRR |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in results["rows"].items():
        h, a = row["held-out"], row["all"]
        lines.append(
            f"| {name} | {h['recall@1']:.1f} | {h['recall@5']:.1f} | {h['recall@20']:.1f} | {h['mrr']:.3f} "
            f"| {a['recall@1']:.1f} | {a['recall@5']:.1f} | {a['recall@20']:.1f} | {a['mrr']:.3f} |"
        )
    bm = results["bm25"]
    lines += ["", f"BM25 chosen: `{json.dumps(bm['chosen'])}`; build {bm['build_seconds']} s, {bm['ms_per_query']} ms/query."]
    for method, found in results["fusion"]["chosen"].items():
        lines.append(f"Fusion {method}: `{json.dumps(found['config'])}` (tuning half R@5 {found['tune']['recall@5']:.2f}, MRR {found['tune']['mrr']:.4f}).")
    lines.append(f"Best on the tuning half: `{json.dumps(results['fusion']['best'])}`.")
    ru = results.get("russian_xquad_bm25")
    if ru:
        lines += ["", "XQuAD-ru, BM25 only: " + "; ".join(
            f"{name} R@1 {m['recall@1']:.1f} / R@5 {m['recall@5']:.1f} / MRR {m['mrr']:.3f}" for name, m in ru.items())]
    if "scale" in results:
        s = results["scale"]
        lines.append(f"Scale: {s['chunks']} synthetic chunks ({s['postings']} postings) built from a generator in "
                     f"{s['build_seconds']} s, peak RSS {s['peak_rss_gb']} GB; {s['ms_per_query']} ms per search (k=50).")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
