"""What a document's metadata says about it: country, date, source, title.

Three stages read the same facts, so they are read here once: the context
header that chunking prepends for search (``context_header``), the filters
that retrieval applies (``matches``) and the question understanding that
steers retrieval towards the documents a question names (``understand``).
Metadata comes in several spellings (the UN speeches say ``country_iso3: KAZ``
and ``year: 1993``; front matter says ``country: Kazakhstan`` and ``date:
2024-03-14``), and all of them count.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence
from urllib.parse import urlparse

from .types import Filter

COUNTRY_FIELDS = ("country_iso3", "country", "country_code", "countries", "iso3")
_YEAR = re.compile(r"(?<!\d)(1[89]\d\d|20\d\d)(?!\d)")
_ISO_DATE = re.compile(r"(1[89]\d\d|20\d\d)(?:-(\d\d)(?:-(\d\d))?)?")
HEADER_VERSION = "header-v1"  # recorded in the manifest: a change here re-embeds every chunk


@dataclass(frozen=True)
class Facets:
    """A document's country codes, date ("YYYY", "YYYY-MM" or "YYYY-MM-DD", or ''), title and source host."""

    countries: tuple[str, ...]
    date: str
    title: str
    source: str
    session: str

    @property
    def year(self) -> int | None:
        return int(self.date[:4]) if self.date else None


def facets(metadata: Mapping[str, str], title: str = "") -> Facets:
    """The facets of one document from its metadata (``title`` is used only when the metadata names it)."""
    from .countries import country

    codes: list[str] = []
    for key in COUNTRY_FIELDS:
        raw = str(metadata.get(key, "") or "")
        for part in re.split(r"[,;/|]", raw.strip("[]")):
            found = country(part.strip().strip("'\""))
            if found is not None and found.iso3 not in codes:
                codes.append(found.iso3)
    return Facets(
        countries=tuple(codes),
        date=_date_of(metadata),
        title=str(metadata.get("title", "") or "").strip(),
        source=_host(str(metadata.get("source", "") or metadata.get("url", "") or "")),
        session=str(metadata.get("session", "") or "").strip(),
    )


def _date_of(metadata: Mapping[str, str]) -> str:
    """An ISO date prefix from ``date`` (ISO, or any text holding a year) or ``year``; '' when neither says."""
    raw = str(metadata.get("date", "") or "").strip()
    match = _ISO_DATE.match(raw)
    if match:
        return match.group(0)
    year = _YEAR.search(raw) or _YEAR.search(str(metadata.get("year", "") or ""))
    return year.group(1) if year else ""


def _host(source: str) -> str:
    if "://" in source:
        return urlparse(source).hostname or ""
    return source.strip()


def context_header(metadata: Mapping[str, str]) -> str:
    """A short line of what the metadata says, prepended to each chunk for BM25 and the embedding.

    ``"Kazakhstan, 1993, session 48."`` for a UN speech; the country's other
    names (Kazakh, KAZ, Казахстан) go into the BM25 text only (``lexical_header``),
    where they let a question in any spelling match and cost the encoder nothing.
    Empty when the metadata says nothing useful. The chunk's offsets and quoted
    text never include it.
    """
    from .countries import display

    f = facets(metadata)
    parts = [display(code) for code in f.countries]
    if f.date:
        parts.append(f.date)
    if f.session:
        parts.append(f"session {f.session}")
    if f.title:
        parts.append(f.title)
    if f.source:
        parts.append(f.source)
    return (", ".join(parts) + ".") if parts else ""


def headed(header: str, text: str) -> str:
    """What an index reads for a chunk (and the reader for a passage): its document's header, a newline, the text.

    The text alone when there is no header. Offsets into the text start ``len(header) + 1`` characters in.
    """
    return f"{header}\n{text}" if header else text


def lexical_header(metadata: Mapping[str, str]) -> str:
    """``context_header`` plus every name of the document's countries, for the BM25 text."""
    from .countries import country

    f = facets(metadata)
    names: list[str] = []
    for code in f.countries:
        found = country(code)
        if found is not None:
            names.extend(n for n in (found.iso3, *found.names) if n not in names)
    return " ".join(x for x in (context_header(metadata), " ".join(names)) if x)


def matches(flt: Filter, doc_id: str, f: Facets, metadata: Mapping[str, str], source: str) -> bool:
    """Whether a document passes ``flt`` (every part that is set must hold)."""
    if flt.countries and not set(flt.countries) & set(f.countries):
        return False
    if flt.since and (not f.date or f.date[: len(flt.since)] < flt.since):
        return False
    if flt.until and (not f.date or f.date[: len(flt.until)] > flt.until):
        return False
    if flt.sources and not any(s.lower() in source.lower() for s in flt.sources):
        return False
    if flt.paths and not any(fnmatch.fnmatchcase(doc_id, p) for p in flt.paths):
        return False
    if any(fnmatch.fnmatchcase(doc_id, p) for p in flt.exclude_paths):
        return False
    for key, value in flt.fields:
        if str(metadata.get(key, "")) != value:
            return False
    return True


