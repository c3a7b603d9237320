"""Questions the reader cannot read: Russian or Kazakh questions over (mostly English) passages.

The shipped reader was trained on English; a Cyrillic question is noise to it. The
multilingual encoder is not: it puts a Russian question near the English sentence that
answers it (XQuAD ru -> en, recall@5 96). So a question in a script the reader does not
read is answered in two steps:

1. **The sentence.** Every sentence of the top passages is embedded with the index's own
   encoder; the sentence nearest the question is the quote.
2. **The short answer inside it.** The reader reads that sentence against a *pivot
   question*: the question's kind in English ("When", "How many", "Who" from the Russian
   or Kazakh question word), then for each of its content words the sentence's English
   word nearest it by the same encoder ("беженцев" -> "refugees"), the words it writes in
   Latin letters or digits ("UNRCCA", "2010") and the English names of the countries it
   names. "Сколько беженцев ежедневно возвращалось в Афганистан?" over "Every day since
   mid-March an average of about 3,500 refugees have returned to Afghanistan" is read as
   "How many refugees day returned Afghanistan?". No translation model ships on PyPI; the
   encoder, restricted to the words of one sentence, is translation enough for the reader.
   On XQuAD (Russian questions, the English paragraph's nearest sentence) the aligned words
   took the F1 of the answer shown from 16.8 to 44.1 on the articles they were chosen on
   (bench/bench_reader.py; docs/QUALITY.md gives the held-out figure).

The short answer is always a verbatim slice of the quoted sentence; the confidence is
calibrated apart from the English path (``training/calibrate_crosslingual.py``).
"""

from __future__ import annotations

import re
from typing import Callable, Sequence

import numpy as np

from ..countries import mentions
from ..text import WORD, Tokenizer, english_words

# (pattern over the lower-cased question, English question word). The first that matches wins,
# so the specific ones ("в каком году", "сколько") come before the general ones ("какой").
_W = r"(?<![\w-])"
_PIVOTS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), english)
    for pattern, english in (
        # Russian
        (_W + r"в\s+как(ом|ие|ой)\s+(году|годах|годы|месяце|день)", "In what year"),
        (_W + r"(с|до)\s+как(ого|ой)\s+(года|времени|даты)", "Since when"),
        (_W + r"как\s+долго", "How long"),
        (_W + r"когда", "When"),
        (_W + r"(где|куда)", "Where"),
        (_W + r"откуда", "From where"),
        (_W + r"скольк(о|их|им|ими)", "How many"),
        (_W + r"(кто|кого|кому|кем|ком)(?!\w)", "Who"),
        (_W + r"(чей|чья|чьё|чье|чьи|чьим|чьими|чьей|чьего|чьих)(?!\w)", "Whose"),
        (_W + r"(почему|зачем|отчего)", "Why"),
        (_W + r"как\s+(назыв|зов)\w*", "What is the name of"),
        (_W + r"(как(ой|ая|ое|ие|ого|ому|ом|ую|ой|их|им|ими)|каков\w*|котор\w+)(?!\w)", "What"),
        (_W + r"(что|чего|чему|чем|чём)(?!\w)", "What"),
        (_W + r"(как)(?!\w)", "How"),
        # Kazakh
        (_W + r"(қай\s+жылы|қай\s+жылдары)", "In what year"),
        (_W + r"қашан", "When"),
        (_W + r"(қайда|қай\s+жерде)", "Where"),
        (_W + r"(қанша|неше)", "How many"),
        (_W + r"(кім|кімнің|кімге|кімді|кіммен)(?!\w)", "Who"),
        (_W + r"(неге|неліктен|не\s+үшін)", "Why"),
        (_W + r"(қандай|қай|не|нені|ненің|атауы)(?!\w)", "What"),
        (_W + r"қалай", "How"),
    )
)
_LATIN_OR_NUMBER = re.compile(r"[A-Za-z][A-Za-z0-9.\-]*[A-Za-z0-9]|[A-Za-z]|\d[\d.,]*\d|\d")
# Two words of different languages saying the same thing: multilingual-e5-small's cosine of the two words
# alone ("query: " prefix). Its cosines of unrelated words sit near 0.7-0.8; on the XQuAD articles this was
# chosen on, any floor from 0.74 to 0.80 gave the same pivots and the same F1 (44.1), 0.83 fewer aligned words
# and 43.7, 0.86 38.3 (bench/bench_pivot.py, bench/results/crosslingual-pivot.json).
MIN_WORD_COSINE = 0.80


