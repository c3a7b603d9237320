import json
import os

import numpy as np
import pytest

from conftest import SEED, kill_build_midway
from regional_chat.documents import CorpusError
from regional_chat.embedding import HashingEmbedder
from regional_chat.store.folder import CURRENT
from regional_chat.store.manifest import IndexBusyError, IndexCorruptError, IndexMismatchError, IndexNotFoundError, build_lock
from regional_chat.build import build_index
from regional_chat.store import load_index
from regional_chat.settings import Settings

QUESTIONS = ["water flow data Rogun", "cargo on the Trans-Caspian route", "border post vehicles", "Dushanbe conference"]


def _search(index_dir, embedder, k=10):
    index = load_index(index_dir)
    try:
        return [index.search(embedder.embed_queries([q]), k)[0] for q in QUESTIONS]
    finally:
        index.close()


def _build(corpus, index_dir, settings, embedder, **kw):
    return build_index(corpus, index_dir, settings, embedder=embedder, warn=lambda m: None, **kw)


def test_first_build_indexes_every_document(corpus, tmp_path, settings, embedder):
    settings = settings.with_(sentence_vectors=False)  # counts chunk embeddings; the sentence table's own: test_store_sentences.py
    report = _build(corpus, tmp_path / "ix", settings, embedder)
    assert (report.added, report.changed, report.removed, report.unchanged) == (4, 0, 0, 0)
    assert report.documents == 4
    assert report.chunks == report.chunks_embedded == embedder.calls
    index = load_index(tmp_path / "ix")
    assert len(index) == report.chunks
    assert index.doc_ids() == ["news/briefs.jsonl#kg-1", "news/briefs.jsonl#tj-1", "transport.txt", "water.md"]
    manifest = json.loads((index.path / "manifest.json").read_text())
    assert manifest["model"] == "hashing:64" and manifest["dim"] == 64
    assert manifest["chunking"] == {"chunk_tokens": 40, "chunk_overlap": 1, "tokenizer": "cl100k_base", "context": "header-v1"}
    assert set(manifest["documents"]) == set(index.doc_ids())
    assert all(len(entry["hash"]) == 64 for entry in manifest["documents"].values())
    # every stored chunk is a verbatim slice of its stored document
    for chunk in index.iter_chunks():
        assert index.document(chunk.doc_id).text[chunk.start : chunk.end] == chunk.text
    water = index.document("water.md")
    assert water.title == "Water talks in Tashkent" and water.metadata["country"] == "Uzbekistan"


def test_second_build_changes_nothing_and_embeds_nothing(corpus, tmp_path, settings, embedder):
    ix = tmp_path / "ix"
    _build(corpus, ix, settings, embedder)
    before = _search(ix, HashingEmbedder(64))
    generation = (ix / CURRENT).read_text()
    calls = embedder.calls
    report = _build(corpus, ix, settings, embedder)
    assert (report.added, report.changed, report.removed, report.unchanged, report.chunks_embedded) == (0, 0, 0, 4, 0)
    assert embedder.calls == calls
    assert (ix / CURRENT).read_text() == generation  # nothing rewritten
    assert _search(ix, HashingEmbedder(64)) == before


def test_touching_a_file_rehashes_but_does_not_reembed(corpus, tmp_path, settings, embedder):
    ix = tmp_path / "ix"
    _build(corpus, ix, settings, embedder)
    calls = embedder.calls
    os.utime(corpus / "water.md", ns=(1, 1))
    report = _build(corpus, ix, settings, embedder)
    assert (report.changed, report.unchanged, report.chunks_embedded) == (0, 4, 0)
    assert embedder.calls == calls


def test_only_the_changed_document_is_reembedded(corpus, tmp_path, settings, embedder):
    settings = settings.with_(sentence_vectors=False)  # counts chunk embeddings; the sentence table's own: test_store_sentences.py
    ix = tmp_path / "ix"
    first = _build(corpus, ix, settings, embedder)
    calls = embedder.calls
    path = corpus / "transport.txt"
    path.write_text(path.read_text() + "A new rail link to Turkey opened in 2025.\n")
    report = _build(corpus, ix, settings, embedder)
    assert (report.added, report.changed, report.removed, report.unchanged) == (0, 1, 0, 3)
    index = load_index(ix)
    transport_chunks = len(index.store.doc_chunks("transport.txt"))
    assert embedder.calls - calls == report.chunks_embedded == transport_chunks
    assert any("rail link to Turkey" in c.text for c in index.store.doc_chunks("transport.txt"))
    assert report.chunks == len(index) >= first.chunks


