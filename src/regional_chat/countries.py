"""Country codes and names, both ways: ``KAZ`` <-> Kazakhstan, and the countries a question names.

Every ISO 3166-1 country comes from pycountry (codes, name, official and
common names, and its Russian and Kazakh gettext catalogues, which cover all
249 entries), plus a hand-written table of adjectives, demonyms and extra
aliases for the region and its usual partners. ``country()`` resolves one code
or name; ``mentions()`` finds every country a free text names, with offsets.

What ``mentions()`` matches, and why:

* Names and aliases as whole words (never inside another word: "Chadwick",
  "Omani" do not name Chad or Oman; "Omani" is itself an alias of Oman).
  Where aliases overlap the longest wins ("Guinea-Bissau" over "Guinea",
  "Dominican Republic" and "Dominica" are different words anyway).
* English possessives need nothing special ("Kazakhstan's" is "Kazakhstan"
  followed by a non-letter); the span covers the name only.
* Russian and Kazakh names are matched by stem plus ending: a stem of eight
  letters or more ("Казахстан", "Афганистан", "российск-") takes any Cyrillic
  ending ("Казахстане", "Қазақстандағы", "казахстанский"); a shorter one only
  the Russian case endings ("России", "Китае"), plus the Kazakh case suffixes
  for the countries of the hand table ("Ресейдің", "Қытайға"). Words ending in
  о, у, е, и, ю ("Мали", "Перу") do not decline in Russian and match as written.
  "Казань"/"Kazan" share no stem with Kazakhstan and do not match.
* Single-word names of countries outside the hand table, and the risky ones
  inside it (Turkey, China, Georgia, Japan, India, Afghan, French), must start
  with a capital letter: "turkey" the bird and "china" the porcelain do not
  match, nor do "чад" (fumes) or "кубом" (a cube); "Кубок" never matches Cuba
  (only case endings may follow a short stem).
* ISO alpha-3 codes match only in capitals ("KAZ", not "kaz"), except the
  codes that are English words or common acronyms (AND, ARE, CAN, VAT, ...).
  Alpha-2 codes are never matched in free text ("IN", "IT"); "US", "U.S.",
  "USA", "UK", "PRC", "UAE", "РФ", "США", "КНР", "АҚШ" are aliases matched in
  capitals only.
* A few phrases are matched and thrown away so that the country inside them
  is not reported: "Latin American", "New Mexico", "New Guinea", "Indian
  Ocean", "Kazakh language", "казахский язык", "қазақ тілі". The Russian
  "Того" (Togo, but also the pronoun that starts many sentences) is never
  matched in free text; ``country("Того")`` still resolves it.

Known false positives, kept because the names are what questions use:
"Chad", "Jordan" and "Georgia" as people's names or the US state, "Turkey",
"China", "Guinea" or "Jersey" written with a capital for a bird, porcelain, a
coin or a cow, "Чад", "Катар", "Перу", "Куба" starting a Russian sentence as
ordinary words, an all-capital "US" ("TELL US"), and adjectives that also name a
language or a people ("Russian", "Kazakh", "Chinese": "answer in Russian"
names Russia). "Korea" and "Корея" alone name no country (two share it);
"America"/"Америка" are left out (a continent), and "русский"/"орыс" (the
Russian people and language) do not name Russia while "российский" does.
The European Union and historical states (USSR, Yugoslavia) are not
countries here; ``display`` still names the historical codes.
"""

from __future__ import annotations

import functools
import gettext
import re
import unicodedata
from dataclasses import dataclass
from typing import Iterator, Sequence

__all__ = ["Country", "country", "display", "mentions"]


@dataclass(frozen=True)
class Country:
    """One ISO 3166-1 country: its codes, English name and every alias it is known by."""

    iso3: str
    iso2: str
    name: str
    names: tuple[str, ...]


