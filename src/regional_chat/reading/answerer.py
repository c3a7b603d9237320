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
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from ..chunking import split_sentences
from ..facets import context_header
from ..text import language_of
from ..types import Answer, Document, Hit, Quote
from .reader import WEIGHTS, Reader, Reading
from .windows import SpanScore

NOT_FOUND_TEXT = "The documents do not answer this question."
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
_WORDLIKE = re.compile(r"\w", re.UNICODE)
_TAG = re.compile(r"</?[A-Za-z!][^<>\n]{0,200}>?")  # markup: "<script>", "</div", "<!--"


def is_answer_text(text: str, start: int, end: int) -> bool:
    """False for a span that is no answer whatever its score: no letter or digit, or part of a markup tag."""
    if not _WORDLIKE.search(text[start:end]):
        return False
    lo, hi = max(0, start - 200), min(len(text), end + 200)
    return not any(m.start() + lo < end and m.end() + lo > start for m in _TAG.finditer(text[lo:hi]))


@dataclass(frozen=True)
class Calibration:
    """Logistic weights over :data:`FEATURES` (standardised by ``mean``/``scale``) and the answer threshold."""

    weights: tuple[float, ...]
    bias: float
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    threshold: float
    fitted_on: str = ""

    def probability(self, x: Sequence[float]) -> float:
        z = (np.asarray(x, dtype=np.float64) - np.asarray(self.mean)) / np.asarray(self.scale)
        logit = float(z @ np.asarray(self.weights) + self.bias)
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, logit))))

    @classmethod
    def from_json(cls, data: Mapping) -> "Calibration":
        if tuple(data.get("features", ())) != FEATURES:
            raise ValueError(f"calibration features {data.get('features')} are not this code's {list(FEATURES)}: refit with training/calibrate_reader.py.")
        return cls(
            tuple(map(float, data["weights"])),
            float(data["bias"]),
            tuple(map(float, data["mean"])),
            tuple(map(float, data["scale"])),
            float(data["threshold"]),
            str(data.get("fitted_on", "")),
        )

    def to_json(self) -> dict:
        return {
            "features": list(FEATURES),
            "weights": list(self.weights),
            "bias": self.bias,
            "mean": list(self.mean),
            "scale": list(self.scale),
            "threshold": self.threshold,
            "fitted_on": self.fitted_on,
        }

    @classmethod
    def uncalibrated(cls) -> "Calibration":
        """Before any fit: the reader's own margin through a sigmoid, answering above 0.5."""
        w = [0.0] * len(FEATURES)
        w[0] = 1.0
        return cls(tuple(w), 0.0, (0.0,) * len(FEATURES), (1.0,) * len(FEATURES), 0.5, "uncalibrated")


def load_calibration(folder: Path = WEIGHTS) -> Calibration:
    path = folder / CALIBRATION_FILE
    if not path.is_file():
        return Calibration.uncalibrated()
    return Calibration.from_json(json.loads(path.read_text(encoding="utf-8")))


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
        self, reader: Reader | None = None, calibration: Calibration | None = None, max_quotes: int = 3, headers: bool = True
    ) -> None:
        self.reader = reader or Reader()
        self.calibration = calibration or load_calibration(self.reader.folder)
        self.max_quotes = max_quotes
        self.headers = headers

    def read(self, question: str, hits: Sequence[Hit], document: Callable[[str], Document] | None = None) -> ReadResult:
        """Read ``question`` over the passages of ``hits``; no decision yet.

        ``document`` (doc id -> Document) gives the headers; without it the passages are read bare.
        """
        hits = tuple(hits)
        passages = [h.chunk.text for h in hits]
        if self.headers and document is not None and hits:
            by_doc: dict[str, str] = {}
            for h in hits:
                if h.chunk.doc_id not in by_doc:
                    by_doc[h.chunk.doc_id] = context_header(document(h.chunk.doc_id).metadata)
            reading = self.reader.read(question, passages, headers=[by_doc[h.chunk.doc_id] for h in hits])
        else:
            reading = self.reader.read(question, passages)
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
            return Answer(question=question, found=False, text=NOT_FOUND_TEXT, confidence=0.0)
        doc = document(result.doc_id)
        short = doc.text[result.doc_start : result.doc_end]
        confident = confidence >= self.calibration.threshold and is_answer_text(doc.text, result.doc_start, result.doc_end)
        if abstain and not confident:
            # a span without a letter or digit, or inside markup ("<script"), is never an answer
            return Answer(
                question=question,
                found=False,
                text=NOT_FOUND_TEXT,
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
        return Answer(question=question, found=confident, text=short, confidence=confidence, quotes=tuple(quotes))

    def extract(self, question: str, hits: Sequence[Hit], document: Callable[[str], Document], *_: object, abstain: bool = True) -> Answer:
        """read + answer in one call (the AnswerExtractor-compatible signature)."""
        return self.answer(self.read(question, hits, document), document, abstain)

    def _quote(self, doc: Document, start: int, end: int, *, hit: Hit, score: float, highlight: bool = True) -> Quote:
        """The sentence(s) of ``hit``'s chunk that hold [start, end), the span highlighted."""
        chunk = hit.chunk
        sentences = split_sentences(doc.text, chunk.start, chunk.end) or [(chunk.start, chunk.end)]
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
        out: list[Quote] = []
        used: set[str] = set()
        for span in result.reading.spans:
            hit = result.hits[span.passage]
            if hit.chunk.doc_id in used:
                continue
            used.add(hit.chunk.doc_id)
            doc = document(hit.chunk.doc_id)
            out.append(self._quote(doc, hit.chunk.start + span.start, hit.chunk.start + span.end, hit=hit, score=float(hit.score), highlight=False))
            if len(out) >= limit:
                break
        return out
