"""`regional-chat eval`: retrieval and answer quality on a SQuAD-format file (v1.1 or v2.0).

Each paragraph of the file becomes one document (``--corpus-from-contexts``),
every question is asked, and the figures are compared with the gold answers:

* retrieval recall@1/5/20 and MRR for dense, lexical and hybrid retrieval
  (relevant = the question's own paragraph; chunks of one paragraph count once);
* answer-sentence hit@1 (the first quote contains a gold answer);
* SQuAD exact match and F1 (official normalisation) of the answer shown first (``Answer.short``, else its quote) and of the
  whole best sentence;
* abstention accuracy for v2.0 (answered when answerable, abstained when not);
* per-question latency p50/p95 (question embedding + retrieval + answer extraction);
* with ``--leave-article-out``: each question asked again with a filter that leaves
  its whole article out (:func:`article_left_out`), where every one should be abstained on.

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
from types import MappingProxyType
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .retrieval import MODES
from .settings import Settings
from .types import Answer, Filter


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


def squad_calibration_articles(v11: Sequence[Mapping], v20: Sequence[Mapping]) -> set[int]:
    """Indices in the SQuAD v2.0 tune half (``v20``, its ``data`` list) of the articles odd-indexed there and
    even-indexed in v1.1 (``v11``): the reader's training takes v1.1's even articles less v2.0's odd ones, the
    reports read the other odd halves, so these four are where the reader's confidence is fitted
    (``training/calibrate_reader.py``) and where readers are compared (``bench/bench_backbones.py``)."""
    v11_even = {a["title"] for i, a in enumerate(v11) if i % 2 == 0}
    return {i for i, a in enumerate(v20) if i % 2 == 1 and a["title"] in v11_even}


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


def article_left_out(article: int) -> Filter:
    """The :class:`Filter` that leaves out every paragraph of ``article`` (``read_squad`` names them ``a012p003``).

    Asked with it, the assistant searches the other articles' chunks only, inside FAISS and BM25, as
    for a user's filter; BM25's statistics (idf, mean chunk length) still count the article's chunks.
    """
    return Filter(exclude_paths=(f"*#a{article:03d}p*",))


@dataclass(frozen=True)
class Bin:
    """One bin of a reliability diagram: ``n`` answers with a confidence in ``bin``, and the share of them that was right."""

    bin: str  # "0.7-0.8"
    n: int
    mean_confidence: float
    right: float


def reliability(pairs: Iterable[tuple[float, bool]], bins: int = 10) -> tuple[Bin, ...]:
    """(confidence, right) pairs against how often the answer was right, in ``bins`` equal bins (a reliability diagram).

    A calibrated confidence has ``right`` close to ``mean_confidence`` in every bin; empty bins are left out.
    """
    pairs = [(float(c), bool(ok)) for c, ok in pairs]
    out = []
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        inside = [(c, ok) for c, ok in pairs if lo <= c < hi or (b == bins - 1 and c == hi)]
        if inside:
            out.append(Bin(f"{lo:.1f}-{hi:.1f}", len(inside), round(float(np.mean([c for c, _ in inside])), 3),
                           round(float(np.mean([ok for _, ok in inside])), 3)))
    return tuple(out)


@dataclass(frozen=True)
class Reliability:
    """The reliability diagram of every question's confidence, and of the held-out (odd) articles' alone."""

    all: tuple[Bin, ...] = ()
    odd_articles: tuple[Bin, ...] = ()

    def to_dict(self) -> dict[str, list[dict[str, Any]]]:
        return {"all": [dataclasses.asdict(b) for b in self.all], "odd_articles": [dataclasses.asdict(b) for b in self.odd_articles]}


def _figure(key: str | None = None) -> Any:
    """A figure's field: None until measured; ``key`` is its name in the published JSON when that is no identifier."""
    return dataclasses.field(default=None, metadata={"key": key} if key else {})