# Hand table: display name (None: pycountry's), then English, Russian and Kazakh aliases.
# Aliases written all in capitals are matched in capitals only.
_HAND: dict[str, tuple[str | None, tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "KAZ": (None, ("Kazakh", "Kazakhs", "Kazakhstani", "Kazakhstanis", "Kazak", "Qazaqstan"),
            ("Казахстан", "Республика Казахстан", "казахстанский", "казахский", "казахстанец",
             "казахстанцы", "казах", "казахи"),
            ("Қазақстан", "Қазақстан Республикасы", "қазақстандық", "қазақ")),
    "KGZ": (None, ("Kyrgyz", "Kyrgyzstani", "Kyrgyzstanis", "Kirghiz", "Kirgiz", "Kirghizia", "Kirgizia",
                   "Kyrgyzia", "Kyrgyz Republic", "Kirghiz Republic"),
            ("Кыргызстан", "Киргизия", "Киргизстан", "Кыргызская Республика", "Киргизская Республика",
             "Республика Кыргызстан", "кыргызстанский", "кыргызский", "киргизский", "кыргыз", "киргиз"),
            ("Қырғызстан", "Қырғыз Республикасы", "қырғыз")),
    "TJK": (None, ("Tajik", "Tajiks", "Tajikistani", "Tajikistanis", "Tadjik", "Tadzhik", "Tadjikistan"),
            ("Таджикистан", "таджикский", "таджикистанский", "таджик"),
            ("Тәжікстан", "тәжік")),
    "TKM": (None, ("Turkmen", "Turkmens", "Turkmenistani", "Turkmenia"),
            ("Туркменистан", "Туркмения", "туркменский", "туркменистанский", "туркмен"),
            ("Түрікменстан", "түрікмен")),
    "UZB": (None, ("Uzbek", "Uzbeks", "Uzbekistani", "Uzbekistanis"),
            ("Узбекистан", "узбекский", "узбекистанский", "узбек"),
            ("Өзбекстан", "өзбек")),
    "AFG": (None, ("Afghan", "Afghans"),
            ("Афганистан", "афганский", "афганец", "афганцы"),
            ("Ауғанстан", "ауған")),
    "RUS": ("Russia", ("Russia", "Russian", "Russians"),
            ("Россия", "РФ", "российский", "россиянин", "россияне", "россиян"),
            ("Ресей", "Ресей Федерациясы")),
    "CHN": (None, ("Chinese", "PRC"),
            ("Китай", "КНР", "китайский", "китаец", "китайцы"),
            ("Қытай", "ҚХР")),
    "IRN": (None, ("Iranian", "Iranians"), ("иранский",), ()),
    "PAK": (None, ("Pakistani", "Pakistanis"), ("пакистанский",), ()),
    "IND": (None, ("Indian", "Indians"), ("индийский",), ()),
    "TUR": (None, ("Turkey", "Turkish", "Turks", "Republic of Turkey"), ("турецкий",), ()),
    "MNG": (None, ("Mongolian", "Mongolians"), ("монгольский",), ()),
    "AZE": (None, ("Azerbaijani", "Azerbaijanis", "Azeri", "Azeris"), ("азербайджанский",), ()),
    "GEO": (None, ("Georgian", "Georgians"), ("грузинский",), ()),
    "ARM": (None, ("Armenian", "Armenians"), ("армянский",), ()),
    "USA": (None, ("American", "Americans", "US", "U.S.", "USA", "U.S.A.", "U.S.A"),
            ("США", "Соединённые Штаты", "американский"),
            ("АҚШ", "Америка Құрама Штаттары")),
    "GBR": (None, ("Britain", "Great Britain", "British", "UK", "U.K."),
            ("Великобритания", "британский"), ()),
    "DEU": (None, ("German", "Germans"), ("германский", "ФРГ"), ()),
    "FRA": (None, ("French",), ("французский",), ()),
    "JPN": (None, ("Japanese",), ("японский",), ()),
    "KOR": (None, ("South Korean", "South Koreans", "ROK"), ("южнокорейский",), ()),
    "PRK": (None, ("North Korean", "North Koreans", "DPRK"), ("КНДР", "северокорейский"), ()),
    "UKR": (None, ("Ukrainian", "Ukrainians"), ("украинский",), ()),
    "BLR": (None, ("Belarusian", "Belarusians", "Belarussian", "Byelorussia", "Belorussia", "Byelorussian"),
            ("Белоруссия", "белорусский"), ()),
    "OMN": (None, ("Omani", "Omanis"), (), ()),
    "ARE": (None, ("UAE", "Emirati"), ("ОАЭ",), ()),
    "COD": ("Democratic Republic of the Congo", ("Democratic Republic of the Congo", "DR Congo", "DRC"), (), ()),
}

# Former or everyday English names of countries outside the hand table (a capital needed, like their names).
_EXTRA: dict[str, tuple[str, ...]] = {
    "VAT": ("Vatican", "Vatican City"), "TLS": ("East Timor",), "SWZ": ("Swaziland",), "MMR": ("Burma",),
    "CIV": ("Ivory Coast",), "CPV": ("Cape Verde",), "CZE": ("Czech",),
}

# Hand-table words that are also ordinary lower-case words: they need a capital.
_RISKY = {"turkey", "china", "georgia", "georgian", "japan", "india", "afghan", "french"}

# Names two countries share: neither gets them.
_AMBIGUOUS = {"korea", "корея"}

# Names that are also common words where they would be written with a capital
# (the Russian pronoun "Того" starts sentences): resolved by country(), never found in text.
_NOT_IN_TEXT = {"того"}

# Alpha-3 codes that are English words or acronyms in capitals: not matched in free text.
_WORD_CODES = {
    "AND", "ARE", "CAN", "PER", "ARM", "PAN", "FIN", "TON", "GUY", "NOR", "MAR", "COM", "BEN", "DOM",
    "SUR", "MAC", "COD", "CUB", "GAB", "HUN", "GIN", "PRY", "BRA", "JAM", "NAM", "SEN", "COL", "GEO",
    "VAT", "LIE", "ESP", "ARG", "TUN", "GUM", "PNG", "ASM", "DMA", "KEN", "CHE",
}

# Phrases matched and discarded, so that the country word inside them is not reported.
_BLOCKERS: tuple[str, ...] = tuple(
    [f"{region} America{s}" for region in ("Latin", "South", "North", "Central") for s in ("", "n", "ns")]
    + ["the Americas", "Indian Ocean", "New Mexico", "New Jersey", "New Guinea", "Guinea pig", "Guinea pigs",
       "Новая Гвинея"]
    + [f"{adj} language{s}" for s in ("", "s") for adj in (
        "Russian", "Kazakh", "Chinese", "Uzbek", "Tajik", "Turkmen", "Kyrgyz", "German", "French",
        "Japanese", "Turkish", "Mongolian", "Armenian", "Georgian", "Ukrainian", "Belarusian",
        "Azerbaijani")]
    + [f"{adj} язык" for adj in (
        "казахский", "кыргызский", "киргизский", "таджикский", "туркменский", "узбекский", "китайский",
        "турецкий", "монгольский", "азербайджанский", "грузинский", "армянский", "японский",
        "французский", "украинский", "белорусский")]
    + [f"{adj} тілі" for adj in ("қазақ", "өзбек", "қырғыз", "тәжік", "түрікмен", "қытай")]
)

_CYR_LETTERS = "а-яёәғқңөұүһіА-ЯЁӘҒҚҢӨҰҮҺІ"
_CYRILLIC_WORD = re.compile(f"[{_CYR_LETTERS}]+")
_FREE_STEM = 8  # stems this long are distinctive enough to take any ending
_RU_ENDINGS = (
    "а", "я", "у", "ю", "е", "и", "ы", "ой", "ей", "ом", "ем", "ою", "ею", "ью", "ам", "ям", "ах", "ях",
    "ами", "ями", "ов", "ев", "ая", "яя", "ое", "ее", "ые", "ие", "ую", "юю", "ого", "его", "ому", "ему",
    "ым", "им", "ых", "их", "ыми", "ими", "ий", "ый",
)
_KK_SUFFIXES = (
    "ның", "нің", "дың", "дің", "тың", "тің", "ға", "ге", "қа", "ке", "на", "не", "ны", "ні", "ды", "ді",
    "ты", "ті", "н", "да", "де", "та", "те", "нда", "нде", "дан", "ден", "тан", "тен", "нан", "нен", "мен",
    "бен", "пен", "дағы", "дегі", "тағы", "тегі", "ндағы", "ндегі", "лар", "лер", "дар", "дер", "тар",
    "тер", "лық", "лік", "дық", "дік", "тық", "тік", "ша", "ше", "сы", "сі", "ы", "і",
)


def _alternation(options: tuple[str, ...]) -> str:
    return "(?:" + "|".join(re.escape(o) for o in sorted(options, key=len, reverse=True)) + ")"


_RU = _alternation(_RU_ENDINGS)
_KK = _alternation(_KK_SUFFIXES)

# Same-length substitutions, so offsets in the normalised text are offsets in the original.
_SAME_LENGTH = str.maketrans({"ё": "е", "Ё": "Е", "’": "'", "‘": "'", "ʼ": "'", "\u00a0": " "})


def _clean(alias: str) -> str:
    """An alias as it is stored: NFC, no stress marks, one space between words."""
    alias = unicodedata.normalize("NFC", alias).replace("\u0301", "")
    return re.sub(r"\s+", " ", alias).strip()


def _key(text: str) -> str:
    """The lookup key of a name: case, ё, apostrophes, dashes and spacing do not matter."""
    text = _clean(text).translate(_SAME_LENGTH)
    return re.sub(r"\s*[-–—]\s*", "-", text).casefold()


def _stem(word: str) -> tuple[str, bool]:
    """A Cyrillic word's stem and whether Russian case endings may follow it."""
    lower = word.lower()
    if lower[-2:] in {"ая", "яя", "ое", "ее", "ий", "ый", "ой", "ие", "ые"}:
        return word[:-2], True
    if lower[-1] in "аяйьы":
        return word[:-1], True
    if lower[-1] in "оуеиюэ":  # foreign names in these vowels do not decline ("Мали", "Перу")
        return word, False
    return word, True


def _word_pattern(word: str, kazakh: bool) -> str:
    """The regex for one word of an alias: Cyrillic words take their endings."""
    word = word.translate(_SAME_LENGTH)
    if not _CYRILLIC_WORD.fullmatch(word) or word.isupper():
        return re.escape(word)
    stem, declines = _stem(word)
    if len(stem) >= _FREE_STEM:
        return re.escape(stem) + f"[{_CYR_LETTERS}]*"
    forms = [re.escape(word)]
    if declines:
        forms.append(re.escape(stem) + _RU)
    if kazakh:
        forms.append(re.escape(word) + _KK + f"{_KK}?")
    return "(?:" + "|".join(forms) + ")"


def _alias_pattern(alias: str, *, hand: bool) -> str:
    """The regex for one alias, with its case rule (see the module docstring)."""
    parts = re.split(r"(\s*[-–—]\s*|\s+)", alias)
    body = "".join(
        (r"\s*[-–—]\s*" if part.strip() else r"\s+") if i % 2 else _word_pattern(part, hand)
        for i, part in enumerate(parts)
    )
    letters = re.sub(r"[^\w]", "", alias)
    if letters.isupper() and len(letters) <= 5:
        return body  # codes and acronyms: capitals only
    single = len(parts) == 1
    if single and (not hand or alias.casefold() in _RISKY) and alias[0].isupper():
        return f"(?={re.escape(alias[0].translate(_SAME_LENGTH))})(?i:{body})"
    return f"(?i:{body})"


def _uninverted(name: str) -> list[str]:
    """pycountry's "Korea, Republic of" as "Republic of Korea" and "Korea"; bracketed parts dropped."""
    out = []
    plain = _clean(re.sub(r"\([^)]*\)", " ", name))
    if plain != name:
        out.append(plain)
    if "," in plain:
        head, _, tail = plain.partition(",")
        tail = tail.strip()
        if re.search(r"\bof( the)?$", tail, re.IGNORECASE) or " " not in tail:
            out.append(f"{tail} {head}")
        out.append(head)
    return out


def _ascii(name: str) -> str:
    return unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()


@dataclass(frozen=True)
class _Table:
    by_code: dict[str, Country]
    by_key: dict[str, Country]
    alternatives: tuple[tuple[str, str | None], ...]  # (regex, iso3 or None for a blocker), longest first
    anchors: tuple[str, ...]  # per alternative: lower-case letters any text it matches must contain


@functools.cache
def _table() -> _Table:
    """Every country and alias (built once: immutable data)."""
    import pycountry  # imported here: the package's import stays cheap

    try:
        ru = gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=["ru"]).gettext
        kk = gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=["kk"]).gettext
    except OSError:  # a pycountry without catalogues: English and the hand table only
        ru = kk = lambda s: s  # noqa: E731

    # (alias, iso3, priority, hand): lower priority wins a shared key; a tie drops it.
    candidates: list[tuple[str, str, int, bool]] = []
    display_names: dict[str, str] = {}
    codes: dict[str, str] = {}
    for c in pycountry.countries:
        iso3, hand = c.alpha_3, c.alpha_3 in _HAND
        given = [n for n in (c.name, getattr(c, "official_name", None), getattr(c, "common_name", None)) if n]
        override = _HAND[iso3][0] if hand else None
        plain = [n for n in _uninverted(c.name) if "," not in n]
        display_names[iso3] = override or getattr(c, "common_name", None) or (plain[0] if plain else c.name)
        codes[iso3], codes[c.alpha_2] = iso3, iso3
        derived = [d for n in given for d in _uninverted(n)]
        derived += [_ascii(n) for n in given + derived if _ascii(n) != n]
        translated = [t for n in given for t in (ru(n), kk(n)) if t != n and t.strip()]
        translated_derived = [d for t in translated for d in _uninverted(t) if "," not in d]
        candidates += [(a, iso3, 1, hand) for a in given]
        if hand:
            _, en, rus, kaz = _HAND[iso3]
            candidates += [(a, iso3, 0, True) for a in (*en, *rus, *kaz)]
        candidates += [(a, iso3, 0, False) for a in _EXTRA.get(iso3, ())]
        candidates += [(a, iso3, 2, hand) for a in translated]
        candidates += [(a, iso3, 3, hand) for a in derived + translated_derived]

    best: dict[str, tuple[int, set[str], str, bool]] = {}
    for alias, iso3, priority, hand in candidates:
        alias = _clean(alias)
        key = _key(alias)
        if not key or key in _AMBIGUOUS:
            continue
        held = best.get(key)
        if held is None or priority < held[0]:
            best[key] = (priority, {iso3}, alias, hand)
        elif priority == held[0]:
            held[1].add(iso3)
    names: dict[str, list[str]] = {iso3: [display_names[iso3]] for iso3 in display_names}
    by_key_code: dict[str, str] = {}
    alternatives: list[tuple[str, str, str | None]] = []  # (alias, regex, iso3)
    for key, (_, owners, alias, hand) in best.items():
        if len(owners) != 1:
            continue
        (iso3,) = owners
        by_key_code[key] = iso3
        if alias not in names[iso3]:
            names[iso3].append(alias)
        if key not in _NOT_IN_TEXT:
            alternatives.append((alias, _alias_pattern(alias, hand=hand), iso3))
    alternatives += [(iso3, re.escape(iso3), iso3) for iso3 in display_names if iso3 not in _WORD_CODES]
    alternatives += [(phrase, _alias_pattern(phrase, hand=True), None) for phrase in _BLOCKERS]
    # Longest alias first: at one position the regex takes the first alternative that fits.
    alternatives.sort(key=lambda a: (-len(a[0]), a[0]))

    countries = {
        c.alpha_3: Country(iso3=c.alpha_3, iso2=c.alpha_2, name=display_names[c.alpha_3],
                           names=tuple(names[c.alpha_3]))
        for c in pycountry.countries
    }
    return _Table(
        by_code={code: countries[iso3] for code, iso3 in codes.items()},
        by_key={key: countries[iso3] for key, iso3 in by_key_code.items()},
        alternatives=tuple((regex, iso3) for _, regex, iso3 in alternatives),
        anchors=tuple(_anchor(alias) for alias, _, _ in alternatives),
    )


