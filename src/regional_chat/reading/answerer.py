"""Hits -> the reader -> an Answer: the short answer, the sentence(s) quoting it, a calibrated confidence.

The reader picks the best span over windows of the top passages (scores
shared across passages). What the user sees as confidence is a logistic
model over what the reader and the retriever said (:data:`FEATURES`), fitted
by ``training/calibrate_reader.py`` on questions nothing else was fitted on,
so that it reads as the probability that the answer is right; below the
threshold chosen there, the assistant says the documents do not answer.
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

from ..chunking import chunk_sentences, split_sentences
from ..embedding import E5_NAMES
from ..facets import context_header
from ..text import QUESTION_WORDS, Tokenizer, language_of, own_words, script_of, without_attribution
from ..types import Answer, Document, Hit, Quote
from .crosslingual import aligned_words, answers_question_word, pivot_question, question_word
from .reader import WEIGHTS, Reader, Reading
from .windows import SpanScore

CALIBRATION_FILE = "calibration.json"
FEATURES = (
    "margin",  # best span score - its window's no-answer score
    "margin_min_null",  # best span score - the lowest no-answer score of all windows
    "span_prob",  # softmax share of the best span among every window's best span and no-answer
    "gap",  # best span score - the best span score of another passage
    "hit_score",  # the retriever's fused score of the passage the span is in
    "hit_rank",  # 1 / (1 + rank) of that passage
    "agree",  # other passages whose best span says the same (normalised)
    "length",  # log(1 + characters of the span)
)
CROSS_CALIBRATION_FILE = "calibration-crosslingual.json"
CROSS_FEATURES = (
    "sim",  # cosine of the question to the nearest sentence of the top passages (the index's encoder)
    "sim_gap",  # that cosine - the next nearest sentence's
    "hit_score",  # the retriever's fused score of the passage holding that sentence
    "hit_rank",  # 1 / (1 + rank) of that passage
    "span_margin",  # the pivot question's best span in the sentence - its no-answer score (0: no pivot)
)
# The short answer inside a cross-lingual quote is shown only when the reader's span for the pivot question
# beats its no-answer score: on XQuAD ru -> en (calibrate_crosslingual.py, answered questions) such spans are
# right 74% of the time on the fit articles and 72% on the held-out ones, against 35% for all spans. Below it
# the whole sentence is the answer, and nothing inside it is highlighted.
SHORT_ANSWER_MARGIN = 0.0
SPANS_PER_SENTENCE = 20  # the reader's best spans of a cross-lingual sentence looked through for one that fits the question word
_WORDLIKE = re.compile(r"\w", re.UNICODE)
_TAG = re.compile(r"</?[A-Za-z!][^<>\n]{0,200}>?")  # markup: "<script>", "</div", "<!--"


# A line that is only a UN document's running mark, left inside the text by PDF extraction: its job number with
# or without the page number ("5 08-53135", "08-51749 30") or its symbol ("A/63/PV.13"). Bare page numbers are
# not treated so: a line holding only a number may be part of the text.
_PAGE_MARK_LINE = re.compile(r"[ \t]*(?:(?:\d{1,4}[ \t]+)?\d{2}-\d{5}(?:[ \t]+\d{1,4})?|A/\d+/PV\.\d+)[ \t]*")


def trim_page_marks(text: str, start: int, end: int) -> tuple[int, int]:
    """[start, end) without the whole lines of page marks (and blank lines) at its ends.

    The reader can start a span at the mark a page break left before the answer ("5 08-53135 \\n \\n2009");
    the mark is no part of the answer. A mark inside the span stays (a quote is a verbatim slice), and a
    span that would be left empty is returned as it was.
    """

    def line_at(i: int) -> tuple[int, int]:
        """The line holding character ``i``, its line break left out."""
        stop = text.find("\n", i)
        return text.rfind("\n", 0, i) + 1, len(text) if stop < 0 else stop

    a, b = start, end
    while a < b:
        if text[a].isspace():
            a += 1
            continue
        lo, hi = line_at(a)
        if lo == a and hi < b and _PAGE_MARK_LINE.fullmatch(text, lo, hi):
            a = hi
            continue
        break
    while a < b:
        if text[b - 1].isspace():
            b -= 1
            continue
        lo, hi = line_at(b - 1)
        if hi == b and lo > a and _PAGE_MARK_LINE.fullmatch(text, lo, hi):
            b = lo
            continue
        break
    return (a, b) if a < b and (a, b) != (start, end) and _WORDLIKE.search(text, a, b) else (start, end)


def is_answer_text(text: str, start: int, end: int) -> bool:
    """False for a span that is no answer whatever its score: no letter or digit, or part of a markup tag."""
    if not _WORDLIKE.search(text[start:end]):
        return False
    lo, hi = max(0, start - 200), min(len(text), end + 200)
    return not any(m.start() + lo < end and m.end() + lo > start for m in _TAG.finditer(text[lo:hi]))


# A word for telling a span that repeats the question: letters and digits, hyphenated compounds kept whole
# ("seventy-third" is not "third").
_COMPOUND = re.compile(r"[^\W_]+(?:[-\u2010\u2011][^\W_]+)*", re.UNICODE)


def question_echo(question: str) -> Callable[[str], bool]:
    """A test of whether a span only repeats ``question``: every word of it that is not a stop word is one of the
    question's words (Snowball stems, so "founded" is "founding").

    The answer to a question is what it does not say: "integration organization" for "Which integration
    organization did Kazakhstan consider very promising?" (the speech says "that integration organization" of the
    Eurasian Economic Community), "Kyrgyzstan" for "According to Kyrgyzstan's 1992 speech, how many ...?", "2007"
    for "What happened in 2007?". A span of stop words alone is left to the reader's score.
    """
    import Stemmer

    stemmer = Stemmer.Stemmer("english")
    stop = Tokenizer().stopword_set() | QUESTION_WORDS

    def key(word: str) -> str:
        return stemmer.stemWord(word) if word.isascii() and word.isalpha() else word

    asked = {key(w) for w in _COMPOUND.findall(question.lower().replace("ё", "е"))}

    def echoes(text: str) -> bool:
        words = [w for w in _COMPOUND.findall(text.lower().replace("ё", "е")) if w not in stop]
        return bool(words) and all(key(w) in asked for w in words)

    return echoes


@dataclass(frozen=True)
class Calibration:
    """Logistic weights over :data:`FEATURES` (standardised by ``mean``/``scale``) and the answer threshold."""

    weights: tuple[float, ...]
    bias: float
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    threshold: float
    fitted_on: str = ""
    features: tuple[str, ...] = FEATURES  # what each weight multiplies, in order

    def probability(self, x: Sequence[float]) -> float:
        z = (np.asarray(x, dtype=np.float64) - np.asarray(self.mean)) / np.asarray(self.scale)
        logit = float(z @ np.asarray(self.weights) + self.bias)
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, logit))))

    @classmethod
    def from_json(cls, data: Mapping, features: tuple[str, ...] = FEATURES, refit: str = "training/calibrate_reader.py") -> "Calibration":
        if tuple(data.get("features", ())) != features:
            raise ValueError(f"calibration features {data.get('features')} are not this code's {list(features)}: refit with {refit}.")
        return cls(
            tuple(map(float, data["weights"])),
            float(data["bias"]),
            tuple(map(float, data["mean"])),
            tuple(map(float, data["scale"])),
            float(data["threshold"]),
            str(data.get("fitted_on", "")),
            features,
        )

    def to_json(self) -> dict:
        return {
            "features": list(self.features),
            "weights": list(self.weights),
            "bias": self.bias,
            "mean": list(self.mean),
            "scale": list(self.scale),
            "threshold": self.threshold,
            "fitted_on": self.fitted_on,
        }

    @classmethod
    def uncalibrated(cls, features: tuple[str, ...] = FEATURES) -> "Calibration":
        """Before any fit: the first feature (the reader's own margin) through a sigmoid, answering above 0.5."""
        w = [0.0] * len(features)
        w[0] = 1.0
        return cls(tuple(w), 0.0, (0.0,) * len(features), (1.0,) * len(features), 0.5, "uncalibrated", features)


def calibration_file(encoder: str = "") -> str:
    """The reader's calibration for an encoder: ``calibration-e5.json`` for multilingual-e5-small,
    ``calibration.json`` (fitted with MiniLM) for the others. The retriever's fused score is one of
    the features, and each encoder scores on its own scale."""
    return "calibration-e5.json" if encoder in E5_NAMES else CALIBRATION_FILE


def load_calibration(folder: Path = WEIGHTS, encoder: str = "") -> Calibration:
    """The calibration fitted with ``encoder`` (``Settings.model``), else the MiniLM one."""
    path = folder / calibration_file(encoder)
    if not path.is_file():
        path = folder / CALIBRATION_FILE
    if not path.is_file():
        return Calibration.uncalibrated()
    return Calibration.from_json(json.loads(path.read_text(encoding="utf-8")))


def load_crosslingual_calibration(folder: Path = WEIGHTS) -> tuple[Calibration, str]:
    """The cross-lingual path's calibration and the encoder it was fitted with ("": none shipped).

    Without one, that path never answers (threshold above 1): it shows the nearest sentences
    as related passages, since an uncalibrated cosine is no probability.
    """
    path = folder / CROSS_CALIBRATION_FILE
    if not path.is_file():
        return replace(Calibration.uncalibrated(CROSS_FEATURES), threshold=1.01, fitted_on="none"), ""
    data = json.loads(path.read_text(encoding="utf-8"))
    return Calibration.from_json(data, CROSS_FEATURES, "training/calibrate_crosslingual.py"), str(data.get("encoder", ""))


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


@dataclass(frozen=True)
class ReadResult:
    """A question read over its hits, before the answer decision (what calibration is fitted on)."""

    question: str
    hits: tuple[Hit, ...]
    reading: Reading
    features: tuple[float, ...]
    doc_start: int  # the best span in its document (characters), -1 when there is none
    doc_end: int

    @property
    def best(self) -> SpanScore | None:
        return self.reading.best

    @property
    def doc_id(self) -> str:
        best = self.reading.best
        return self.hits[best.passage].chunk.doc_id if best else ""


@dataclass(frozen=True)
class CrossResult:
    """A question in a script the reader does not read, matched sentence by sentence (before the decision)."""

    question: str
    hits: tuple[Hit, ...]
    features: tuple[float, ...]
    sentences: tuple[tuple[int, int, int, float], ...]  # (hit index, doc start, doc end, cosine), nearest first
    span: tuple[int, int] | None  # the short answer inside the nearest sentence (document offsets), when the reader is sure enough
    pivot: str | None  # the English question the reader read the sentence with

    @property
    def doc_id(self) -> str:
        return self.hits[self.sentences[0][0]].chunk.doc_id if self.sentences else ""


class ReaderAnswerer:
    """Turns a question's hits into an :class:`Answer` with the trained reader.

    Args:
        reader: the span reader (default: the shipped weights).
        calibration: the confidence model (default: the shipped calibration.json).
        max_quotes: quotes shown for one answer (the best, plus passages that agree with it).
        headers: read each passage after its document's context header ("Kazakhstan, 1993,
            session 48."), as search does: a speech seldom names its own country or year, and a
            question often does. The header is never part of a span or a quote.
    """

    def __init__(
        self,
        reader: Reader | None = None,
        calibration: Calibration | None = None,
        max_quotes: int = 3,
        headers: bool = True,
        crosslingual: tuple[Calibration, str] | None = None,
    ) -> None:
        self.reader = reader or Reader()
        self.calibration = calibration or load_calibration(self.reader.folder)
        self.max_quotes = max_quotes
        self.headers = headers
        self.cross_passages = 5
        self._cross: tuple[Calibration, str] | None = crosslingual
        self._sentence_vectors: OrderedDict[tuple[tuple[str, str], str], np.ndarray] = OrderedDict()
        self._vectors_lock = threading.Lock()

    def read(self, question: str, hits: Sequence[Hit], document: Callable[[str], Document] | None = None) -> ReadResult:
        """Read ``question`` over the passages of ``hits``; no decision yet.

        ``document`` (doc id -> Document) gives the headers; without it the passages are read bare.
        """
        hits = tuple(hits)
        passages = [h.chunk.text for h in hits]
        # a span that only repeats the question is no answer: each window's best span is its best other one
        echoes = question_echo(question)
        reject = lambda p, a, b: echoes(passages[p][a:b])  # noqa: E731
        # the clause naming the speech ("According to Kyrgyzstan's 1992 speech, ...") steered the search; the
        # reader reads the question without it (text.without_attribution): on the domain dev split 43 right
        # answers of 61 against 40, wrong ones 7 against 6 (bench/bench_domain.py, 2026-12-06)
        asked = without_attribution(question)
        if self.headers and document is not None and hits:
            by_doc: dict[str, str] = {}
            for h in hits:
                if h.chunk.doc_id not in by_doc:
                    by_doc[h.chunk.doc_id] = context_header(document(h.chunk.doc_id).metadata)
            reading = self.reader.read(asked, passages, headers=[by_doc[h.chunk.doc_id] for h in hits], reject=reject)
        else:
            reading = self.reader.read(asked, passages, reject=reject)
        best = reading.best
        if best is None:
            return ReadResult(question, hits, reading, (0.0,) * len(FEATURES), -1, -1)
        text = hits[best.passage].chunk.text[best.start : best.end]
        others = [s for s in reading.spans if s.passage != best.passage]
        agree = len({s.passage for s in reading.spans[1:] if _norm(hits[s.passage].chunk.text[s.start : s.end]) == _norm(text)} - {best.passage})
        features = (
            best.score - best.null,
            best.score - reading.null,
            reading.span_probability(),
            best.score - others[0].score if others else 10.0,
            float(hits[best.passage].score),
            1.0 / (1.0 + best.passage),
            float(agree),
            math.log1p(len(text)),
        )
        chunk = hits[best.passage].chunk
        return ReadResult(question, hits, reading, features, chunk.start + best.start, chunk.start + best.end)

    def confidence(self, result: ReadResult) -> float:
        if result.best is None:
            return 0.0
        return self.calibration.probability(result.features)

    def answer(self, result: ReadResult, document: Callable[[str], Document], abstain: bool = True) -> Answer:
        """The Answer for a read question: quotes when confident enough, else related passages.

        ``abstain=False`` gives the quotes even below the threshold (``found`` stays False).
        """
        question = result.question
        confidence = round(self.confidence(result), 4)
        best = result.best
        if best is None:
            return Answer(question=question, found=False, confidence=0.0)
        doc = document(result.doc_id)
        short = doc.text[result.doc_start : result.doc_end]
        confident = confidence >= self.calibration.threshold and is_answer_text(doc.text, result.doc_start, result.doc_end)
        if abstain and not confident:
            # a span without a letter or digit, or inside markup ("<script"), is never an answer
            return Answer(
                question=question,
                found=False,
                confidence=min(confidence, self.calibration.threshold),
                related=tuple(self._related(result, document)),
            )
        quotes = [self._quote(doc, result.doc_start, result.doc_end, hit=result.hits[best.passage], score=confidence)]
        used = {result.doc_id}
        for span in result.reading.spans[1:]:
            if len(quotes) >= self.max_quotes:
                break
            hit = result.hits[span.passage]
            if hit.chunk.doc_id in used:
                continue
            if _norm(hit.chunk.text[span.start : span.end]) != _norm(short):
                continue  # only passages that say the same thing back the answer up
            used.add(hit.chunk.doc_id)
            other = document(hit.chunk.doc_id)
            quotes.append(self._quote(other, hit.chunk.start + span.start, hit.chunk.start + span.end, hit=hit, score=confidence))
        return Answer(question=question, found=confident, confidence=confidence, quotes=tuple(quotes))

    def extract(
        self,
        question: str,
        hits: Sequence[Hit],
        document: Callable[[str], Document],
        embedder: object | None = None,
        vector: np.ndarray | None = None,
        *_: object,
        abstain: bool = True,
    ) -> Answer:
        """read + answer in one call (the AnswerExtractor-compatible signature).

        A question in a script the reader was not trained on (Russian or Kazakh) goes the
        cross-lingual way when the index's encoder reads it (:meth:`read_across`).
        """
        if embedder is not None and vector is not None and self.reads_across(question, embedder):
            result = self.read_across(question, hits, document, embedder, vector)
            return self.answer_across(result, document, abstain, encoder=str(getattr(embedder, "name", "")))
        return self.answer(self.read(question, hits, document), document, abstain)

    # ------------------------------------------------------------------ questions the reader cannot read

    @property
    def crosslingual(self) -> tuple[Calibration, str]:
        """The cross-lingual calibration and the encoder it was fitted with (loaded on first use)."""
        if self._cross is None:
            self._cross = load_crosslingual_calibration(self.reader.folder)
        return self._cross

    def reads_across(self, question: str, embedder: object) -> bool:
        """True when the reader does not read ``question``'s script and the encoder does.

        A follow-up arrives with the earlier turn's terms in brackets ("Когда он основан? (Kaha
        Imnadze UNRCCA)"); the script is the question's own, not theirs.
        """
        script = script_of(own_words(question))
        if script in tuple(self.reader.meta.get("scripts", ("latin",))):
            return False
        scripts = getattr(embedder, "scripts", None)
        return not scripts or script in scripts

    def _vectors(self, embedder: object, texts: list[str], kind: str = "passage") -> np.ndarray:
        """Vectors of ``texts``, cached: the same passages (and words) come back question after question.

        ``kind``: ``"passage"`` (sentences) or ``"query"`` (single words, aligned word to word: both sides
        are embedded alike).
        """
        name = (str(getattr(embedder, "name", "")), kind)
        embed = embedder.embed_passages if kind == "passage" else embedder.embed_queries  # type: ignore[attr-defined]
        with self._vectors_lock:
            known = {t: self._sentence_vectors[(name, t)] for t in set(texts) if (name, t) in self._sentence_vectors}
        missing = [t for t in dict.fromkeys(texts) if t not in known]
        if missing:
            known.update(zip(missing, np.asarray(embed(missing), dtype=np.float32)))
            with self._vectors_lock:
                self._sentence_vectors.update(((name, t), known[t]) for t in missing)
                while len(self._sentence_vectors) > 8192:  # oldest first
                    self._sentence_vectors.popitem(last=False)
        return np.vstack([known[t] for t in texts])

    def read_across(
        self, question: str, hits: Sequence[Hit], document: Callable[[str], Document], embedder: object, vector: np.ndarray
    ) -> CrossResult:
        """The sentence of the top passages nearest ``question`` (by the index's encoder), and a short answer in it.

        The short answer is the reader's best span of that sentence for the pivot question
        (:func:`pivot_question`: "Где находится штаб-квартира UNRCCA?" -> "Where headquarters UNRCCA?",
        "headquarters" being the sentence's word nearest "штаб-квартира" by the index's encoder).
        """
        hits = tuple(hits)
        found: list[tuple[int, int, int]] = []
        texts: list[str] = []
        seen: set[tuple[str, int, int]] = set()
        for i, hit in enumerate(hits[: self.cross_passages]):
            doc = document(hit.chunk.doc_id)
            for a, b in chunk_sentences(doc.text, hit.chunk.start, hit.chunk.end):
                # chunks overlap: a sentence in two of them is one sentence (else the next nearest is itself, and
                # the sim_gap feature, fitted on single paragraphs, reads 0), kept with the better-ranked passage
                if (hit.chunk.doc_id, a, b) in seen:
                    continue
                seen.add((hit.chunk.doc_id, a, b))
                found.append((i, a, b))
                texts.append(doc.text[a:b])
        if not found:
            return CrossResult(question, hits, (0.0,) * len(CROSS_FEATURES), (), None, pivot_question(question))
        sims = self._vectors(embedder, texts) @ np.asarray(vector, dtype=np.float32).reshape(-1)
        order = np.argsort(-sims, kind="stable")
        ranked = tuple((found[j][0], found[j][1], found[j][2], float(sims[j])) for j in order)
        passage, a, b, sim = ranked[0]
        text = texts[int(order[0])]
        pivot = pivot_question(question, aligned_words(question, text, lambda words: self._vectors(embedder, words, "query")))
        span, margin = None, 0.0
        if pivot is not None:
            # the best span that can answer the question word: a number for "How many", a time for "When"
            word = question_word(question)
            spans = self.reader.read(pivot, [text], per_window=SPANS_PER_SENTENCE).spans
            best = next((s for s in spans if answers_question_word(word, text[s.start : s.end])), None)
            if best is not None and is_answer_text(text, best.start, best.end):
                margin = best.score - best.null
                if margin > SHORT_ANSWER_MARGIN:
                    span = (a + best.start, a + best.end)
        features = (
            sim,
            sim - ranked[1][3] if len(ranked) > 1 else 1.0,
            float(hits[passage].score),
            1.0 / (1.0 + passage),
            margin,
        )
        return CrossResult(question, hits, features, ranked, span, pivot)

    def confidence_across(self, result: CrossResult, encoder: str = "") -> float:
        calibration, fitted_with = self.crosslingual
        if not result.sentences or (fitted_with and encoder and not encoder.startswith(fitted_with)):
            return 0.0  # a calibration fitted on another encoder's cosines says nothing about this one's
        return calibration.probability(result.features)

    def answer_across(self, result: CrossResult, document: Callable[[str], Document], abstain: bool = True, encoder: str = "") -> Answer:
        """The nearest sentence as the quote (its short answer highlighted), or related sentences below the threshold."""
        question = result.question
        if not result.sentences:
            return Answer(question=question, found=False, confidence=0.0)
        calibration, _ = self.crosslingual
        confidence = round(self.confidence_across(result, encoder), 4)
        passage, a, b, _sim = result.sentences[0]
        hit = result.hits[passage]
        doc = document(hit.chunk.doc_id)
        confident = confidence >= calibration.threshold
        if abstain and not confident:
            places = ((result.hits[p], s0, s1) for p, s0, s1, _ in result.sentences)
            return Answer(
                question=question,
                found=False,
                confidence=min(confidence, calibration.threshold),
                related=tuple(self._related_quotes(places, document)),
            )
        if result.span is not None:
            quote = self._quote(doc, result.span[0], result.span[1], hit=hit, score=confidence)
        else:  # no short answer in the sentence: the sentence is the answer, nothing highlighted
            quote = self._quote(doc, a, b, hit=hit, score=confidence, highlight=False)
        return Answer(question=question, found=confident, confidence=confidence, quotes=(quote,))

    def _quote(self, doc: Document, start: int, end: int, *, hit: Hit, score: float, highlight: bool = True) -> Quote:
        """The sentence(s) of ``hit``'s chunk that hold [start, end), the span highlighted (less page marks at its ends)."""
        chunk = hit.chunk
        if highlight:
            start, end = trim_page_marks(doc.text, start, end)
        sentences = split_sentences(doc.text, chunk.start, chunk.end, wrapped=True) or [(chunk.start, chunk.end)]
        inside = [(a, b) for a, b in sentences if a < end and b > start]
        q_start = min(a for a, _ in inside) if inside else chunk.start
        q_end = max(b for _, b in inside) if inside else chunk.end
        q_start, q_end = min(q_start, start), max(q_end, end)
        text = doc.text[q_start:q_end]
        return Quote(
            doc_id=doc.doc_id,
            title=doc.title,
            source=doc.source,
            start=q_start,
            end=q_end,
            text=text,
            score=round(float(score), 4),
            highlight=(start - q_start, end - q_start) if highlight else None,
            date=doc.date,
            language=language_of(text),
            page=doc.page_at(q_start),
        )

    def _related(self, result: ReadResult, document: Callable[[str], Document], limit: int = 3) -> list[Quote]:
        """For the closest passages (one per document): the sentence the reader found most promising."""
        places = ((result.hits[s.passage], result.hits[s.passage].chunk.start + s.start, result.hits[s.passage].chunk.start + s.end)
                  for s in result.reading.spans)
        return self._related_quotes(places, document, limit)

    def _related_quotes(self, places: Iterable[tuple[Hit, int, int]], document: Callable[[str], Document], limit: int = 3) -> list[Quote]:
        """The sentences holding ``places`` (hit, document start, end; best first), one per document, unhighlighted."""
        out: list[Quote] = []
        used: set[str] = set()
        for hit, start, end in places:
            if hit.chunk.doc_id in used:
                continue
            used.add(hit.chunk.doc_id)
            out.append(self._quote(document(hit.chunk.doc_id), start, end, hit=hit, score=float(hit.score), highlight=False))
            if len(out) >= limit:
                break
        return out
