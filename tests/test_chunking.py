import json
import random

import pytest

from conftest import SEED, shared_data
from regional_chat.chunking import Chunker, chunk_id, count_tokens, split_sentences
from regional_chat.types import Document


def _doc(text: str, doc_id: str = "d.txt") -> Document:
    return Document(doc_id=doc_id, text=text, title="t", content_hash="h")


def test_sentences_of_a_plain_text():
    text = "Mr. Smith met Dr. J. Doe in the U.S. capital. He said: «Да». Г-н Иванов, т.е. глава. Он ушёл!\nNew line starts here"
    got = [text[s:e] for s, e in split_sentences(text)]
    assert got == [
        "Mr. Smith met Dr. J. Doe in the U.S. capital.",
        "He said: «Да».",
        "Г-н Иванов, т.е. глава.",
        "Он ушёл!",
        "New line starts here",
    ]


def test_wrapped_lines_continue_but_headlines_and_paragraphs_end():
    text = "Headline without a stop\nThe statement was read\non behalf of the minister. Next one.\n\nlower-case paragraph after a blank line"
    got = [text[s:e] for s, e in split_sentences(text)]
    assert got == [
        "Headline without a stop",
        "The statement was read\non behalf of the minister.",
        "Next one.",
        "lower-case paragraph after a blank line",
    ]


def test_wrapped_mode_goes_on_over_a_line_cut_before_a_capital_inside_a_sentence():
    text = (
        "Speech of the Minister\nVery few Afghans have\naccess to safe drinking water, and only 6 per cent of the\n"
        "Afghan population has reliable access to electricity.\nWe thank Japan,\nRussia and the Netherlands.\n"
        "A founding date in\n2007 is given. Under the UN\nDepartment of Political Affairs.\n\nNext paragraph\nKazakhstan, 1993"
    )
    got = [text[s:e] for s, e in split_sentences(text, wrapped=True)]
    assert got == [
        "Speech of the Minister",  # a headline: its line ends in a capitalised word
        "Very few Afghans have\naccess to safe drinking water, and only 6 per cent of the\nAfghan population has reliable access to electricity.",
        "We thank Japan,\nRussia and the Netherlands.",
        "A founding date in\n2007 is given.",
        "Under the UN",  # a capitalised last word: taken for the end of a headline (said plainly in the docstring)
        "Department of Political Affairs.",
        "Next paragraph\nKazakhstan, 1993",  # a heading in sentence case runs into the line after it
    ]
    # the default (what chunking uses) is unchanged: every line cut before a capital ends a sentence
    plain = [text[s:e] for s, e in split_sentences(text)]
    assert "Afghan population has reliable access to electricity." in plain and "Russia and the Netherlands." in plain
    ru = "Слова о том, что\nКазахстан и ООН едины.\nЗаголовок Статьи\nТекст."
    assert [ru[s:e] for s, e in split_sentences(ru, wrapped=True)] == ["Слова о том, что\nКазахстан и ООН едины.", "Заголовок Статьи", "Текст."]


def test_seed_article_sentences():
    text = SEED.read_text(encoding="utf-8")
    spans = split_sentences(text)
    assert len(spans) == 10
    assert text[spans[0][0] : spans[0][1]] == "Kazakhstan Prioritizes Peace and Development in Central Asia as UN Partnership Thrives"
    assert text[spans[8][0] : spans[8][1]].startswith("UNRCCA, founded in 2007")


def test_chunks_are_verbatim_sentence_runs_with_overlap():
    text = " ".join(f"Sentence number {i} is here." for i in range(1, 13))
    chunker = Chunker(chunk_tokens=21, overlap=1)
    chunks = chunker.chunks(_doc(text))
    sentences = [text[s:e] for s, e in split_sentences(text)]
    per = count_tokens(["Sentence number 1 is here."])[0]
    assert per == 7  # so three sentences (21 tokens) fit a 21-token budget, four do not
    assert [c.text.count("Sentence") for c in chunks] == [3, 3, 3, 3, 3, 2]
    for c in chunks:
        assert text[c.start : c.end] == c.text
    # one sentence of overlap: each chunk starts with the previous chunk's last sentence
    for before, after in zip(chunks, chunks[1:]):
        assert after.text.startswith(before.text.split(". ")[-1].rstrip("."))
    covered = set()
    for c in chunks:
        covered.update(s for s in sentences if s in c.text)
    assert covered == set(sentences)
    assert [c.seq for c in chunks] == list(range(len(chunks)))


def test_no_overlap_partitions_the_sentences():
    text = " ".join(f"Sentence number {i} is here." for i in range(1, 13))
    chunks = Chunker(chunk_tokens=21, overlap=0).chunks(_doc(text))
    assert [c.text.count("Sentence") for c in chunks] == [3, 3, 3, 3]
    assert " ".join(c.text for c in chunks) == text


def test_a_sentence_longer_than_the_budget_is_cut_at_word_boundaries():
    words = [f"word{i}" for i in range(300)]
    text = " ".join(words) + "."
    chunks = Chunker(chunk_tokens=50, overlap=1).chunks(_doc(text))
    assert len(chunks) > 1
    for c in chunks:
        assert text[c.start : c.end] == c.text
        assert count_tokens([c.text])[0] <= 50
        assert not c.text.startswith(" ") and not c.text.endswith(" ")
    rebuilt = " ".join(c.text for c in chunks)
    assert rebuilt.split() == text.split()