def describe_filter(flt: Filter) -> str:
    """``"Only Kazakhstan, 2010 to 2015"`` (``"; not documents X"`` after it for an exclusion): a filter as the answer states it; '' for no filter."""
    from .countries import display

    if not flt:
        return ""
    parts = [" or ".join(display(c) for c in flt.countries)] if flt.countries else []
    if flt.since and flt.until:
        parts.append(flt.since if flt.since == flt.until else f"{flt.since} to {flt.until}")
    elif flt.since:
        parts.append(f"from {flt.since}")
    elif flt.until:
        parts.append(f"until {flt.until}")
    parts += [f"source {s}" for s in flt.sources] + [f"documents {p}" for p in flt.paths]
    parts += [f"{k} = {v}" for k, v in flt.fields]
    said = ("Only " + ", ".join(parts)) if parts else ""
    if flt.exclude_paths:
        left_out = "not " + ", ".join(f"documents {p}" for p in flt.exclude_paths)
        said = f"{said}; {left_out}" if said else left_out[0].upper() + left_out[1:]
    return said


@dataclass(frozen=True)
class Understood:
    """What a question names that the index's metadata holds: a preference for those documents."""

    countries: tuple[str, ...] = ()
    years: tuple[int, ...] = ()
    titles: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.countries or self.years or self.titles)

    def describe(self) -> str:
        """``"Searched Kazakhstan, 1993"``; '' when nothing was understood."""
        from .countries import display

        parts = [display(c) for c in self.countries] + [str(y) for y in self.years] + [f"“{t}”" for t in self.titles]
        return ("Searched " + ", ".join(parts)) if parts else ""

    def share(self, f: Facets) -> float:
        """How much of what the question names a document matches: 0 to 1, the parts counted alike.

        A document whose metadata does not say (no country, no year: a news article dropped in
        beside the speeches) is not a mismatch: that part counts as matched, so the question's
        naming a country never ranks such a document under the speeches that carry the name.
        On the domain dev split this took "Which Kazakh minister met ...?" (about the shipped
        article, which has no metadata) back from Kazakhstan's speeches (docs/QUALITY.md).
        """
        named = matched = 0
        if self.countries:
            named += 1
            matched += not f.countries or bool(set(self.countries) & set(f.countries))
        if self.years:
            named += 1
            matched += f.year is None or f.year in self.years
        if self.titles:
            named += 1
            matched += f.title in self.titles
        return matched / named if named else 0.0


def understand(question: str, known: "Iterable[Facets]") -> Understood:
    """The countries, years and titles ``question`` names that some document of ``known`` has.

    A name the index has no document for is ignored (asking about Chad in a
    Central Asian corpus should not narrow anything), and so is a title of
    fewer than three words (too easily a phrase of the question).
    """
    from .countries import mentions
    from .text import attribution, years_in

    known = list(known)
    have_countries = {c for f in known for c in f.countries}
    have_years = {f.year for f in known if f.year is not None}
    countries: list[str] = []
    for found, _, _ in mentions(question):
        if found.iso3 in have_countries and found.iso3 not in countries:
            countries.append(found.iso3)
    years: list[int] = []
    # a year in the clause naming the speech ("according to its 2012 speech") is the speech's; the question's
    # other years are what the speech talks about ("the events of 2011"), so they steer nothing then
    said = attribution(question)
    for span in years_in(said if years_in(said) else question):
        first, last = _year_range(span)
        for year in range(first, last + 1):
            if year in have_years and year not in years:
                years.append(year)
    lowered = " ".join(question.lower().split())
    titles = sorted({f.title for f in known if len(f.title.split()) >= 3 and " ".join(f.title.lower().split()) in lowered})
    return Understood(tuple(countries), tuple(years), tuple(titles))


def _year_range(span: object) -> tuple[int, int]:
    """(first, last) of what ``text.years_in`` returned: a (year, start, end) tuple or a span with first/last."""
    if isinstance(span, Sequence):
        return int(span[0]), int(span[0])
    return int(getattr(span, "first")), int(getattr(span, "last"))


def filter_from(where: Sequence[str] = (), *, since: str = "", until: str = "") -> Filter:
    """A :class:`Filter` from ``FIELD=VALUE`` strings (the CLI's ``--where``, the ``/ask`` API's ``where``).

    ``country`` (a code or any name: KAZ, Kazakhstan, Казахстан), ``source``
    (a substring of the source or URL), ``path`` (a glob on the document id)
    and ``since``/``until`` have their own meaning; any other field must equal
    the value.

    Raises:
        ValueError: a part without ``=``, or a country no code or name resolves.
    """
    from .countries import country

    countries: list[str] = []
    sources: list[str] = []
    paths: list[str] = []
    fields: list[tuple[str, str]] = []
    for part in where:
        key, sep, value = str(part).partition("=")
        key, value = key.strip().lower(), value.strip()
        if not sep or not key or not value:
            raise ValueError(f"a filter is FIELD=VALUE (country=KAZ, year=1993, source=un.org, path=speeches/*), got {part!r}.")
        if key in ("country", "country_iso3", "countries"):
            found = country(value)
            if found is None:
                raise ValueError(f"no country is called {value!r}: give its ISO code (KAZ) or its name (Kazakhstan).")
            countries.append(found.iso3)
        elif key == "source":
            sources.append(value)
        elif key == "path":
            paths.append(value)
        elif key == "since":
            since = value
        elif key == "until":
            until = value
        else:
            fields.append((key, value))
    return Filter(countries=tuple(countries), since=since, until=until, sources=tuple(sources), paths=tuple(paths), fields=tuple(fields))
