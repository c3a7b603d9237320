"""regional-chat next to Haystack 2.x on the same chunks, questions and model, in one run.

    python3 -m venv .venv-bench
    .venv-bench/bin/pip install -c constraints.txt -e . haystack-ai==3.4.1 sentence-transformers-haystack==2.0.0
    HF_HUB_OFFLINE=1 .venv-bench/bin/python bench/bench_haystack.py [--questions 300]

Haystack is a benchmark-only dependency: it lives in .venv-bench (git-ignored), never in the
app's venv or its pins. Measured with haystack-ai 3.4.1 and sentence-transformers-haystack 2.0.0
(its SentenceTransformers embedders moved out of haystack-ai into that package), over the same
torch 2.13.0 / sentence-transformers 6.2.0 as the app.

Corpus: the 2,067 SQuAD v1.1 dev paragraphs. regional-chat builds them with ``build_index``
(chunking included); Haystack gets exactly the chunks that build made (chunking not timed for it),
as ``Document``s with the paragraph id in ``meta``. Both embed with the packaged all-MiniLM-L6-v2
folder (a local path: nothing reaches for the hub), the same dtype, batch size 64, normalised.

Haystack side: ``InMemoryDocumentStore`` (its default BM25L), ``SentenceTransformersDocumentEmbedder``
then ``write_documents`` to index; to query, a ``Pipeline`` of ``SentenceTransformersTextEmbedder`` ->
``InMemoryEmbeddingRetriever`` (top 50) and ``InMemoryBM25Retriever`` (top 50) ->
``DocumentJoiner`` (reciprocal rank fusion, top 5): hybrid retrieval as its docs show it.
Haystack's ``ExtractiveReader`` needs a SQuAD-tuned transformer that is not on this machine (it
would be downloaded), so Haystack's side stops at retrieval; regional-chat is timed both for
retrieval alone (``Retriever.search``, hybrid, top 5) and for the whole answer (``Assistant.answer``:
retrieval + sentence scoring + short answer).

Each system runs in its own fresh process (so memory is its own), with the same number of torch
threads (``--torch-threads``, default 1: on a shared 2-core machine two spinning threads make one
question's encoding several times slower, for both systems alike); index time counts from a
loaded model to a searchable index. Recall@5: the question's paragraph is among the top 5 chunks.
Writes bench/results/haystack.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

sys.path.insert(0, str(benchlib.ROOT / "src"))


ANSWERS = 60  # questions also answered in full by regional-chat (timing only)


def corpus() -> Path:
    path = benchlib.WORK / "squad-corpus" / "squad-dev-paragraphs.jsonl"
    if not path.is_file():
        docs, _ = benchlib.squad_paragraphs()
        benchlib.write_jsonl(path, docs)
    return path


def questions(n: int) -> list[dict]:
    _, qs = benchlib.squad_paragraphs()
    return benchlib.spread(qs, n)


def timed_queries(fn, qs: list[dict], warm: int = 5) -> tuple[list[float], float]:
    for q in qs[:warm]:
        fn(q["question"])
    times, hits = [], 0
    for q in qs:
        t = time.perf_counter()
        docs = fn(q["question"])
        times.append(time.perf_counter() - t)
        hits += any(d.split("#", 1)[-1] == q["doc"] for d in docs)  # "<file>#<paragraph id>"
    return times, hits / len(qs)


def summary(times: list[float]) -> dict:
    return {"p50_ms": round(1000 * benchlib.pct(times, 50), 2), "p95_ms": round(1000 * benchlib.pct(times, 95), 2)}


def run_regional_chat(n: int) -> dict:
    from regional_chat.assistant import Assistant
    from regional_chat.embedding import make_embedder
    from regional_chat.build import build_index
    from regional_chat.settings import Settings

    settings = Settings()
    embedder = make_embedder(settings)
    t = time.perf_counter()
    embedder.warm_up()
    model_s = time.perf_counter() - t
    index = benchlib.WORK / "haystack-cmp-rc-index"
    report = build_index(corpus(), index, settings, embedder=embedder, full=True, warn=lambda m: None)
    rss_indexed = benchlib.rss_mb()
    bot = Assistant.load(index, settings, embedder=embedder)
    qs = questions(n)
    retrieval, recall = timed_queries(lambda q: [h.chunk.doc_id for h in bot.search(q, k=5)], qs)
    answer, _ = timed_queries(lambda q: [x.doc_id for x in bot.answer(q).quotes], qs[:ANSWERS])
    return {
        "system": "regional-chat", "model_load_s": model_s, "index_s": report.seconds, "chunks": report.chunks,
        "retrieval": summary(retrieval), "answer": summary(answer), "recall_at_5": recall,
        "rss_after_index_mb": rss_indexed, "rss_end_mb": benchlib.rss_mb(), "peak_rss_mb": benchlib.peak_rss_mb(),
        "questions": len(qs), "answer_questions": min(len(qs), ANSWERS), "load_1min": benchlib.load_average()[0],
    }


def run_haystack(n: int) -> dict:
    import torch
    from haystack import Document, Pipeline
    from haystack.components.joiners import DocumentJoiner
    from haystack.components.retrievers.in_memory import InMemoryBM25Retriever, InMemoryEmbeddingRetriever
    from haystack.document_stores.in_memory import InMemoryDocumentStore
    from haystack.utils import ComponentDevice
    from haystack_integrations.components.embedders.sentence_transformers import (
        SentenceTransformersDocumentEmbedder,
        SentenceTransformersTextEmbedder,
    )

    from regional_chat.embedding import cpu_has_bf16, packaged_minilm_path
    from regional_chat.store import load_index

    model = str(packaged_minilm_path())
    kwargs = {"torch_dtype": torch.bfloat16} if cpu_has_bf16() else {}
    common = dict(model=model, device=ComponentDevice.from_str("cpu"), local_files_only=True, model_kwargs=kwargs,
                  batch_size=64, normalize_embeddings=True, progress_bar=False)
    # the chunks regional-chat made of the same paragraphs (chunking is not timed for Haystack)
    rc = load_index(benchlib.WORK / "haystack-cmp-rc-index")
    chunks = [Document(id=str(c.chunk_id), content=c.text, meta={"doc_id": c.doc_id}) for c in rc.iter_chunks()]
    rc.close()

    doc_embedder = SentenceTransformersDocumentEmbedder(**common)
    t = time.perf_counter()
    doc_embedder.warm_up()
    model_s = time.perf_counter() - t
    t = time.perf_counter()
    store = InMemoryDocumentStore()
    embedded = doc_embedder.run(documents=chunks)["documents"]
    store.write_documents(embedded)
    index_s = time.perf_counter() - t
    rss_indexed = benchlib.rss_mb()

    pipe = Pipeline()
    pipe.add_component("text_embedder", SentenceTransformersTextEmbedder(**{k: v for k, v in common.items() if k != "batch_size"}))
    pipe.add_component("dense", InMemoryEmbeddingRetriever(document_store=store, top_k=50))
    pipe.add_component("bm25", InMemoryBM25Retriever(document_store=store, top_k=50))
    pipe.add_component("joiner", DocumentJoiner(join_mode="reciprocal_rank_fusion", top_k=5))
    pipe.connect("text_embedder.embedding", "dense.query_embedding")
    pipe.connect("dense", "joiner")
    pipe.connect("bm25", "joiner")
    pipe.warm_up()

    def search(q: str) -> list[str]:
        out = pipe.run({"text_embedder": {"text": q}, "bm25": {"query": q}})
        return [d.meta["doc_id"] for d in out["joiner"]["documents"]]

    qs = questions(n)
    retrieval, recall = timed_queries(search, qs)
    import importlib.metadata as md

    return {
        "system": "haystack", "haystack_ai": md.version("haystack-ai"), "sentence_transformers_haystack": md.version("sentence-transformers-haystack"),
        "model_load_s": model_s, "index_s": index_s, "chunks": len(chunks),
        "retrieval": summary(retrieval), "recall_at_5": recall,
        "rss_after_index_mb": rss_indexed, "rss_end_mb": benchlib.rss_mb(), "peak_rss_mb": benchlib.peak_rss_mb(),
        "questions": len(qs), "load_1min": benchlib.load_average()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--questions", type=int, default=300)
    parser.add_argument("--system", choices=("regional-chat", "haystack"), help=argparse.SUPPRESS)
    parser.add_argument("--torch-threads", type=int, default=1, help="torch threads in both systems' processes (0: torch's default)")
    args = parser.parse_args()
    if args.system:
        if args.torch_threads:
            import torch

            torch.set_num_threads(args.torch_threads)
        fn = run_regional_chat if args.system == "regional-chat" else run_haystack
        print(json.dumps(fn(args.questions)))
        return
    result = benchlib.header()
    result["systems"] = {}
    result["torch_threads"] = args.torch_threads or "default"
    for system in ("regional-chat", "haystack"):  # regional-chat first: Haystack reads its chunks
        out = subprocess.run([sys.executable, __file__, "--system", system, "--questions", str(args.questions),
                              "--torch-threads", str(args.torch_threads)], capture_output=True, text=True)
        if out.returncode:
            sys.stderr.write(out.stderr[-5000:])
            sys.exit(f"{system} failed")
        result["systems"][system] = json.loads(out.stdout.strip().splitlines()[-1])
        print(system, result["systems"][system], file=sys.stderr)
    benchlib.write("haystack.json", result)


if __name__ == "__main__":
    main()
