"""The build's table of sentence and word vectors: what it holds, how it is kept up to date, and that answers do not change."""

from __future__ import annotations

import json

import numpy as np
import pytest

from regional_chat.assistant import Assistant
from regional_chat.build import build_index
from regional_chat.embedding import HashingEmbedder
from regional_chat.reading.answerer import Calibration, ReaderAnswerer
from regional_chat.store import load_index
from regional_chat.store.folder import CURRENT, check_index
from regional_chat.store.sentences import SENTENCES, KnownVectorsEmbedder, texts_of, with_known_vectors

from test_crosslingual import PivotReader, _calibration


def _build(corpus, ix, settings, embedder, **kw):
    return build_index(corpus, ix, settings, embedder=embedder, warn=lambda m: None, **kw)


def _texts(index):
    return texts_of((index.document(d), index.store.doc_chunks(d)) for d in index.doc_ids())


def _assert_table_matches(index, embedder):
    sentences, words = _texts(index)
    table = index.sentence_vectors
    assert table is not None and len(table) == len(sentences) + len(words)
    for kind, texts, embed in (("passage", sentences, embedder.embed_passages), ("query", words, embedder.embed_queries)):
        found, vectors = table.find(kind, texts)
        assert found.all()
        np.testing.assert_allclose(vectors, embed(texts), atol=1e-3)  # float16 of the encoder's own unit vectors


class LatinOnly(HashingEmbedder):
    scripts = ("latin",)


def test_a_build_stores_the_vectors_of_every_sentence_and_english_word(corpus, tmp_path, settings, embedder):
    _build(corpus, tmp_path / "ix", settings, embedder)
    index = load_index(tmp_path / "ix")
    sentences, words = _texts(index)
    assert "The meeting was chaired by Uzbekistan's minister of water resources, Shavkat Khamraev." in sentences
    assert "Tashkent" in words and "the" not in words  # English words, stop words left out
    _assert_table_matches(index, HashingEmbedder(64))
    found, _ = index.sentence_vectors.find("passage", ["a sentence no document holds"])
    assert not found.any()
    meta = json.loads((index.path / SENTENCES / "meta.json").read_text())
    assert (meta["model"], meta["dim"], meta["passages"], meta["queries"]) == ("hashing:64", 64, len(sentences), len(words))
    assert check_index(tmp_path / "ix").ok  # its files are in the manifest's checksums
    info = index.info()
    assert (info.sentence_vectors["sentences"], info.sentence_vectors["words"]) == (len(sentences), len(words))
    assert any(line.startswith("sentences:") and f"{len(sentences):,} sentences" in line for line in info.lines())


def test_a_build_embeds_the_sentences_and_words_of_new_documents_only(corpus, tmp_path, settings, embedder):
    ix = tmp_path / "ix"
    _build(corpus, ix, settings, embedder)
    old_sentences, old_words = _texts(load_index(ix))
    calls = embedder.calls
    (corpus / "added.txt").write_text("Samarkand summit\nThe Samarkand summit approved a railway from Termez to Mazar-i-Sharif.\n")
    report = _build(corpus, ix, settings, embedder)
    index = load_index(ix)
    sentences, words = _texts(index)
    new = len(set(sentences) - set(old_sentences)) + len(set(words) - set(old_words))
    assert new > 0 and embedder.calls - calls == report.chunks_embedded + new
    _assert_table_matches(index, HashingEmbedder(64))
    # removing it drops its texts from the table
    (corpus / "added.txt").unlink()
    _build(corpus, ix, settings, embedder)
    found, _ = load_index(ix).sentence_vectors.find("query", ["Samarkand", "Termez"])
    assert not found.any()


def test_an_index_built_without_them_gets_them_without_embedding_its_chunks_again(corpus, tmp_path, settings, embedder):
    ix = tmp_path / "ix"
    _build(corpus, ix, settings.with_(sentence_vectors=False), embedder)
    before = (ix / CURRENT).read_text()
    assert load_index(ix).sentence_vectors is None
    report = _build(corpus, ix, settings, embedder)
    assert report.chunks_embedded == 0 and (ix / CURRENT).read_text() != before
    _assert_table_matches(load_index(ix), HashingEmbedder(64))
    again = (ix / CURRENT).read_text()
    _build(corpus, ix, settings, embedder)
    assert (ix / CURRENT).read_text() == again  # once there, an unchanged corpus writes nothing


def test_english_only_encoders_and_the_setting_off_store_none(corpus, tmp_path, settings):
    _build(corpus, tmp_path / "a", settings, LatinOnly(64))  # nothing a Cyrillic question could ask of it
    _build(corpus, tmp_path / "b", settings.with_(sentence_vectors=False), HashingEmbedder(64))
    for ix in (tmp_path / "a", tmp_path / "b"):
        index = load_index(ix)
        assert not (index.path / SENTENCES).exists() and index.sentence_vectors is None
        assert index.info().sentence_vectors == {} and not any(line.startswith("sentences:") for line in index.info().lines())


