"""Language helpers shared by the stages: scripts and languages, BM25 terms, the years a text names, reflowing hard-wrapped text.

The house layout (CONVENTIONS.md) puts every language helper here. ``Tokenizer`` (the one list of
stop words, and the Snowball stemmers) makes the BM25 terms of both stores.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

CYRILLIC = re.compile(r"[\u0400-\u04ff]")  # Russian and Kazakh letters (Kazakh's extra ones are in the block too)
LATIN = re.compile(r"[a-z]")

STOPWORD_LISTS = ("nltk", "lucene", "none")
TOKEN_FORMAT = 1  # bump when the tokenisation or the files of a lexical index change: indexes record it
# Letters and digits; "_" and punctuation separate words ("covid-19" -> covid, 19).
WORD = re.compile(r"[^\W_]+", re.UNICODE)


@dataclass(frozen=True)
class Tokenizer:
    """Lower-cases, drops English and Russian stop words, and stems with Snowball.

    Latin words get the English stemmer and Cyrillic words the Russian one
    (after ё -> е); digits and other scripts are kept as they are.

    Args:
        stem: apply the Snowball stemmers.
        stopwords: ``"nltk"`` (NLTK's English and Russian lists, as bm25s ships them),
            ``"lucene"`` (Lucene's 33 English words plus the Russian list) or ``"none"``.
    """

    stem: bool = True
    stopwords: str = "nltk"

    def __post_init__(self) -> None:
        if self.stopwords not in STOPWORD_LISTS:
            raise ValueError(f"stopwords must be one of {', '.join(STOPWORD_LISTS)}; got {self.stopwords!r}.")

    def stopword_set(self) -> frozenset[str]:
        return _stopwords(self.stopwords)

    def tokens(self, text: str) -> list[str]:
        """The index terms of ``text``, in order, repeats kept."""
        return self.tokens_with(text, self.stemmers(), self.stopword_set())

    def stemmers(self) -> tuple[object, object] | None:
        """Fresh (English, Russian) stemmers, or None without stemming.

        PyStemmer objects keep a cache and are not thread-safe, so every search
        makes its own (it costs about a microsecond) and a build makes one pair.
        """
        if not self.stem:
            return None
        import Stemmer

        return Stemmer.Stemmer("english"), Stemmer.Stemmer("russian")

    @staticmethod
    def tokens_with(text: str, stemmers: tuple[object, object] | None, stop: frozenset[str]) -> list[str]:
        words = [w for w in WORD.findall(text.lower().replace("ё", "е")) if w not in stop]
        if stemmers is None or not words:
            return words
        english, russian = stemmers
        out = list(words)
        latin = [i for i, w in enumerate(words) if LATIN.search(w) and not CYRILLIC.search(w)]
        cyrillic = [i for i, w in enumerate(words) if CYRILLIC.search(w)]
        if latin:
            for i, stem in zip(latin, english.stemWords([words[i] for i in latin])):  # type: ignore[attr-defined]
                out[i] = stem
        if cyrillic:
            for i, stem in zip(cyrillic, russian.stemWords([words[i] for i in cyrillic])):  # type: ignore[attr-defined]
                out[i] = stem
        return out

    def as_dict(self) -> dict[str, object]:
        return {"format": TOKEN_FORMAT, "stem": self.stem, "stopwords": self.stopwords, "word": WORD.pattern}


_TERMS_AFTER = re.compile(r"\s\([^()]*\)\s*$")


def with_terms(question: str, terms) -> str:
    """``question`` followed by ``terms`` in brackets (the question itself when there are none):
    how a follow-up is searched, "When was it founded? (UNRCCA Ashgabat)"."""
    return question if not terms else f"{question} ({' '.join(terms)})"


def own_words(question: str) -> str:
    """A question without the terms :func:`with_terms` appended (the question itself when there are none)."""
    return _TERMS_AFTER.sub("", question) or question


# Where a question says which speech it asks about ("According to Kyrgyzstan's 1992 General Assembly speech, ...",
# "..., as the country told the Assembly in 2013?"). Search uses the clause (the country and year steer it to that
# speech); the reader does not need it: the passage it reads comes after its document's context header
# ("Kyrgyzstan, 1992, session 47."), and it was trained on SQuAD's questions, which never carry such a clause.
_SPEECH = r"(?i:(?:(?:UN |United Nations )?General Assembly |GA )?(?:speech|statement|address|remarks|general debate)" \
    r"(?: (?:to|before|at) the (?:UN |United Nations )?(?:General )?Assembly)?)"
_NAME = r"[A-Z][\w-]*(?: [A-Z][\w-]*)*"  # capitalised words: "Kazakhstan", "Russian Federation"
_SPEAKER = rf"(?:(?i:its|his|her|their|the)|{_NAME}['’]s?)"  # "its", "Kyrgyzstan's", "the President's"
_IN_YEAR = r"(?:1[89]|20)\d\d"
_AT_END = r"(?=\s*[?.!]?\s*$)"
_ATTRIBUTION = (
    re.compile(rf"^\s*(?i:according to|in|as (?:stated|said|reported) in) {_SPEAKER} (?:{_IN_YEAR} )?{_SPEECH}(?: (?:in|of) {_IN_YEAR})?,\s*"),
    re.compile(rf",?\s*(?i:according to|in|as (?:stated|said|reported) in) {_SPEAKER} (?:{_IN_YEAR} )?{_SPEECH}(?: (?:in|of) {_IN_YEAR})?{_AT_END}"),
    re.compile(rf",?\s*(?i:as) (?:(?i:the country) |{_NAME} )?(?i:told (?:to )?the (?:General )?Assembly in) {_IN_YEAR}{_AT_END}"),
    re.compile(rf"\s*(?i:in the) {_IN_YEAR} (?i:general debate){_AT_END}"),
)


def attribution(question: str) -> str:
    """The clauses of ``question`` that name the speech it asks about ('' when none): "According to
    Kyrgyzstan's 2012 speech, what events of 2011 ..." -> "According to Kyrgyzstan's 2012 speech, "."""
    own = own_words(question)
    return "".join(m.group() for pattern in _ATTRIBUTION for m in pattern.finditer(own))


def without_attribution(question: str) -> str:
    """``question`` without the clause that names the speech it asks about: what the reader reads.

    "According to Kyrgyzstan's 1992 General Assembly speech, by how many countries had Kyrgyzstan been
    recognized?" -> "By how many countries had Kyrgyzstan been recognized?". Terms appended by
    :func:`with_terms` stay; a question that would keep fewer than three words is returned as it is.
    """
    own = own_words(question)
    terms = question[len(own):]
    out = own
    for pattern in _ATTRIBUTION:
        out = pattern.sub("", out)
    out = out.strip()
    if out == own.strip() or len(out.split()) < 3:
        return question
    return out[0].upper() + out[1:] + terms


# Words that make a question lean on the conversation before it (conversation.needs_context).
PRONOUNS = frozenset(
    """
    it its it's he him his she her hers they them their theirs this that these those there then
    former latter same such
    он она оно они его её ее их ему ей им него неё нее них этот эта это эти тот та те там тогда
    """.split()
)
# The words of a question that say how it asks, not what about: a follow-up with at most one word
# besides these leans on the turn before. Not the BM25 list (``Tokenizer``): that one is what the
# index leaves out; this one also drops "tell", "me", "please", "again".
QUESTION_WORDS = frozenset(
    """
    a an the of in on at to for from by with about as and or but is are was were be been being do does did
    what when where who whom whose which why how much many tell me please more about also again
    what's who's where's when's did does has have had can could would should will shall may might
    что когда где кто какой какая какие почему как сколько ли же и а но в на о об с по из за для от
    """.split()
)


def _bm25s_stopwords():
    """bm25s's stop-word lists, without importing the bm25s package (its __init__ imports scipy and tqdm:
    a quarter of a second of a cold ``ask``, which needs the lists and not the package)."""
    import importlib.util
    import sys

    if "bm25s.stopwords" in sys.modules:
        return sys.modules["bm25s.stopwords"]
    spec = importlib.util.find_spec("bm25s")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("bm25s is not installed: pip install bm25s")
    path = Path(next(iter(spec.submodule_search_locations))) / "stopwords.py"
    module_spec = importlib.util.spec_from_file_location("regional_chat._bm25s_stopwords", path)
    module = importlib.util.module_from_spec(module_spec)  # type: ignore[arg-type]
    module_spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@lru_cache(maxsize=None)
def _stopwords(name: str) -> frozenset[str]:
    lists = _bm25s_stopwords()
    STOPWORDS_EN, STOPWORDS_EN_PLUS, STOPWORDS_RUSSIAN = lists.STOPWORDS_EN, lists.STOPWORDS_EN_PLUS, lists.STOPWORDS_RUSSIAN

    english = {"nltk": STOPWORDS_EN_PLUS, "lucene": STOPWORDS_EN, "none": ()}[name]
    russian = STOPWORDS_RUSSIAN if name != "none" else ()
    words = set(english) | {w.replace("ё", "е") for w in russian}
    return frozenset(w for w in words if WORD.fullmatch(w))  # "don't" can never match a token



_ENGLISH_WORD = re.compile(r"[A-Za-z][A-Za-z'\-]*[A-Za-z]|[A-Za-z]")


def english_words(text: str) -> list[str]:
    """The words of ``text`` written in Latin letters that are not stop words, each once, in order (case kept).

    The words a cross-lingual question's own words are aligned to (``reading/crosslingual.py``),
    and so the words a build embeds once for it (``store/sentences.py``).
    """
    stop = _stopwords("nltk")
    return list(dict.fromkeys(w for w in _ENGLISH_WORD.findall(text) if w.lower() not in stop))


def script_of(text: str) -> str:
    """``"cyrillic"`` when a text has more Cyrillic than Latin letters, else ``"latin"``."""
    lower = text.lower()
    return "cyrillic" if len(CYRILLIC.findall(lower)) > len(LATIN.findall(lower)) else "latin"


_KAZAKH_ONLY = re.compile(r"[әғқңөұүһі]")  # Cyrillic letters Kazakh writes and Russian does not
LANGUAGE_NAMES = {"english": "English", "russian": "Russian", "kazakh": "Kazakh"}


def language_of(text: str) -> str:
    """``"kazakh"``, ``"russian"`` or ``"english"``: the corpus's languages, told apart by their letters.

    Latin script is taken as English (the corpus's other Latin-script language
    would need a real language identifier); Cyrillic with Kazakh's own letters
    (ә, ғ, қ, ң, ө, ұ, ү, һ, і) as Kazakh, else Russian.
    """
    if script_of(text) == "latin":
        return "english"
    return "kazakh" if _KAZAKH_ONLY.search(text.lower()) else "russian"


@dataclass(frozen=True)
class YearSpan:
    """A year or a range of years a text names: ``first == last`` for one year, a decade as its ten years."""

    first: int
    last: int
    start: int
    end: int


_YEAR = re.compile(r"(?<![\w$€£₸₽])(?:19|20)\d\d(?!\d)")
_DATE_BEFORE = re.compile(r"(?<!\d)\d{1,2}[./]\d{1,2}[./]$")  # 05.12.1993: a year after all
_NUMBER_BEFORE = re.compile(r"\d[.,]$")  # 1.2005, 3,2005: part of a number
_NOT_AFTER = re.compile(r"[.,]\d|\s?[%‰]")  # 2005.5, 2005,5, 2005 %
_RANGE_AFTER = re.compile(r"\s?[-–—]\s?((?:19|20)\d\d)(?![\w])")
_DECADE_AFTER = re.compile(r"s(?!\w)|-(?:х|е|ых|ые)(?!\w)")  # 1990s, 1990-х, 1990-е
_KAZAKH_DECADE_AFTER = re.compile(r"(?:-|\s)(?:(?:шы|ші|ыншы|інші)\s+)?жылдар", re.IGNORECASE)
_LETTERS_AFTER = re.compile(r"(?:гг|г|ж)(?!\w)")  # 1993г., 1993ж.: the Russian and Kazakh "year" abbreviations
# Two-digit decades only where the form says years ("in their 90s" is an age): '90s or the 90s, 90-х, 90-жылдары.
_SHORT_DECADE_EN = re.compile(r"(?<![\w'’])(['’]?)([3-9]0)s(?!\w)")
_SHORT_DECADE_RU = re.compile(r"(?<![\w'’])([3-9]0)-(?:х|е|ых|ые)(?!\w)")
_SHORT_DECADE_KK = re.compile(r"(?<![\w'’])([3-9]0)(?=-(?:(?:шы|ші|ыншы|інші)\s+)?жылдар)", re.IGNORECASE)
_THE_BEFORE = re.compile(r"\bthe\s+$", re.IGNORECASE)


def years_in(text: str) -> list[YearSpan]:
    """The years 1900-2099 a text names, in order: single years, decades and ranges like "1991-1995".

    A year is a four-digit 19xx or 20xx standing alone: not part of a longer
    number or a decimal ("1,993", "2005.5"), not a percentage ("2005 %"), not
    after a currency sign. "1990s", "1990-х", "1990 жылдары" are the decade
    1990-1999; "1990's" and "1993's" are read as possessives of one year, the
    apostrophe being ambiguous. Two-digit decades ("the 90s", "'90s", "90-х",
    "90-жылдары") are 1930-1990 only: "the 20s" and "the 00s" could be either
    century. Quantities ("1993 tonnes") are not told apart from years.

    Returns:
        A ``YearSpan`` per mention; ``text[start:end]`` covers the digits and an
        attached suffix ("1990s", "1990-х", "1991-1995"), not a following word.
    """
    found: list[YearSpan] = []
    for match in _YEAR.finditer(text):
        start, end = match.span()
        if found and start < found[-1].end:
            continue  # the second year of a range already taken
        before = text[max(0, start - 6) : start]
        if _NUMBER_BEFORE.search(before) and not _DATE_BEFORE.search(before):
            continue
        if _NOT_AFTER.match(text, end):
            continue
        year = int(match.group())
        rng = _RANGE_AFTER.match(text, end)
        if rng and int(rng.group(1)) > year:
            found.append(YearSpan(year, int(rng.group(1)), start, rng.end()))
            continue
        if year % 10 == 0:
            decade = _DECADE_AFTER.match(text, end)
            if decade:
                found.append(YearSpan(year, year + 9, start, decade.end()))
                continue
            if _KAZAKH_DECADE_AFTER.match(text, end):
                found.append(YearSpan(year, year + 9, start, end))
                continue
        if end < len(text) and text[end].isalnum() and not _LETTERS_AFTER.match(text, end):
            continue  # 1993th, 2005a: not a year
        found.append(YearSpan(year, year, start, end))
    for match in _SHORT_DECADE_EN.finditer(text):
        if match.group(1) or _THE_BEFORE.search(text[max(0, match.start() - 8) : match.start()]):
            year = 1900 + int(match.group(2))
            found.append(YearSpan(year, year + 9, match.start(), match.end()))
    for match in (*_SHORT_DECADE_RU.finditer(text), *_SHORT_DECADE_KK.finditer(text)):
        year = 1900 + int(match.group(1))
        found.append(YearSpan(year, year + 9, match.start(), match.end()))
    return sorted(found, key=lambda y: y.start)


@dataclass(frozen=True)
class Reflowed:
    """Hard-wrapped text with its line breaks joined, and the map from offsets of the original to it.

    The map is a list of edits (original start, original end, start in the
    text, length of the replacement); outside them the two texts are the same
    characters, shifted.
    """

    text: str
    source_length: int
    edits: tuple[tuple[int, int, int, int], ...] = field(default=(), repr=False)

    def position(self, offset: int) -> int:
        """Where an offset of the original lands in ``text`` (monotonic; the end maps to ``len(text)``)."""
        if not 0 <= offset <= self.source_length:
            raise ValueError(f"offset {offset} is outside the original text (0..{self.source_length})")
        i = bisect.bisect_right(self.edits, offset, key=lambda e: e[0]) - 1
        if i < 0:
            return offset
        start, end, out_start, length = self.edits[i]
        if offset < end:  # inside a joined break: as far into its replacement as it went into the break
            return out_start + min(offset - start, length)
        return out_start + length + (offset - end)

    def span(self, start: int, end: int) -> tuple[int, int]:
        """A highlight ``[start, end)`` of the original as the same highlight in ``text``."""
        if start > end:
            raise ValueError(f"span start {start} is after its end {end}")
        return self.position(start), self.position(end)


_BREAK = re.compile(r"[ \t]*(?:\r\n|\r|\n)(?:[ \t]*(?:\r\n|\r|\n))*[ \t]*")
_NEWLINE = re.compile(r"\r\n|\r|\n")
_SENTENCE_END = re.compile(r"[.!?…:;][\"'”’»)\]]*$")
# What starts a line of its own after a sentence: a capital, a quote, or a list marker ("- ", "•", "1. ", "(a) ").
_LINE_START = re.compile(r"[\"'“”«„‘]|(?:[-–—•*▪·]|\d{1,3}[.)]|\([0-9A-Za-z]{1,3}\))\s")


def reflow(text: str) -> Reflowed:
    """Join the hard line breaks of text extracted from PDFs and speeches, keeping paragraphs.

    Rules, for each run of blank space holding a line break, with text on both
    sides (leading and trailing breaks are left alone):

    * two or more breaks are a paragraph: the run becomes ``"\\n\\n"``;
    * a hyphen between two lower-case letters is a word cut by the line:
      "develop-\\nment" -> "development" (a compound cut at its hyphen,
      "well-\\nknown", is joined too: the text cannot tell them apart);
    * a hyphen before a capital or a digit stays, the break goes:
      "Trans-\\nCaspian" -> "Trans-Caspian";
    * after sentence-ending punctuation (. ! ? … : ;, closing quotes allowed),
      a line that starts with a capital, a quote or a list marker keeps its
      break: 'Afghanistan.\\n"Allow me' stays two lines;
    * any other break, with the spaces around it, becomes one space.

    Nothing else is changed: spaces elsewhere, tabs and text without breaks
    come back as they were. A list whose items do not end in punctuation is
    joined into one line, as is a heading without a full stop.
    """
    edits: list[tuple[int, int, int, int]] = []
    pieces: list[str] = []
    done = 0  # how much of the original is in ``pieces``
    out = 0  # length of ``pieces``
    for match in _BREAK.finditer(text):
        start, end = match.span()
        if start == 0 or end == len(text):
            continue
        after = text[end]
        if len(_NEWLINE.findall(match.group())) >= 2:
            replacement = "\n\n"
        elif text[start - 1] == "-" and start >= 2 and text[start - 2].isalpha():
            if text[start - 2].islower() and after.islower():
                start, replacement = start - 1, ""
            elif after.isupper() or after.isdigit():
                replacement = ""
            else:
                replacement = " "
        elif _SENTENCE_END.search(text, max(0, start - 8), start) and (
            after.isupper() or _LINE_START.match(text, end)
        ):
            replacement = "\n"
        else:
            replacement = " "
        if text[start:end] == replacement:
            continue
        pieces.append(text[done:start])
        out += start - done
        edits.append((start, end, out, len(replacement)))
        pieces.append(replacement)
        out += len(replacement)
        done = end
    pieces.append(text[done:])
    return Reflowed(text="".join(pieces), source_length=len(text), edits=tuple(edits))
