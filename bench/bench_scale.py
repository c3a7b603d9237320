"""Query latency, memory and build cost from 2k to a million chunks; IVF recall against exact search.

    .venv/bin/python bench/bench_scale.py all [--sizes 20000 200000 1000000] [--questions 200]
    (``all`` = ``builds`` then ``serves``; ``recall`` apart)

Run bench/bench_throughput.py first: it leaves real indexes of the SQuAD paragraphs and the UN
speeches in /tmp/rc-bench, whose chunk texts and MiniLM vectors are the raw material here.

Sizes:
* **2k** is the real SQuAD v1.1 dev paragraph index (2,067 paragraphs), real MiniLM vectors.
* **20k, 200k, 1M** are synthetic, made from the ~4,600 real chunks (SQuAD + UN speeches):
  documents of 40 real chunk texts drawn at random (seeded), each piece prefixed with a marker
  ``[r<n>]`` naming its source chunk. They go through the real ``build_index`` (reading,
  chunking with tiktoken and the MiniLM tokenizer, SQLite, FAISS, BM25, manifest, swap); only the
  model's forward pass is replaced by ``ReplayEmbedder``: the MiniLM vector of the source chunk
  named by the chunk's marker(s), plus Gaussian noise (sigma 0.025 a dimension, cosine to the
  source about 0.9), renormalised. So texts are near-duplicates of real text and vectors are
  real vectors with noise; the embedding cost is measured where it is real (bench_throughput.py).

Per size, in fresh processes: the build (seconds, peak RSS), then a serving process (load time,
RSS after load and after the questions, warm latency of ``Assistant.answer`` on SQuAD questions
split into question encoder / FAISS / BM25 / SQLite / answer extraction / the rest).

``recall``: recall@10 of each IVF kind against exact search, with the real question vectors,
(a) on ~45k real MiniLM vectors (the ~4,600 chunks, plus 40,000 sentences spread evenly over
the distinct sentences of SQuAD v1.1 dev, SQuAD v2.0 tune-half, XQuAD en and the UN speeches,
embedded for this), with the IVF shape used for their size and with the shapes used at
200k and 1M; (b) on the 1M synthetic vectors.

Writes bench/results/scale.json (each step merges its part).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
import zlib
from pathlib import Path
from typing import Sequence

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

sys.path.insert(0, str(benchlib.ROOT / "src"))

PIECES_PER_DOC = 40
SIGMA = 0.025
MARK = re.compile(r"\[r(\d+)\]")
RESULT = "scale.json"
MAX_SENTENCES = 40_000  # evenly spread over all distinct sentences: embedding them all takes too long on a busy machine
REAL_SETS = ("squad", "ungdc")


def merge(part: dict) -> None:
    result = benchlib.read(RESULT) or benchlib.header()
    result.update(part)
    result["load_average_at_end"] = benchlib.load_average()
    benchlib.write(RESULT, result)


# --------------------------------------------------------------------------- raw material


def base_pool() -> tuple[list[str], np.ndarray]:
    """Texts and MiniLM vectors of the real chunks (SQuAD paragraphs + UN speeches), cached in WORK."""
    cache = benchlib.WORK / "base-pool.npz"
    if cache.is_file():
        data = np.load(cache, allow_pickle=False)
        return json.loads(str(data["texts"])), data["vectors"]
    from regional_chat import index_kinds
    from regional_chat.store import load_index

    texts: list[str] = []
    parts = []
    for name in REAL_SETS:
        folder = benchlib.WORK / f"{name}-index"
        if not folder.is_dir():
            sys.exit(f"{folder} is missing: run bench/bench_throughput.py first (it builds the real indexes).")
        index = load_index(folder)
        ids, vecs = index_kinds.exact_vectors(index._vectors)
        by_id = {c.chunk_id: c.text for c in index.iter_chunks()}
        texts.extend(by_id[int(i)] for i in ids)
        parts.append(np.array(vecs, dtype=np.float32))
        index.close()
    vectors = np.concatenate(parts)
    np.savez(cache, texts=json.dumps(texts), vectors=vectors)
    return texts, vectors


class ReplayEmbedder:
    """MiniLM's name, dimension and tokenizer; vectors replayed from the real chunks a text came from, plus noise."""

    def __init__(self, vectors: np.ndarray, sigma: float = SIGMA, seed: int = 0) -> None:
        from tokenizers import Tokenizer

        from regional_chat.embedding import packaged_minilm_path

        self.name = "all-MiniLM-L6-v2"
        self.scripts = ("latin",)  # as MiniLM's: no sentence vectors for Russian questions are built (store/sentences.py)
        self.dim = int(vectors.shape[1])
        self.max_tokens = 256
        self._vectors = vectors
        self._sigma = sigma
        self._rng = np.random.default_rng(seed)
        self._tokenizer = Tokenizer.from_file(str(packaged_minilm_path() / "tokenizer.json"))
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()
        self.unmarked = 0

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(e) for e in self._tokenizer.encode_batch(list(texts), add_special_tokens=True)]

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            marks = [int(m) for m in MARK.findall(text)]
            if not marks:  # a chunk cut from the middle of a piece: a source chosen by its text
                self.unmarked += 1
                marks = [zlib.crc32(text.encode()) % len(self._vectors)]
            out[row] = self._vectors[marks].mean(axis=0)
        out += self._rng.standard_normal(out.shape, dtype=np.float32) * self._sigma
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        return out

    embed_passages = _embed
    embed_queries = _embed


