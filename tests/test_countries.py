import re

import pytest

from regional_chat.countries import Country, country, display, mentions


def found(text: str) -> list[tuple[str, str, int, int]]:
    return [(c.iso3, text[start:end], start, end) for c, start, end in mentions(text)]


@pytest.mark.parametrize(
    "form",
    ["KAZ", "kaz", "KZ", "kz", "Kazakhstan", "kazakhstan", "Kazakh", "Kazakhstan's", "Kazakhstan’s", "Kazakhstani",
     "Republic of Kazakhstan", "Республика Казахстан", "Республики Казахстан", "Казахстан", "Казахстана", "Казахстане",
     "Казахстаном", "казахстанский", "казахстанской", "казахи", "Қазақстан", "Қазақстанның", "Қазақстанда",
     "Қазақстан Республикасы", "  Kazakhstan "],
)
def test_every_form_of_kazakhstan_resolves_to_it(form):
    assert country(form) == country("KAZ")


@pytest.mark.parametrize(
    ("form", "iso3"),
    [("Uzbek", "UZB"), ("Узбекистане", "UZB"), ("Өзбекстан", "UZB"), ("Tajik", "TJK"), ("таджикского", "TJK"),
     ("Тәжікстан", "TJK"), ("Turkmen", "TKM"), ("Туркменией", "TKM"), ("Түрікменстан", "TKM"), ("Afghan", "AFG"),
     ("Афганистана", "AFG"), ("Ауғанстан", "AFG"), ("the Kyrgyz Republic", "KGZ"), ("Kyrgyz", "KGZ"),
     ("Киргизии", "KGZ"), ("Кыргызстана", "KGZ"), ("Қырғызстан", "KGZ"), ("Russia", "RUS"),
     ("Russian Federation", "RUS"), ("Россия", "RUS"), ("России", "RUS"), ("Российской Федерации", "RUS"),
     ("Ресей", "RUS"), ("Ресейдің", "RUS"), ("China", "CHN"), ("Китай", "CHN"), ("Китае", "CHN"), ("Қытай", "CHN"),
     ("USA", "USA"), ("US", "USA"), ("U.S.", "USA"), ("United States", "USA"), ("United States of America", "USA"),
     ("США", "USA"), ("Соединенных Штатов Америки", "USA"), ("АҚШ", "USA"), ("UK", "GBR"), ("Britain", "GBR"),
     ("Turkey", "TUR"), ("Türkiye", "TUR"), ("Turkiye", "TUR"), ("Турция", "TUR"), ("South Korea", "KOR"),
     ("Republic of Korea", "KOR"), ("Iran", "IRN"), ("Iran, Islamic Republic of", "IRN"), ("Omani", "OMN"),
     ("Côte d'Ivoire", "CIV"), ("Cote d'Ivoire", "CIV"), ("Guinea-Bissau", "GNB"), ("Congo", "COG"),
     ("Democratic Republic of the Congo", "COD"), ("the State of Eritrea", "ERI")],
)
def test_names_in_three_languages_resolve(form, iso3):
    assert country(form).iso3 == iso3


@pytest.mark.parametrize("form", ["", "XYZ", "Kazan", "Казань", "Korea", "Корея", "European Union", "Latin America"])
def test_unknown_or_ambiguous_names_resolve_to_nothing(form):
    assert country(form) is None


def test_a_country_is_a_frozen_value_with_its_codes_and_names():
    kaz = country("KAZ")
    assert (kaz.iso3, kaz.iso2, kaz.name) == ("KAZ", "KZ", "Kazakhstan")
    assert {"Kazakhstan", "Republic of Kazakhstan", "Kazakh", "Казахстан", "Қазақстан"} <= set(kaz.names)
    with pytest.raises(AttributeError):
        kaz.name = "x"  # type: ignore[misc]
    assert isinstance(kaz, Country) and country("Kazakhstan") is kaz


def test_every_name_of_every_country_resolves_back_to_it():
    every = {country(code) for code in ("KAZ", "RUS", "USA", "CHN", "GBR", "COD", "VAT", "TGO", "ERI", "PRK")}
    for c in every:
        for name in c.names:
            assert country(name) is c, name


def test_display_names_for_messages():
    assert [display(c) for c in ("KAZ", "kaz", "RUS", "USA", "GBR", "IRN", "KOR", "COD", "TWN")] == [
        "Kazakhstan", "Kazakhstan", "Russia", "United States", "United Kingdom", "Iran", "South Korea",
        "Democratic Republic of the Congo", "Taiwan",
    ]
    assert (display("YUG"), display("SUN"), display("XXX")) == ("Yugoslavia", "USSR", "XXX")


def test_mentions_in_an_english_question_with_offsets():
    text = "What did Kazakhstan's president say about the Kyrgyz Republic and Uzbek water?"
    assert found(text) == [("KAZ", "Kazakhstan", 9, 19), ("KGZ", "Kyrgyz Republic", 46, 61), ("UZB", "Uzbek", 66, 71)]
    text = "The US position on Afghan refugees, per KAZ and the U.S.A."
    assert found(text) == [("USA", "US", 4, 6), ("AFG", "Afghan", 19, 25), ("KAZ", "KAZ", 40, 43),
                           ("USA", "U.S.A.", 52, 58)]


