"""The trained reader: question + passages -> scored answer spans, verbatim offsets into the passages."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from ..embedding import forward_passes
from .windows import SpanScore, best_spans, make_windows, pad_arrays, pad_batch

WEIGHTS = Path(__file__).resolve().parent / "weights"
# A forward pass of the reader holds windows at least this share of its longest one's length (Reader._logits).
# Five passages of UN speeches of 60-160 words, one torch thread: 297 ms a question against 355 ms in one pass padded
# to the longest (numpy 364 against 477); five of 150 words each, still one pass: 360 against 361 ms (numpy 483 against
# 488). Passes of at most 512 padded tokens instead: 307 and 367 ms (numpy 381 and 459). /tmp probe, 2026-12-06 21:35 UTC.
READ_FILL = 0.9


@dataclass(frozen=True)
class Reading:
    """What the reader made of one question over its passages.

    ``spans`` are the best span of each window, best first by the shared
    (cross-passage) score; ``null`` is the lowest no-answer logit over the windows,
    i.e. how strongly even the most promising window says "no answer here".
    """

    spans: tuple[SpanScore, ...]
    null: float
    windows: int

    @property
    def best(self) -> SpanScore | None:
        return self.spans[0] if self.spans else None

    def span_probability(self) -> float:
        """Softmax share of the best span among all windows' best spans and the no-answer option."""
        if not self.spans:
            return 0.0
        scores = np.array([s.score for s in self.spans] + [self.null])
        scores = np.exp(scores - scores.max())
        return float(scores[0] / scores.sum())


class Reader:
    """Reads a question against passages with the shipped (or a given) trained model.

    Args:
        folder: the trained reader's folder (``reader.json``, ``config.json``,
            ``model.safetensors``; default: the weights shipped in the package).
        threads: torch threads for inference (None: leave torch's default).
        dtype: ``"auto"`` (bfloat16 where the CPU computes it natively, else float32),
            ``"bfloat16"`` or ``"float32"`` (engine "torch").
        engine: ``"torch"`` (transformers' model) or ``"numpy"`` (``encoder.SpanScorer``, float32:
            nothing heavy to import, slower per window; for a one-off question).

    The model loads on first use (or :meth:`warm_up`); one lock keeps two
    threads from loading it twice. Inference itself needs no lock.
    """

    def __init__(self, folder: str | Path | None = None, threads: int | None = None, dtype: str = "auto", engine: str = "torch") -> None:
        from ..embedding import cpu_has_bf16
        from ..settings import DTYPES, ENGINES

        if dtype not in DTYPES:
            raise ValueError(f"dtype must be {', '.join(DTYPES)}, got {dtype!r}.")
        if engine not in ENGINES:
            raise ValueError(f"engine must be {' or '.join(ENGINES)}, got {engine!r}.")
        self.engine = engine
        self.folder = Path(folder) if folder is not None else WEIGHTS
        self.threads = threads
        self.dtype = ("bfloat16" if cpu_has_bf16() else "float32") if dtype == "auto" else dtype
        self._loaded: tuple[Any, Any, dict] | None = None
        self._direct: tuple[Any, Any] | None = None  # the numpy path: (encoder.SpanScorer, tokenizers.Tokenizer)
        self._meta: dict | None = None
        self._lock = threading.Lock()
        # a fast tokenizer sets its truncation state on every call: two threads at once
        # raise "Already borrowed", so tokenising (about a millisecond) takes turns
        self._tokenize_lock = threading.Lock()

    def _load(self) -> tuple[Any, Any, dict]:
        if self._loaded is None:
            with self._lock:
                if self._loaded is None:
                    from .model import load_trained

                    self._loaded = load_trained(self.folder, self.dtype)
        return self._loaded

    def _load_direct(self) -> tuple[Any, Any]:
        if self._direct is None:
            with self._lock:
                if self._direct is None:
                    from .model import load_direct

                    self._direct = load_direct(self.folder, self.meta)
        return self._direct

    def warm_up(self) -> None:
        if self.engine == "numpy":
            self._load_direct()
        else:
            self._load()

    @property
    def meta(self) -> dict:
        """``reader.json``: read without loading the model."""
        if self._meta is None:
            from .model import read_meta

            self._meta = read_meta(self.folder)
        return self._meta

    def _logits(self, windows: Sequence[Any], batch: int) -> Iterator[tuple[list[int], np.ndarray, np.ndarray]]:
        """(windows, start logits, end logits) per forward pass, from the reader's engine.

        A pass holds at most ``batch`` windows, each at least READ_FILL of the pass's longest one
        (``embedding.forward_passes``): short windows are not padded to a long one's length.
        """
        passes = forward_passes([len(w.input_ids) for w in windows], batch, min_fill=READ_FILL)
        if self.engine == "numpy":
            scorer, _ = self._load_direct()
            for rows in passes:
                ids, types, mask = pad_arrays([windows[r] for r in rows], 0)  # masked padding: its id changes nothing
                s, e = scorer(ids, types, mask)
                yield rows, s, e
            return
        import torch

        model, tokenizer, _ = self._load()
        if self.threads:
            torch.set_num_threads(self.threads)
        pad = tokenizer.pad_token_id or 0
        for rows in passes:
            ids, types, att = pad_batch([windows[r] for r in rows], pad)
            with torch.inference_mode():
                out = model(input_ids=ids, token_type_ids=types, attention_mask=att)
            yield rows, out.start_logits.float().numpy(), out.end_logits.float().numpy()

    def read(
        self,
        question: str,
        passages: Sequence[str],
        batch: int = 16,
        headers: Sequence[str] | None = None,
        per_window: int = 1,
        reject: Callable[[int, int, int], bool] | None = None,
    ) -> Reading:
        """Score spans of ``passages`` for ``question`` (``headers``: a line read before each passage, never quoted).

        ``per_window``: the best spans kept of each window (``Reading.spans`` holds them all, best first).
        ``reject(passage, start, end)``: True for a span that is no answer whatever its score; each window's
        best span is then its best one not rejected (``windows.best_spans``).
        """
        if not passages:
            return Reading((), 0.0, 0)
        meta = self.meta
        tokenizer = self._load_direct()[1] if self.engine == "numpy" else self._load()[1]
        with self._tokenize_lock:
            windows = make_windows(
                tokenizer,
                question,
                passages,
                # training cut paragraphs at max_len; serving reads a whole chunk in one window
                # when serve_max_len allows (fewer, longer windows: less time for the same text)
                max_len=int(meta.get("serve_max_len", meta["max_len"])),
                stride=int(meta["stride"]),
                max_question_tokens=int(meta["max_question_tokens"]),
                headers=headers,
            )
        if not windows:
            return Reading((), 0.0, 0)
        # one matrix over all windows; padding positions get -1e9 so no span can start or end there
        width = max(len(w.input_ids) for w in windows)
        S = np.full((len(windows), width), -1e9, dtype=np.float32)
        E = np.full((len(windows), width), -1e9, dtype=np.float32)
        for rows, s, e in self._logits(windows, batch):
            for k, r in enumerate(rows):
                m = len(windows[r].input_ids)
                S[r, :m], E[r, :m] = s[k, :m], e[k, :m]
        spans = sorted(best_spans(windows, S, E, int(meta["max_answer_tokens"]), per_window, length_penalty=float(meta.get("span_length_penalty", 0.0)),
                                  reject=reject),
                       key=lambda s: -s.score)
        null = min(float(S[w, 0] + E[w, 0]) for w in range(len(windows)))
        return Reading(tuple(spans), null, len(windows))
