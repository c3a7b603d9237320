"""The index on each backend: an index folder (FAISS + bm25s + SQLite), milvus-lite embedded, a Milvus server.

Every test here runs once per backend (``index_location`` in conftest.py); the server is a real
``milvus-lite server`` process on 127.0.0.1, so the client-server path is the one exercised.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from conftest import kill_build_midway
from regional_chat.embedding import HashingEmbedder
from regional_chat.store.manifest import IndexNotFoundError
from regional_chat.build import build_index
from regional_chat.store import is_milvus, load_index
from regional_chat.retrieval import Retriever
from regional_chat.types import Filter

QUESTIONS = ["Trans-Caspian cargo 2023", "Dushanbe water conference", "border post vehicles", "Aktau Baku ferry", "reservoirs flow data"]


def _retriever(index, embedder, settings) -> Retriever:
    return Retriever(index, index.lexical, embedder, settings)


def _results(location, settings, embedder, mode="hybrid") -> list[list[tuple[str, int]]]:
    index = load_index(location, settings, embedder)
    try:
        retriever = _retriever(index, embedder, settings)
        return [[(h.chunk.doc_id, h.chunk.seq) for h in retriever.search(q, 3, mode)] for q in QUESTIONS]
    finally:
        index.close()


def test_build_then_every_chunk_and_document_comes_back_verbatim(corpus, index_location, settings, embedder):
    report = build_index(corpus, index_location, settings, embedder=embedder, warn=lambda m: None)
    assert (report.added, report.documents) == (4, 4) and report.chunks == report.chunks_embedded > 4
    index = load_index(index_location, settings, embedder)
    try:
        assert len(index) == report.chunks and index.doc_ids() == sorted(index.manifest.documents)
        chunks = list(index.iter_chunks())
        assert len(chunks) == report.chunks
        for chunk in chunks:
            assert index.document(chunk.doc_id).text[chunk.start : chunk.end] == chunk.text
        water = index.document("water.md")
        assert water.title == "Water talks in Tashkent" and water.metadata["country"] == "Uzbekistan" and water.date == "2024-03-14"
        assert index.chunks([chunks[2].chunk_id, chunks[0].chunk_id]) == [chunks[2], chunks[0]]
        assert index.catalogue.countries() == ["KGZ", "TJK", "UZB"]
        with pytest.raises(KeyError):
            index.document("nowhere.txt")
    finally:
        index.close()


def test_dense_lexical_and_hybrid_find_the_document_a_question_is_about(corpus, index_location, settings, embedder):
    build_index(corpus, index_location, settings, embedder=embedder, warn=lambda m: None)
    expected = ["transport.txt", "news/briefs.jsonl#tj-1", "news/briefs.jsonl#kg-1", "transport.txt", "water.md"]
    for mode in ("lexical", "hybrid"):
        firsts = [r[0][0] for r in _results(index_location, settings, embedder, mode)]
        assert firsts == expected, mode
    dense = _results(index_location, settings, embedder, "dense")
    assert all(len(r) == 3 for r in dense)


def test_bm25_matches_other_forms_of_a_word_and_ignores_stop_words_on_every_backend(corpus, index_location, settings, embedder):
    """The same terms on both stores: Milvus's analyzers cannot stem, so the terms are made before Milvus sees them.

    "ferries crossed" shares no exact word with "A ferry crossing from Aktau" (stems: ferri, cross);
    a question of stop words only has no term to search with.
    """
    build_index(corpus, index_location, settings, embedder=embedder, warn=lambda m: None)
    index = load_index(index_location, settings, embedder)
    try:
        found = index.lexical.search("ferries crossed", 3)
        assert found and index.chunks([found[0][0]])[0].doc_id == "transport.txt"
        assert index.lexical.search("what is the", 3) == []
    finally:
        index.close()


def test_a_milvus_store_whose_terms_were_made_otherwise_is_rebuilt_not_mixed(corpus, tmp_path, settings, embedder, monkeypatch):
    pytest.importorskip("pymilvus")
    from regional_chat.store.manifest import IndexMismatchError
    from regional_chat.store import milvus

    store = f"milvus:{tmp_path / 'rc.db'}"
    monkeypatch.setattr(milvus, "TERMS", {**milvus.TERMS, "stem": False})  # as a version that did not stem
    build_index(corpus, store, settings, embedder=embedder, warn=lambda m: None)
    monkeypatch.undo()
    with pytest.raises(IndexMismatchError, match="BM25 terms"):
        load_index(store, settings, embedder)
    warnings: list[str] = []
    report = build_index(corpus, store, settings, embedder=embedder, warn=warnings.append)
    assert report.chunks_embedded == report.chunks and any("indexed again" in w for w in warnings)
    load_index(store, settings, embedder).close()


def test_an_unchanged_corpus_embeds_nothing_and_a_change_only_what_changed(corpus, index_location, settings):
    settings = settings.with_(sentence_vectors=False)  # counts chunk embeddings; the sentence table's own: test_store_sentences.py
    embedder = HashingEmbedder(64)
    first = build_index(corpus, index_location, settings, embedder=embedder, warn=lambda m: None)
    calls = embedder.calls
    again = build_index(corpus, index_location, settings, embedder=embedder, warn=lambda m: None)
    assert (again.unchanged, again.chunks_embedded, embedder.calls) == (4, 0, calls)
    index = load_index(index_location, settings, embedder)
    transport_chunks = index.manifest.documents["transport.txt"].chunks
    index.close()
    (corpus / "added.txt").write_text("Samarkand summit\nThe Samarkand summit approved a railway from Termez to Mazar-i-Sharif.\n")
    (corpus / "transport.txt").unlink()
    added = build_index(corpus, index_location, settings, embedder=embedder, warn=lambda m: None)
    assert (added.added, added.removed, added.unchanged) == (1, 1, 3)
    assert embedder.calls - calls == added.chunks_embedded == 1  # only the new document was embedded
    index = load_index(index_location, settings, embedder)
    try:
        assert "transport.txt" not in index.doc_ids() and "added.txt" in index.doc_ids()
        assert len(index) == added.chunks == first.chunks - transport_chunks + 1
        hits = _retriever(index, embedder, settings).search("Samarkand railway Termez", 1)
        assert hits[0].chunk.doc_id == "added.txt"
    finally:
        index.close()


def test_filters_apply_inside_retrieval_on_every_mode(corpus, index_location, settings, embedder):
    build_index(corpus, index_location, settings, embedder=embedder, warn=lambda m: None)
    index = load_index(index_location, settings, embedder)
    try:
        retriever = _retriever(index, embedder, settings)
        only = Filter(countries=("TJK",))
        for mode in ("dense", "lexical", "hybrid"):
            hits = retriever.search("water conference border cargo", 5, mode, where=only)
            assert hits and {h.chunk.doc_id for h in hits} == {"news/briefs.jsonl#tj-1"}, mode
        assert retriever.search("water", 5, where=Filter(countries=("AFG",))) == []
        since = retriever.search("water conference border cargo", 5, where=Filter(since="2024-04"))
        assert {h.chunk.doc_id for h in since} == {"news/briefs.jsonl#kg-1"}
        for mode in ("dense", "lexical", "hybrid"):
            hits = retriever.search("water conference border cargo", 10, mode, where=Filter(exclude_paths=("news/*",)))
            assert hits and not any(h.chunk.doc_id.startswith("news/") for h in hits), mode
        news_but_tj = retriever.search("water conference border cargo", 5, where=Filter(paths=("news/*",), exclude_paths=("*#tj-*",)))
        assert {h.chunk.doc_id for h in news_but_tj} == {"news/briefs.jsonl#kg-1"}
    finally:
        index.close()


def test_both_stores_give_the_same_dense_ranking(corpus, tmp_path, settings, embedder):
    pytest.importorskip("pymilvus")
    folder, milvus = tmp_path / "ix", f"milvus:{tmp_path / 'rc.db'}"
    for location in (folder, milvus):
        build_index(corpus, location, settings, embedder=embedder, warn=lambda m: None)
    # exact search on both: the same chunks in the same order (ties broken by id on both)
    assert _results(folder, settings, embedder, "dense") == _results(milvus, settings, embedder, "dense")


def test_a_store_with_nothing_built_says_so(index_location, settings, embedder):
    with pytest.raises(IndexNotFoundError, match="run `regional-chat build"):
        load_index(index_location, settings, embedder)


@pytest.mark.timeout(300)
def test_kill_9_in_the_middle_of_a_build_leaves_the_previous_index_answering(corpus, index_location, settings, embedder, tmp_path):
    build_index(corpus, index_location, settings, embedder=embedder, warn=lambda m: None)
    before = _results(index_location, settings, embedder)
    for i in range(120):
        (corpus / f"bulk-{i:03d}.txt").write_text(f"Bulletin {i}.\n" + "Water and cargo news of the day. " * 30 + "\n")
    if is_milvus(str(index_location)):
        from regional_chat.store.milvus import release

        release(str(index_location))  # a milvus-lite file is open in one process at a time
    kill_build_midway(corpus, index_location, tmp_path, pause=0.05, seconds=180)
    assert _results(index_location, settings, embedder) == before  # the previous generation, whole
    report = build_index(corpus, index_location, settings, embedder=embedder, warn=lambda m: None)
    assert report.added == 120
    assert load_index(index_location, settings, embedder).manifest.chunks == report.chunks
    if is_milvus(str(index_location)):  # the killed build's collections were dropped, two generations remain
        from regional_chat.store.milvus import _generations, connect, parse

        loc = parse(str(index_location))
        client = connect(loc)
        try:
            assert len(_generations(client, loc)) == 2
        finally:
            client.close()


def test_milvus_locations_are_checked():
    from regional_chat.store.milvus import DEFAULT_NAME, parse

    assert parse("milvus:./rc.db").name == DEFAULT_NAME and not parse("milvus:./rc.db").server
    remote = parse("milvus:http://10.0.0.5:19530#speeches")
    assert remote.server and remote.target == "http://10.0.0.5:19530" and remote.name == "speeches"
    with pytest.raises(ValueError, match="names no Milvus file or server"):
        parse("milvus:")
    with pytest.raises(ValueError, match="cannot name Milvus collections"):
        parse("milvus:./rc.db#2-bad")
    assert is_milvus("milvus:./rc.db") and not is_milvus("index")


def test_a_serving_assistant_follows_a_build_made_elsewhere(corpus, index_location, settings, embedder):
    from regional_chat.assistant import Assistant

    build_index(corpus, index_location, settings, embedder=embedder, warn=lambda m: None)
    bot = Assistant.load(index_location, settings, embedder=embedder, corpus_dir=corpus)
    assert not bot.follow(every=0)  # nothing new
    (corpus / "added.txt").write_text("Samarkand summit\nThe Samarkand summit approved a railway from Termez to Mazar-i-Sharif.\n")
    build_index(corpus, index_location, settings, embedder=HashingEmbedder(64), warn=lambda m: None)  # as another process would
    assert "added.txt" not in bot.index.doc_ids()  # until it looks again
    assert bot.follow(every=0)
    assert bot.search("Samarkand railway Termez")[0].chunk.doc_id == "added.txt"
    assert not bot.follow(every=0)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_two_serving_processes_answer_from_one_milvus_server_while_a_build_adds_documents(corpus, milvus_server, tmp_path):
    """Part 4 of issue 13 on this machine: two `serve` processes, one Milvus server, a build from a third process."""
    import json
    import os
    import socket
    import threading
    import urllib.request
    import uuid
    from pathlib import Path

    from gradio_client import Client

    store = f"milvus:{milvus_server}#wide{uuid.uuid4().hex[:8]}"
    model = ["--model", "hashing:64"]
    exe = str(Path(sys.executable).parent / "regional-chat")
    subprocess.run([exe, "build", "--corpus", str(corpus), "--store", store, *model, "--quiet"], check=True, capture_output=True)
    servers, logs, urls = [], [], []
    for n in range(2):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        log = (tmp_path / f"serve{n}.log").open("w")
        env = {**os.environ, "GRADIO_TEMP_DIR": str(tmp_path / f"gradio{n}")}
        # a corpus folder that does not exist: serve answers from the store as it is, it does not build
        cmd = [exe, "serve", "--corpus", str(tmp_path / "no-corpus"), "--store", store, *model, "--port", str(port), "--read-only"]
        servers.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env))
        logs.append(log)
        urls.append(f"http://127.0.0.1:{port}/")
    try:
        deadline = time.monotonic() + 300
        for proc, url, n in zip(servers, urls, range(2)):
            while True:
                assert proc.poll() is None, (tmp_path / f"serve{n}.log").read_text()[-3000:]
                try:
                    with urllib.request.urlopen(url, timeout=2) as response:
                        if response.status == 200:
                            break
                except OSError:
                    pass
                assert time.monotonic() < deadline, (tmp_path / f"serve{n}.log").read_text()[-3000:]
                time.sleep(0.5)
        for i in range(40):
            (corpus / f"bulk-{i:02d}.txt").write_text(f"Bulletin {i}\nThe Kokaral dam report number {i} covers water levels of the North Aral Sea.\n")
        (corpus / "samarkand.txt").write_text("Samarkand summit\nThe Samarkand summit approved a railway from Termez to Mazar-i-Sharif.\n")
        errors, answered = [], []
        stop = threading.Event()

        def ask_forever(url: str) -> None:
            client = Client(url, verbose=False)
            while not stop.is_set():
                try:
                    reply = client.predict("Where did the ministers meet?", [], api_name="/ask")
                    answered.append(reply["question"])
                except Exception as exc:  # noqa: BLE001 - any failure fails the test
                    errors.append(repr(exc))

        askers = [threading.Thread(target=ask_forever, args=(url,)) for url in urls for _ in range(2)]
        for t in askers:
            t.start()
        build = subprocess.run([exe, "build", "--corpus", str(corpus), "--store", store, *model, "--json"], capture_output=True, text=True)
        time.sleep(6)  # past the serving processes' 5 s look for a new generation
        stop.set()
        for t in askers:
            t.join()
        assert build.returncode == 0, build.stderr
        assert json.loads(build.stdout)["added"] == 41
        assert errors == [] and len(answered) >= 4
        for url in urls:  # both processes now answer from the new generation
            reply = Client(url, verbose=False).predict("Which railway did the Samarkand summit approve?", [], api_name="/ask")
            shown = reply["quotes"] + reply["related"]
            assert shown and shown[0]["doc_id"] == "samarkand.txt"
    finally:
        for proc in servers:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for log in logs:
            log.close()


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_a_server_store_opens_after_two_idle_minutes(corpus, milvus_server, settings, embedder):
    """A process that has talked to a server, then sat idle, must open the store again at the first try.

    pymilvus keeps one connection per URI in a process. With its own keepalive (a ping every 10 s, calls
    or not) a milvus-lite server answered GOAWAY "too many pings", and after two idle minutes the next
    open failed (CI, stop 21). The fixture's first connection is made the same way as the store's.
    """
    import uuid

    store = f"milvus:{milvus_server}#idle{uuid.uuid4().hex[:8]}"
    build_index(corpus, store, settings, embedder=embedder, warn=lambda m: None)
    before = _results(store, settings, embedder)
    time.sleep(130)
    assert _results(store, settings, embedder) == before
