"""answering.py: hits -> sentences -> Answer with verbatim quotes."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import numpy as np
import pytest

from regional_chat.answering import (
    NOT_FOUND_TEXT,
    AnswerExtractor,
    extract_answer,
    packaged_model,
    question_type,
)
from regional_chat.chunking import Chunker, split_sentences
from regional_chat.embedding import HashingEmbedder
from regional_chat.settings import Settings
from regional_chat.types import Chunk, Document, Hit

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "corpus" / "kazakhstan-un-preventive-diplomacy-unrcca-meeting.txt"

ASTANA = Document(
    doc_id="astana.txt",
    text=(
        "Astana is the capital of Kazakhstan.\n"
        "The city was founded in 1830 as a fortress on the Ishim river. "
        "It became the capital of the country in 1997, replacing Almaty. "
        "Its population is about 1.4 million people."
    ),
    title="Astana",
    content_hash="a",
    metadata={"source": "https://example.org/astana", "date": "2024-01-02"},
)
ASHGABAT = Document(
    doc_id="ashgabat.txt",
    text=(
        "Ashgabat is the capital of Turkmenistan. "
        "The UN regional centre for preventive diplomacy is headquartered in Ashgabat. "
        "The centre was opened in December 2007."
    ),
    title="Ashgabat",
    content_hash="b",
)
WATER = Document(
    doc_id="water.txt",
    text=(
        "The Aral Sea shrank after rivers were diverted for irrigation. "
        "Central Asian states share the waters of the Amu Darya and the Syr Darya."
    ),
    title="Water",
    content_hash="c",
)
DOCS = {d.doc_id: d for d in (ASTANA, ASHGABAT, WATER)}


def chunk(doc: Document, seq: int, first: int, last: int) -> Chunk:
    """The chunk holding sentences first..last (inclusive) of ``doc``."""
    spans = split_sentences(doc.text)
    start, end = spans[first][0], spans[last][1]
    return Chunk(chunk_id=hash((doc.doc_id, seq)) & 0xFFFF, doc_id=doc.doc_id, seq=seq, start=start, end=end, text=doc.text[start:end])


# Astana's two chunks overlap by one sentence ("It became the capital ... 1997 ...").
HITS = [
    Hit(chunk(ASTANA, 0, 0, 2), score=0.9, dense=0.6, lexical=7.0),
    Hit(chunk(ASTANA, 1, 2, 3), score=0.7, dense=0.5, lexical=5.0),
    Hit(chunk(ASHGABAT, 0, 0, 2), score=0.5, dense=0.4, lexical=3.0),
    Hit(chunk(WATER, 0, 0, 1), score=0.2, dense=0.1, lexical=None),
]


@pytest.fixture()
def embedder() -> HashingEmbedder:
    return HashingEmbedder(64)


def always_answers() -> AnswerExtractor:
    """The packaged weights with every threshold off, to test what is quoted and highlighted."""
    return AnswerExtractor(Settings(), model=packaged_model().never_abstaining())


def assert_verbatim(answer) -> None:
    for quote in answer.quotes + answer.related:
        assert DOCS[quote.doc_id].text[quote.start : quote.end] == quote.text
        if quote.highlight is not None:
            start, end = quote.highlight
            assert 0 <= start < end <= len(quote.text)


def test_question_types() -> None:
    assert question_type("Who won the 2022 FIFA World Cup?") == "who"
    assert question_type("When was the centre opened?") == "when"
    assert question_type("In what year did Astana become the capital?") == "year"
    assert question_type("How many people live in Astana?") == "count"
    assert question_type("Where is the UNRCCA headquartered?") == "where"
    assert question_type("Какая столица Казахстана?") == "other"


def embeds_all() -> AnswerExtractor:
    """The packaged weights, embedding every candidate sentence (not only the cheap top few)."""
    return AnswerExtractor(Settings(), model=dataclasses.replace(packaged_model(), max_embed=100))


def test_sparse_logit_equals_the_full_row_logit() -> None:
    model = packaged_model().span
    rng = random.Random(3)
    for _ in range(20):
        values = {name: rng.uniform(-2, 2) for name in rng.sample(model.features, 12)}
        values["not a feature"] = 5.0  # ignored
        row = np.array([[values.get(name, 0.0) for name in model.features]])
        assert model.sparse_logit(values) == pytest.approx(float(model.logits(row)[0]), abs=1e-9)


def test_a_place_answer_takes_in_the_place_that_locates_it() -> None:
    extractor = AnswerExtractor(Settings())
    sentence = "The Centre was established in 2007, with its headquarters situated in Ashgabat, Turkmenistan."
    start, end, _ = extractor.short_answer("Where is the UNRCCA headquartered?", sentence)
    assert sentence[start:end] == "Ashgabat, Turkmenistan"
    # the country is named by the question: the answer is the city alone
    start, end, _ = extractor.short_answer("Where in Turkmenistan is the UNRCCA headquartered?", sentence)
    assert sentence[start:end] == "Ashgabat"


def test_duplicate_sentences_from_overlapping_chunks_are_scored_once(embedder) -> None:
    scored = embeds_all().score("When did Astana become the capital?", HITS, DOCS.__getitem__, embedder)
    keys = [(s.doc_id, s.start, s.end) for s in scored.sentences]
    assert len(keys) == len(set(keys)) == 4 + 3 + 2  # Astana has 4 sentences in two chunks that share one
    became = [s for s in scored.sentences if s.text.startswith("It became")]
    assert len(became) == 1 and became[0].hit_rank == 0  # kept with the better hit


def test_when_question_highlights_a_year_not_in_the_question(embedder) -> None:
    answer = always_answers().extract("When did Astana become the capital of the country?", HITS, DOCS.__getitem__, embedder)
    assert answer.found
    first = answer.quotes[0]
    assert first.text == "It became the capital of the country in 1997, replacing Almaty."
    assert (first.doc_id, first.title, first.source, first.date) == ("astana.txt", "Astana", "https://example.org/astana", "2024-01-02")
    assert first.highlighted_text == "1997"
    assert answer.text == "1997"
    assert_verbatim(answer)


def test_quotes_come_from_different_documents_and_never_repeat(embedder) -> None:
    answer = always_answers().extract("What is the capital?", HITS, DOCS.__getitem__, embedder)
    assert answer.found
    assert 1 <= len(answer.quotes) <= 3
    assert len({q.doc_id for q in answer.quotes}) == len(answer.quotes)
    assert len({(q.doc_id, q.start, q.end) for q in answer.quotes}) == len(answer.quotes)
    assert_verbatim(answer)


def test_unrelated_question_is_not_found_and_lists_related_passages(embedder) -> None:
    answer = extract_answer("Who won the 2022 FIFA World Cup?", HITS, DOCS.__getitem__, embedder, Settings())
    assert not answer.found
    assert answer.quotes == ()
    assert answer.text == NOT_FOUND_TEXT
    assert 0.0 <= answer.confidence < packaged_model().threshold
    assert answer.related and len({q.doc_id for q in answer.related}) == len(answer.related)  # one per document
    assert all(q.highlight is None for q in answer.related)
    assert_verbatim(answer)
    answer = embeds_all().extract("Who won the 2022 FIFA World Cup?", HITS, DOCS.__getitem__, embedder)
    assert sorted(q.doc_id for q in answer.related) == ["ashgabat.txt", "astana.txt", "water.txt"]


def test_russian_question_does_not_crash(embedder) -> None:
    answer = extract_answer("Когда Астана стала столицей Казахстана?", HITS, DOCS.__getitem__, embedder, Settings())
    assert 0.0 <= answer.confidence <= 1.0
    assert all(q.highlight is None for q in answer.quotes)
    assert_verbatim(answer)


def test_a_question_in_cyrillic_needs_its_own_stricter_threshold(embedder) -> None:
    model = dataclasses.replace(packaged_model(), threshold=0.0, script_thresholds={"cyrillic": 1.01})
    assert model.threshold_for("When did Astana become the capital?") == 0.0
    assert model.threshold_for("Когда Астана стала столицей?") == 1.01
    extractor = AnswerExtractor(Settings(), model=model)
    assert extractor.extract("When did Astana become the capital?", HITS, DOCS.__getitem__, embedder).found
    russian = extractor.extract("Когда Астана стала столицей Казахстана?", HITS, DOCS.__getitem__, embedder)
    assert not russian.found and russian.related
    # never laxer than the main threshold
    assert dataclasses.replace(model, threshold=0.5, script_thresholds={"cyrillic": 0.2}).threshold_for("Когда?") == 0.5
    assert packaged_model().threshold_for("Когда Астана стала столицей?") > packaged_model().threshold


def test_no_hits_and_empty_question(embedder) -> None:
    for question, hits in (("Where is Astana?", []), ("   ", HITS)):
        answer = extract_answer(question, hits, DOCS.__getitem__, embedder, Settings())
        assert (answer.found, answer.text, answer.confidence, answer.quotes, answer.related) == (False, NOT_FOUND_TEXT, 0.0, (), ())


def test_quotes_are_verbatim_slices_for_many_random_questions(embedder) -> None:
    rng = random.Random(7)
    words = sorted({w for d in DOCS.values() for w in HashingEmbedder.words(d.text)}) + ["когда", "FIFA", "1997?"]
    extractor = always_answers()
    for _ in range(60):
        question = rng.choice(["Who", "When", "Where", "How many", "What", "Why"]) + " " + " ".join(rng.sample(words, rng.randint(1, 6))) + "?"
        hits = rng.sample(HITS, rng.randint(1, len(HITS)))
        for answer in (extractor.extract(question, hits, DOCS.__getitem__, embedder), extract_answer(question, hits, DOCS.__getitem__, embedder, Settings())):
            assert 0.0 <= answer.confidence <= 1.0
            assert_verbatim(answer)
            assert len({(q.doc_id, q.start, q.end) for q in answer.quotes}) == len(answer.quotes)
            if answer.found:
                assert answer.text in answer.quotes[0].text
            else:
                assert answer.quotes == () and answer.text == NOT_FOUND_TEXT


def test_sentence_vectors_are_cached_between_questions(embedder) -> None:
    extractor = AnswerExtractor(Settings(), cache_size=100)
    extractor.extract("When was the centre opened?", HITS, DOCS.__getitem__, embedder)
    calls = embedder.calls
    extractor.extract("When was the centre opened?", HITS, DOCS.__getitem__, embedder)
    assert embedder.calls == calls + 1  # only the question is embedded again


def test_given_question_vector_is_used(embedder) -> None:
    vector = embedder.embed_queries(["When was the centre opened?"])[0]
    calls = embedder.calls
    AnswerExtractor(Settings(), cache_size=0).extract("When was the centre opened?", HITS, DOCS.__getitem__, embedder, np.asarray(vector))
    assert embedder.calls - calls == min(9, packaged_model().max_embed)  # the sentences only


@pytest.mark.slow
def test_seed_article_with_minilm() -> None:
    from regional_chat.embedding import make_embedder

    settings = Settings()
    embedder = make_embedder(settings)
    doc = Document("seed.txt", SEED.read_text(encoding="utf-8"), "Seed", "s")
    chunks = Chunker(60, 1).chunks(doc)
    assert len(chunks) > 1
    extractor = AnswerExtractor(settings)

    def hits_for(question: str) -> list[Hit]:
        q = embedder.embed_queries([question])[0]
        dense = embedder.embed_passages([c.text for c in chunks]) @ q
        return [Hit(c, float(d), float(d), None) for c, d in sorted(zip(chunks, dense), key=lambda p: -p[1])[:5]]

    answer = extractor.extract("Where is the UNRCCA headquartered?", hits_for("Where is the UNRCCA headquartered?"), lambda _: doc, embedder)
    assert answer.found
    assert "Ashgabat, Turkmenistan" in answer.quotes[0].text
    assert answer.quotes[0].highlighted_text == "Ashgabat, Turkmenistan"
    assert answer.text == answer.quotes[0].highlighted_text
    assert doc.text[answer.quotes[0].start : answer.quotes[0].end] == answer.quotes[0].text

    answer = extractor.extract("Who won the 2022 FIFA World Cup?", hits_for("Who won the 2022 FIFA World Cup?"), lambda _: doc, embedder)
    assert not answer.found
    assert answer.related


def test_one_extractor_answers_from_several_threads_as_from_one(embedder) -> None:
    from concurrent.futures import ThreadPoolExecutor

    extractor = AnswerExtractor(Settings(), cache_size=16)
    questions = ["When was the centre opened?", "What is the capital of Kazakhstan?", "Where is the centre headquartered?"] * 4
    alone = [AnswerExtractor(Settings(), cache_size=0).extract(q, HITS, DOCS.__getitem__, HashingEmbedder(64)) for q in questions]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda q: extractor.extract(q, HITS, DOCS.__getitem__, embedder), questions))
    assert together == alone
