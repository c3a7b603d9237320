"""Serve an index that changes: bring it up to date with a corpus, and hold the generation questions use.

Two things live here and nowhere else:

* :func:`update_index`, the one way an index is brought up to date with its corpus: the CLI's
  ``build``, the web app's start-up build and :meth:`LiveIndex.rebuild` all call it
  (``build.build_index`` is the writer it calls).
* :class:`LiveIndex`, the generation a serving assistant answers from, and the switch to a
  newer one: after a rebuild in this process, or after a build made by another process
  (:meth:`LiveIndex.follow`). The switch is one assignment of a frozen :class:`Generation`, so a
  question that took :attr:`LiveIndex.current` once uses one consistent index throughout.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from .build import build_index
from .store import is_milvus, live_generation, load_index

if TYPE_CHECKING:
    from .embedding import Embedder
    from .retrieval import Retriever
    from .settings import Settings
    from .store.folder import Index
    from .types import BuildReport

FOLLOW_SECONDS = 5.0  # how often a serving index looks for a generation another process built


def update_index(
    corpus: str | Path,
    location: str | Path,
    settings: "Settings | None" = None,
    *,
    embedder: "Embedder | None" = None,
    full: bool = False,
    wait: bool = False,
    progress: bool = False,
    warn: Callable[[str], None] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> "BuildReport":
    """Bring the index at ``location`` up to date with ``corpus`` (only what changed is embedded).

    The one build path of the CLI, the web app and a serving :class:`LiveIndex`; the arguments
    are those of :func:`regional_chat.build_index`, which writes the generation.

    Returns:
        The :class:`BuildReport` of the build.
    """
    return build_index(
        corpus, location, settings, full=full, embedder=embedder, progress=progress, wait=wait, warn=warn, on_progress=on_progress
    )


def builds_on_start(corpus: str | Path, location: str | Path) -> bool:
    """Whether a server starting over ``location`` should first bring it up to date with ``corpus``.

    It should when the corpus is there. Without the corpus, an existing index is served as it
    is; an index folder with nothing built yet is still "built", so that the build's error
    says the corpus is missing.
    """
    if Path(corpus).exists():
        return True
    if is_milvus(location):
        return False
    from .store.folder import current_generation

    return current_generation(Path(location)) is None


@dataclass(frozen=True)
class Generation:
    """One loaded generation and the retriever over it; replaced whole when the index changes."""

    index: "Index"
    retriever: "Retriever"


def corpus_of(index: "Index") -> Path | None:
    """The corpus folder recorded in the index's manifest (None when it records none)."""
    corpus = index.manifest.corpus
    return Path(corpus) if corpus else None


class LiveIndex:
    """The generation of an index that a serving process answers from, switched whole when a newer one is built.

    Args:
        index: the loaded generation to start from (see :func:`regional_chat.load_index`).
        settings: the settings the index is searched and rebuilt with.
        embedder: the embedder questions are embedded with (and rebuilds embed with).
        corpus_dir: the corpus :meth:`rebuild` reads (default: the one the manifest records).

    Safe to use from several threads: :attr:`current` is read with one attribute access, and
    the only writers (:meth:`follow`, :meth:`rebuild`) hold a lock, so a rebuild in this
    process is never raced by a follow.
    """

    def __init__(self, index: "Index", settings: "Settings", embedder: "Embedder", corpus_dir: str | Path | None = None) -> None:
        self.location = index.root
        self.settings = settings
        self.embedder = embedder
        self.corpus_dir = Path(corpus_dir) if corpus_dir is not None else corpus_of(index)
        self._current = self._generation(index)
        self._lock = threading.Lock()  # held by a rebuild, and by a follow while it switches
        self._checked = time.monotonic()  # when another process's build was last looked for

    @classmethod
    def load(cls, location: str | Path, settings: "Settings", embedder: "Embedder", corpus_dir: str | Path | None = None) -> "LiveIndex":
        """The live generation at ``location``, loaded (checked against ``settings`` and ``embedder``)."""
        return cls(load_index(location, settings, embedder), settings, embedder, corpus_dir)

    def _generation(self, index: "Index") -> Generation:
        from .retrieval import Retriever

        return Generation(index, Retriever(index, index.lexical, self.embedder, self.settings))

    @property
    def current(self) -> Generation:
        """The generation to answer from now: take it once per question and use only it."""
        return self._current

    @property
    def index(self) -> "Index":
        """The current generation's index."""
        return self._current.index

    def follow(self, every: float = FOLLOW_SECONDS) -> bool:
        """Switch to a generation another process built since this one was loaded; True when it switched.

        Looked for at most once every ``every`` seconds (a file read, or one Milvus row), so that
        several serving processes over one store all answer from a build made elsewhere within
        seconds. A rebuild running in this process is left to switch by itself, and an unreachable
        store leaves the loaded generation answering.
        """
        now = time.monotonic()
        if now - self._checked < every or not self._lock.acquire(blocking=False):
            return False
        try:
            self._checked = now
            try:
                live = live_generation(self.location)
            except Exception:  # noqa: BLE001 - an unreachable store: keep answering from the loaded generation
                return False
            if live is None or live == str(self._current.index.path):
                return False
            fresh = load_index(self.location, self.settings, self.embedder)
            self._current = self._generation(fresh)  # one assignment: a question sees the old or the new, never half
            return True
        finally:
            self._lock.release()

    def rebuild(
        self,
        corpus: str | Path | None = None,
        on_progress: Callable[[int, int], None] | None = None,
        warn: Callable[[str], None] | None = None,
    ) -> "BuildReport":
        """Bring the index up to date with the corpus and switch to it; questions keep being answered meanwhile.

        Args:
            corpus: the corpus to build from (default :attr:`corpus_dir`).
            on_progress: called with (documents embedded so far, documents to embed).
            warn: called with each warning (files skipped).

        Returns:
            The :class:`BuildReport` of the build.

        Raises:
            ValueError: no corpus is given and none is known.
        """
        folder = Path(corpus) if corpus is not None else self.corpus_dir
        if folder is None:
            raise ValueError("this index does not know its corpus folder: pass corpus_dir.")
        with self._lock:
            report = update_index(
                folder, self.location, self.settings, embedder=self.embedder, wait=True, warn=warn, on_progress=on_progress
            )
            fresh = load_index(self.location, self.settings, self.embedder)
            if fresh.path != self._current.index.path:
                self._current = self._generation(fresh)  # one assignment: a question sees the old or the new, never half
            else:
                fresh.close()
        return report

    def close(self) -> None:
        """Close the current generation's index (its files or its Milvus connection)."""
        self._current.index.close()