def _anchor(alias: str) -> str:
    """The first letters (at most two) of an alias's first word that every form of it keeps.

    A Cyrillic word keeps its stem whatever its ending, so the anchor comes from the stem;
    case does not count (most aliases match in any case).
    """
    first = re.split(r"[\s\-–—]+", alias.translate(_SAME_LENGTH).strip())[0]
    if _CYRILLIC_WORD.fullmatch(first) and not first.isupper():
        first = _stem(first)[0]
    return first.lower()[:2]


def _chosen(text: str) -> tuple[int, ...]:
    """The alternatives (by index, in their order) that could occur in ``text``: those whose anchor letters it holds."""
    lowered = text.lower()
    return tuple(i for i, anchor in enumerate(_table().anchors) if anchor in lowered)


@functools.lru_cache(maxsize=None)
def _alternative(i: int) -> re.Pattern[str]:
    """Alternative ``i`` alone between word boundaries, compiled on first use and kept (about a thousand in all).

    One regex over the aliases a text could hold was compiled per question: each question holds
    another set of anchor letters, and a Russian question's set compiled for 100-130 ms. Alone,
    an alias compiles once per process, whichever questions bring it.
    """
    return re.compile(r"(?<!\w)(?:" + _table().alternatives[i][0] + r")(?!\w)")