@dataclass(frozen=True)
class Figures:
    """Every figure of one set of questions (all, or a half of the articles); None where it was not measured.

    Which are measured depends on the run, never the fields: retrieval figures always; answer figures
    unless ``answers=False``; abstention figures on v2.0 files (unanswerable questions); the left-out
    figure with ``leave_article_out``. Percentages are 0-100, MRR 0-1, latencies milliseconds. Fields
    are in the published order (bench/results/eval-*.json, docs/QUALITY.md).
    """

    questions: int = 0
    dense_recall_at_1: float | None = _figure("dense_recall@1")
    dense_recall_at_5: float | None = _figure("dense_recall@5")
    dense_recall_at_20: float | None = _figure("dense_recall@20")
    dense_mrr: float | None = _figure()
    lexical_recall_at_1: float | None = _figure("lexical_recall@1")
    lexical_recall_at_5: float | None = _figure("lexical_recall@5")
    lexical_recall_at_20: float | None = _figure("lexical_recall@20")
    lexical_mrr: float | None = _figure()
    hybrid_recall_at_1: float | None = _figure("hybrid_recall@1")
    hybrid_recall_at_5: float | None = _figure("hybrid_recall@5")
    hybrid_recall_at_20: float | None = _figure("hybrid_recall@20")
    hybrid_mrr: float | None = _figure()
    sentence_hit_at_1: float | None = _figure("sentence_hit@1")
    short_em: float | None = _figure()
    short_f1: float | None = _figure()
    sentence_em: float | None = _figure()
    sentence_f1: float | None = _figure()
    short_em_as_answered: float | None = _figure()
    short_f1_as_answered: float | None = _figure()
    answered_when_answerable: float | None = _figure()
    abstained_when_unanswerable: float | None = _figure()
    abstention_accuracy: float | None = _figure()
    leave_article_out_abstained: float | None = _figure()
    latency_p50_ms: float | None = _figure()
    latency_p95_ms: float | None = _figure()

    def to_dict(self) -> dict[str, int | float]:
        """The measured figures under their published names (``hybrid_recall@5``), in the published order."""
        out: dict[str, int | float] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is not None:
                out[f.metadata.get("key", f.name)] = value
        return out


@dataclass(frozen=True)
class Outcome:
    """One question's outcome: where its paragraph ranked, what the assistant answered, and how that scored.

    ``ranks`` maps each retrieval mode to the 1-based rank of the question's paragraph among the distinct
    paragraphs retrieved (0: not among them). ``answer`` is :meth:`Assistant.answer`'s reply, as served;
    the scores are those of the short answer and best sentence it would have given had it answered
    (the same call with ``abstain=False``), on answerable questions only. Everything about answers is
    None when only retrieval was measured; ``left_out`` is None without ``leave_article_out``.
    """

    question: Question
    ranks: Mapping[str, int]
    answer: Answer | None = None
    ms: float | None = None
    sentence_hit: bool | None = None  # the first quote (or related passage) contains a gold answer
    short_em: float | None = None
    short_f1: float | None = None
    sentence_em: float | None = None
    sentence_f1: float | None = None
    left_out: Answer | None = None  # the reply with the question's article left out (``leave_article_out``)

    @property
    def right(self) -> bool | None:
        """What the confidence claims to predict: short answer F1 >= 0.5 (never, for an unanswerable question)."""
        if self.answer is None:
            return None
        return self.short_f1 is not None and self.short_f1 >= 0.5


def _pct(values: Sequence[float]) -> float | None:
    return round(100.0 * float(np.mean(values)), 2) if len(values) else None