def test_changing_one_line_of_a_jsonl_file_reembeds_that_line_only(corpus, tmp_path, settings, embedder):
    ix = tmp_path / "ix"
    _build(corpus, ix, settings, embedder)
    path = corpus / "news" / "briefs.jsonl"
    lines = path.read_text().splitlines()
    lines[1] = lines[1].replace("70 countries", "75 countries")
    path.write_text("\n".join(lines) + "\n")
    report = _build(corpus, ix, settings, embedder)
    assert (report.changed, report.unchanged) == (1, 3)
    assert "75 countries" in load_index(ix).document("news/briefs.jsonl#tj-1").text


def test_adding_then_removing_a_document_returns_the_same_results(corpus, tmp_path, settings, embedder):
    ix = tmp_path / "ix"
    _build(corpus, ix, settings, embedder)
    before = _search(ix, HashingEmbedder(64))
    extra = corpus / "extra.txt"
    extra.write_text("Rogun water cargo border Dushanbe conference route.\nIt mentions every query word.\n")
    report = _build(corpus, ix, settings, embedder)
    assert report.added == 1
    assert _search(ix, HashingEmbedder(64)) != before  # the new document does show up
    extra.unlink()
    report = _build(corpus, ix, settings, embedder)
    assert (report.removed, report.unchanged) == (1, 4)
    assert _search(ix, HashingEmbedder(64)) == before


def test_full_rebuild_gives_the_same_results_as_incremental(corpus, tmp_path, settings, embedder):
    ix = tmp_path / "ix"
    _build(corpus, ix, settings, embedder)
    (corpus / "transport.txt").write_text("Trans-Caspian route\nThe route now carries 4 million tonnes.\n")
    _build(corpus, ix, settings, embedder)
    incremental = _search(ix, HashingEmbedder(64))
    report = _build(corpus, ix, settings, embedder, full=True)
    assert report.full and report.added == 4
    assert _search(ix, HashingEmbedder(64)) == incremental


def test_old_generations_are_cleaned_up(corpus, tmp_path, settings, embedder):
    ix = tmp_path / "ix"
    for i in range(4):
        (corpus / f"n{i}.txt").write_text(f"Note {i}.\n")
        _build(corpus, ix, settings, embedder)
    generations = sorted(p.name for p in ix.glob("gen-*"))
    assert generations == ["gen-000003", "gen-000004"]  # the live one and the one before
    assert (ix / CURRENT).read_text().strip() == "gen-000004"


def test_binary_and_non_utf8_files_are_skipped_and_the_rest_indexed(corpus, tmp_path, settings, embedder):
    (corpus / "scan.txt").write_bytes(b"%PDF-1.4\x00\x01\x02")
    (corpus / "cp1251.txt").write_bytes("Привет, мир".encode("cp1251"))
    warnings = []
    report = build_index(corpus, tmp_path / "ix", settings, embedder=embedder, warn=warnings.append)
    assert report.documents == 4
    assert len(report.skipped) == 2 and len(warnings) == 2
    assert any("scan.txt" in s for s in report.skipped) and any("cp1251.txt" in s for s in report.skipped)


def test_a_file_that_becomes_unreadable_keeps_its_indexed_version(corpus, tmp_path, settings, embedder):
    ix = tmp_path / "ix"
    _build(corpus, ix, settings, embedder)
    (corpus / "transport.txt").write_bytes(b"\xff\xfe garbage \x00")
    report = _build(corpus, ix, settings, embedder)
    assert report.removed == 0 and report.unchanged == 4
    assert "Trans-Caspian" in load_index(ix).document("transport.txt").text


def test_empty_corpus_is_a_clear_error(tmp_path, settings, embedder):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError, match=r"holds no \.txt, \.md, .* or \.docx file"):
        _build(tmp_path / "empty", tmp_path / "ix", settings, embedder)
    (tmp_path / "empty" / "blank.txt").write_text("  \n")
    with pytest.raises(CorpusError, match="no readable document"):
        _build(tmp_path / "empty", tmp_path / "ix", settings, embedder)
    assert not (tmp_path / "ix" / CURRENT).exists()


def test_missing_index_is_a_clear_error(tmp_path):
    with pytest.raises(IndexNotFoundError, match="regional-chat build"):
        load_index(tmp_path / "nothing")


