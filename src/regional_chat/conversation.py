"""Follow-up questions: what an earlier turn lends a question that leans on it, and a conversation.

"When was it founded?" says nothing by itself; after "Where is the UNRCCA headquartered?" it
is searched as "When was it founded? (UNRCCA Ashgabat ...)". The assistant does the expansion
(:func:`follow_up_terms`) from the Answers it is given as history; :class:`Conversation` keeps
those Answers for a caller who asks one question after another.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Sequence

from .text import PRONOUNS, QUESTION_WORDS
from .types import Answer

if TYPE_CHECKING:  # the assistant imports this module; a conversation only calls it
    from .assistant import Assistant

_WORD = re.compile(r"[\w'-]+", re.UNICODE)
_NAME = re.compile(r"\b[A-ZА-ЯЁ][\w'-]*(?:\s+(?:of\s+|for\s+|the\s+)?[A-ZА-ЯЁ][\w'-]*)*", re.UNICODE)


def needs_context(question: str) -> bool:
    """True when a question leans on earlier turns: a pronoun, or at most one content word."""
    words = [w.lower() for w in _WORD.findall(question)]
    if any(w in PRONOUNS for w in words):
        return True
    return len([w for w in words if w not in QUESTION_WORDS and len(w) > 1]) <= 1


def context_terms(turn: str, limit: int = 8, names_only: bool = False) -> list[str]:
    """The names and content words of an earlier turn, most telling first (numbers left out)."""
    names = [m.group().strip() for m in _NAME.finditer(turn)]
    names = [n for n in names if n.lower() not in QUESTION_WORDS and n.lower() not in PRONOUNS]
    if names_only:
        # short names first: "UNRCCA" and "Kaha Imnadze" say more per word than a long official title
        return sorted(dict.fromkeys(names), key=lambda n: len(n.split()))[:limit]
    # numbers and dates are left out: they are answers, not what a pronoun points at
    words = [w for w in _WORD.findall(turn) if w.lower() not in QUESTION_WORDS and w.lower() not in PRONOUNS and len(w) > 2 and not w[0].isdigit()]
    out: list[str] = []
    for term in names + words:
        if term.lower() not in {t.lower() for t in out} and not any(term.lower() in t.lower() for t in out):
            out.append(term)
        if len(out) >= limit:
            break
    return out


def follow_up_terms(question: str, history: Sequence[Answer]) -> list[str]:
    """Terms of the latest turns that a question leaning on them most likely refers to, best first.

    ``history`` holds the earlier turns' Answers, oldest first. From the latest
    turn come the names in its answer and first quote, or its closest related
    passage when it was not answered (what "it" or "his" most likely points
    at), then the names and key words of its question; the turn before adds
    its question's terms. Empty when the question stands on its own.
    """
    if not history or not needs_context(question):
        return []
    terms: list[str] = []
    seen = question.lower()
    for depth, turn in enumerate(reversed(history[-2:])):
        parts = [turn.search_query or turn.question]
        if depth == 0:
            # what the user was shown: the answer and its quote, or, when the documents did
            # not answer, the closest passage (it is still what the conversation was about)
            shown = (turn.quotes or turn.related)[:1]
            parts = ([turn.short] if turn.found and turn.short else []) + [q.text for q in shown] + parts
        for n, part in enumerate(parts):
            # a long quote gives only its names, and few of them, so that the expansion
            # does not drown the question's own words
            quote = depth == 0 and n < len(parts) - 1 and len(part) > 80
            for term in context_terms(part, limit=3 if quote else 6, names_only=quote):
                if term.lower() not in seen:
                    terms.append(term)
                    seen += " " + term.lower()
    return terms[:12]


class Conversation:
    """Questions asked one after another, each with the Answers before it as history.

    Args:
        assistant: the assistant that answers.
        earlier: questions asked before this conversation was made (``regional-chat ask --after``,
            the ``/ask`` API's ``history``), oldest first: each is answered now, in order, as the
            assistant answered it then, so that a follow-up leans on what the user was shown.

    Example:
        >>> chat = Conversation(Assistant.load("index"))                # doctest: +SKIP
        >>> chat.ask("Where is the UNRCCA headquartered?").short        # doctest: +SKIP
        'Ashgabat'
        >>> chat.ask("When was it founded?").short                      # doctest: +SKIP
        '2007'
    """

    def __init__(self, assistant: "Assistant", earlier: Sequence[str] = (), **options) -> None:
        if isinstance(earlier, (str, bytes)) or not all(isinstance(q, str) for q in earlier):
            raise ValueError("history must be a list of the earlier questions (strings), oldest first, not a single string.")
        self.assistant = assistant
        self.options = options  # k, mode, filters: the same for every turn
        self.answers: list[Answer] = []
        # only the last two turns lend terms to a follow-up: older ones need not be answered again
        for question in [q for q in earlier if q.strip()][-2:]:
            self.ask(question)

    def ask(self, question: str, **options) -> Answer:
        """The Answer to ``question`` given the Answers of this conversation so far (kept for the next)."""
        answer = self.assistant.answer(question, history=self.answers[-2:], **{**self.options, **options})
        self.answers.append(answer)
        return answer
