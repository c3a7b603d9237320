"""regional-chat next to Haystack 2.x on the same chunks, questions and model, in one run.

    python3 -m venv .venv-bench
    .venv-bench/bin/pip install -c constraints.txt -e . haystack-ai==3.4.1 sentence-transformers-haystack==2.0.0 \
        transformers-haystack==2.0.0
    HF_HUB_OFFLINE=1 .venv-bench/bin/python bench/bench_haystack.py [--questions 300] [--model e5|minilm]

Haystack is a benchmark-only dependency: it lives in .venv-bench (git-ignored), never in the
app's venv or its pins. Measured with haystack-ai 3.4.1 and sentence-transformers-haystack 2.0.0
(its SentenceTransformers embedders moved out of haystack-ai into that package), over the same
torch 2.13.0 / sentence-transformers 6.2.0 as the app.

Corpus: the 2,067 SQuAD v1.1 dev paragraphs. regional-chat builds them with ``build_index``
(chunking included); Haystack gets exactly the chunks that build made (chunking not timed for it),
as ``Document``s with the paragraph id in ``meta``, and the context header regional-chat embeds before
each chunk (the article's title here) as a meta field its embedder embeds the same way
(``meta_fields_to_embed``, separator "\n"): both embed the same texts (since 2026-12-06 evening; before,
Haystack embedded the chunks alone: 7% less time on 300 of the paragraphs). Both embed with the same model folder (``--model``: the
product's default, multilingual-e5-small recovered by ``regional_chat.e5``, with its "query: " / "passage: "
prefixes; or the packaged all-MiniLM-L6-v2), a local path (nothing reaches for the hub), the same dtype,
batch size 64, normalised.

Haystack side: ``InMemoryDocumentStore`` (its default BM25L), ``SentenceTransformersDocumentEmbedder``
then ``write_documents`` to index; to query, a ``Pipeline`` of ``SentenceTransformersTextEmbedder`` ->
``InMemoryEmbeddingRetriever`` (top 50) and ``InMemoryBM25Retriever`` (top 50) ->
``DocumentJoiner`` (reciprocal rank fusion, top 5): hybrid retrieval as its docs show it.
Whole answers: Haystack's pipeline goes on to its ``ExtractiveReader`` (in haystack-ai 3.x the
``transformers-haystack`` integration's ``TransformersExtractiveReader``) loaded with the reader
regional-chat ships (``src/regional_chat/reading/weights``: no SQuAD reader can be downloaded here),
matched to ours where it has the settings (window length, stride, dtype; top_k 1, no_answer off); it
reads the five passages the joiner returns. regional-chat answers with ``Assistant.answer``
(retrieval + reader + calibrated decision). Both are timed per question and scored by SQuAD EM / F1 of
the short answer on the first ``--answers`` questions (for regional-chat: the answer it would give with
abstention off, so that both are scored on every question; answered-when-answerable is given apart).

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


ANSWERS = 60  # questions also answered in full (default of --answers)


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


def scores(predictions: list[str], qs: list[dict]) -> dict:
    from regional_chat.evaluation import exact_match, f1_score

    golds = [q["answers"] for q in qs]
    return {"em": round(100 * sum(exact_match(p, g) for p, g in zip(predictions, golds)) / len(qs), 1),
            "f1": round(100 * sum(f1_score(p, g) for p, g in zip(predictions, golds)) / len(qs), 1)}


def model_folder(model: str) -> tuple[str, str, str]:
    """The model's folder and its query and passage prefixes, for Haystack's embedders."""
    if model == "e5":
        from regional_chat import e5

        return str(e5.recover()), e5.QUERY_PREFIX, e5.PASSAGE_PREFIX
    from regional_chat.embedding import packaged_minilm_path

    return str(packaged_minilm_path()), "", ""


def run_regional_chat(n: int, model: str, answers: int) -> dict:
    from regional_chat.assistant import Assistant
    from regional_chat.embedding import make_embedder
    from regional_chat.build import build_index
    from regional_chat.settings import Settings

    settings = Settings(model=model)
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
    said: list = []

    def ask(q: str) -> list[str]:
        said.append(bot.answer(q, abstain=False))  # scored on every question, as Haystack's reader is
        return [x.doc_id for x in said[-1].quotes]

    answer, _ = timed_queries(ask, qs[:answers], warm=0)
    return {
        "system": "regional-chat", "model": model, "model_load_s": model_s, "index_s": report.seconds, "chunks": report.chunks,
        "retrieval": summary(retrieval), "answer": summary(answer), "recall_at_5": recall,
        "answer_scores": scores([a.shown for a in said], qs[:answers]),
        "answered_when_answerable": round(100 * sum(a.found for a in said) / len(said), 1),
        "rss_after_index_mb": rss_indexed, "rss_end_mb": benchlib.rss_mb(), "peak_rss_mb": benchlib.peak_rss_mb(),
        "questions": len(qs), "answer_questions": len(said), "load_1min": benchlib.load_average()[0],
    }


def run_haystack(n: int, model: str, answers: int) -> dict:
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

    from haystack_integrations.components.readers.transformers import TransformersExtractiveReader

    from regional_chat.embedding import cpu_has_bf16
    from regional_chat.facets import context_header
    from regional_chat.reading.reader import WEIGHTS
    from regional_chat.store import load_index

    folder, query_prefix, passage_prefix = model_folder(model)
    kwargs = {"torch_dtype": torch.bfloat16} if cpu_has_bf16() else {}
    common = dict(model=folder, device=ComponentDevice.from_str("cpu"), local_files_only=True, model_kwargs=kwargs,
                  batch_size=64, normalize_embeddings=True, progress_bar=False)
    # the chunks regional-chat made of the same paragraphs (chunking is not timed for Haystack)
    # and the context header regional-chat embeds before each chunk (facets.context_header: here the paragraph's
    # article title), given to Haystack's embedder as a meta field to embed: both embed the same text,
    # prefix + header + "\n" + chunk
    rc = load_index(benchlib.WORK / "haystack-cmp-rc-index")
    headers = {d: context_header(rc.document(d).metadata) for d in rc.doc_ids()}
    chunks = [Document(id=str(c.chunk_id), content=c.text, meta={"doc_id": c.doc_id, "header": headers[c.doc_id] or None})
              for c in rc.iter_chunks()]
    rc.close()

    doc_embedder = SentenceTransformersDocumentEmbedder(**common, prefix=passage_prefix, meta_fields_to_embed=["header"],
                                                        embedding_separator="\n")
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
    pipe.add_component("text_embedder", SentenceTransformersTextEmbedder(**{k: v for k, v in common.items() if k != "batch_size"}, prefix=query_prefix))
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

    # the whole answer: the same retrieval, then Haystack's extractive reader on the shipped weights
    meta = json.loads((WEIGHTS / "reader.json").read_text())
    reader = TransformersExtractiveReader(
        model=str(WEIGHTS), top_k=1, no_answer=False, device=ComponentDevice.from_str("cpu"),
        max_seq_length=int(meta.get("serve_max_len") or meta["max_len"]), stride=int(meta["stride"]),
        model_kwargs={"dtype": torch.bfloat16 if cpu_has_bf16() else torch.float32},
    )
    pipe.add_component("reader", reader)
    pipe.connect("joiner", "reader.documents")
    pipe.warm_up()
    said: list[str] = []

    def ask(q: str) -> list[str]:
        out = pipe.run({"text_embedder": {"text": q}, "bm25": {"query": q}, "reader": {"query": q}})
        best = out["reader"]["answers"][:1]
        said.append(best[0].data or "" if best else "")
        return [best[0].document.meta["doc_id"]] if best and best[0].document is not None else []

    answer, _ = timed_queries(ask, qs[:answers], warm=0)
    import importlib.metadata as md

    return {
        "system": "haystack", "haystack_ai": md.version("haystack-ai"), "sentence_transformers_haystack": md.version("sentence-transformers-haystack"),
        "transformers_haystack": md.version("transformers-haystack"), "model": model,
        "model_load_s": model_s, "index_s": index_s, "chunks": len(chunks),
        "retrieval": summary(retrieval), "recall_at_5": recall,
        "answer": summary(answer), "answer_scores": scores(said, qs[:answers]), "answer_questions": len(said),
        "rss_after_index_mb": rss_indexed, "rss_end_mb": benchlib.rss_mb(), "peak_rss_mb": benchlib.peak_rss_mb(),
        "questions": len(qs), "load_1min": benchlib.load_average()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--questions", type=int, default=300)
    parser.add_argument("--answers", type=int, default=ANSWERS, help="of those, how many are answered in full by both")
    parser.add_argument("--regional-chat-from", metavar="JSON", help="reuse the regional-chat side of an earlier run of the same arguments "
                        "(what it printed, as JSON; its index must still be in the work folder) and run Haystack's only")
    parser.add_argument("--model", choices=("e5", "minilm"), default="e5", help="the encoder both systems embed with (default: the product's)")
    parser.add_argument("--system", choices=("regional-chat", "haystack"), help=argparse.SUPPRESS)
    parser.add_argument("--torch-threads", type=int, default=1, help="torch threads in both systems' processes (0: torch's default)")
    args = parser.parse_args()
    if args.system:
        if args.torch_threads:
            import torch

            torch.set_num_threads(args.torch_threads)
        fn = run_regional_chat if args.system == "regional-chat" else run_haystack
        print(json.dumps(fn(args.questions, args.model, args.answers)))
        return
    result = benchlib.header()
    result["systems"] = {}
    result["torch_threads"] = args.torch_threads or "default"
    result["model"] = args.model
    if args.regional_chat_from:  # a run whose Haystack side failed: its regional-chat side, as it printed it
        result["systems"]["regional-chat"] = json.loads(Path(args.regional_chat_from).read_text())
        result["regional_chat_from"] = args.regional_chat_from
    for system in ("regional-chat", "haystack"):  # regional-chat first: Haystack reads its chunks
        if system in result["systems"]:
            continue
        out = subprocess.run([sys.executable, __file__, "--system", system, "--questions", str(args.questions), "--model", args.model,
                              "--answers", str(args.answers), "--torch-threads", str(args.torch_threads)], capture_output=True, text=True)
        if out.returncode:
            sys.stderr.write(out.stderr[-5000:])
            sys.exit(f"{system} failed")
        result["systems"][system] = json.loads(out.stdout.strip().splitlines()[-1])
        print(system, result["systems"][system], file=sys.stderr)
    benchlib.write("haystack.json", result)


if __name__ == "__main__":
    main()