def corpus_path(size: int) -> Path:
    return benchlib.WORK / f"synthetic-{size}" / "corpus.jsonl"


def make_corpus(size: int, texts: list[str]) -> dict:
    """A synthetic corpus of about ``size`` chunks (calibrated on a sample with the real chunker)."""
    from regional_chat.chunking import Chunker
    from regional_chat.types import Document

    path = corpus_path(size)
    meta = path.with_suffix(".json")
    if meta.is_file():
        return json.loads(meta.read_text())
    rng = random.Random(size)

    def doc(n: int) -> dict:
        picks = [rng.randrange(len(texts)) for _ in range(PIECES_PER_DOC)]
        body = "\n\n".join(f"[r{i}] {texts[i]}" for i in picks)
        return {"id": f"syn-{n}", "title": f"Synthetic document {n}", "text": body}

    vectors = np.zeros((len(texts), 4), dtype=np.float32)  # only the tokenizer is used here
    chunker = Chunker(200, 1, ReplayEmbedder(vectors).count_tokens, 256)
    sample = [doc(n) for n in range(20)]
    per_doc = sum(len(chunker.chunks(Document(d["id"], d["text"], d["title"], "x", {}))) for d in sample) / len(sample)
    n_docs = max(1, round(size / per_doc))
    rng = random.Random(size)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for n in range(n_docs):
            handle.write(json.dumps(doc(n), ensure_ascii=False) + "\n")
    info = {"documents": n_docs, "chunks_per_document_sample": per_doc, "bytes": path.stat().st_size}
    meta.write_text(json.dumps(info))
    return info


# --------------------------------------------------------------------------- one build, one serving process


def do_build(size: int, index: Path) -> dict:
    from regional_chat.build import build_index
    from regional_chat.store import load_index
    from regional_chat.settings import Settings

    _, vectors = base_pool()
    embedder = ReplayEmbedder(vectors)
    started = benchlib.load_average()[0]
    report = build_index(corpus_path(size), index, Settings(), embedder=embedder, full=True, warn=lambda m: None)
    loaded = load_index(index)
    info = loaded.info()
    loaded.close()
    return {
        "seconds": report.seconds, "chunks": report.chunks, "documents": report.documents,
        "chunks_per_s": report.chunks / report.seconds, "peak_rss_mb": benchlib.peak_rss_mb(),
        "index_kind": info.index_kind, "index_params": info.index_params, "disk_mb": info.size_bytes / 1e6,
        "unmarked_chunks": embedder.unmarked, "load_1min": started,
    }