def warm_up() -> None:
    """Compile every alias now (about 1,600, half a second) rather than on the questions that first name them: a
    server does it in the background once it is up (``web._switch_engine``)."""
    for i in range(len(_table().alternatives)):
        _alternative(i)


def _matches(text: str, chosen: Sequence[int]) -> Iterator[tuple[int, int, int]]:
    r"""(alternative, start, end) of what the alternation of ``chosen`` (in that order) would find in ``text``.

    Left to right, as ``finditer`` over ``(?<!\w)(?:a|b|...)(?!\w)``: at the first position where
    any alternative matches, the first of them in order (the longest alias), then on after it.
    """
    starts = sorted({m.start() for i in chosen for m in _alternative(i).finditer(text)})
    position = 0
    for start in starts:
        if start < position:
            continue
        for i in chosen:
            match = _alternative(i).match(text, start)
            if match:
                yield i, start, match.end()
                position = match.end()
                break


def country(code_or_name: str) -> Country | None:
    """The country a code or name stands for, or None.

    Args:
        code_or_name: an ISO alpha-3 or alpha-2 code in any case ("KAZ", "kz"),
            or any name, alias, adjective or inflected form ("Kazakhstan's",
            "Kazakh", "Республика Казахстан", "Казахстана", "Қазақстанның").

    Returns:
        The Country, or None when nothing matches the whole string.
    """
    table = _table()
    text = _clean(code_or_name).translate(_SAME_LENGTH)
    text = re.sub(r"'s?$", "", text).strip()  # English possessive
    if not text:
        return None
    if text.isascii() and text.isalpha() and len(text) in (2, 3):
        found = table.by_code.get(text.upper())
        if found is not None:
            return found
    # "the Kyrgyz Republic": with and without the article ("the State of Eritrea" is pycountry's own)
    for key in (_key(text), _key(re.sub(r"^the\s+", "", text, flags=re.IGNORECASE))):
        found = table.by_key.get(key)
        if found is not None:
            return found
    for variant in (text, text[:1].upper() + text[1:]):
        for i in _chosen(variant):
            if _alternative(i).fullmatch(variant):
                iso3 = table.alternatives[i][1]
                return table.by_code[iso3] if iso3 else None
    return None


def mentions(text: str) -> list[tuple[Country, int, int]]:
    """The countries a text names, in order, with the offsets of each name.

    Args:
        text: a question or any free text, in English, Russian or Kazakh.

    Returns:
        ``(country, start, end)`` for each mention, ``text[start:end]`` being
        the name as written (without an English possessive); spans do not
        overlap. See the module docstring for what is matched.
    """
    table = _table()
    found = []
    normal = text.translate(_SAME_LENGTH)
    for i, start, end in _matches(normal, _chosen(normal)):
        iso3 = table.alternatives[i][1]
        if iso3 is not None:  # a blocker phrase holds its span and names no country
            found.append((table.by_code[iso3], start, end))
    return found


def display(iso3: str) -> str:
    """The English name for messages ("Kazakhstan" for "KAZ"); historical codes by their ISO 3166-3 name.

    An unknown code is returned as given, so that a message can always be written.
    """
    found = _table().by_code.get(iso3.strip().upper()) if len(iso3.strip()) == 3 else None
    if found is not None:
        return found.name
    import pycountry

    historic = pycountry.historic_countries.get(alpha_3=iso3.strip().upper())
    if historic is not None:
        return _uninverted(historic.name)[-1] if "," in historic.name else historic.name
    return iso3
