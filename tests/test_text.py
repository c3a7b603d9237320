import random

import pytest

from regional_chat.text import Reflowed, YearSpan, language_of, reflow, script_of, years_in


def test_script_and_language_of_the_corpus_languages():
    assert script_of("Where is the UNRCCA?") == "latin" and script_of("Где РЦПДЦА?") == "cyrillic"
    assert script_of("2007") == "latin"  # no letters: taken as Latin
    assert language_of("Where is the UNRCCA?") == "english"
    assert language_of("Где находится штаб-квартира РЦПДЦА?") == "russian"
    assert language_of("Қазақстан Республикасы Орталық Азиядағы мемлекет.") == "kazakh"
    assert language_of("Бұл су туралы келісім") == "kazakh"


# --- years_in ------------------------------------------------------------------------------------------------


def years(text: str) -> list[tuple[int, int, str]]:
    return [(y.first, y.last, text[y.start : y.end]) for y in years_in(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("What did Kazakhstan say in 1993?", [(1993, 1993, "1993")]),
        ("1993's speech and the 2005 speech", [(1993, 1993, "1993"), (2005, 2005, "2005")]),
        ("в 1993 году", [(1993, 1993, "1993")]),
        ("1993 жылы және 1994-жылы", [(1993, 1993, "1993"), (1994, 1994, "1994")]),
        ("1993г. и 1993 ж.", [(1993, 1993, "1993"), (1993, 1993, "1993")]),
        ("in 2005.", [(2005, 2005, "2005")]),
        ("on 05.12.1993", [(1993, 1993, "1993")]),
        ("the 1990s and 2000s", [(1990, 1999, "1990s"), (2000, 2009, "2000s")]),
        ("in the 1990's", [(1990, 1990, "1990")]),  # the apostrophe is read as a possessive
        ("в 1990-х годах, 1990-е годы", [(1990, 1999, "1990-х"), (1990, 1999, "1990-е")]),
        ("1990 жылдары, 80-жылдары", [(1990, 1999, "1990"), (1980, 1989, "80")]),
        ("the '90s, the 80s, в 70-х", [(1990, 1999, "'90s"), (1980, 1989, "80s"), (1970, 1979, "70-х")]),
        ("from 1991-1995 and 1996 – 2000", [(1991, 1995, "1991-1995"), (1996, 2000, "1996 – 2000")]),
        ("1995-1991", [(1995, 1995, "1995"), (1991, 1991, "1991")]),
        ("1899, 1900, 2099, 2100", [(1900, 1900, "1900"), (2099, 2099, "2099")]),
    ],
)
def test_years_a_question_names(text, expected):
    assert years(text) == expected


@pytest.mark.parametrize(
    "text",
    ["1,993 tonnes", "2005.5", "2005,5", "1.2005", "19931", "2005 %", "2005%", "$2000", "1993th", "session 48",
     "the 48th session", "in their 90s", "the 20s", "2005a"],
)
def test_numbers_that_are_not_years(text):
    assert years_in(text) == []


def test_year_spans_are_frozen_values_with_offsets():
    (span,) = years_in("in 1993")
    assert span == YearSpan(first=1993, last=1993, start=3, end=7)
    with pytest.raises(AttributeError):
        span.first = 1  # type: ignore[misc]


# --- reflow --------------------------------------------------------------------------------------------------

UN_SAMPLE = (
    "I shall read out the following statement\non behalf of the Deputy Prime Minister and Foreign Minister of "
    "Afghanistan.\n\"Allow me to express"
)
LIST_SAMPLE = "as follows:\n- item one;\n- item two.\n1. first;\n(a) second"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (UN_SAMPLE, UN_SAMPLE.replace("statement\non", "statement on")),
        ("the develop-\nment of the region", "the development of the region"),
        ("the Trans-\nCaspian pipeline", "the Trans-Caspian pipeline"),
        ("in the 20-\n05 biennium", "in the 20- 05 biennium"),  # a hyphen after a digit: an ordinary break
        ("COVID-\n19 response", "COVID-19 response"),
        ("first paragraph\n\nsecond", "first paragraph\n\nsecond"),
        ("first paragraph  \n \n\n  second", "first paragraph\n\nsecond"),
        ("joined   \n   here,  not  there", "joined here,  not  there"),
        (LIST_SAMPLE, LIST_SAMPLE),
        ("items without punctuation\n- one\n- two", "items without punctuation - one - two"),  # documented limit
        ("It ended.\nThe next sentence", "It ended.\nThe next sentence"),
        ("He said: «Да».\n«Нет»", "He said: «Да».\n«Нет»"),
        ("it ended.\nand went on", "it ended. and went on"),
        ("a dash -\nthen more", "a dash - then more"),
        ("Windows\r\nline ends", "Windows line ends"),
        ("\nleading and trailing breaks stay\n", "\nleading and trailing breaks stay\n"),
        ("разви-\nтия региона и Транс-\nКаспийский", "развития региона и Транс-Каспийский"),
    ],
)
def test_reflow_outputs(text, expected):
    assert reflow(text).text == expected


