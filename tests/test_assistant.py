import threading

import pytest

from conftest import SEED
from regional_chat.assistant import Assistant
from regional_chat.conversation import Conversation
from regional_chat.build import build_index
from regional_chat.store import load_index
from regional_chat.settings import Settings
from regional_chat.types import Answer, Quote


@pytest.fixture
def bot(corpus, index_location, settings):
    """An assistant over the fixture corpus, once on each backend (index folder, milvus-lite, Milvus server)."""
    build_index(corpus, index_location, settings, warn=lambda m: None)
    return Assistant.load(index_location, settings, corpus_dir=corpus)


class ScriptedAnswerer:
    """An answer step that records the questions it read and answers with the confidences it is given."""

    def __init__(self, confidences, threshold=0.5):
        self.confidences = list(confidences)
        self.threshold = threshold
        self.read = []

    def extract(self, question, hits, document, *_, abstain=True):
        confidence = self.confidences[min(len(self.read), len(self.confidences) - 1)]
        self.read.append(question)
        self.hits = list(hits)
        found = confidence >= self.threshold
        said = f"reading {len(self.read)}"  # which reading this answer came from, as its short answer
        quote = Quote("d", "t", "", 0, len(said), said, confidence, (0, len(said)))
        return Answer(question=question, found=found, confidence=confidence, quotes=(quote,))


def _scripted_bot(corpus, tmp_path, settings, confidences):
    from regional_chat.embedding import HashingEmbedder

    build_index(corpus, tmp_path / "ix", settings, warn=lambda m: None)
    embedder = HashingEmbedder(64)
    answerer = ScriptedAnswerer(confidences)
    return Assistant(load_index(tmp_path / "ix", settings, embedder), settings, embedder, corpus, answerer=answerer), answerer


FIRST = Answer(question="Who did Nurtleu meet?", found=True, confidence=0.9,
               quotes=(Quote("d", "t", "", 0, 36, "He met Kaha Imnadze, head of UNRCCA.", 0.9, (7, 19)),))


def test_a_follow_up_stops_at_its_first_confident_reading(corpus, tmp_path, settings):
    bot, answerer = _scripted_bot(corpus, tmp_path, settings, [0.9, 0.95])
    ans = bot.answer("When was it founded?", history=[FIRST])
    assert len(answerer.read) == 1 and ans.found and ans.short == "reading 1"


def test_a_follow_up_no_reading_answers_keeps_the_most_confident_one(corpus, tmp_path, settings):
    bot, answerer = _scripted_bot(corpus, tmp_path, settings, [0.1, 0.3, 0.2, 0.1, 0.1])
    ans = bot.answer("When was it founded?", history=[FIRST])
    # the whole expansion, then each of the likeliest referents alone
    assert len(answerer.read) == 5 and answerer.read[0].startswith("When was it founded? (Kaha Imnadze")
    assert not ans.found and ans.short == "reading 2" and ans.search_query == answerer.read[1]


def test_bad_questions_are_clear_errors(bot):
    with pytest.raises(ValueError, match="empty"):
        bot.answer("   \n\t ")
    with pytest.raises(ValueError, match="2,500 characters long; the limit is 2,000"):
        bot.answer("x" * 2500)
    with pytest.raises(ValueError, match="mode"):
        bot.answer("water", mode="magic")
    ans = bot.answer("Когда прошла встреча в Ташкенте? 水は？ \x00\x07")
    assert isinstance(ans, Answer)


def test_every_quote_is_a_verbatim_slice_of_its_document(bot):
    questions = [
        "Where did the ministers meet?", "How much cargo did the route carry in 2023?", "Who opened the conference?",
        "How many vehicles a day?", "Which reservoirs share flow data?", "What will the port add?", "water", "Aktau Baku ferry",
        "Who chaired the meeting?", "What did Kazakhstan propose?",
    ]  # fmt: skip
    seen = 0
    for q in questions:
        ans = bot.answer(q)
        for quote in ans.quotes + ans.related:
            doc = bot.document(quote.doc_id)
            assert doc.text[quote.start : quote.end] == quote.text
            if quote.highlight:
                a, b = quote.highlight
                assert 0 <= a < b <= len(quote.text)
            seen += 1
        assert 0.0 <= ans.confidence <= 1.0
        assert len({(q.doc_id, q.start) for q in ans.quotes}) == len(ans.quotes)  # never the same sentence twice
    assert seen >= len(questions)


def test_rebuild_switches_to_the_new_index_while_answering(bot, corpus):
    before = bot.index.path
    (corpus / "new.txt").write_text("Samarkand summit\nThe Samarkand summit approved a railway from Termez to Mazar-i-Sharif.\n")
    errors = []
    stop = threading.Event()

    def ask_forever():
        while not stop.is_set():
            try:
                bot.answer("Which railway did the summit approve?")
            except Exception as exc:  # noqa: BLE001 - any failure fails the test
                errors.append(exc)

    threads = [threading.Thread(target=ask_forever) for _ in range(3)]
    for t in threads:
        t.start()
    report = bot.rebuild()
    stop.set()
    for t in threads:
        t.join()
    assert errors == []
    assert report.added == 1
    assert bot.index.path != before
    hits = bot.search("Samarkand summit railway Termez")
    assert hits[0].chunk.doc_id == "new.txt"


