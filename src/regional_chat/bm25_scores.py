"""BM25 scores of every chunk for a query, from bm25s's precomputed CSC score matrix, fast.

bm25s (0.3.16, numpy backend, no numba) sums the query terms' columns with
``np.add.at``, which is unbuffered and several times slower than a plain
fancy-indexed ``+=``. Within one column the row indices are unique (a CSC
column lists each chunk at most once), so ``scores[rows] += values`` is
exact; summing term after term in float32 gives bit-for-bit the scores
``get_scores_from_ids`` gives (same order, same dtype). At a million chunks a
frequent term's column holds hundreds of thousands of entries, where the
difference matters (bench/bench_scale.py, docs/BENCHMARKS.md).

Meant to be called from ``retrieval.LexicalIndex.search_and_score`` in place of
``self._bm25.get_scores_from_ids(term_ids)``.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def column_sum_scores(bm25: Any, term_ids: Sequence[int]) -> np.ndarray:
    """The BM25 score of every chunk for ``term_ids`` (repeats count again, as in bm25s).

    Args:
        bm25: a ``bm25s.BM25`` whose ``scores`` hold the CSC matrix (data, indices, indptr, num_docs).
        term_ids: the query's term ids in the index's vocabulary.

    Returns:
        float32 scores of shape (num_docs,), equal to ``bm25.get_scores_from_ids(term_ids)``.
    """
    matrix = bm25.scores
    data, indices, indptr = matrix["data"], matrix["indices"], matrix["indptr"]
    scores = np.zeros(int(matrix["num_docs"]), dtype=np.dtype(getattr(bm25, "dtype", "float32")))
    for term in term_ids:
        start, end = int(indptr[term]), int(indptr[term + 1])
        if end > start:
            scores[indices[start:end]] += data[start:end]
    return scores