def _figures(outcomes: Sequence[Outcome]) -> Figures:
    """The figures of ``outcomes`` (a half of the articles, or all of them)."""
    if not outcomes:
        return Figures(questions=0)
    values: dict[str, float | None] = {}
    for mode in MODES:
        ranks = [o.ranks[mode] for o in outcomes]
        values[f"{mode}_recall_at_1"] = _pct([0 < x <= 1 for x in ranks])
        values[f"{mode}_recall_at_5"] = _pct([0 < x <= 5 for x in ranks])
        values[f"{mode}_recall_at_20"] = _pct([0 < x <= 20 for x in ranks])
        values[f"{mode}_mrr"] = round(float(np.mean([1.0 / x if x else 0.0 for x in ranks])), 4)
    answered = [o for o in outcomes if o.answer is not None]
    answerable = [o for o in answered if o.question.answers]
    unanswerable = [o for o in answered if not o.question.answers]
    if answerable:
        values.update(
            sentence_hit_at_1=_pct([bool(o.sentence_hit) for o in answerable]),
            short_em=_pct([o.short_em for o in answerable]),
            short_f1=_pct([o.short_f1 for o in answerable]),
            sentence_em=_pct([o.sentence_em for o in answerable]),
            sentence_f1=_pct([o.sentence_f1 for o in answerable]),
            short_em_as_answered=_pct([o.short_em * o.answer.found for o in answerable]),
            short_f1_as_answered=_pct([o.short_f1 * o.answer.found for o in answerable]),
            answered_when_answerable=_pct([o.answer.found for o in answerable]),
        )
    if unanswerable:
        values["abstained_when_unanswerable"] = _pct([not o.answer.found for o in unanswerable])
    if answerable and unanswerable:
        values["abstention_accuracy"] = _pct([o.answer.found == bool(o.question.answers) for o in answered])
    left_out = [o.left_out for o in outcomes if o.left_out is not None]
    if left_out:
        values["leave_article_out_abstained"] = _pct([not a.found for a in left_out])
    latencies = [o.ms for o in outcomes if o.ms is not None]
    if latencies:
        values["latency_p50_ms"] = round(float(np.percentile(latencies, 50)), 1)
        values["latency_p95_ms"] = round(float(np.percentile(latencies, 95)), 1)
    return Figures(questions=len(outcomes), **values)


def _ask(bot: Any, q: Question, mode: str, leave_article_out: bool) -> Outcome:
    """``q`` asked of the assistant as a user asks it, scored (its ``ranks`` are left for the caller)."""
    started = time.perf_counter()
    ans = bot.answer(q.text, mode=mode)
    ms = 1000 * (time.perf_counter() - started)
    # the same served call, told to leave the question's article out: every reply should be an abstention
    left_out = bot.answer(q.text, mode=mode, filters=article_left_out(q.article)) if leave_article_out else None
    if not q.answers:
        return Outcome(q, MappingProxyType({}), ans, ms, left_out=left_out)
    # the figures without abstention score what it would have said had it answered:
    # the same call, told not to abstain (only needed when it did)
    said = ans if ans.found else bot.answer(q.text, mode=mode, abstain=False)
    best = said.quotes or said.related
    sentence = best[0].text if best else ""
    short = said.shown  # what the page shows first
    return Outcome(
        q, MappingProxyType({}), ans, ms,
        sentence_hit=any(g in sentence for g in q.answers),
        short_em=exact_match(short, q.answers), short_f1=f1_score(short, q.answers),
        sentence_em=exact_match(sentence, q.answers), sentence_f1=f1_score(sentence, q.answers),
        left_out=left_out,
    )  # fmt: skip


