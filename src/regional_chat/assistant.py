"""Ties the stages together: question -> (follow-up expansion) -> hits -> Answer.

An :class:`Assistant` holds one loaded index, its retriever and an answer
extractor. It is safe to call from several threads at once, and it can
rebuild its index from the corpus and switch to the new one while questions
are being answered: each question uses the index that was live when it came.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable, Sequence

from .conversation import follow_up_terms
from .text import with_terms
from .embedding import Embedder, make_embedder
from .store.folder import Index
from .service import FOLLOW_SECONDS, Generation, LiveIndex, builds_on_start, update_index
from .store import Store, load_index, recorded_model
from .store.sentences import with_known_vectors
from .settings import MAX_K, MODES, Settings
from .facets import Understood, describe_filter, understand
from .retrieval import within_margin
from .types import Answer, BuildReport, Document, Filter, Hit



def make_answerer(settings: Settings, folder: str | Path | None = None):
    """The answer step: the trained reader in ``folder`` (default: the one shipped in reading/weights) with the
    calibrations beside it, run by ``settings.engine`` in ``settings.dtype``."""
    from .reading.answerer import ReaderAnswerer, load_calibration
    from .reading.reader import Reader

    reader = Reader(folder, dtype=settings.dtype, engine=settings.engine)
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
        >>> bot.answer("Where is the UNRCCA headquartered?").short  # doctest: +SKIP
        'Ashgabat'
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
        self.answered = threading.Event()  # set once a question has been answered (a server waits for it to load more)

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

    def passages(self, question: str, k: int | None = None, mode: str = "hybrid", *, filters: Filter | None = None) -> list[Hit]:
        """The passages the reader reads for ``question``: :meth:`search`'s, less those far under the best one."""
        return self._to_read(self.search(question, k, mode, filters=filters), mode)

    def _to_read(self, hits: Sequence[Hit], mode: str) -> list[Hit]:
        # only z-score hybrid scores compare across questions: a passage more than settings.read_margin under
        # the best is seldom where the answer is, and costs as much to read
        if mode == "hybrid" and self.settings.fusion == "zscore":
            return within_margin(hits, self.settings.read_margin)
        return list(hits)

    def answer(
        self,
        question: str,
        history: Sequence[Answer] = (),
        *,
        k: int | None = None,
        mode: str = "hybrid",
        abstain: bool = True,
        filters: Filter | None = None,
    ) -> Answer:
        """Answer ``question`` with verbatim quotes from the documents.

        Args:
            question: the question (at most ``settings.max_question_chars`` characters).
            history: the Answers given earlier in this conversation, oldest first
                (:class:`~regional_chat.conversation.Conversation` keeps them). A question
                that leans on them ("When was it founded?") is searched together with the
                names and key terms of the latest turns.
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
        if not isinstance(history, Sequence) or isinstance(history, (str, bytes)) or not all(isinstance(turn, Answer) for turn in history):
            raise ValueError(
                "history must be a list of the Answers given earlier in the conversation, oldest first; "
                "to ask after questions given as text, use regional_chat.Conversation(assistant, earlier=[...])."
            )
        if filters is not None and not isinstance(filters, Filter):
            raise ValueError(f"filters must be a regional_chat.Filter, not {type(filters).__name__}.")
        self.follow()
        live = self._live.current  # one consistent index for the whole question, even if a rebuild swaps it
        terms = follow_up_terms(question, history[-2:])
        # A follow-up is read with all the terms of the previous turn and, since names the answer
        # sentence does not repeat lower its confidence ("When was his organization founded?
        # (Kaha Imnadze UNRCCA)"), with each of the likeliest referents alone; the reading the
        # documents answer most confidently wins.
        readings = [with_terms(question, terms)] + [with_terms(question, [t]) for t in terms[:4]]
        extractor = self.extractor  # one answer step for the whole question, even if use_answerer swaps it
        answer, query, steer = None, question, Understood()
        encoder = self.reading_encoder(live.index)
        for reading in readings:
            vector = None if mode == "lexical" else self.embedder.embed_queries([reading])[0]
            prefer = self._understand(live, reading)
            hits = live.retriever.search_vector(
                reading, vector, k if k is not None else self.settings.top_k, mode, where=filters or None, prefer=prefer or None
            )
            hits = self._to_read(hits, mode)
            candidate = extractor.extract(reading, hits, live.index.document, encoder, vector, abstain=abstain)
            if answer is None or candidate.confidence > answer.confidence:
                answer, query, steer = candidate, reading, prefer
            if answer.found:
                break  # a confident reading is an answer: the other readings would only cost time
        self.answered.set()
        said = [x for x in (describe_filter(filters) if filters else "", steer.describe()) if x]
        return Answer(
            question=question,
            found=answer.found,
            confidence=answer.confidence,
            quotes=answer.quotes,
            related=answer.related,
            search_query=query if query != question else "",
            understood="; ".join(said),
        )

    def reading_encoder(self, index: Store) -> object:
        """The encoder the answerer is handed for ``index``: the question encoder, taking the vectors of the
        sentences and words the build stored (``store/sentences.py``) from its table when it holds them."""
        return with_known_vectors(self.embedder, index.sentence_vectors)

    def use_answerer(self, answerer: object) -> None:
        """Answer the next questions with ``answerer`` (a question already being answered keeps the one it began with)."""
        self.extractor = answerer

    def _understand(self, live: Generation, question: str) -> Understood:
        """What ``question`` names that the index's metadata holds (within a filter, it steers inside the filter)."""
        if not self.settings.prefer_named:
            return Understood()
        return understand(question, live.index.catalogue.facets_of().values())

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


def serving_assistant(corpus_dir: str | Path, location: str | Path, settings: Settings) -> Assistant:
    """The assistant a server starts with: the index brought up to date (progress on the terminal), the models loaded.

    Its first questions are answered by the models run in numpy (about a second to load, no torch import);
    the server hands the reader to ``settings.engine`` in the background (``web.serve``). The question
    encoder stays numpy (tens of ms either way); builds still embed through torch.
    """
    corpus = Path(corpus_dir)
    if builds_on_start(corpus, location):
        print(update_index(corpus, location, settings, progress=True, wait=True).summary(), flush=True)  # embeds only what changed
    else:
        print(f"corpus {corpus} is missing: serving the index at {location} as it is.", flush=True)
    bot = Assistant.load(location, settings.with_(engine="numpy"), corpus_dir=corpus)
    bot.warm_up()  # load the models now, not on the first question
    bot.answered.clear()  # warming up is not a user's question
    return bot


def answer(question: str, history: Sequence[Answer] = (), index_dir: str | Path = "index") -> Answer:
    """Answer ``question`` from the index at ``index_dir``, loading it for this one question.

    Nothing is kept between calls: to ask several questions, hold an :class:`Assistant`
    (``Assistant.load(index_dir)``) and call its ``answer``, or a :class:`Conversation`.

    Example:
        >>> import regional_chat
        >>> regional_chat.answer("Where is the UNRCCA headquartered?").short  # doctest: +SKIP
        'Ashgabat'
    """
    return Assistant.load(index_dir).answer(question, history)
