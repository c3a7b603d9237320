"""The real embedder gives unit vectors, and the same ranking, in bfloat16 and in float32; its forward passes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from regional_chat.chunking import Chunker
from regional_chat.documents import SourceFile, read_documents
from regional_chat.embedding import forward_passes, make_embedder, unit_rows
from regional_chat.settings import Settings
from regional_chat.types import Document

from conftest import SEED


def test_unit_rows_scales_every_row_to_length_one_and_leaves_zero_rows():
    rows = np.array([[3.0, 4.0], [0.0, 0.0], [1e-3, 0.0]], dtype=np.float64)
    out = unit_rows(rows)
    assert out.dtype == np.float32 and out.flags.c_contiguous
    assert out.tolist() == [[pytest.approx(0.6), pytest.approx(0.8)], [0.0, 0.0], [1.0, 0.0]]


def test_forward_passes_group_texts_of_like_length_under_both_limits():
    lengths = [10, 50, 12, 50, 30, 300, 11, 29]
    passes = forward_passes(lengths, max_texts=3, max_tokens=100)
    # longest first, ties in input order; 300 alone (over the budget by itself); 50 + 50 (a third would pad to 150);
    # 30, 29 and 12 (three texts, the cap); then 11 and 10
    assert passes == [[5], [1, 3], [4, 7, 2], [6, 0]]
    assert sorted(i for p in passes for i in p) == list(range(len(lengths)))
    for p in passes:
        assert len(p) <= 3 and (len(p) == 1 or len(p) * max(lengths[i] for i in p) <= 100)
    assert forward_passes([], 4, 100) == []
    # min_fill: a pass takes only texts at least that share of its longest; no token budget
    assert forward_passes(lengths, max_texts=8, min_fill=0.9) == [[5], [1, 3], [4, 7], [2, 6], [0]]  # 10 < 0.9 * 12
    assert forward_passes([100, 95, 100], max_texts=8, min_fill=0.9) == [[0, 2, 1]]
    assert forward_passes([7] * 5, 64, 1024) == [[0, 1, 2, 3, 4]]


QUESTIONS = ["Where is the UNRCCA headquartered?", "Who is the Foreign Minister of Kazakhstan?", "When was UNRCCA founded?"]


@pytest.fixture(scope="module")
def seed_passages() -> list[str]:
    stat = SEED.stat()
    doc = next(d for d in read_documents(SourceFile(SEED, SEED.name, stat.st_size, stat.st_mtime_ns)) if isinstance(d, Document))
    embedder = make_embedder(Settings(dtype="float32"))
    chunker = Chunker(60, 0, embedder.count_tokens, embedder.max_tokens)  # small chunks: several passages to rank
    return [c.text for c in chunker.chunks(doc)]


@pytest.mark.slow
@pytest.mark.parametrize("model", ["e5", "minilm"])
@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
def test_real_model_vectors_are_unit_length_in_either_dtype(dtype, model, seed_passages):
    embedder = make_embedder(Settings(model=model, dtype=dtype))  # bfloat16 runs on any CPU, natively or emulated
    assert embedder.dtype == dtype
    for vectors in (embedder.embed_queries(QUESTIONS), embedder.embed_passages(seed_passages),
                    embedder.embed_passages(seed_passages * 30)):  # one batch, and encode()'s batched path
        assert vectors.dtype == np.float32
        assert np.abs(np.linalg.norm(vectors, axis=1) - 1.0).max() < 1e-5


@pytest.mark.slow
@pytest.mark.parametrize("model", ["e5", "minilm"])
def test_bfloat16_and_float32_rank_the_seed_passages_the_same(model, seed_passages):
    """bfloat16 moves a score by a few 1e-4: it keeps the best passage and the order of every two passages that
    float32 tells apart by more than that. Two passages float32 scores 1e-4 apart may swap (e5, on an Intel Xeon
    without native bfloat16: the third passage for the second question), so exact top-three lists are not asked for."""
    assert len(seed_passages) >= 4
    scores = {}
    for dtype in ("bfloat16", "float32"):
        embedder = make_embedder(Settings(model=model, dtype=dtype))
        scores[dtype] = embedder.embed_queries(QUESTIONS) @ embedder.embed_passages(seed_passages).T
    full, half = scores["float32"], scores["bfloat16"]
    assert np.abs(full - half).max() < 0.005
    assert (full.argmax(axis=1) == half.argmax(axis=1)).all()
    apart = full[:, :, None] - full[:, None, :] > 0.005  # pairs float32 orders with room to spare
    assert apart.sum() > len(QUESTIONS) * len(seed_passages)  # most pairs are: the check below checks something
    assert ((half[:, :, None] - half[:, None, :]) > 0)[apart].all()


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
def test_passes_of_like_length_give_encodes_vectors_in_the_callers_order(dtype, seed_passages):
    # texts of very different lengths, shuffled: several passes, each put back where its texts were
    rng = np.random.default_rng(3)
    words = " ".join(seed_passages).split()
    texts = [" ".join((words * 3)[17 * i: 17 * i + 4 + 8 * i]) for i in range(40)]  # 4 to 316 words from 40 places
    texts = [texts[i] for i in rng.permutation(len(texts))]
    embedder = make_embedder(Settings(model="minilm", dtype=dtype))
    lengths = [len(ids) for ids in embedder.model.tokenizer(texts, truncation=True, max_length=embedder.max_tokens)["input_ids"]]
    assert len(forward_passes(lengths, embedder.batch_size, embedder.batch_tokens)) > 3
    ours = embedder.embed_passages(texts)
    theirs = embedder.model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
    tolerance = 2e-2 if dtype == "bfloat16" else 1e-5  # bfloat16 rounds differently when a text is padded differently
    assert np.abs(ours - theirs).max() < tolerance
    assert len(set(texts)) == len(texts)
    assert (np.argmax(ours @ theirs.T, axis=1) == np.arange(len(texts))).all()


_OFFLINE_PROBE = textwrap.dedent(
    """
    import os, sys
    connects = []
    sys.addaudithook(lambda event, args: connects.append(args[1]) if event == "socket.connect" else None)
    before = dict(os.environ)
    from regional_chat.embedding import DIRECT_TEXTS, make_embedder
    from regional_chat.settings import Settings

    for model in ("minilm", "e5"):
        embedder = make_embedder(Settings(model=model, engine="torch"))
        vectors = embedder.embed_passages(["The UNRCCA is headquartered in Ashgabat."] * (DIRECT_TEXTS + 1))
        assert vectors.shape[0] == DIRECT_TEXTS + 1 and embedder._model is not None  # through sentence-transformers
    # torch sets a few variables of its own on import; ours would be the hub's
    added = [k for k in os.environ if k not in before and k.startswith(("HF_", "TRANSFORMERS"))]
    assert added == [], added
    assert connects == [], connects
    """
)


@pytest.mark.slow
def test_loading_the_real_models_asks_no_hub_and_sets_no_environment_variable():
    # HF_HUB_OFFLINE unset and the hub pointing at a closed port: a request would fail, hang or warn
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env["HF_ENDPOINT"] = "http://127.0.0.1:9"
    done = subprocess.run([sys.executable, "-c", _OFFLINE_PROBE], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "warn" not in done.stderr.lower() and "offline" not in done.stderr.lower(), done.stderr