def test_model_token_limit_splits_what_the_budget_let_through():
    # the model counts every character as a token: chunks of 30 cl100k tokens are far too long for it
    text = " ".join(f"Sentence number {i} is here." for i in range(1, 13))
    chunker = Chunker(chunk_tokens=30, overlap=0, model_tokens=lambda ts: [len(t) for t in ts], model_max=60)
    chunks = chunker.chunks(_doc(text))
    assert all(len(c.text) <= 60 for c in chunks)
    assert " ".join(c.text for c in chunks) == text


def test_chunk_ids_are_stable_and_content_dependent():
    a = chunk_id("d", "h1", 0, 0, 10)
    assert a == chunk_id("d", "h1", 0, 0, 10)
    assert a != chunk_id("d", "h2", 0, 0, 10)
    assert 0 <= a < 2**63


def test_chunks_cover_random_documents_verbatim():
    rng = random.Random(7)
    vocab = ["Kazakhstan", "water", "the", "U.S.", "Dr.", "route", "2024.", "Ташкент", "вода.", "said!", "why?", "\n", "\n\n"]
    for _ in range(50):
        text = " ".join(rng.choice(vocab) for _ in range(rng.randint(1, 400)))
        if not text.strip():
            continue
        chunks = Chunker(chunk_tokens=rng.choice([16, 40, 120]), overlap=rng.randint(0, 2)).chunks(_doc(text))
        for c in chunks:
            assert text[c.start : c.end] == c.text and c.text.strip() == c.text
        words = set(text.split())
        assert words == set(" ".join(c.text for c in chunks).split())


def test_constructor_rejects_bad_settings():
    with pytest.raises(ValueError, match="chunk_tokens"):
        Chunker(chunk_tokens=3)


@pytest.mark.slow
def test_no_chunk_is_truncated_by_the_real_model():
    """Real MiniLM tokenizer: every chunk of the UN speeches and of Russian XQuAD fits in 256 word pieces."""
    from regional_chat.embedding import make_embedder
    from regional_chat.settings import Settings

    embedder = make_embedder(Settings(model="minilm"))  # the English-only encoder: Cyrillic costs it the most word pieces
    chunker = Chunker(200, 1, embedder.count_tokens, embedder.max_tokens)
    assert embedder.max_tokens == 256
    docs = []
    with open(shared_data("ungdc-central-asia.jsonl"), encoding="utf-8") as handle:
        for line in list(handle)[:40]:
            obj = json.loads(line)
            docs.append(_doc(obj["text"], obj["id"]))
    xquad = json.loads(shared_data("xquad.ru.json").read_text(encoding="utf-8"))
    for i, para in enumerate(p for a in xquad["data"] for p in a["paragraphs"]):
        if i >= 60:
            break
        docs.append(_doc(para["context"], f"ru{i}"))
    longest = 0
    russian_split = 0
    for doc in docs:
        chunks = chunker.chunks(doc)
        counts = embedder.count_tokens([c.text for c in chunks])
        longest = max(longest, *counts)
        for c in chunks:
            assert doc.text[c.start : c.end] == c.text
        if doc.doc_id.startswith("ru") and len(chunks) > 1:
            russian_split += 1
    assert longest <= 256
    assert russian_split > 0  # Russian text costs MiniLM far more word pieces than cl100k tokens: the cap did work


RUSSIAN = (
    "Встреча прошла в 2007 г. в Ашхабаде. Президент К.-Ж. Токаев выступил с речью.\n"
    "Обсуждались вода, энергетика и т. д. Решения приняты.\n"
    "Заголовок раздела\n"
    "Текст продолжается\nна новой строке. Конец."
)
KAZAKH = "Қазақстан 1991 ж. тәуелсіздік алды. Елбасы Н.Ә. Назарбаев сөз сөйледі. Су, жер т.б. мәселелер талқыланды."


def test_russian_and_kazakh_sentences_keep_abbreviations_and_initials_whole():
    from regional_chat.chunking import split_sentences

    assert [RUSSIAN[a:b] for a, b in split_sentences(RUSSIAN)] == [
        "Встреча прошла в 2007 г. в Ашхабаде.",
        "Президент К.-Ж. Токаев выступил с речью.",
        "Обсуждались вода, энергетика и т. д.",
        "Решения приняты.",
        "Заголовок раздела",
        "Текст продолжается\nна новой строке.",
        "Конец.",
    ]
    assert [KAZAKH[a:b] for a, b in split_sentences(KAZAKH)] == [
        "Қазақстан 1991 ж. тәуелсіздік алды.",
        "Елбасы Н.Ә. Назарбаев сөз сөйледі.",
        "Су, жер т.б. мәселелер талқыланды.",
    ]
    padded = "Intro. " + KAZAKH  # offsets are the document's, not the window's
    spans = split_sentences(padded, 7)
    assert padded[spans[1][0] : spans[1][1]] == "Елбасы Н.Ә. Назарбаев сөз сөйледі."


def test_russian_chunks_are_verbatim_slices_of_their_document():
    from regional_chat.chunking import Chunker, count_tokens
    from regional_chat.types import Document

    doc = Document(doc_id="ru.txt", text=RUSSIAN * 3, title="t", content_hash="h", metadata={})
    chunks = Chunker(30, 1, count_tokens, 512).chunks(doc)
    assert len(chunks) > 2
    assert all(doc.text[c.start : c.end] == c.text for c in chunks)
    assert not any(c.text.startswith(("Токаев", "в Ашхабаде")) for c in chunks)  # no chunk starts mid-sentence
