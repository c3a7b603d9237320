"""column_sum_scores gives exactly what bm25s's get_scores_from_ids gives."""

import numpy as np

from regional_chat.bm25_scores import column_sum_scores
from regional_chat.retrieval import LexicalIndex

TEXTS = [
    "Water talks on the Rogun dam resumed in Tashkent.",
    "The Rogun dam will store water for the dry season; water flow data is shared.",
    "Cargo on the Trans-Caspian route grew by a third.",
    "Border posts between Kyrgyzstan and Tajikistan reopened to cargo trucks.",
    "",
]


def test_same_scores_as_bm25s_for_every_query_shape():
    index = LexicalIndex.build(range(10, 10 + len(TEXTS)), TEXTS)
    bm25 = index._bm25
    vocab = bm25.vocab_dict
    queries = [
        index.tokenizer.tokens("water Rogun dam"),
        index.tokenizer.tokens("water water cargo"),  # a repeated term counts twice in both
        index.tokenizer.tokens("border"),
    ]
    for tokens in queries:
        ids = [vocab[t] for t in tokens if t in vocab]
        assert ids
        expected = bm25.get_scores_from_ids(ids)
        got = column_sum_scores(bm25, ids)
        assert got.dtype == expected.dtype
        assert np.array_equal(got, expected)


def test_no_terms_scores_nothing():
    index = LexicalIndex.build([1, 2], ["alpha beta", "gamma"])
    assert np.array_equal(column_sum_scores(index._bm25, []), np.zeros(2, dtype=np.float32))