def test_mentions_in_russian_and_kazakh_with_inflections():
    text = "Что сказал Казахстан о России и Китае?"
    assert found(text) == [("KAZ", "Казахстан", 11, 20), ("RUS", "России", 23, 29), ("CHN", "Китае", 32, 37)]
    text = "казахстанская делегация в Республике Казахстан и Российской Федерации"
    assert found(text) == [("KAZ", "казахстанская", 0, 13), ("KAZ", "Республике Казахстан", 26, 46),
                           ("RUS", "Российской Федерации", 49, 69)]
    text = "Қазақстанның Ресейге және Қытайға қатынасы, АҚШ-тың ұстанымы"
    assert found(text) == [("KAZ", "Қазақстанның", 0, 12), ("RUS", "Ресейге", 13, 20), ("CHN", "Қытайға", 26, 33),
                           ("USA", "АҚШ", 44, 47)]
    assert found("Соединённые Штаты и Узбекистан") == [("USA", "Соединённые Штаты", 0, 17),
                                                      ("UZB", "Узбекистан", 20, 30)]


def test_the_longest_name_wins_where_names_overlap():
    text = "Guinea-Bissau, Guinea, Equatorial Guinea, Papua New Guinea; Niger, Nigeria; Dominica, Dominican Republic"
    assert [(iso3, name) for iso3, name, _, _ in found(text)] == [
        ("GNB", "Guinea-Bissau"), ("GIN", "Guinea"), ("GNQ", "Equatorial Guinea"), ("PNG", "Papua New Guinea"),
        ("NER", "Niger"), ("NGA", "Nigeria"), ("DMA", "Dominica"), ("DOM", "Dominican Republic"),
    ]
    spans = [(s, e) for _, _, s, e in found(text)]
    assert all(e1 <= s2 for (_, e1), (s2, _) in zip(spans, spans[1:]))


@pytest.mark.parametrize(
    "text",
    ["the Chadwick report", "in Kazan", "в Казани, казань", "It is in the interest of IT", "kaz and kz", "IN",
     "turkey and china plates", "Кубок мира, с кубом", "в чаду", "Того же мнения", "малина",
     "Latin American countries", "the Kazakh language", "казахский язык", "қазақ тілінде", "New Guinea",
     "AND CAN ARE", "Korea", "Трансказахстанский", "an Omanian coast"],
)
def test_no_false_positive(text):
    assert found(text) == []


def test_omani_and_oman_are_both_oman_as_whole_words():
    assert found("Omani ships off Oman") == [("OMN", "Omani", 0, 5), ("OMN", "Oman", 16, 20)]


def test_known_risk_capitalised_common_words_still_match():
    # Documented: a capitalised "Chad" is taken for the country, a person's name or not.
    assert found("Chad said") == [("TCD", "Chad", 0, 4)]
    assert found("Turkey and China") == [("TUR", "Turkey", 0, 6), ("CHN", "China", 11, 16)]


def test_the_aliases_matched_one_by_one_find_what_one_regex_of_them_all_finds():
    """mentions() runs the aliases whose anchor letters occur in the text, each compiled alone and once: the same
    matches, in the same order, as one alternation of every alias (longest first), which took most of a second to compile."""
    from pathlib import Path

    from regional_chat import countries as c

    alternatives = c._table().alternatives
    full = re.compile(r"(?<!\w)(?:" + "|".join(f"(?P<a{i}>{regex})" for i, (regex, _) in enumerate(alternatives)) + r")(?!\w)")
    texts = [line for path in sorted((Path(__file__).parent / "fixtures" / "corpus").rglob("*")) if path.is_file()
             for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    texts += ["Kazakhstan's 1993 speech", "Қазақстанның 1993 жылғы сөзі", "в Казахстане, Кыргызстане и Узбекистане",
              "the Kyrgyz Republic and KAZ", "Türkiye, Côte d'Ivoire, the United States of America", "Омана и Мали", "—",
              "Papua New Guinea and Guinea-Bissau, not New Guinea", "the Republic of Korea and the Democratic People's Republic of Korea"]
    for text in texts:
        normal = text.translate(c._SAME_LENGTH)
        want = [(alternatives[int(m.lastgroup[1:])][1], m.start(), m.end()) for m in full.finditer(normal)]
        want = [w for w in want if w[0]]
        assert [(found.iso3, s, e) for found, s, e in mentions(text)] == want, text
    assert 0 < len(c._chosen("What did Kazakhstan propose in its 1993 speech?")) < len(alternatives) / 10  # a question runs few aliases


def test_warm_up_compiles_every_alias_once_and_matching_stays_the_same():
    from regional_chat import countries as c

    before = found("в Казахстане и Кыргызстане")
    c.warm_up()
    assert c._alternative.cache_info().currsize == len(c._table().alternatives)
    assert found("в Казахстане и Кыргызстане") == before and [x[0] for x in before] == ["KAZ", "KGZ"]
