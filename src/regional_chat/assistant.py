"""Ties the stages together: question -> (follow-up expansion) -> hits -> Answer.

An :class:`Assistant` holds one loaded index, its retriever and an answer
extractor. It is safe to call from several threads at once, and it can
rebuild its index from the corpus and switch to the new one while questions
are being answered: each question uses the index that was live when it came.
"""

from __future__ import annotations

import re
import threading
from functools import lru_cache
from pathlib import Path
from typing import Callable, Sequence

from .embedding import Embedder, make_embedder
from .store.folder import Index
from .service import FOLLOW_SECONDS, Generation, LiveIndex
from .store import is_milvus, load_index, recorded_model
from .settings import MAX_K, Settings
from .facets import Understood, describe_filter, understand
from .types import Answer, BuildReport, Document, Filter, Hit

MODES = ("hybrid", "dense", "lexical")

# Words that make a question lean on the conversation before it.
_PRONOUNS = frozenset(
    """
    it its it's he him his she her hers they them their theirs this that these those there then
    former latter same such
    он она оно они его её ее их ему ей им него неё нее них этот эта это эти тот та те там тогда
    """.split()
)
_STOP = frozenset(
    """
    a an the of in on at to for from by with about as and or but is are was were be been being do does did
    what when where who whom whose which why how much many tell me please more about also again
    what's who's where's when's did does has have had can could would should will shall may might
    что когда где кто какой какая какие почему как сколько ли же и а но в на о об с по из за для от
    """.split()
)
_WORD = re.compile(r"[\w'-]+", re.UNICODE)
_NAME = re.compile(r"\b[A-ZА-ЯЁ][\w'-]*(?:\s+(?:of\s+|for\s+|the\s+)?[A-ZА-ЯЁ][\w'-]*)*", re.UNICODE)


def needs_context(question: str) -> bool:
    """True when a question leans on earlier turns: a pronoun, or at most one content word."""
    words = [w.lower() for w in _WORD.findall(question)]
    if any(w in _PRONOUNS for w in words):
        return True
    return len([w for w in words if w not in _STOP and len(w) > 1]) <= 1


def context_terms(turn: str, limit: int = 8, names_only: bool = False) -> list[str]:
    """The names and content words of an earlier turn, most telling first (numbers left out)."""
    names = [m.group().strip() for m in _NAME.finditer(turn)]
    names = [n for n in names if n.lower() not in _STOP and n.lower() not in _PRONOUNS]
    if names_only:
        # short names first: "UNRCCA" and "Kaha Imnadze" say more per word than a long official title
        return sorted(dict.fromkeys(names), key=lambda n: len(n.split()))[:limit]
    # numbers and dates are left out: they are answers, not what a pronoun points at
    words = [w for w in _WORD.findall(turn) if w.lower() not in _STOP and w.lower() not in _PRONOUNS and len(w) > 2 and not w[0].isdigit()]
    out: list[str] = []
    for term in names + words:
        if term.lower() not in {t.lower() for t in out} and not any(term.lower() in t.lower() for t in out):
            out.append(term)
        if len(out) >= limit:
            break
    return out


def follow_up_terms(question: str, history: Sequence[Answer]) -> list[str]:
    """Terms of the latest turns that a question leaning on them most likely refers to, best first.

    ``history`` holds the earlier turns' Answers, oldest first. From the latest
    turn come the names in its answer and first quote, or its closest related
    passage when it was not answered (what "it" or "his" most likely points
    at), then the names and key words of its question; the turn before adds
    its question's terms. Empty when the question stands on its own.
    """
    if not history or not needs_context(question):
        return []
    terms: list[str] = []
    seen = question.lower()
    for depth, turn in enumerate(reversed(history[-2:])):
        parts = [turn.search_query or turn.question]
        if depth == 0:
            # what the user was shown: the answer and its quote, or, when the documents did
            # not answer, the closest passage (it is still what the conversation was about)
            shown = (turn.quotes or turn.related)[:1]
            parts = ([turn.text] if turn.found else []) + [q.text for q in shown] + parts
        for n, part in enumerate(parts):
            # a long quote gives only its names, and few of them, so that the expansion
            # does not drown the question's own words
            quote = depth == 0 and n < len(parts) - 1 and len(part) > 80
            for term in context_terms(part, limit=3 if quote else 6, names_only=quote):
                if term.lower() not in seen:
                    terms.append(term)
                    seen += " " + term.lower()
    return terms[:12]


def with_terms(question: str, terms: Sequence[str]) -> str:
    """``question`` followed by ``terms`` in brackets (the question itself when there are none)."""
    return question if not terms else f"{question} ({' '.join(terms)})"


def expand_question(question: str, history: Sequence[Answer]) -> str:
    """The question to search with: itself, plus :func:`follow_up_terms` in brackets when there are any."""
    return with_terms(question, follow_up_terms(question, history))