# What the short answer to a question word must hold. The pivot question is a few words ("When Dushanbe conference
# water cooperation Tajikistan 2013?"), and the reader, trained on whole English questions, can answer it with a
# name ("Government of Tajikistan in cooperation with the United Nations"); a span without a number is no answer to
# "How many", nor one without a number or a time word to "When".
_NUMBER = (
    r"\d|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen"
    r"|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundreds?|thousands?|millions?|billions?"
    r"|trillions?|dozens?|half|quarter|single|once|twice|several|many|few|all|none|no)\b"
)
_TIME = _NUMBER + (
    r"|\b(?:january|february|march|april|may|june|july|august|september|october|november|december|spring|summer"
    r"|autumn|fall|winter|today|yesterday|tomorrow|ago|century|centuries|decades?|years?|months?|weeks?|days?|now"
    r"|recently|soon|later|earlier|before|after|during|since|until|era|period|age|times?|when)\b"
)
_ANSWER_HOLDS = {
    word: re.compile(pattern, re.IGNORECASE)
    for word, pattern in (("How many", _NUMBER), ("In what year", r"\d"), ("When", _TIME), ("Since when", _TIME), ("How long", _TIME))
}


def answers_question_word(word: str | None, text: str) -> bool:
    """Whether ``text`` can answer a question asked with the English question ``word`` ("How many" -> a number)."""
    pattern = _ANSWER_HOLDS.get(word or "")
    return pattern is None or pattern.search(text) is not None


# Nouns for people: "Какой игрок ...", "Какая актриса ...", "Какой немецкий генерал ..." ask who, and the reader,
# given "What ...", answers them with a thing ("national anthem", "Academy Award") as often as with a name.
_PERSON = re.compile(
    r"(игрок|актер|актрис|художник|исследовател|учен(ый|ые|ого|ому|ым|ых|ой)$|генерал|корол(ь|я|ю|ем|е|ева|еве|еву|евы)$"
    r"|президент|министр|человек|писател|поэт|композитор|режиссер|учител|императо|лидер|политик|основател|изобретател"
    r"|тренер|певец|певиц|певца|музыкант|философ|врач|командир|командующ|руководител|премьер|канцлер|солдат|офицер"
    r"|судь[яи]|епископ|монах|священник|футболист|спортсмен|инженер|архитектор|астронавт|космонавт|пилот|летчик|ученик"
    r"|студент|профессор|экономист|юрист|адвокат|персонаж|губернатор|мэр|сенатор|депутат|чиновник|дипломат"
    r"|секретар(ь|я|ю|ем|е)$|представител|посланник|автор|святой|папа$|папы$|ойыншы|ғалым|әнші|жазушы|ақын)"
)


# "Which" of a noun that says what kind of thing is asked for: the noun in English joins the pivot after "What"
# ("Гражданином какой страны является Каха Имнадзе?" -> "What country ..."), as an English question would say it.
_KINDS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern + r"$"), english)
    for pattern, english in (
        (r"стран\w*", "country"), (r"государств\w*", "state"), (r"город\w*", "city"), (r"столиц\w*", "capital"),
        (r"команд\w*", "team"), (r"организаци\w*", "organization"), (r"компани\w*", "company"), (r"рек(а|и|е|у|ой)", "river"),
        (r"язык\w*", "language"), (r"провинци\w*", "province"), (r"регион\w*", "region"), (r"област\w*", "region"),
        (r"парти(я|и|ю|ей)", "party"), (r"университет\w*", "university"), (r"церк(овь|ви|овью)", "church"), (r"книг\w*", "book"),
        (r"договор\w*", "treaty"), (r"соглашени\w*", "agreement"), (r"закон\w*", "law"), (r"награ(да|ды|ду|дой)", "award"),
        (r"преми(я|и|ю|ей)", "prize"), (r"должност\w*", "position"), (r"сумм\w*", "amount"), (r"процент\w*", "percentage"),
        (r"проект\w*", "project"), (r"программ\w*", "program"), (r"конференци\w*", "conference"), (r"инициатив\w*", "initiative"),
        (r"министерств\w*", "ministry"), (r"департамент\w*", "department"), (r"совет(а|у|ом|е|ы|ов)?", "council"),
        (r"фонд\w*", "fund"), (r"банк(а|у|ом|е|и|ов)?", "bank"), (r"войн(а|ы|е|у|ой)", "war"), (r"метод\w*", "method"),
        (r"технологи\w*", "technology"), (r"формат\w*", "format"), (r"веществ\w*", "substance"), (r"элемент\w*", "element"),
        (r"клуб\w*", "club"), (r"фильм\w*", "film"), (r"песн\w*", "song"), (r"альбом\w*", "album"), (r"континент\w*", "continent"),
        (r"океан\w*", "ocean"), (r"остров\w*", "island"), (r"сч[её]т(а|у|ом|е)?", "score"), (r"месяц\w*", "month"),
        (r"сезон\w*", "season"), (r"век(а|у|е|ом)?", "century"), (r"событи\w*", "event"), (r"болезн\w*", "disease"),
        (r"цвет(а|у|ом|е)?", "color"), (r"зда(ние|ния|нии)", "building"), (r"газет\w*", "newspaper"), (r"канал\w*", "channel"),
        (r"систем\w*", "system"), (r"учреждени\w*", "institution"), (r"пробле(ма|мы|му|мой)", "problem"), (r"цел(ь|и|ью)", "goal"),
        (r"ел(і|ге|ді|дің)?", "country"), (r"мемлекет\w*", "state"), (r"қала\w*", "city"), (r"ұйым\w*", "organization"),
    )
)