@pytest.mark.parametrize("text", ["", "no breaks here", "two  spaces\tand a tab", "ends with a hyphen-"])
def test_reflow_is_identity_without_breaks(text):
    flowed = reflow(text)
    assert flowed.text == text
    assert [flowed.position(i) for i in range(len(text) + 1)] == list(range(len(text) + 1))


def test_reflow_positions_and_spans_on_the_un_sample():
    flowed = reflow(UN_SAMPLE)
    start = UN_SAMPLE.index("statement")
    end = UN_SAMPLE.index("behalf") + len("behalf")
    s, e = flowed.span(start, end)
    assert flowed.text[s:e] == "statement on behalf"
    assert flowed.position(len(UN_SAMPLE)) == len(flowed.text)
    with pytest.raises(ValueError):
        flowed.position(len(UN_SAMPLE) + 1)
    with pytest.raises(ValueError):
        flowed.span(5, 4)


def test_reflow_maps_a_joined_word_and_its_hyphen():
    text = "develop-\nment"
    flowed = reflow(text)
    assert [flowed.position(i) for i in range(len(text) + 1)] == [0, 1, 2, 3, 4, 5, 6, 7, 7, 7, 8, 9, 10, 11]
    assert flowed.span(0, len(text)) == (0, len("development"))


def _random_text(rng: random.Random) -> str:
    words = ["word", "Word", "develop", "ment", "Trans", "Caspian", "2005", "Казахстан", "end.", "Start", '"Allow',
             "1.", "said:", "a"]
    tokens = rng.choices(words + ["\n", "\n", "-", " ", "  ", "\n\n", " \n ", "-\n"], k=rng.randint(0, 30))
    return "".join(tokens)


def test_reflow_position_map_property_over_random_texts():
    rng = random.Random(20240611)
    for _ in range(400):
        text = _random_text(rng)
        flowed = reflow(text)
        assert isinstance(flowed, Reflowed)
        positions = [flowed.position(i) for i in range(len(text) + 1)]
        assert positions[0] == 0 and positions[-1] == len(flowed.text)
        assert all(a <= b for a, b in zip(positions, positions[1:])), text
        # only blank space and hyphens are ever removed: every other character survives, in place
        for i, ch in enumerate(text):
            if ch not in " \t\r\n-":
                assert flowed.text[positions[i]] == ch, (text, i)
        kept = [c for c in text if c not in " \t\r\n-"]
        assert [c for c in flowed.text if c not in " \t\r\n-"] == kept
        assert reflow(flowed.text).text == flowed.text, text  # reflowing twice changes nothing


def test_follow_up_terms_are_appended_and_taken_off_again():
    from regional_chat.text import own_words, with_terms

    asked = with_terms("Когда он основан?", ["Kaha Imnadze", "UNRCCA"])
    assert asked == "Когда он основан? (Kaha Imnadze UNRCCA)"
    assert own_words(asked) == "Когда он основан?"
    assert with_terms("Who (exactly) met?", []) == own_words("Who (exactly) met?") == "Who (exactly) met?"


@pytest.mark.parametrize(
    "question, read",
    [
        ("According to Kyrgyzstan's 1992 General Assembly speech, by how many countries had Kyrgyzstan been recognized?",
         "By how many countries had Kyrgyzstan been recognized?"),
        ("In its 2012 speech, what new police body did Kazakhstan suggest?", "What new police body did Kazakhstan suggest?"),
        ("In his 1992 address to the General Assembly, what formula did Kazakhstan's President propose?",
         "What formula did Kazakhstan's President propose?"),
        ("What reform programme had Turkmenistan adopted, according to its 1993 General Assembly speech?",
         "What reform programme had Turkmenistan adopted?"),
        ("How much uranium waste lies on Kyrgyz soil, as the country told the Assembly in 2013?", "How much uranium waste lies on Kyrgyz soil?"),
        ("What principle did Kazakhstan and Russia adopt, as Kazakhstan told the Assembly in 1999?", "What principle did Kazakhstan and Russia adopt?"),
        ("How many homes did the Government rebuild, as told to the General Assembly in 1996?", "How many homes did the Government rebuild?"),
        ("What agency did the President propose in the 2022 general debate?", "What agency did the President propose?"),
        # the follow-up terms stay after the question
        ("According to Uzbekistan's 2012 speech, how high would the dam be? (Rogun)", "How high would the dam be? (Rogun)"),
    ],
)
def test_the_clause_naming_the_speech_is_not_read(question, read):
    from regional_chat.text import without_attribution

    assert without_attribution(question) == read


@pytest.mark.parametrize(
    "question",
    [
        "In 2012, what did Kazakhstan propose?",  # a year alone is part of the question
        "In its speech, what?",  # too little would be left
        "Who was thanked in Tajikistan's 1997 General Assembly statement for his mediation in Tajikistan?",  # not at the end
        "What did the speech of the President of Kazakhstan say about water?",
        "Когда он основан?",
    ],
)
def test_a_question_without_such_a_clause_is_read_as_asked(question):
    from regional_chat.text import without_attribution

    assert without_attribution(question) == question
