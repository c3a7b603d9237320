"""Metadata that search uses: context headers, filters inside retrieval, and questions that name their documents."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from regional_chat.facets import context_header, describe_filter, facets, lexical_header, understand
from regional_chat.build import build_index
from regional_chat.store import load_index
from regional_chat.retrieval import Retriever
from regional_chat.types import Filter

# Speeches as the UN General Assembly corpus gives them: the text never names its own country or year.
SPEECHES = [
    ("KAZ_48_1993", "KAZ", 1993, "We propose a conference on interaction and confidence-building measures in Asia."),
    ("KAZ_55_2000", "KAZ", 2000, "We propose a regional centre for preventive diplomacy and water cooperation."),
    ("UZB_48_1993", "UZB", 1993, "We propose a nuclear-weapon-free zone in our region and cooperation on water."),
    ("TJK_58_2003", "TJK", 2003, "We propose an international year of fresh water and a decade of action on water."),
    ("KGZ_62_2007", "KGZ", 2007, "We propose a mountain partnership and a conference on the glaciers that feed our rivers."),
]


@pytest.fixture
def speeches(tmp_path: Path, settings, embedder):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    with open(corpus / "ungd.jsonl", "w", encoding="utf-8") as handle:
        for sid, iso3, year, text in SPEECHES:
            handle.write(json.dumps({"id": sid, "country_iso3": iso3, "year": year, "session": int(sid.split("_")[1]), "text": text}) + "\n")
    build_index(corpus, tmp_path / "ix", settings, embedder=embedder, warn=lambda m: None)
    index = load_index(tmp_path / "ix", settings, embedder)
    yield index, Retriever(index, index.lexical, embedder, settings)
    index.close()


def _docs(hits) -> list[str]:
    return [h.chunk.doc_id.split("#")[1] for h in hits]


def test_header_says_country_year_and_session():
    meta = {"country_iso3": "KAZ", "year": "1993", "session": "48"}
    assert context_header(meta) == "Kazakhstan, 1993, session 48."
    lexical = lexical_header(meta)
    assert lexical.startswith("Kazakhstan, 1993, session 48.")
    for name in ("KAZ", "Kazakh", "Казахстан", "Қазақстан"):
        assert name in lexical.split() or name in lexical
    assert context_header({"source": "https://mfa.gov.kz/en/news/1", "date": "2024-03-14"}) == "2024-03-14, mfa.gov.kz."
    assert context_header({}) == ""


def test_facets_read_every_spelling_of_country_and_date():
    assert facets({"country": "Kazakhstan", "date": "2024-03-14"}).countries == ("KAZ",)
    assert facets({"country": "Казахстан"}).countries == ("KAZ",)
    assert facets({"country_iso3": "UZB", "year": 1993}).year == 1993
    assert facets({"date": "March 5, 2019"}).date == "2019"
    assert facets({"country": "Atlantis"}).countries == ()


def test_headers_let_bm25_find_what_only_the_metadata_says(speeches):
    index, retriever = speeches
    hits = retriever.search("Kazakhstan 1993", 5, mode="lexical")
    assert _docs(hits)[0] == "KAZ_48_1993"  # neither word is in the speech's text
    # the chunk (and so every quote) is the text alone: offsets slice the document, no header inside
    for hit in hits:
        doc = index.document(hit.chunk.doc_id)
        assert doc.text[hit.chunk.start : hit.chunk.end] == hit.chunk.text
        assert "Kazakhstan" not in hit.chunk.text


def test_filter_applies_inside_retrieval_on_every_mode(speeches):
    _, retriever = speeches
    only = Filter(countries=("KAZ",))
    for mode in ("dense", "lexical", "hybrid"):
        hits = retriever.search("We propose cooperation on water", 5, mode=mode, where=only)
        assert set(_docs(hits)) <= {"KAZ_48_1993", "KAZ_55_2000"}, mode
    # the filter is applied before ranking, so both Kazakh speeches come back even where others score higher
    assert set(_docs(retriever.search("We propose cooperation on water", 5, mode="dense", where=only))) == {"KAZ_48_1993", "KAZ_55_2000"}
    years = Filter(since="1995", until="2005")
    assert set(_docs(retriever.search("We propose water", 5, where=years))) == {"KAZ_55_2000", "TJK_58_2003"}
    assert _docs(retriever.search("We propose water", 5, where=Filter(fields=(("session", "62"),)))) == ["KGZ_62_2007"]
    assert retriever.search("We propose water", 5, where=Filter(countries=("AFG",))) == []


def test_excluded_paths_are_never_retrieved_and_combine_with_the_other_parts(speeches):
    _, retriever = speeches
    rest = {sid for sid, *_ in SPEECHES} - {"KAZ_48_1993", "KAZ_55_2000"}
    no_kaz = Filter(exclude_paths=("*#KAZ_*",))
    for mode in ("dense", "lexical", "hybrid"):
        hits = retriever.search("We propose cooperation on water", 5, mode=mode, where=no_kaz)
        assert hits and set(_docs(hits)) <= rest, mode
    # applied before ranking: all three speeches left come back, though the Kazakh ones score higher
    assert set(_docs(retriever.search("We propose cooperation on water", 5, mode="dense", where=no_kaz))) == rest
    both = Filter(since="1993", until="1993", exclude_paths=("*#UZB_*",))
    assert _docs(retriever.search("We propose water", 5, where=both)) == ["KAZ_48_1993"]
    assert retriever.search("We propose water", 5, where=Filter(exclude_paths=("ungd.jsonl#*",))) == []


def test_question_that_names_country_and_year_ranks_its_speech_first(speeches):
    index, retriever = speeches
    question = "In its 1993 speech, what did Uzbekistan propose?"
    prefer = understand(question, index.catalogue.facets_of().values())
    assert prefer.countries == ("UZB",) and prefer.years == (1993,)
    assert prefer.describe() == "Searched Uzbekistan, 1993"
    hits = retriever.search(question, 5, prefer=prefer)
    assert _docs(hits)[0] == "UZB_48_1993"
    assert hits[0].preferred and not hits[-1].preferred
    # a boost, not a filter: the other speeches still come back after it
    assert len(hits) == 5
    # a country the index holds no document for narrows nothing
    assert not understand("What did Chad propose in 1950?", index.catalogue.facets_of().values())


def test_a_document_whose_metadata_does_not_say_is_not_ranked_under_the_named_country():
    speeches = {sid: facets({"country_iso3": iso3, "year": year}) for sid, iso3, year, _ in SPEECHES}
    article = facets({}, title="Kazakhstan and the UN")  # a news article dropped in beside the speeches
    prefer = understand("Which Kazakh minister met the UN envoy?", [*speeches.values(), article])
    assert prefer.countries == ("KAZ",) and not prefer.years
    assert prefer.share(speeches["KAZ_48_1993"]) == 1.0 and prefer.share(speeches["UZB_48_1993"]) == 0.0
    assert prefer.share(article) == 1.0  # unknown is not a mismatch: it is ranked with the Kazakh speeches, by its score
    both = understand("What did Uzbekistan propose in 1993?", [*speeches.values(), article])
    assert both.share(facets({"country": "UZB"})) == 1.0 and both.share(facets({"country": "KAZ"})) == 0.5
    assert both.share(speeches["KAZ_48_1993"]) == 0.5 and both.share(speeches["KGZ_62_2007"]) == 0.0


def test_the_year_of_the_speech_a_question_names_is_the_one_preferred_not_the_years_it_asks_about():
    known = [facets({"country_iso3": iso3, "year": year}) for _, iso3, year, _ in SPEECHES]
    asked = understand("What did Tajikistan say of the events of 2003, according to its 2007 General Assembly speech?", known)
    assert asked.years == (2007,) and asked.countries == ("TJK",)
    assert understand("In its 2003 statement, what did Tajikistan say of 1993?", known).years == (2003,)
    # without such a clause every year the question names steers, as before
    assert understand("What did Tajikistan propose in 2003 and 2007?", known).years == (2003, 2007)


def test_filter_is_checked_and_described():
    with pytest.raises(ValueError, match="tuple of strings"):
        Filter(countries="KAZ")
    with pytest.raises(ValueError, match="ISO date"):
        Filter(since="last year")
    with pytest.raises(ValueError, match="after"):
        Filter(since="2015", until="2010")
    assert describe_filter(Filter(countries=("KAZ", "UZB"), since="2010", until="2015")) == "Only Kazakhstan or Uzbekistan, 2010 to 2015"
    assert not Filter()
    with pytest.raises(ValueError, match="tuple of strings"):
        Filter(exclude_paths="news/*")
    with pytest.raises(ValueError, match="empty pattern"):
        Filter(exclude_paths=("news/*", " "))
    assert Filter(exclude_paths=("news/*",))  # an exclusion alone is a filter
    assert describe_filter(Filter(exclude_paths=("news/*",))) == "Not documents news/*"
    assert describe_filter(Filter(countries=("KAZ",), exclude_paths=("a*", "b*"))) == "Only Kazakhstan; not documents a*, documents b*"


def test_excluded_paths_match_the_document_id_as_a_glob():
    from regional_chat.facets import matches

    def passes(flt: Filter, doc_id: str) -> bool:
        return matches(flt, doc_id, facets({}), {}, "")

    flt = Filter(exclude_paths=("contexts.jsonl#a003p*",))
    assert not passes(flt, "contexts.jsonl#a003p000") and not passes(flt, "contexts.jsonl#a003p017")
    assert passes(flt, "contexts.jsonl#a013p000") and passes(flt, "contexts.jsonl#a030p003")
    # with paths, a document must match one of them and none of the exclusions
    both = Filter(paths=("news/*",), exclude_paths=("news/old/*",))
    assert passes(both, "news/a.txt") and not passes(both, "news/old/a.txt") and not passes(both, "speeches/a.txt")


def test_filter_from_where_strings():
    from regional_chat.facets import filter_from

    flt = filter_from(["country=Казахстан", "country=uzb", "source=un.org", "path=speeches/*", "session=48"], since="2010", until="2015")
    assert flt == Filter(countries=("KAZ", "UZB"), since="2010", until="2015", sources=("un.org",), paths=("speeches/*",), fields=(("session", "48"),))
    with pytest.raises(ValueError, match="FIELD=VALUE"):
        filter_from(["KAZ"])
    with pytest.raises(ValueError, match="no country is called 'Atlantis'"):
        filter_from(["country=Atlantis"])
