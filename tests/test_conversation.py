"""Follow-up questions: what an earlier turn lends, and a conversation that keeps its Answers."""

import json

import pytest

from regional_chat.conversation import Conversation, context_terms, follow_up_terms, needs_context
from regional_chat.text import with_terms
from regional_chat.types import NOT_ANSWERED, Answer, Quote


def test_needs_context():
    assert needs_context("When was it founded?")
    assert needs_context("And his organization?")
    assert needs_context("Когда его основали?")
    assert needs_context("Why?")
    assert not needs_context("Where is the UNRCCA headquartered?")


def test_context_terms_prefer_names_and_leave_numbers_out():
    assert context_terms("Kaha Imnadze heads the UN Regional Center for Preventive Diplomacy, founded in 2007.") == [
        "Kaha Imnadze",
        "UN Regional Center for Preventive Diplomacy",
        "heads",
        "founded",
    ]


def expand_question(question, history):  # what the assistant searches with for a follow-up
    return with_terms(question, follow_up_terms(question, history))


def test_expand_question_uses_the_latest_answer_first():
    quote = Quote("d", "t", "", 0, 10, "He met Kaha Imnadze, head of UNRCCA.", 0.9, (7, 19))
    first = Answer(question="Who did Nurtleu meet?", found=True, confidence=0.9, quotes=(quote,))
    assert expand_question("When was his organization founded?", [first]) == (
        "When was his organization founded? (Kaha Imnadze UNRCCA met head Nurtleu meet)"
    )
    assert expand_question("Where is the UNRCCA headquartered?", [first]) == "Where is the UNRCCA headquartered?"
    assert expand_question("When was it founded?", []) == "When was it founded?"


class EchoAssistant:
    """Answers every question with its own words as the quote, recording the history it was given."""

    def __init__(self):
        self.calls = []

    def answer(self, question, history=(), **options):
        self.calls.append((question, [a.question for a in history], options))
        quote = Quote("d", "t", "", 0, len(question), question, 0.9, (0, len(question)))
        return Answer(question=question, found=True, confidence=0.9, quotes=(quote,))


def test_a_conversation_answers_earlier_questions_in_order_and_passes_the_last_two():
    bot = EchoAssistant()
    chat = Conversation(bot, ["one?", "two?", "three?"], k=3)
    assert [c[0] for c in bot.calls] == ["two?", "three?"]  # only the last two lend terms to a follow-up
    answer = chat.ask("four?")
    assert answer.short == "four?"
    assert bot.calls[-1] == ("four?", ["two?", "three?"], {"k": 3})
    chat.ask("five?", k=5)
    assert bot.calls[-1] == ("five?", ["three?", "four?"], {"k": 5})


def test_a_conversation_refuses_a_single_string_as_earlier_questions():
    with pytest.raises(ValueError, match="history must be a list"):
        Conversation(EchoAssistant(), "Who chaired the water meeting?")


def test_an_answer_says_what_it_is():
    quote = Quote("d", "t", "", 0, 36, "He met Kaha Imnadze, head of UNRCCA.", 0.9, (7, 19))
    found = Answer(question="q", found=True, confidence=0.9, quotes=(quote,))
    assert (found.short, found.headline()) == ("Kaha Imnadze", "Kaha Imnadze")
    data = json.loads(json.dumps(found.as_dict()))
    assert data["short"] == "Kaha Imnadze" and data["found"] is True and data["quotes"][0]["highlight"] == [7, 19]
    sentence = Answer(question="q", found=True, confidence=0.9, quotes=(Quote("d", "t", "", 0, 5, "Yes. ", 0.9),))
    assert (sentence.short, sentence.headline()) == ("", "Yes. ")  # no short answer: the quote is what is shown
    refused = Answer(question="q", found=False, confidence=0.2, related=(quote,))
    assert (refused.short, refused.headline(), refused.quotes) == ("", NOT_ANSWERED, ())
    with pytest.raises(ValueError, match="must carry the quotes"):
        Answer(question="q", found=True, confidence=0.9)
