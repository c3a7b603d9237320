"""The live index: one build path, the generation questions use, and the switch to a newer one."""

from __future__ import annotations

import pytest

from regional_chat import service
from regional_chat.service import LiveIndex, builds_on_start, update_index

RAILWAY = "Samarkand summit\nThe Samarkand summit approved a railway from Termez to Mazar-i-Sharif.\n"
FERRY = "Caspian ferry\nA ferry line joins Aktau and Baku twice a week.\n"


@pytest.fixture
def live(corpus, tmp_path, settings, embedder) -> LiveIndex:
    update_index(corpus, tmp_path / "ix", settings, embedder=embedder, warn=lambda m: None)
    return LiveIndex.load(tmp_path / "ix", settings, embedder, corpus)


def _docs(live: LiveIndex) -> set[str]:
    return set(live.current.index.doc_ids())


def test_update_index_twice_changes_nothing(corpus, tmp_path, settings, embedder):
    first = update_index(corpus, tmp_path / "ix", settings, embedder=embedder, warn=lambda m: None)
    again = update_index(corpus, tmp_path / "ix", settings, embedder=embedder, warn=lambda m: None)
    assert first.added == 4 and first.unchanged == 0  # 3 files, 4 documents
    assert (again.added, again.changed, again.removed, again.unchanged) == (0, 0, 0, 4)


def test_builds_on_start_only_when_there_is_something_to_build(corpus, tmp_path, settings, embedder):
    missing = tmp_path / "no-corpus"
    assert builds_on_start(corpus, tmp_path / "ix")
    assert builds_on_start(missing, tmp_path / "ix")  # nothing built yet: the build says the corpus is missing
    update_index(corpus, tmp_path / "ix", settings, embedder=embedder, warn=lambda m: None)
    assert not builds_on_start(missing, tmp_path / "ix")  # served as it is
    assert not builds_on_start(missing, f"milvus:{tmp_path / 'rc.db'}")


def test_rebuild_switches_to_a_new_generation_whole(live, corpus):
    before = live.current
    (corpus / "railway.txt").write_text(RAILWAY, encoding="utf-8")
    report = live.rebuild()
    assert report.added == 1
    assert live.current is not before and live.current.index.path != before.index.path
    assert live.current.retriever is not before.retriever
    assert "railway.txt" in _docs(live) and "railway.txt" not in set(before.index.doc_ids())
    assert live.index is live.current.index


def test_a_rebuild_that_changes_nothing_keeps_the_generation(live):
    before = live.current
    assert live.rebuild().added == 0
    assert live.current is before


def test_follow_switches_to_a_build_made_elsewhere_at_most_every_so_often(live, corpus, settings, embedder):
    assert not live.follow(every=0)  # nothing new
    (corpus / "railway.txt").write_text(RAILWAY, encoding="utf-8")
    update_index(corpus, live.location, settings, embedder=embedder, warn=lambda m: None)  # as another process would
    assert not live.follow(every=3600)  # looked too recently
    assert "railway.txt" not in _docs(live)
    assert live.follow(every=0)
    assert "railway.txt" in _docs(live)
    assert not live.follow(every=0)


def test_follow_does_not_race_a_rebuild_in_this_process(live, corpus, settings, embedder):
    (corpus / "railway.txt").write_text(RAILWAY, encoding="utf-8")
    update_index(corpus, live.location, settings, embedder=embedder, warn=lambda m: None)  # a newer generation elsewhere
    (corpus / "ferry.txt").write_text(FERRY, encoding="utf-8")
    followed = []
    live.rebuild(on_progress=lambda done, total: followed.append(live.follow(every=0)))
    assert followed and not any(followed)  # the rebuild holds the switch until it is done
    assert {"railway.txt", "ferry.txt"} <= _docs(live)


def test_an_unreachable_store_keeps_the_loaded_generation_answering(live, corpus, settings, embedder, monkeypatch):
    before = live.current

    def unreachable(location):
        raise ConnectionError("store down")

    monkeypatch.setattr(service, "live_generation", unreachable)
    assert not live.follow(every=0)
    assert live.current is before
    assert live.current.retriever.search("water meeting", 3, "hybrid")


def test_rebuild_needs_a_corpus(corpus, tmp_path, settings, embedder):
    update_index(corpus, tmp_path / "ix", settings, embedder=embedder, warn=lambda m: None)
    recorded = LiveIndex.load(tmp_path / "ix", settings, embedder)
    assert recorded.corpus_dir is not None and recorded.corpus_dir.resolve() == corpus.resolve()  # from the manifest
    unknown = LiveIndex.load(tmp_path / "ix", settings, embedder)
    unknown.corpus_dir = None
    with pytest.raises(ValueError, match="corpus"):
        unknown.rebuild()
    recorded.close()