def do_serve(index: Path, n_questions: int, torch_threads: int = 0) -> dict:
    """Warm latency of Assistant.answer, split by stage, and memory (run in a fresh process).

    ``torch_threads`` > 0 sets torch's intra-op threads first (0: torch's default, one per core).
    """
    t0 = time.perf_counter()
    if torch_threads:
        import torch

        torch.set_num_threads(torch_threads)
    from regional_chat.assistant import Assistant
    from regional_chat.settings import Settings

    bot = Assistant.load(index, Settings())
    load_s = time.perf_counter() - t0
    rss_loaded = benchlib.rss_mb()
    _, questions = benchlib.squad_paragraphs()
    asked = [q["question"] for q in benchlib.spread(questions, n_questions + 5)]
    for q in asked[:5]:  # warm: model, BM25 arrays, spaCy, caches
        bot.answer(q)
    rss_warm = benchlib.rss_mb()

    # extraction includes sentence_encoder (the model embedding candidate sentences); reported apart below
    stages = {"encoder": 0.0, "faiss": 0.0, "bm25": 0.0, "sqlite": 0.0, "extraction": 0.0, "sentence_encoder": 0.0}
    inside = {"extract": False}

    def timed(name, fn, skip_inside_extract=False):
        def wrapper(*a, **kw):
            if skip_inside_extract and inside["extract"]:
                return fn(*a, **kw)
            t = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                stages[name] += time.perf_counter() - t
        return wrapper

    live = bot._live.current  # the generation the timed questions use
    bot.embedder.embed_queries = timed("encoder", bot.embedder.embed_queries, skip_inside_extract=True)
    bot.embedder.embed_passages = timed("sentence_encoder", bot.embedder.embed_passages)
    live.index.search = timed("faiss", live.index.search)
    live.index.chunks = timed("sqlite", live.index.chunks)
    live.retriever.lexical.search_and_score = timed("bm25", live.retriever.lexical.search_and_score)
    extract = bot.extractor.extract

    def extract_wrapper(*a, **kw):
        inside["extract"] = True
        t = time.perf_counter()
        try:
            return extract(*a, **kw)
        finally:
            inside["extract"] = False
            stages["extraction"] += time.perf_counter() - t

    bot.extractor.extract = extract_wrapper
    totals, per_stage = [], {k: [] for k in stages}
    for q in asked[5:]:
        for k in stages:
            stages[k] = 0.0
        t = time.perf_counter()
        bot.answer(q)
        totals.append(time.perf_counter() - t)
        for k in stages:
            per_stage[k].append(stages[k])
    per_stage["scoring"] = [e - s for e, s in zip(per_stage.pop("extraction"), per_stage["sentence_encoder"])]
    rest = [t - sum(v[i] for v in per_stage.values()) for i, t in enumerate(totals)]
    # everything but answer extraction: question encoder, FAISS, BM25, SQLite, fusion
    retrieval = [t - per_stage["sentence_encoder"][i] - per_stage["scoring"][i] for i, t in enumerate(totals)]
    ms = lambda v: round(1000 * v, 2)  # noqa: E731
    return {
        "chunks": len(live.index), "index_kind": live.index.manifest.index_kind, "questions": len(totals),
        "load_s": load_s, "rss_after_load_mb": rss_loaded, "rss_warm_mb": rss_warm,
        "rss_after_questions_mb": benchlib.rss_mb(), "peak_rss_mb": benchlib.peak_rss_mb(),
        "p50_ms": ms(benchlib.pct(totals, 50)), "p95_ms": ms(benchlib.pct(totals, 95)), "mean_ms": ms(sum(totals) / len(totals)),
        "retrieval_p50_ms": ms(benchlib.pct(retrieval, 50)), "retrieval_p95_ms": ms(benchlib.pct(retrieval, 95)),
        "stage_p50_ms": {k: ms(benchlib.pct(v, 50)) for k, v in per_stage.items()} | {"rest": ms(benchlib.pct(rest, 50))},
        "stage_p95_ms": {k: ms(benchlib.pct(v, 95)) for k, v in per_stage.items()} | {"rest": ms(benchlib.pct(rest, 95))},
        "stage_share_of_mean": {k: round(sum(v) / sum(totals), 3) for k, v in per_stage.items()} | {"rest": round(sum(rest) / sum(totals), 3)},
        "load_1min": benchlib.load_average()[0], "torch_threads": torch_threads or "default",
    }