@dataclass(frozen=True)
class Evaluation:
    """What :func:`evaluate` measured: the run's description, its figures, and every question's outcome.

    ``all``, ``even_articles`` and ``odd_articles`` hold the figures of every question and of each half
    of the articles (the even half tuned the reader and the fusion; the odd half is held out).
    ``articles`` is None when every article's questions were asked. :meth:`to_dict` is the JSON that
    ``regional-chat eval --json`` writes (the outcomes are not in it).
    """

    file: str
    questions: int
    paragraphs: int
    chunks: int
    mode: str
    settings: Settings
    reader: str  # the command that trained the reader
    articles: tuple[int, ...] | None
    reliability: Reliability
    all: Figures
    even_articles: Figures
    odd_articles: Figures
    outcomes: tuple[Outcome, ...] = dataclasses.field(default=(), repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready result (bench/results/eval-*.json): figures not measured are left out."""
        return {
            "file": self.file,
            "questions": self.questions,
            "paragraphs": self.paragraphs,
            "chunks": self.chunks,
            "mode": self.mode,
            "settings": self.settings.as_dict(),
            "reader": self.reader,
            "articles": list(self.articles) if self.articles is not None else "all",
            "reliability": self.reliability.to_dict(),
            "all": self.all.to_dict(),
            "even_articles": self.even_articles.to_dict(),
            "odd_articles": self.odd_articles.to_dict(),
        }


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
) -> Evaluation:
    """Run the evaluation: every question through :meth:`Assistant.answer`, as it is served.

    Args:
        squad_file: a SQuAD v1.1 or v2.0 JSON file.
        index_dir: where the paragraphs' index is built (reused when it is up to date);
            default ``/tmp/regional-chat-eval/<file name>-<model>``.
        settings: model, retrieval and answer settings.
        mode: the retrieval that feeds the answers (all three are measured for recall).
        leave_article_out: also ask each question with its article left out (:func:`article_left_out`).
        limit: ask only every n-th question so that about ``limit`` are asked (quick runs).
        answers: False measures retrieval only.
        articles: ask only the questions of these articles (their index in the file); every
            paragraph is still indexed, so the others remain as distractors.

    Returns:
        An :class:`Evaluation`: every figure on all questions and on each half of the articles,
        and each question's :class:`Outcome` (``.to_dict()`` for the JSON).
    """
    from .assistant import Assistant
    from .embedding import make_embedder
    from .service import update_index
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
    built = update_index(corpus.parent, root, settings, progress=progress)  # warnings: build's own, on stderr
    embedder = make_embedder(settings)
    index = load_index(root, settings, embedder)
    # the very assistant a user gets: its answer, its decision to answer or not
    bot = Assistant(index, settings, embedder, corpus.parent)

    outcomes: list[Outcome] = []
    depth = max(20, settings.top_k) * 2
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(questions), unit="q", file=sys.stderr, dynamic_ncols=True)
    for q in questions:
        asked = _ask(bot, q, mode, leave_article_out) if answers else None
        # ranks after the answer, so that its latency is timed as a user's first ask of the question
        docs = {m: _distinct_docs(bot.search(q.text, k=depth, mode=m)) for m in MODES}
        ranks = MappingProxyType({m: ranked.index(q.doc_id) + 1 if q.doc_id in ranked else 0 for m, ranked in docs.items()})
        outcomes.append(dataclasses.replace(asked, ranks=ranks) if asked is not None else Outcome(q, ranks))
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()

    odd = [o for o in outcomes if o.question.article % 2 == 1]
    return Evaluation(
        file=str(squad_file),
        questions=len(questions),
        paragraphs=len(paragraphs),
        chunks=built.chunks,
        mode=mode,
        settings=settings,
        reader=bot.extractor.reader.meta["trained"]["command"],
        articles=tuple(sorted(set(articles))) if articles is not None else None,
        reliability=Reliability(
            all=reliability((o.answer.confidence, bool(o.right)) for o in outcomes if o.answer is not None),
            odd_articles=reliability((o.answer.confidence, bool(o.right)) for o in odd if o.answer is not None),
        ),
        all=_figures(outcomes),
        even_articles=_figures([o for o in outcomes if o.question.article % 2 == 0]),
        odd_articles=_figures(odd),
        outcomes=tuple(outcomes),
    )


def format_report(result: Evaluation) -> str:
    """The figures as a Markdown table: all questions, and each half of the articles."""
    every, even, odd = result.all.to_dict(), result.even_articles.to_dict(), result.odd_articles.to_dict()
    lines = [
        f"{result.file}: {result.questions} questions, {result.paragraphs} paragraphs "
        f"({result.chunks} chunks), answers from {result.mode} retrieval",
        "",
        "| figure | all | even articles (tuning) | odd articles (held out) |",
        "|---|---|---|---|",
        f"| questions | {result.all.questions} | {result.even_articles.questions} | {result.odd_articles.questions} |",
    ]
    for key in every:
        if key != "questions":
            lines.append(f"| {key} | {every.get(key)} | {even.get(key)} | {odd.get(key)} |")
    return "\n".join(lines)