def test_index_from_another_model_or_chunking_is_refused(corpus, tmp_path, settings, embedder):
    ix = tmp_path / "ix"
    _build(corpus, ix, settings, embedder)
    with pytest.raises(IndexMismatchError, match=r"hashing:64 \(64 dimensions\).*hashing:32.*build --full"):
        load_index(ix, Settings(model="hashing:32", chunk_tokens=40))
    with pytest.raises(IndexMismatchError, match="chunking.*build --full"):
        load_index(ix, settings.with_(chunk_tokens=80))
    with pytest.raises(IndexMismatchError, match="build --full"):
        _build(corpus, ix, Settings(model="hashing:32", chunk_tokens=40), HashingEmbedder(32))
    report = _build(corpus, ix, Settings(model="hashing:32", chunk_tokens=40), HashingEmbedder(32), full=True)
    assert report.added == 4
    assert load_index(ix, Settings(model="hashing:32", chunk_tokens=40)).manifest.dim == 32


def test_a_pointer_to_a_folder_that_is_no_generation_is_refused(corpus, tmp_path, settings, embedder):
    ix = tmp_path / "ix"
    _build(corpus, ix, settings, embedder)
    assert load_index(ix).info().generation == 1
    (ix / "backup").mkdir()
    (ix / CURRENT).write_text("backup\n")
    with pytest.raises(IndexCorruptError, match=r"does not name a generation \('backup'\).*run `regional-chat build` to repair it"):
        load_index(ix)


@pytest.mark.parametrize("damage", ["manifest", "vectors", "store", "pointer"])
def test_a_corrupt_index_is_reported_and_repaired_by_a_plain_build(corpus, tmp_path, settings, embedder, damage):
    settings = settings.with_(sentence_vectors=False)  # counts chunk embeddings; the sentence table's own: test_store_sentences.py
    ix = tmp_path / "ix"
    _build(corpus, ix, settings, embedder)
    gen = ix / (ix / CURRENT).read_text().strip()
    target = {"manifest": gen / "manifest.json", "vectors": gen / "vectors.faiss", "store": gen / "store.sqlite", "pointer": ix / CURRENT}[damage]
    target.write_bytes(b"{ not what it should be" if damage != "pointer" else b"gen-999999\n")
    with pytest.raises(IndexCorruptError, match=r"(vectors file|chunk store|manifest\.json|CURRENT).*run `regional-chat build` to repair it"):
        load_index(ix)
    embedder.calls = 0
    report = _build(corpus, ix, settings, embedder)  # no --full needed
    assert report.documents == 4 and report.repaired
    assert embedder.calls == (0 if damage == "store" else report.chunks)  # a lost store reuses the intact vectors
    assert len(load_index(ix)) == report.chunks


def _vectors_by_id(gen) -> dict[int, np.ndarray]:
    import faiss

    index = faiss.read_index(str(gen / "vectors.faiss"))
    inner = faiss.downcast_index(index.index)
    ids = faiss.vector_to_array(index.id_map)
    return {int(i): inner.reconstruct(r) for r, i in enumerate(ids)}


def test_a_lost_chunk_store_keeps_the_very_vectors_it_had(corpus, tmp_path, settings, embedder):
    # the repair takes each unchanged chunk's vector from the intact vectors file: those vectors, not the bytes
    # of memory FAISS freed once it read them (a chunk's vector came back garbage, and search then missed it)
    settings = settings.with_(sentence_vectors=False)
    ix = tmp_path / "ix"
    _build(corpus, ix, settings, embedder)
    gen = ix / (ix / CURRENT).read_text().strip()
    before = _vectors_by_id(gen)
    (gen / "store.sqlite").write_bytes(b"{ not what it should be")
    embedder.calls = 0
    report = _build(corpus, ix, settings, embedder)
    assert report.repaired and embedder.calls == 0
    after = _vectors_by_id(ix / (ix / CURRENT).read_text().strip())
    assert after.keys() == before.keys() and all(np.array_equal(after[i], before[i]) for i in before)