def in_subprocess(*args: str) -> dict:
    return benchlib.in_subprocess(__file__, *args)


# --------------------------------------------------------------------------- recall


def sentence_vectors() -> np.ndarray:
    """MiniLM vectors of every sentence of SQuAD v1.1 dev, SQuAD v2.0 tune-half, XQuAD en and the UN speeches."""
    cache = benchlib.WORK / "sentence-vectors.npy"
    if cache.is_file():
        return np.load(cache)
    from regional_chat.chunking import split_sentences
    from regional_chat.embedding import make_embedder
    from regional_chat.settings import Settings

    texts: list[str] = []
    for name in ("squad-dev-v1.1.json", "squad-dev-v2.0-tune-half.json", "xquad.en.json"):
        raw = json.loads((benchlib.SHARED / name).read_text(encoding="utf-8"))
        for article in raw["data"]:
            for para in article["paragraphs"]:
                texts.extend(_sentences(para["context"], split_sentences))
    for line in (benchlib.SHARED / "ungdc-central-asia.jsonl").read_text(encoding="utf-8").splitlines():
        texts.extend(_sentences(json.loads(line)["text"], split_sentences))
    texts = benchlib.spread(sorted(set(t for t in texts if len(t) > 20)), MAX_SENTENCES)
    print(f"embedding {len(texts)} sentences", file=sys.stderr)
    embedder = make_embedder(Settings())
    vectors = np.concatenate([embedder.embed_passages(texts[i : i + 4096]) for i in range(0, len(texts), 4096)])
    np.save(cache, vectors)
    return vectors


def _sentences(text: str, split) -> list[str]:
    out = []
    for s in split(text):
        out.append(text[s[0] : s[1]] if isinstance(s, tuple) else getattr(s, "text", str(s)))
    return [" ".join(t.split()) for t in out]


def question_vectors(n: int) -> np.ndarray:
    cache = benchlib.WORK / f"question-vectors-{n}.npy"
    if cache.is_file():
        return np.load(cache)
    from regional_chat.embedding import make_embedder
    from regional_chat.settings import Settings

    _, questions = benchlib.squad_paragraphs()
    vecs = make_embedder(Settings()).embed_queries([q["question"] for q in benchlib.spread(questions, n)])
    np.save(cache, vecs)
    return vecs


