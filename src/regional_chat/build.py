"""Build: bring an index up to date with the corpus, on either store.

What a build does is the same on both backends (``store.manifest.plan_changes`` compares the
corpus with the live manifest; only new and changed documents are embedded; the new generation
becomes live in one step once complete); how a generation is written is the backend's.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from .store import is_milvus

if TYPE_CHECKING:
    from .embedding import Embedder
    from .settings import Settings
    from .types import BuildReport


def build_index(
    corpus_dir: str | Path = "corpus",
    index_dir: str | Path = "index",
    settings: "Settings | None" = None,
    *,
    full: bool = False,
    embedder: "Embedder | None" = None,
    progress: bool = False,
    wait: bool = False,
    warn: Callable[[str], None] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> "BuildReport":
    """Bring the index at ``index_dir`` up to date with ``corpus_dir``.

    Only new and changed documents are embedded; removed documents' chunks are
    deleted; ``full=True`` rebuilds from scratch. The new generation becomes
    live only once it is complete on disk.

    Args:
        corpus_dir: a folder of .txt/.md/.jsonl files, or one such file.
        index_dir: where the index lives (created if missing): a folder, or ``milvus:<file-or-URI>``
            for the Milvus store (``regional_chat.store``).
        settings: model and chunking; defaults to ``Settings()``.
        full: ignore the existing index and rebuild everything.
        embedder: use this embedder instead of the one ``settings.model`` names.
        progress: show a progress bar on stderr.
        wait: wait for another running build instead of refusing.
        warn: called with each warning (files skipped); defaults to printing on stderr.
        on_progress: called with (documents embedded so far, documents to embed).

    Returns:
        A :class:`BuildReport` (added, changed, removed, unchanged, chunks, seconds).

    Raises:
        CorpusError: the corpus is missing or holds no readable document.
        IndexBusyError: another build is running on the same index.
        IndexMismatchError / IndexCorruptError: the existing index cannot be updated; rebuild with full=True.
    """
    started = time.perf_counter()
    from .settings import Settings
    from .store.manifest import BuildRequest, list_corpus

    settings = settings or Settings()
    warn = warn or (lambda msg: print(f"warning: {msg}", file=sys.stderr, flush=True))
    corpus = Path(corpus_dir)
    files, listing = list_corpus(corpus, warn)  # fails early, before any lock or model, on a missing corpus
    request = BuildRequest(corpus, files, listing, settings, embedder, full, wait, warn, on_progress, started)
    if is_milvus(index_dir):
        from .store.milvus import build_milvus

        return build_milvus(request, str(index_dir))
    from .store.folder import build_folder

    return build_folder(request, Path(index_dir), progress=progress)