def test_vectors_no_embedder_wrote_are_damage_though_their_checksum_matches(corpus, tmp_path, settings, embedder):
    # what a repair before 3a327ed could leave: a chunk's vector taken from freed memory, its file's checksum recorded
    import faiss

    from regional_chat import index_kinds
    from regional_chat.documents import sha256_file
    from regional_chat.store.folder import check_index

    settings = settings.with_(sentence_vectors=False)
    ix = tmp_path / "ix"
    _build(corpus, ix, settings, embedder)
    assert check_index(ix).ok
    gen = ix / (ix / CURRENT).read_text().strip()
    vectors = _vectors_by_id(gen)
    ids = np.array(list(vectors), dtype=np.int64)
    rows = np.stack([vectors[int(i)] for i in ids])
    rows[1] = 9.0  # what took the freed memory
    garbage = index_kinds.new_flat(rows.shape[1])
    garbage.add_with_ids(rows, ids)
    faiss.write_index(garbage, str(gen / "vectors.faiss"))
    raw = json.loads((gen / "manifest.json").read_text())
    raw["checksums"]["vectors.faiss"] = sha256_file(gen / "vectors.faiss")
    (gen / "manifest.json").write_text(json.dumps(raw))

    report = check_index(ix)
    assert not report.ok
    assert f"1 of {len(ids)} vectors are not of unit length (chunk id {int(ids[1])} the first)" in report.lines()[0]
    embedder.calls = 0
    repaired = _build(corpus, ix, settings, embedder)  # a plain build finds it and embeds again
    assert repaired.repaired and embedder.calls == repaired.chunks
    assert check_index(ix).ok
    after = _vectors_by_id(ix / (ix / CURRENT).read_text().strip())
    assert after.keys() == vectors.keys() and all(np.allclose(after[i], vectors[i]) for i in vectors)


def test_a_second_build_refuses_while_one_runs(corpus, tmp_path, settings, embedder):
    ix = tmp_path / "ix"
    _build(corpus, ix, settings, embedder)
    with build_lock(ix):
        with pytest.raises(IndexBusyError, match=f"another build is running on {ix} \\(pid {os.getpid()}\\)"):
            _build(corpus, ix, settings, embedder)
    assert _build(corpus, ix, settings, embedder).unchanged == 4  # the lock is free again


def test_kill_9_in_the_middle_of_a_build_leaves_the_previous_index_intact(corpus, tmp_path, settings, embedder):
    ix = tmp_path / "ix"
    _build(corpus, ix, settings, embedder)
    before = _search(ix, HashingEmbedder(64))
    generation = (ix / CURRENT).read_text()
    for i in range(300):  # a large addition to the corpus
        (corpus / f"bulk-{i:03d}.txt").write_text(f"Bulletin {i}.\n" + "Water and cargo news of the day. " * 30 + "\n")
    kill_build_midway(corpus, ix, tmp_path, pause=0.02, seconds=120)
    assert list(ix.glob(".tmp-*")), "the killed build was writing a temporary generation"
    assert (ix / CURRENT).read_text() == generation
    assert _search(ix, HashingEmbedder(64)) == before  # the old index is loadable and unchanged
    report = _build(corpus, ix, settings, embedder)  # the next build cleans up and completes
    assert report.added == 300
    assert not list(ix.glob(".tmp-*"))
    assert load_index(ix).manifest.chunks == report.chunks


@pytest.mark.slow
def test_real_model_on_the_seed_article(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / SEED.name).write_text(SEED.read_text(encoding="utf-8"), encoding="utf-8")
    settings = Settings()
    report = build_index(corpus, tmp_path / "ix", settings)
    assert report.documents == 1 and report.chunks >= 2
    index = load_index(tmp_path / "ix", settings)
    from regional_chat.embedding import make_embedder

    embedder = make_embedder(settings)
    vec = embedder.embed_queries(["Where is the UNRCCA headquartered?"])
    assert vec.shape == (1, 384) and abs(float(np.linalg.norm(vec)) - 1) < 1e-3
    best = index.chunks([index.search(vec, 1)[0][0][0]])[0]
    assert "Ashgabat, Turkmenistan" in best.text
    counts = embedder.count_tokens([c.text for c in index.iter_chunks()])
    assert max(counts) <= embedder.max_tokens


def test_off_unit_rows_are_the_rows_no_embedder_writes():
    from regional_chat.store.folder import off_unit_rows

    rows = np.zeros((7, 4), dtype=np.float32)
    rows[0] = [1, 0, 0, 0]  # unit
    rows[1] = 0.0  # a text with no words: the embedders leave it zero
    rows[2] = [np.nan, 0, 0, 0]
    rows[3] = [np.inf, 0, 0, 0]
    rows[4] = [1.005, 0, 0, 0]  # bfloat16 normalisation of an older build: within the tolerance
    rows[5] = [2, 0, 0, 0]
    rows[6] = [9, 9, 9, 9]
    assert off_unit_rows(rows).tolist() == [2, 3, 5, 6]
    assert off_unit_rows(rows, block=2).tolist() == [2, 3, 5, 6]  # the same, read in blocks
    assert off_unit_rows(rows[:0]).tolist() == []