def recall_at(vectors: np.ndarray, queries: np.ndarray, shapes: dict[str, int], k: int = 10) -> dict:
    import faiss

    from regional_chat import index_kinds

    exact = faiss.IndexFlatIP(vectors.shape[1])
    exact.add(vectors)
    _, truth = exact.search(queries, k)
    del exact
    out = {}
    for label, n_for_shape in shapes.items():
        shape = index_kinds.IvfParams.for_size(n_for_shape)
        for kind in ("ivf", "ivf-fp16", "ivf-sq8"):
            index = index_kinds.new_ivf(kind, vectors, n_total=n_for_shape)
            index.add_with_ids(vectors, np.arange(len(vectors), dtype=np.int64))
            ivf = faiss.extract_index_ivf(index)
            row = {}
            for nprobe in sorted({max(1, shape.nprobe // 4), max(1, shape.nprobe // 2), shape.nprobe, min(shape.nlist, shape.nprobe * 2)}):
                ivf.nprobe = nprobe
                _, got = index.search(queries, k)
                single = []
                for q in queries[:200]:  # one at a time, as a question comes
                    t = time.perf_counter()
                    index.search(q.reshape(1, -1), k)
                    single.append(time.perf_counter() - t)
                ms = 1000 * benchlib.pct(single, 50)
                hits = sum(len(set(a) & set(b)) for a, b in zip(truth.tolist(), got.tolist()))
                row[str(nprobe)] = {"recall": round(hits / truth.size, 4), "ms_per_query": round(ms, 3)}
            out[f"{label} {kind}"] = {"nlist": shape.nlist, "default_nprobe": shape.nprobe, "n_for_shape": n_for_shape, "by_nprobe": row}
            print(f"recall {label} {kind}: {row}", file=sys.stderr)
            del index
    return out


def do_recall(synthetic: int) -> dict:
    _, pool = base_pool()
    real = np.concatenate([pool, sentence_vectors()]).astype(np.float32)
    queries = question_vectors(1000)
    result = {"real_vectors": len(real), "queries": len(queries),
              "real": recall_at(real, queries, {f"own shape ({len(real)})": len(real), "200k shape": 200_000, "1M shape": 1_000_000})}
    if synthetic:
        rng = np.random.default_rng(1)
        syn = np.empty((synthetic, pool.shape[1]), dtype=np.float32)
        for lo in range(0, synthetic, 100_000):
            hi = min(lo + 100_000, synthetic)
            part = pool[rng.integers(0, len(pool), hi - lo)] + rng.standard_normal((hi - lo, pool.shape[1]), dtype=np.float32) * SIGMA
            syn[lo:hi] = part / np.linalg.norm(part, axis=1, keepdims=True)
        result["synthetic_vectors"] = synthetic
        result["synthetic"] = recall_at(syn, queries, {f"{synthetic} shape": synthetic})
    return result


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("step", choices=("all", "prepare", "builds", "serves", "build", "serve", "recall"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 200_000, 1_000_000])
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--torch-threads", type=int, default=1,
                        help="(serves) torch threads in the serving process; 0 = torch's default (see BENCHMARKS.md)")
    parser.add_argument("--index", help="(serve) the index folder")
    parser.add_argument("--size", type=int, help="(build) the synthetic size")
    parser.add_argument("--synthetic-recall", type=int, default=1_000_000, help="(recall) synthetic vectors, 0 for none")
    args = parser.parse_args()

    if args.step == "build":
        print(json.dumps(do_build(args.size, Path(args.index))))
        return
    if args.step == "serve":
        print(json.dumps(do_serve(Path(args.index), args.questions, args.torch_threads)))
        return
    if args.step == "recall":
        merge({"recall": do_recall(args.synthetic_recall)})
        return

    texts, _ = base_pool()
    corpora = {size: make_corpus(size, texts) for size in args.sizes}
    if args.step == "prepare":
        print(json.dumps(corpora, indent=1))
        return
    result = benchlib.read(RESULT) or {}
    sizes = dict(result.get("sizes", {}))
    label = lambda size: f"{size // 1000}k" if size < 1_000_000 else f"{size // 1_000_000}M"  # noqa: E731
    if args.step in ("all", "builds"):
        merge({"method": {"pieces_per_document": PIECES_PER_DOC, "sigma": SIGMA, "base_chunks": len(texts)}})
        for size in args.sizes:
            index = benchlib.WORK / f"synthetic-{size}" / "index"
            print(f"building {size}", file=sys.stderr)
            build = in_subprocess("build", "--size", str(size), "--index", str(index))
            print(f"  {build}", file=sys.stderr)
            sizes[label(size)] = {"kind": "synthetic", "corpus": corpora[size], "build": build}
            merge({"sizes": sizes, "builds_command": benchlib.command(), "builds_load_average_at_end": benchlib.load_average()})
    if args.step in ("all", "serves"):
        real = benchlib.WORK / "squad-index"
        print("serving the real SQuAD index", file=sys.stderr)
        threads = ("--torch-threads", str(args.torch_threads))
        serve = in_subprocess("serve", "--index", str(real), "--questions", str(args.questions), *threads)
        sizes["2k"] = {"kind": "real SQuAD v1.1 dev paragraphs", "serve": serve}
        print(f"  {serve}", file=sys.stderr)
        for size in args.sizes:
            index = benchlib.WORK / f"synthetic-{size}" / "index"
            serve = in_subprocess("serve", "--index", str(index), "--questions", str(args.questions), *threads)
            print(f"  {size}: {serve}", file=sys.stderr)
            sizes[label(size)]["serve"] = serve
        merge({"sizes": sizes, "serves_command": benchlib.command(), "serves_load_average_at_end": benchlib.load_average()})

if __name__ == "__main__":
    main()
