"""Question + passage -> token windows the reader reads, and spans back to characters.

A window is ``[CLS] question [SEP] a slice of one passage [SEP]``; a passage
longer than one window is cut into overlapping windows (``stride`` tokens
shared). Every context token keeps its character offsets into its passage, so
a span the model picks maps back to an exact slice of the passage text: the
reader never writes text, it only points into it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from ..facets import headed


# A window's best spans looked through for one ``best_spans`` does not reject (each try: one argmax over its grid).
REJECT_TRIES = 8


@dataclass(frozen=True)
class Window:
    """One model input: ``passage`` is the index of the passage its context tokens come from."""

    passage: int
    input_ids: tuple[int, ...]
    token_type_ids: tuple[int, ...]
    # (start, end) character offsets into the passage for context tokens; (-1, -1) for the rest
    offsets: tuple[tuple[int, int], ...]

    @property
    def context(self) -> np.ndarray:
        """Positions of the context tokens."""
        return np.array([i for i, (s, _) in enumerate(self.offsets) if s >= 0], dtype=np.int64)


def backend(tokenizer: Any) -> Any:
    """The ``tokenizers.Tokenizer`` behind a transformers fast tokenizer, or the one given."""
    return getattr(tokenizer, "backend_tokenizer", tokenizer)


def trim_question(tokenizer: Any, question: str, max_tokens: int) -> str:
    """The question cut after ``max_tokens`` tokens (at a token's end, so it stays the user's own text)."""
    tok = backend(tokenizer)
    tok.no_truncation()
    tok.no_padding()  # a tokenizer.json may pad (MiniLM's pads to 128): padding is never a token of the question
    offsets = tok.encode(question, add_special_tokens=False).offsets
    if len(offsets) <= max_tokens:
        return question
    return question[: offsets[max_tokens - 1][1]]


def _skip_space(text: str, a: int, b: int) -> int:
    """The start of token [a, b) without the white space before its word.

    A SentencePiece token ("▁Preventive", e5's tokenizer) spans the space before its word: a span
    starting there would quote " Preventive Diplomacy", and the first word of a passage read under a
    header would start in the header's line break, out of the passage. A token of white space alone
    comes back as b: no span starts or ends in it.
    """
    while a < b and text[a].isspace():
        a += 1
    return a


def make_windows(
    tokenizer: Any,
    question: str,
    passages: Sequence[str],
    *,
    max_len: int = 256,
    stride: int = 96,
    max_question_tokens: int = 64,
    headers: Sequence[str] | None = None,
) -> list[Window]:
    """The windows of ``passages`` for ``question``, passage by passage, in order.

    Args:
        tokenizer: a ``tokenizers.Tokenizer`` (or a transformers fast tokenizer: its backend is used),
            the same windows as transformers' ``truncation="only_second"`` with ``stride`` and overflow.
            It is not thread-safe (truncation is set per call): callers take turns.
        question: the question; cut to ``max_question_tokens`` tokens.
        passages: the texts to read.
        max_len: tokens per window, special tokens included.
        stride: tokens two windows of one passage share.
        headers: a line to read before each passage ("Kazakhstan, 1993, session 48."): the
            model sees it, but no span can start or end in it, and offsets still point into
            the passage alone.

    Returns:
        Windows; ``passage`` says which passage each one reads.
    """
    if not passages:
        return []
    if headers is not None and len(headers) != len(passages):
        raise ValueError(f"{len(headers)} headers for {len(passages)} passages.")
    # characters before each passage's own text; tokens there are read but never selectable
    shift = [len(h) + 1 if h else 0 for h in headers] if headers is not None else [0] * len(passages)
    texts = [headed(h, t) for h, t in zip(headers or [""] * len(passages), passages)]
    question = trim_question(tokenizer, question, max_question_tokens)
    tok = backend(tokenizer)
    tok.no_padding()
    tok.enable_truncation(max_len, stride=stride, strategy="only_second")
    try:
        encodings = tok.encode_batch([(question, t) for t in texts], add_special_tokens=True)
    finally:
        tok.no_truncation()
    windows = []
    for sample, first in enumerate(encodings):
        k, text = shift[sample], texts[sample]
        for enc in [first, *first.overflowing]:
            offsets = tuple(
                (a - k, int(o[1]) - k) if s == 1 and (a := _skip_space(text, int(o[0]), int(o[1]))) < o[1] and a >= k else (-1, -1)
                for s, o in zip(enc.sequence_ids, enc.offsets)
            )
            windows.append(Window(passage=sample, input_ids=tuple(enc.ids), token_type_ids=tuple(enc.type_ids), offsets=offsets))
    return windows


def pad_arrays(rows: Sequence[Any], pad_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``pad_batch`` as numpy arrays (int64): ids, token types, attention mask."""
    n = max(len(r.input_ids) for r in rows)
    ids = np.full((len(rows), n), pad_id, dtype=np.int64)
    types = np.zeros((len(rows), n), dtype=np.int64)
    att = np.zeros((len(rows), n), dtype=np.int64)
    for i, r in enumerate(rows):
        m = len(r.input_ids)
        ids[i, :m] = r.input_ids
        types[i, :m] = r.token_type_ids
        att[i, :m] = 1
    return ids, types, att


def pad_batch(rows: Sequence[Any], pad_id: int) -> tuple[Any, Any, Any]:
    """``input_ids``, ``token_type_ids`` and ``attention_mask`` tensors for rows of different lengths.

    ``rows`` are :class:`Window` s or anything with ``input_ids`` and ``token_type_ids``; shorter rows
    are padded with ``pad_id`` on the right (mask 0).
    """
    import torch

    return tuple(torch.from_numpy(a) for a in pad_arrays(rows, pad_id))  # type: ignore[return-value]


@dataclass(frozen=True)
class SpanScore:
    """The best span of one window: character offsets into its passage and the logits that chose it."""

    window: int
    passage: int
    start: int
    end: int
    score: float  # start logit + end logit
    null: float  # the window's no-answer logit: start + end logit of the first ([CLS]) token


def best_spans(
    windows: Sequence[Window],
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    max_answer_tokens: int = 30,
    per_window: int = 1,
    length_penalty: float = 0.0,
    reject: Callable[[int, int, int], bool] | None = None,
) -> list[SpanScore]:
    """The ``per_window`` best spans (start <= end, at most ``max_answer_tokens``) of every window.

    ``reject(passage, start, end)``: True for a span that is no answer whatever its score (character
    offsets into the passage); a window's best span is then its best one not rejected, looked for among its
    ``REJECT_TRIES`` best, and a window whose best ones are all rejected gives none.

    ``length_penalty``: a span is chosen by its start + end logit less this much per token after its
    first (a reader trained on SQuAD's short answers still runs on past the answer in long speeches:
    "Kyoto Protocol to the United Nations Framework Convention on Climate Change"). The score a span
    keeps (what passages are compared and confidence computed by) is its logits' alone.
    """
    out: list[SpanScore] = []
    for w, window in enumerate(windows):
        ctx = window.context
        if len(ctx) == 0:
            continue
        s = start_logits[w, ctx].astype(np.float64)
        e = end_logits[w, ctx].astype(np.float64)
        grid = s[:, None] + e[None, :]
        n = len(ctx)
        rows, cols = np.indices((n, n))
        grid[(cols < rows) | (cols - rows >= max_answer_tokens)] = -np.inf
        choose = grid - length_penalty * (cols - rows) if length_penalty else grid  # a window's own: masking a cell of it is safe
        null = float(start_logits[w, 0] + end_logits[w, 0])
        if per_window == 1:
            # one span a window (what the English path asks): argmax, not a sort of the n x n grid (a millisecond a
            # window); a rejected span is masked and the next argmax taken
            for _ in range(REJECT_TRIES if reject is not None else 1):
                i, j = divmod(int(np.argmax(choose)), n)
                if not np.isfinite(grid[i, j]):
                    break
                a, b = window.offsets[ctx[i]][0], window.offsets[ctx[j]][1]
                if reject is not None and reject(window.passage, a, b):
                    choose[i, j] = -np.inf
                    continue
                out.append(SpanScore(w, window.passage, a, b, float(grid[i, j]), null))
                break
            continue
        for f in np.argsort(choose, axis=None)[::-1][:per_window]:
            i, j = divmod(int(f), n)
            if not np.isfinite(grid[i, j]):
                continue
            a, b = window.offsets[ctx[i]][0], window.offsets[ctx[j]][1]
            if reject is None or not reject(window.passage, a, b):
                out.append(SpanScore(w, window.passage, a, b, float(grid[i, j]), null))
    return out