@pytest.fixture(scope="module")
def seed_bot(tmp_path_factory):
    root = tmp_path_factory.mktemp("seed")
    corpus = root / "corpus"
    corpus.mkdir()
    (corpus / SEED.name).write_text(SEED.read_text(encoding="utf-8"), encoding="utf-8")
    build_index(corpus, root / "ix", Settings(), warn=lambda m: None)
    return Assistant.load(root / "ix", Settings())


@pytest.mark.slow
def test_real_model_answers_where_with_the_highlighted_place(seed_bot):
    ans = seed_bot.answer("Where is the UNRCCA headquartered?")
    assert ans.found
    quote = ans.quotes[0]
    assert "with its headquarters situated in Ashgabat, Turkmenistan" in quote.text
    assert quote.highlight is not None
    assert quote.highlighted_text in ("Ashgabat", "Ashgabat, Turkmenistan")
    assert ans.short == quote.highlighted_text == ans.headline() and 0 < ans.confidence <= 1


@pytest.mark.slow
def test_real_model_abstains_on_an_unrelated_question(seed_bot):
    ans = seed_bot.answer("Who won the 2022 FIFA World Cup?")
    assert not ans.found
    assert ans.quotes == ()
    assert ans.related  # the closest passages are still shown, as related
    assert ans.short == "" and "do not answer" in ans.headline()


@pytest.mark.slow
def test_real_model_follow_up_finds_the_founding_sentence(seed_bot):
    first = seed_bot.answer("Who did Nurtleu meet?")
    second = seed_bot.answer("When was his organization founded?", history=[first])
    # the expansion finds the founding sentence; the reader answers "2007" or, not sure enough, shows it as related
    shown = second.quotes or second.related
    assert "founded in 2007" in shown[0].text
    assert second.search_query.startswith("When was his organization founded? (")
    assert not second.found or second.short == "2007"
    again = Conversation(seed_bot, ["Who did Nurtleu meet?"]).ask("When was his organization founded?")
    assert "founded in 2007" in (again.quotes or again.related)[0].text


@pytest.mark.slow
def test_real_model_russian_question_does_not_crash(seed_bot):
    ans = seed_bot.answer("Где находится штаб-квартира РЦПДЦА?")
    assert isinstance(ans, Answer)


def test_only_passages_near_the_best_one_are_read(corpus, tmp_path, settings):
    question = "Where did the ministers meet?"
    every, reader = _scripted_bot(corpus, tmp_path, settings.with_(read_margin=None), [0.9])
    every.answer(question)
    scores = [h.score for h in reader.hits]
    assert len(scores) == settings.top_k and max(scores) - min(scores) > 0.2
    margin = (max(scores) - min(scores)) / 2
    near, reader = _scripted_bot(corpus, tmp_path / "near", settings.with_(read_margin=margin), [0.9])
    near.answer(question)
    assert 1 <= len(reader.hits) < settings.top_k
    assert [h.score for h in reader.hits] == [s for s in scores if s >= max(scores) - margin]
    assert near.passages(question) == reader.hits  # what calibration reads is what the answer read
    # dense-only search scores on another scale: every passage is read
    near.answer(question, mode="dense")
    assert len(reader.hits) == settings.top_k
    with pytest.raises(ValueError, match="read_margin"):
        settings.with_(read_margin=0.0)


def test_use_answerer_takes_over_from_the_next_question_and_answered_is_set(corpus, tmp_path, settings):
    bot, first = _scripted_bot(corpus, tmp_path, settings, [0.9])
    assert not bot.answered.is_set()
    assert bot.answer("Where did the ministers meet?").short == "reading 1" and bot.answered.is_set()
    second = ScriptedAnswerer([0.8])
    bot.use_answerer(second)
    ans = bot.answer("Where did the ministers meet?")
    assert (len(first.read), len(second.read), ans.confidence) == (1, 1, 0.8)


def test_make_answerer_reads_another_reader_folder_with_its_own_calibration(tmp_path):
    # bench_domain.py --reader: a trained reader and the calibration files beside it, not the shipped ones
    import json

    from regional_chat.assistant import make_answerer
    from regional_chat.reading.answerer import calibration_file
    from regional_chat.reading.reader import WEIGHTS

    folder = tmp_path / "reader"
    folder.mkdir()
    for f in WEIGHTS.iterdir():
        if f.is_file():
            (folder / f.name).symlink_to(f)
    settings = Settings(model="e5", engine="numpy")
    name = calibration_file(settings.model)
    shipped = json.loads((WEIGHTS / name).read_text())
    (folder / name).unlink()
    (folder / name).write_text(json.dumps(dict(shipped, threshold=0.9123)))
    answerer = make_answerer(settings, folder)
    assert answerer.reader.folder == folder and answerer.calibration.threshold == 0.9123
    assert make_answerer(settings).calibration.threshold == shipped["threshold"] != 0.9123