def test_a_damaged_table_is_reported_and_a_build_embeds_it_again_rather_than_copy_it(corpus, tmp_path, settings, embedder):
    ix = tmp_path / "ix"
    _build(corpus, ix, settings, embedder)
    gen = ix / (ix / CURRENT).read_text().strip()
    vectors = gen / SENTENCES / "passage.vectors.npy"
    np.save(vectors, np.zeros_like(np.load(vectors)))  # loads, but is not what was built: only the checksum tells
    report = check_index(ix)
    assert not report.ok and {d.part for d in report.damage} == {"sentences"}
    repaired = _build(corpus, ix, settings, embedder)
    assert repaired.repaired and repaired.chunks_embedded == 0  # the chunks' vectors were intact
    assert check_index(ix).ok
    _assert_table_matches(load_index(ix), HashingEmbedder(64))  # embedded again, not copied from the damaged file


def test_an_unreadable_table_leaves_the_index_answering(corpus, tmp_path, settings, embedder, caplog):
    ix = tmp_path / "ix"
    _build(corpus, ix, settings, embedder)
    gen = ix / (ix / CURRENT).read_text().strip()
    (gen / SENTENCES / "query.keys.npy").write_bytes(b"not numpy")
    index = load_index(ix)  # the rest of the index is intact: it loads, and questions embed what they need
    assert index.sentence_vectors is None and "cannot be used" in caplog.text
    bot = Assistant(index, settings, HashingEmbedder(64), corpus)
    assert bot.answer("Где прошли переговоры?").question


def test_the_wrapped_encoder_embeds_only_what_the_table_lacks(corpus, tmp_path, settings, embedder):
    _build(corpus, tmp_path / "ix", settings, embedder)
    index = load_index(tmp_path / "ix")
    sentences, words = _texts(index)
    inner = HashingEmbedder(64)
    wrapped = with_known_vectors(inner, index.sentence_vectors)
    assert isinstance(wrapped, KnownVectorsEmbedder) and (wrapped.name, wrapped.dim) == (inner.name, inner.dim)
    asked = [sentences[0], "Где штаб-квартира?", sentences[1]]
    got = wrapped.embed_passages(asked)
    assert inner.calls == 1 and wrapped.found == 2  # the question was embedded, the two sentences looked up
    np.testing.assert_allclose(got, HashingEmbedder(64).embed_passages(asked), atol=1e-3)
    assert wrapped.embed_queries(words[:3]).shape == (3, 64) and inner.calls == 1
    # another encoder's table is never used
    assert with_known_vectors(HashingEmbedder(32), index.sentence_vectors).__class__ is HashingEmbedder
    assert with_known_vectors(inner, None) is inner


def test_a_russian_question_gets_the_same_answer_from_the_table_without_embedding_the_sentences(corpus, tmp_path, settings):
    answers = {}
    for on in (True, False):
        ix = tmp_path / f"ix-{on}"
        _build(corpus, ix, settings.with_(sentence_vectors=on), HashingEmbedder(64))
        embedder = HashingEmbedder(64)
        answerer = ReaderAnswerer(PivotReader("Tashkent"), Calibration.uncalibrated(), crosslingual=_calibration(0.0))
        bot = Assistant(load_index(ix, settings, embedder), settings, embedder, corpus, answerer=answerer)
        answer = bot.answer("Где прошли переговоры по воде?")
        answers[on] = (answer.found, answer.confidence, [(q.doc_id, q.start, q.end) for q in answer.quotes])
        assert answer.quotes and answer.quotes[0].text
        if on:
            assert embedder.calls <= 1 + 3  # the question, and its own words to align: no sentence, no English word
        else:
            assert embedder.calls > 10
    assert answers[True] == answers[False]


def test_a_corpus_without_english_words_has_an_empty_word_table(tmp_path, settings, embedder):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "ru.txt").write_text("Встреча в Ташкенте\nМинистры пяти государств встретились в Ташкенте. Они обсудили воду.\n", encoding="utf-8")
    _build(corpus, tmp_path / "ix", settings, embedder)
    index = load_index(tmp_path / "ix")
    assert index.info().sentence_vectors["words"] == 0 and index.info().sentence_vectors["sentences"] >= 2
    found, vectors = index.sentence_vectors.find("query", ["Tashkent"])
    assert not found.any() and vectors.shape == (0, 64)
    _assert_table_matches(index, HashingEmbedder(64))
