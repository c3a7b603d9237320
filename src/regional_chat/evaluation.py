"""`regional-chat eval`: retrieval and answer quality on a SQuAD-format file (v1.1 or v2.0).

Each paragraph of the file becomes one document (``--corpus-from-contexts``),
every question is asked, and the figures are compared with the gold answers:

* retrieval recall@1/5/20 and MRR for dense, lexical and hybrid retrieval
  (relevant = the question's own paragraph; chunks of one paragraph count once);
* answer-sentence hit@1 (the first quote contains a gold answer);
* SQuAD exact match and F1 (official normalisation) of ``Answer.text`` and of the
  whole best sentence;
* abstention accuracy for v2.0 (answered when answerable, abstained when not);
* per-question latency p50/p95 (question embedding + retrieval + answer extraction);
* with ``--leave-article-out``: each article's questions asked against the corpus
  without that article, where every one should be abstained on.

Every figure is given on all questions and on each half of the articles
(even- and odd-numbered), since the answer weights were tuned on the even half.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import re
import string
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .retrieval import MODES
from .settings import Settings

# the order of the figures in the published results (bench/results/eval-*.json, docs/QUALITY.md), not MODES' order
_REPORTED = ("dense", "lexical", "hybrid")


@dataclass(frozen=True)
class Question:
    qid: str
    text: str
    answers: tuple[str, ...]  # empty for an unanswerable v2.0 question
    doc_id: str
    article: int


# ----------------------------------------------------------------------- official SQuAD scoring


def normalize_answer(s: str) -> str:
    """Lower-case, drop punctuation and the articles a/an/the, collapse white space (SQuAD's own)."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def exact_match(prediction: str, golds: Sequence[str]) -> float:
    if not golds:
        return float(prediction == "")
    return max(float(normalize_answer(prediction) == normalize_answer(g)) for g in golds)


def f1_score(prediction: str, golds: Sequence[str]) -> float:
    if not golds:
        return float(prediction == "")
    best = 0.0
    pred = normalize_answer(prediction).split()
    for gold in golds:
        ref = normalize_answer(gold).split()
        common = collections.Counter(pred) & collections.Counter(ref)
        same = sum(common.values())
        if same == 0:
            continue
        precision, recall = same / len(pred), same / len(ref)
        best = max(best, 2 * precision * recall / (precision + recall))
    return best


# ----------------------------------------------------------------------- the data


def read_squad(path: str | Path) -> tuple[list[tuple[str, str, str]], list[Question]]:
    """(paragraphs as (doc_id, title, text), questions) of a SQuAD v1.1/v2.0 file."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))["data"]
    paragraphs: list[tuple[str, str, str]] = []
    questions: list[Question] = []
    for a, article in enumerate(data):
        title = article.get("title", f"article {a}").replace("_", " ")
        for p, para in enumerate(article["paragraphs"]):
            local = f"a{a:03d}p{p:03d}"
            paragraphs.append((local, title, para["context"]))
            for qa in para["qas"]:
                golds = () if qa.get("is_impossible") else tuple(x["text"] for x in qa["answers"])
                questions.append(Question(qa["id"], qa["question"], golds, local, a))
    return paragraphs, questions


def write_contexts_corpus(paragraphs: Sequence[tuple[str, str, str]], folder: Path) -> Path:
    """The paragraphs as one JSON Lines corpus file; left untouched when already identical."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "contexts.jsonl"
    body = "".join(json.dumps({"id": local, "title": title, "text": text}, ensure_ascii=False) + "\n" for local, title, text in paragraphs)
    if not path.is_file() or path.read_text(encoding="utf-8") != body:
        path.write_text(body, encoding="utf-8")
    return path


# ----------------------------------------------------------------------- running


def _local(doc_id: str) -> str:
    return doc_id.rsplit("#", 1)[-1]


def _distinct_docs(hits) -> list[str]:
    seen: list[str] = []
    for hit in hits:
        local = _local(hit.chunk.doc_id)
        if local not in seen:
            seen.append(local)
    return seen


class ArticleLeftOut:
    """The hits a question would get if its article were not in the corpus.

    Each paragraph's id starts with its article ("a012p003"); the search asks for as many more
    chunks as the largest article has, and drops the question's own article from them.

    Args:
        index: the loaded index of a ``--corpus-from-contexts`` corpus.
        embedder: the index's embedder.
        settings: ``candidates`` and ``top_k``, as the assistant uses them.
    """

    def __init__(self, index: Any, embedder: Any, settings: Settings) -> None:
        from .retrieval import Retriever

        self.settings = settings
        self.article_chunks = collections.Counter(_local(c.doc_id)[:4] for c in index.iter_chunks())
        wider = settings.with_(candidates=settings.candidates + max(self.article_chunks.values()))
        self.retriever = Retriever(index, index.lexical, embedder, wider)

    def hits(self, question: str, vector: np.ndarray, doc_id: str, mode: str = "hybrid") -> list:
        """The ``top_k`` best chunks outside the article of paragraph ``doc_id``."""
        article = _local(doc_id)[:4]
        found = self.retriever.search_vector(question, vector, self.settings.top_k + self.article_chunks[article], mode)
        return [h for h in found if _local(h.chunk.doc_id)[:4] != article][: self.settings.top_k]


def reliability(rows: Sequence[dict[str, Any]], bins: int = 10) -> list[dict[str, Any]]:
    """Confidence against how often the answer was right, in ``bins`` equal bins (a reliability diagram).

    A calibrated confidence has ``right`` close to ``mean_confidence`` in every bin.
    """
    pairs = [(r["confidence"], bool(r["right"])) for r in rows if "confidence" in r]
    out = []
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        inside = [(c, ok) for c, ok in pairs if lo <= c < hi or (b == bins - 1 and c == hi)]
        if inside:
            out.append({"bin": f"{lo:.1f}-{hi:.1f}", "n": len(inside), "mean_confidence": round(float(np.mean([c for c, _ in inside])), 3),
                        "right": round(float(np.mean([ok for _, ok in inside])), 3)})
    return out


def _pct(values: Sequence[float]) -> float | None:
    return round(100.0 * float(np.mean(values)), 2) if len(values) else None


@dataclass
class _Tally:
    """Per-question outcomes, kept so that any subset (a half of the articles) can be summarised."""

    rows: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def summary(self, keep: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        rows = [r for r in self.rows if keep(r)]
        if not rows:
            return {"questions": 0}
        out: dict[str, Any] = {"questions": len(rows)}
        for mode in _REPORTED:
            ranks = [r["rank"][mode] for r in rows if mode in r["rank"]]
            if ranks:
                out[f"{mode}_recall@1"] = _pct([0 < x <= 1 for x in ranks])
                out[f"{mode}_recall@5"] = _pct([0 < x <= 5 for x in ranks])
                out[f"{mode}_recall@20"] = _pct([0 < x <= 20 for x in ranks])
                out[f"{mode}_mrr"] = round(float(np.mean([1.0 / x if x else 0.0 for x in ranks])), 4)
        answerable = [r for r in rows if r["answerable"]]
        unanswerable = [r for r in rows if not r["answerable"]]
        if answerable and "hit1" in answerable[0]:
            out["sentence_hit@1"] = _pct([r["hit1"] for r in answerable])
            out["short_em"] = _pct([r["em"] for r in answerable])
            out["short_f1"] = _pct([r["f1"] for r in answerable])
            out["sentence_em"] = _pct([r["sent_em"] for r in answerable])
            out["sentence_f1"] = _pct([r["sent_f1"] for r in answerable])
            out["short_em_as_answered"] = _pct([r["em"] * r["found"] for r in answerable])
            out["short_f1_as_answered"] = _pct([r["f1"] * r["found"] for r in answerable])
            out["answered_when_answerable"] = _pct([r["found"] for r in answerable])
        if unanswerable and "found" in unanswerable[0]:
            out["abstained_when_unanswerable"] = _pct([not r["found"] for r in unanswerable])
        if answerable and unanswerable and "found" in rows[0]:
            out["abstention_accuracy"] = _pct([r["found"] == r["answerable"] for r in rows])
        if "out_found" in rows[0]:
            out["leave_article_out_abstained"] = _pct([not r["out_found"] for r in rows])
        latencies = [r["ms"] for r in rows if "ms" in r]
        if latencies:
            out["latency_p50_ms"] = round(float(np.percentile(latencies, 50)), 1)
            out["latency_p95_ms"] = round(float(np.percentile(latencies, 95)), 1)
        return out


def evaluate(
    squad_file: str | Path,
    index_dir: str | Path | None = None,
    settings: Settings | None = None,
    *,
    mode: str = "hybrid",
    leave_article_out: bool = False,
    limit: int | None = None,
    answers: bool = True,
    progress: bool = False,
    articles: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Run the evaluation; returns every figure as a JSON-ready dict.

    Args:
        squad_file: a SQuAD v1.1 or v2.0 JSON file.
        index_dir: where the paragraphs' index is built (reused when it is up to date);
            default ``/tmp/regional-chat-eval/<file name>-<model>``.
        settings: model, retrieval and answer settings.
        mode: the retrieval that feeds the answers (all three are measured for recall).
        leave_article_out: also ask each question against the corpus without its article.
        limit: ask only every n-th question so that about ``limit`` are asked (quick runs).
        answers: False measures retrieval only.
        articles: ask only the questions of these articles (their index in the file); every
            paragraph is still indexed, so the others remain as distractors.
    """
    from .assistant import Assistant
    from .embedding import make_embedder
    from .build import build_index
    from .store import is_milvus, load_index

    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}.")
    settings = settings or Settings()
    squad_file = Path(squad_file)
    paragraphs, questions = read_squad(squad_file)
    if articles is not None:
        keep = set(articles)
        questions = [q for q in questions if q.article in keep]
    if limit and limit < len(questions):
        step = len(questions) / limit
        questions = [questions[int(i * step)] for i in range(limit)]
    # one scratch index per file and model: switching the encoder never meets an index built with the other
    model_tag = "".join(c if c.isalnum() or c in "-_." else "_" for c in settings.model)
    scratch = Path("/tmp/regional-chat-eval") / f"{squad_file.stem}-{model_tag}"
    if is_milvus(index_dir):  # the paragraphs' index in a Milvus store; their corpus file stays on disk
        root: Path | str = str(index_dir)
        corpus = write_contexts_corpus(paragraphs, scratch.parent / f"{scratch.name}.corpus")
    else:
        root = Path(index_dir) if index_dir else scratch
        corpus = write_contexts_corpus(paragraphs, root.parent / f"{root.name}.corpus")
    built = build_index(corpus.parent, root, settings, progress=progress, warn=lambda m: print(f"warning: {m}", file=sys.stderr))
    embedder = make_embedder(settings)
    index = load_index(root, settings, embedder)
    # the very assistant a user gets: its answer, its decision to answer or not
    bot = Assistant(index, settings, embedder, corpus.parent)
    left_out = ArticleLeftOut(index, embedder, settings)

    tally = _Tally()
    depth = max(20, settings.top_k) * 2
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(questions), unit="q", file=sys.stderr, dynamic_ncols=True)
    for q in questions:
        row: dict[str, Any] = {"article": q.article, "answerable": bool(q.answers), "rank": {}}
        if answers:
            started = time.perf_counter()
            ans = bot.answer(q.text, mode=mode)
            row["ms"] = 1000 * (time.perf_counter() - started)
            row["found"] = ans.found
            row["confidence"] = ans.confidence
            row["right"] = False  # an answer to an unanswerable question is never right
            if q.answers:
                # the figures without abstention score what it would have said had it answered:
                # the same call, told not to abstain (only needed when it did)
                said = ans if ans.found else bot.answer(q.text, mode=mode, abstain=False)
                best = said.quotes or said.related
                sentence = best[0].text if best else ""
                short = said.text if said.quotes else ""
                row["hit1"] = any(g in sentence for g in q.answers)
                row["em"], row["f1"] = exact_match(short, q.answers), f1_score(short, q.answers)
                row["sent_em"], row["sent_f1"] = exact_match(sentence, q.answers), f1_score(sentence, q.answers)
                row["right"] = row["f1"] >= 0.5  # what the confidence claims to predict
        docs = {m: _distinct_docs(bot.search(q.text, k=depth, mode=m)) for m in MODES}
        for m, ranked in docs.items():
            row["rank"][m] = ranked.index(q.doc_id) + 1 if q.doc_id in ranked else 0
        if leave_article_out and answers:
            vector = None if mode == "lexical" else embedder.embed_queries([q.text])[0]
            out = bot.extractor.extract(q.text, left_out.hits(q.text, vector, q.doc_id, mode), index.document, embedder, vector)
            row["out_found"] = out.found
        tally.rows.append(row)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()

    result = {
        "file": str(squad_file),
        "questions": len(questions),
        "paragraphs": len(paragraphs),
        "chunks": built.chunks,
        "mode": mode,
        "settings": settings.as_dict(),
        "reader": bot.extractor.reader.meta["trained"]["command"],
        "articles": sorted(set(articles)) if articles is not None else "all",
        "reliability": {
            "all": reliability(tally.rows),
            "odd_articles": reliability([r for r in tally.rows if r["article"] % 2 == 1]),
        },
        "all": tally.summary(lambda r: True),
        "even_articles": tally.summary(lambda r: r["article"] % 2 == 0),
        "odd_articles": tally.summary(lambda r: r["article"] % 2 == 1),
    }
    return result


def format_report(result: dict[str, Any]) -> str:
    """The figures as a Markdown table: all questions, and each half of the articles."""
    keys = [k for k in result["all"] if k != "questions"]
    lines = [
        f"{result['file']}: {result['questions']} questions, {result['paragraphs']} paragraphs "
        f"({result['chunks']} chunks), answers from {result['mode']} retrieval",
        "",
        "| figure | all | even articles (tuning) | odd articles (held out) |",
        "|---|---|---|---|",
        f"| questions | {result['all']['questions']} | {result['even_articles'].get('questions')} | {result['odd_articles'].get('questions')} |",
    ]
    for key in keys:
        lines.append(f"| {key} | {result['all'].get(key)} | {result['even_articles'].get(key)} | {result['odd_articles'].get(key)} |")
    return "\n".join(lines)