def make_answerer(settings: Settings):
    """The answer step: the trained reader shipped in reading/weights, run by ``settings.engine`` in ``settings.dtype``."""
    from .reading.answerer import ReaderAnswerer, load_calibration
    from .reading.reader import Reader

    reader = Reader(dtype=settings.dtype, engine=settings.engine)
    return ReaderAnswerer(reader, load_calibration(reader.folder, settings.model), headers=settings.reader_headers)


class Assistant:
    """Answers questions from one index with verbatim quotes.

    Args:
        index: a loaded index (see :func:`regional_chat.load_index`).
        settings: retrieval and answering settings; the model must match the index.
        embedder: the embedder to use (default: the one ``settings.model`` names).
        corpus_dir: the corpus this index is built from (for :meth:`rebuild`).
        answerer: the answer step (default: the shipped reader and its calibration, see
            :func:`make_answerer`); calibration passes an uncalibrated one.

    Example:
        >>> bot = Assistant.load("index")                          # doctest: +SKIP
        >>> bot.answer("Where is the UNRCCA headquartered?").text  # doctest: +SKIP
        'Ashgabat, Turkmenistan'
    """

    def __init__(
        self,
        index: Index,
        settings: Settings | None = None,
        embedder: Embedder | None = None,
        corpus_dir: str | Path | None = None,
        answerer: object | None = None,
    ) -> None:
        self.settings = settings or Settings()
        self.embedder = embedder or make_embedder(self.settings)
        index.manifest.check_compatible(self.embedder, self.settings, index.root)
        self.extractor = answerer if answerer is not None else make_answerer(self.settings)
        self._live = LiveIndex(index, self.settings, self.embedder, corpus_dir)  # the generation questions use, and its switch
        self._turns: dict[tuple, Answer] = {}  # earlier questions given as text, answered once
        self._turns_lock = threading.Lock()

    @classmethod
    def load(
        cls,
        index_dir: str | Path = "index",
        settings: Settings | None = None,
        *,
        embedder: Embedder | None = None,
        corpus_dir: str | Path | None = None,
    ) -> "Assistant":
        """An assistant over the index at ``index_dir`` (built with ``regional-chat build``).

        Without ``settings``, the index is searched with the model that built it.
        """
        if settings is None:
            recorded = recorded_model(index_dir)
            settings = Settings(model=recorded) if recorded else Settings()
        embedder = embedder or make_embedder(settings)
        return cls(load_index(index_dir, settings, embedder), settings, embedder, corpus_dir)

    @property
    def index(self) -> Index:
        """The index questions are answered from now."""
        return self._live.index

    @property
    def index_dir(self) -> str | Path:
        """Where the index lives: a folder, or ``milvus:<file-or-URI>``."""
        return self._live.location

    @property
    def corpus_dir(self) -> Path | None:
        """The corpus :meth:`rebuild` reads (None when unknown)."""
        return self._live.corpus_dir

    def follow(self, every: float = FOLLOW_SECONDS) -> bool:
        """Switch to a generation another process built since this one was loaded; True when it switched.

        Looked for at most once every ``every`` seconds, before a question (see :meth:`LiveIndex.follow`).
        """
        return self._live.follow(every)

    def warm_up(self) -> None:
        """Load the model, the BM25 index and the answer models now rather than on the first question."""
        self.answer("warm up")

    def check_question(self, question: str) -> str:
        """The question with surrounding white space removed, or a ValueError saying what is wrong."""
        if not isinstance(question, str):
            raise ValueError(f"the question must be text, not {type(question).__name__}.")
        cleaned = "".join(ch if ch.isprintable() or ch in "\n\t" else " " for ch in question).strip()
        if not cleaned:
            raise ValueError("the question is empty: type a question.")
        if len(cleaned) > self.settings.max_question_chars:
            raise ValueError(
                f"the question is {len(cleaned):,} characters long; the limit is "
                f"{self.settings.max_question_chars:,}. Ask a shorter question."
            )
        return cleaned

    def search(self, question: str, k: int | None = None, mode: str = "hybrid", *, filters: Filter | None = None) -> list[Hit]:
        """The passages retrieved for ``question``, best first (no answer extraction), as ``answer`` retrieves them."""
        question = self.check_question(question)
        self.follow()
        live = self._live.current
        prefer = self._understand(live, question)
        return live.retriever.search(question, k or self.settings.top_k, mode, where=filters or None, prefer=prefer or None)

    def answer(
        self,
        question: str,
        history: Sequence[str | Answer] = (),
        *,
        k: int | None = None,
        mode: str = "hybrid",
        abstain: bool = True,
        filters: Filter | None = None,
    ) -> Answer:
        """Answer ``question`` with verbatim quotes from the documents.

        Args:
            question: the question (at most ``settings.max_question_chars`` characters).
            history: earlier turns, oldest first: questions, or the Answers given to them.
                A question that leans on them ("When was it founded?") is searched
                together with the names and key terms of the latest turns.
            k: passages to read the answer from (default ``settings.top_k``).
            mode: ``"hybrid"`` (default), ``"dense"`` or ``"lexical"`` retrieval.
            abstain: False gives the best answer found even below the confidence
                threshold (``found`` stays False): evaluation uses it to score the
                reader apart from the decision to answer.
            filters: answer only from documents that pass this :class:`Filter`
                (country, date range, source, path pattern, metadata fields).
                Without one, documents matching a country, year or title the
                question names rank first (``settings.prefer_named``).

        Returns:
            An :class:`Answer`. ``found`` is False when the documents do not answer;
            ``related`` then lists the closest passages.

        Raises:
            ValueError: the question is empty or too long, or ``mode``/``k`` is invalid.
        """
        question = self.check_question(question)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}.")
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K):
            raise ValueError(f"k must be a whole number from 1 to {MAX_K}, got {k!r}.")
        if not isinstance(history, Sequence) or isinstance(history, (str, bytes)) or not all(isinstance(turn, (str, Answer)) for turn in history):
            raise ValueError("history must be a list of earlier questions (strings) or Answers, oldest first, not a single string.")
        if filters is not None and not isinstance(filters, Filter):
            raise ValueError(f"filters must be a regional_chat.Filter, not {type(filters).__name__}.")
        self.follow()
        live = self._live.current  # one consistent index for the whole question, even if a rebuild swaps it
        terms = follow_up_terms(question, [self._as_answer(turn, mode) for turn in history[-2:]])
        # A follow-up is read with all the terms of the previous turn and, since names the answer
        # sentence does not repeat lower its confidence ("When was his organization founded?
        # (Kaha Imnadze UNRCCA)"), with each of the likeliest referents alone; the reading the
        # documents answer most confidently wins.
        readings = [with_terms(question, terms)] + [with_terms(question, [t]) for t in terms[:4]]
        answer, query, steer = None, question, Understood()
        for reading in readings:
            vector = None if mode == "lexical" else self.embedder.embed_queries([reading])[0]
            prefer = self._understand(live, reading)
            hits = live.retriever.search_vector(
                reading, vector, k if k is not None else self.settings.top_k, mode, where=filters or None, prefer=prefer or None
            )
            candidate = self.extractor.extract(reading, hits, live.index.document, self.embedder, vector, abstain=abstain)
            if answer is None or candidate.confidence > answer.confidence:
                answer, query, steer = candidate, reading, prefer
            if answer.found:
                break  # a confident reading is an answer: the other readings would only cost time
        said = [x for x in (describe_filter(filters) if filters else "", steer.describe()) if x]
        return Answer(
            question=question,
            found=answer.found,
            text=answer.text,
            confidence=answer.confidence,
            quotes=answer.quotes,
            related=answer.related,
            search_query=query if query != question else "",
            understood="; ".join(said),
        )

    def _understand(self, live: Generation, question: str) -> Understood:
        """What ``question`` names that the index's metadata holds (within a filter, it steers inside the filter)."""
        if not self.settings.prefer_named:
            return Understood()
        return understand(question, live.index.catalogue.facets_of().values())

    def _as_answer(self, turn: str | Answer, mode: str) -> Answer:
        """An earlier turn as an Answer: a question given as text is answered (once) to learn what it was about."""
        if isinstance(turn, Answer):
            return turn
        text = str(turn).strip()[: self.settings.max_question_chars]
        key = (self._live.index.path, text, mode)
        with self._turns_lock:
            cached = self._turns.get(key)
        if cached is not None:
            return cached
        if not text:
            return Answer(question="", found=False, text="", confidence=0.0)
        resolved = self.answer(text, mode=mode)
        with self._turns_lock:
            self._turns[key] = resolved
            while len(self._turns) > 256:
                self._turns.pop(next(iter(self._turns)))
        return resolved

    def document(self, doc_id: str) -> Document:
        """The indexed document ``doc_id`` (its text is what quote offsets point into)."""
        return self.index.document(doc_id)

    def rebuild(
        self,
        corpus_dir: str | Path | None = None,
        on_progress: Callable[[int, int], None] | None = None,
        warn: Callable[[str], None] | None = None,
    ) -> BuildReport:
        """Bring the index up to date with the corpus and switch to it; questions keep being answered meanwhile."""
        if corpus_dir is None and self.corpus_dir is None:
            raise ValueError("this assistant does not know its corpus folder: pass corpus_dir.")
        return self._live.rebuild(corpus_dir, on_progress=on_progress, warn=warn)


@lru_cache(maxsize=4)
def _default_assistant(index_dir: str) -> Assistant:
    return Assistant.load(index_dir)


def answer(question: str, history: Sequence[str | Answer] = (), index_dir: str | Path = "index") -> Answer:
    """Answer ``question`` from the index at ``index_dir`` (loaded once, then reused).

    Example:
        >>> import regional_chat
        >>> regional_chat.answer("Where is the UNRCCA headquartered?").text  # doctest: +SKIP
        'Ashgabat, Turkmenistan'
    """
    where = str(index_dir) if is_milvus(index_dir) else str(Path(index_dir).resolve())
    return _default_assistant(where).answer(question, tuple(history))
