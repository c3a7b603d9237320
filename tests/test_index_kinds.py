"""The FAISS index kind: flat below a size, IVF past it, compressed past a memory budget."""

import json
import random

import numpy as np
import pytest

from regional_chat import index_kinds
from regional_chat.embedding import HashingEmbedder
from regional_chat.store.manifest import IndexCorruptError
from regional_chat.build import build_index
from regional_chat.store import load_index
from regional_chat.index_kinds import IvfParams, choose_kind
from regional_chat.settings import Settings

WORDS = (
    "water river dam Rogun Amu Darya Syr cargo rail route port Aktau Caspian border post customs trade "
    "summit minister Tashkent Dushanbe Bishkek Astana Ashgabat energy grid gas pipeline wheat cotton "
    "drought glacier treaty security envoy refugees school road bridge tunnel airport election budget"
).split()


def _corpus(folder, docs, seed=0, name="docs.jsonl"):
    """``docs`` documents of six sentences each from a fixed vocabulary; about 3 chunks each at 40 tokens."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for d in range(docs):
        sentences = [" ".join(rng.choice(WORDS) for _ in range(10)).capitalize() + "." for _ in range(6)]
        lines.append(json.dumps({"id": f"d{seed}-{d}", "text": " ".join(sentences)}))
    (folder / name).write_text("\n".join(lines) + "\n")
    return folder


def _settings(**kw):
    return Settings(model="hashing:64", chunk_tokens=40, chunk_overlap=1, **kw)


def _build(corpus, ix, settings, **kw):
    return build_index(corpus, ix, settings, embedder=HashingEmbedder(64), warn=lambda m: None, **kw)


def _manifest(ix):
    index = load_index(ix)
    try:
        return json.loads((index.path / "manifest.json").read_text())
    finally:
        index.close()


# --------------------------------------------------------------------------- choosing


def test_ivf_shape_grows_with_the_square_root_of_the_size():
    assert IvfParams.for_size(1_000_000) == IvfParams(nlist=1024, nprobe=64)
    assert IvfParams.for_size(200_000) == IvfParams(nlist=512, nprobe=32)
    assert IvfParams.for_size(100_000) == IvfParams(nlist=256, nprobe=32)  # 16 probes gave recall 0.944
    # small: enough training points per cell (48) comes first, and every cell is probed
    assert IvfParams.for_size(1024) == IvfParams(nlist=21, nprobe=21)


def test_auto_is_flat_below_the_threshold_and_ivf_past_it():
    s = Settings(ann_threshold=100_000, vector_memory_mb=1024)
    assert choose_kind(99_999, 384, s) == "flat"
    assert choose_kind(100_000, 384, s) == "ivf"
    assert choose_kind(600_000, 384, s) == "ivf"  # 879 MiB of float32
    assert choose_kind(800_000, 384, s) == "ivf-sq8"  # 1172 MiB: over the budget


def test_auto_goes_back_to_flat_only_below_half_the_threshold():
    s = Settings(ann_threshold=100_000)
    assert choose_kind(60_000, 384, s, current="ivf") == "ivf"
    assert choose_kind(49_999, 384, s, current="ivf") == "flat"


def test_a_compressed_index_stays_compressed_under_auto():
    s = Settings(ann_threshold=100_000)
    assert choose_kind(10_000, 384, s, current="ivf-sq8") == "ivf-sq8"
    assert choose_kind(10_000, 384, s, current="ivf-fp16") == "ivf-fp16"


def test_an_explicit_kind_is_obeyed_once_there_is_enough_to_train():
    assert choose_kind(5_000, 384, Settings(index_kind="ivf-fp16")) == "ivf-fp16"
    assert choose_kind(500, 384, Settings(index_kind="ivf-sq8")) == "flat"
    assert choose_kind(10**7, 384, Settings(index_kind="flat")) == "flat"


@pytest.mark.parametrize("field, value", [("index_kind", "hnsw"), ("ann_threshold", 10), ("vector_memory_mb", 0)])
def test_settings_refuse_bad_index_values(field, value):
    with pytest.raises(ValueError, match=field):
        Settings(**{field: value})


# --------------------------------------------------------------------------- building and loading


@pytest.mark.parametrize("kind", ["ivf", "ivf-fp16", "ivf-sq8"])
def test_each_kind_is_built_recorded_loaded_and_finds_a_chunk_by_its_own_text(tmp_path, kind):
    corpus = _corpus(tmp_path / "corpus", 450)
    report = _build(corpus, tmp_path / "ix", _settings(index_kind=kind))
    assert report.chunks >= 1024
    manifest = _manifest(tmp_path / "ix")
    assert manifest["index_kind"] == kind
    params = manifest["index_params"]
    shape = IvfParams.for_size(report.chunks)
    assert (params["nlist"], params["nprobe"]) == (shape.nlist, shape.nprobe)
    assert params["switched_from"] == "flat" and params["trained_at_chunks"] == report.chunks
    assert params["bytes_per_vector"] == {"ivf": 256, "ivf-fp16": 128, "ivf-sq8": 64}[kind]
    index = load_index(tmp_path / "ix")
    assert index.info().index_kind == kind and f"{shape.nlist} lists" in "\n".join(index.info().lines())
    embedder = HashingEmbedder(64)
    chunks = list(index.iter_chunks())[::97]
    hits = index.search(embedder.embed_passages([c.text for c in chunks]), 5)
    found = sum(row[0][0] == c.chunk_id for row, c in zip(hits, chunks))
    assert found >= 0.9 * len(chunks)  # approximate, but a chunk's own vector is nearly always first
    index.close()


def test_auto_switches_to_ivf_when_an_update_crosses_the_threshold(tmp_path):
    settings = _settings(ann_threshold=1024)
    corpus = _corpus(tmp_path / "corpus", 200)
    first = _build(corpus, tmp_path / "ix", settings)
    assert first.chunks < 1024 and _manifest(tmp_path / "ix")["index_kind"] == "flat"
    _corpus(corpus, 300, seed=1, name="more.jsonl")
    second = _build(corpus, tmp_path / "ix", settings)
    assert second.added == 300 and second.chunks_embedded == second.chunks - first.chunks  # nothing re-embedded
    manifest = _manifest(tmp_path / "ix")
    assert manifest["index_kind"] == "ivf"
    assert manifest["index_params"]["switched_from"] == "flat"
    assert manifest["index_params"]["switched_at_chunks"] == second.chunks


def test_deleting_from_an_ivf_index_returns_the_same_results(tmp_path):
    settings = _settings(index_kind="ivf")
    corpus = _corpus(tmp_path / "corpus", 450)
    ix = tmp_path / "ix"
    _build(corpus, ix, settings)
    embedder = HashingEmbedder(64)
    queries = embedder.embed_queries(["water dam Rogun", "rail route Caspian port", "border customs trade"])

    def search():
        index = load_index(ix)
        try:
            return index.search(queries, 10), len(index)
        finally:
            index.close()

    before = search()
    (corpus / "extra.jsonl").write_text(json.dumps({"id": "x", "text": "Water dam Rogun rail route Caspian port border customs trade. " * 3}) + "\n")
    added = _build(corpus, ix, settings)
    assert added.added == 1 and _manifest(ix)["index_kind"] == "ivf"
    assert search() != before
    (corpus / "extra.jsonl").unlink()
    removed = _build(corpus, ix, settings)
    assert removed.removed == 1
    assert search() == before


def test_asking_for_flat_after_a_compressed_index_embeds_everything_again(tmp_path):
    corpus = _corpus(tmp_path / "corpus", 450)
    ix = tmp_path / "ix"
    first = _build(corpus, ix, _settings(index_kind="ivf-sq8"))
    warnings = []
    report = build_index(corpus, ix, _settings(index_kind="flat"), embedder=HashingEmbedder(64), warn=warnings.append)
    assert report.full and report.chunks_embedded == first.chunks
    assert any("embedded again" in w for w in warnings)
    assert _manifest(ix)["index_kind"] == "flat"


def test_changing_the_kind_setting_alone_converts_without_embedding(tmp_path):
    corpus = _corpus(tmp_path / "corpus", 450)
    ix = tmp_path / "ix"
    _build(corpus, ix, _settings())
    exact = load_index(ix)
    embedder = HashingEmbedder(64)
    query = embedder.embed_queries(["glacier drought treaty"])
    flat_hits = exact.search(query, 10)[0]
    exact.close()
    report = _build(corpus, ix, _settings(index_kind="ivf"))
    assert report.chunks_embedded == 0
    assert _manifest(ix)["index_kind"] == "ivf"
    back = _build(corpus, ix, _settings(index_kind="flat"))
    assert back.chunks_embedded == 0
    again = load_index(ix)
    assert again.search(query, 10)[0] == flat_hits  # ivf kept the exact vectors: flat again is exact again
    again.close()


def test_a_vector_file_of_another_kind_than_the_manifest_is_refused(tmp_path):
    corpus = _corpus(tmp_path / "corpus", 450)
    ix = tmp_path / "ix"
    _build(corpus, ix, _settings())
    index = load_index(ix)
    path = index.path / "manifest.json"
    index.close()
    raw = json.loads(path.read_text())
    raw["index_kind"] = "ivf"
    path.write_text(json.dumps(raw))
    with pytest.raises(IndexCorruptError, match="is a flat index but the manifest says ivf"):
        load_index(ix)


def test_exact_vectors_come_back_unchanged_from_flat_and_ivf():
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((2000, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = np.arange(2000, dtype=np.int64) * 3 + 5
    flat = index_kinds.new_flat(16)
    flat.add_with_ids(vectors, ids)
    got_ids, got = index_kinds.exact_vectors(flat)
    assert np.array_equal(got_ids, ids) and np.array_equal(got, vectors)
    ivf = index_kinds.convert(flat, "ivf")
    assert index_kinds.kind_of(ivf) == "ivf" and ivf.ntotal == 2000
    got_ids, got = index_kinds.exact_vectors(ivf)
    assert np.array_equal(got_ids, ids) and np.array_equal(got, vectors)
    with pytest.raises(ValueError, match="build --full"):
        index_kinds.exact_vectors(index_kinds.convert(flat, "ivf-sq8"))


def test_exact_vectors_of_an_index_no_one_else_holds_stay_its_vectors(tmp_path):
    # the repair of a lost chunk store calls exact_vectors(read_index(path)): the flat view must keep the index
    # alive, or it reads freed memory (new indexes of the same size are made to take that memory back)
    import faiss

    vectors = np.random.default_rng(1).standard_normal((5, 64)).astype(np.float32)
    flat = index_kinds.new_flat(64)
    flat.add_with_ids(vectors, np.arange(5, dtype=np.int64) * 7)
    path = str(tmp_path / "vectors.faiss")
    faiss.write_index(flat, path)
    for _ in range(20):
        ids, got = index_kinds.exact_vectors(faiss.read_index(path))
        part = np.ascontiguousarray(np.asarray(got)[1:4])  # a plain view of a slice, kept after the result goes
        others = [index_kinds.new_flat(64) for _ in range(3)]
        for other in others:
            other.add_with_ids(np.full((5, 64), 9.0, dtype=np.float32), np.arange(5, dtype=np.int64))
        rows = [np.array(v) for v in got]  # as the repair copies them, row by row
        assert np.array_equal(ids, np.arange(5) * 7) and np.array_equal(np.stack(rows), vectors)
        del got, rows
        more = [index_kinds.new_flat(64) for _ in range(3)]
        for other in more:
            other.add_with_ids(np.full((5, 64), 7.0, dtype=np.float32), np.arange(5, dtype=np.int64))
        assert np.array_equal(part, vectors[1:4])