def _question_match(question: str) -> tuple[int, int, str] | None:
    """(start, end, English question word) of the first question word of ``question``."""
    best: tuple[int, int, str] | None = None
    for pattern, english in _PIVOTS:
        match = pattern.search(question)
        if match and (best is None or match.start() < best[0]):
            best = (match.start(), match.end(), english)
    return best


def _which_of(question: str, best: tuple[int, int, str]) -> list[str]:
    """The (lower-cased) words after a "which" question word (какой, который, қай, қандай), up to three; [] after any other."""
    start, end, english = best
    if english != "What" or not re.search(r"(как|котор|қай|қандай)\w*\s*$", question[start:end], re.IGNORECASE):
        return []
    return [w.lower().replace("ё", "е") for w in WORD.findall(question[end:])[:3]]


def question_word(question: str) -> str | None:
    """The English question word for a Russian or Kazakh question ("Сколько ..." -> "How many"), or None.

    "Which" of a noun for people ("Какой игрок ...?", "Какая актриса ...?") is "Who"; "what" of one is not
    ("Что президент сказал?").
    """
    best = _question_match(question)
    if best is None:
        return None
    if any(_PERSON.match(w) for w in _which_of(question, best)):
        return "Who"
    return best[2]


def asked_kind(question: str) -> str | None:
    """The English noun for the kind of thing a "which" question asks for ("Какая команда ...?" -> "team"), or None."""
    best = _question_match(question)
    if best is None:
        return None
    for word in _which_of(question, best):
        for pattern, english in _KINDS:
            if pattern.match(word):
                return english
    return None


def content_words(question: str) -> list[str]:
    """The words of a Cyrillic question that say what it is about, in order: not stop words, not question
    words, not what it writes in Latin letters or digits (the pivot keeps those as written)."""
    stop = Tokenizer().stopword_set()
    out: list[str] = []
    for match in WORD.finditer(question):
        word = match.group()
        low = word.lower().replace("ё", "е")
        if len(word) < 3 or low in stop or _LATIN_OR_NUMBER.fullmatch(word) or any(p.match(low) for p, _ in _PIVOTS):
            continue
        if word not in out:
            out.append(word)
    return out


def aligned_words(question: str, sentence: str, vectors: Callable[[list[str]], np.ndarray], min_cosine: float = MIN_WORD_COSINE) -> list[str]:
    """For each content word of ``question``, the English word of ``sentence`` nearest it (cosine at least ``min_cosine``).

    ``vectors`` gives unit vectors for a list of words (the index's multilingual encoder).
    """
    asked = content_words(question)
    candidates = english_words(sentence)
    if not asked or not candidates:
        return []
    vecs = np.asarray(vectors(asked + candidates), dtype=np.float32)
    sims = vecs[: len(asked)] @ vecs[len(asked) :].T
    picked: list[str] = []
    for row in sims:
        j = int(np.argmax(row))
        if row[j] >= min_cosine and candidates[j] not in picked:
            picked.append(candidates[j])
    return picked


def pivot_question(question: str, aligned: Sequence[str] = ()) -> str | None:
    """An English question the reader can read, built from what a Cyrillic question says.

    Its question word (and after "What" the kind of thing a "which" question asks for, :func:`asked_kind`:
    "Гражданином какой страны ...?" -> "What country ..."), then ``aligned`` (its content words' nearest English words in the sentence
    to read, :func:`aligned_words`), then the Latin-script words and numbers it writes, then the
    English names of the countries it names: "Сколько ядерных взрывов назвал Казахстан в 2010
    году?" -> "How many Kazakhstan 2010?" with nothing aligned. None when no question word is
    recognised (the quote is then the sentence alone, without a short answer).
    """
    word = question_word(question)
    if word is None:
        return None
    kind = asked_kind(question) if word == "What" else None
    parts = [word, *([kind] if kind else []), *[w for w in aligned if w.lower() != (kind or "")]]
    taken: list[tuple[int, int]] = []
    for country, start, end in mentions(question):
        if country.name not in parts:
            parts.append(country.name)
        taken.append((start, end))
    for match in _LATIN_OR_NUMBER.finditer(question):
        if not any(a < match.end() and match.start() < b for a, b in taken) and match.group() not in parts:
            parts.append(match.group())
    return " ".join(parts) + "?"
