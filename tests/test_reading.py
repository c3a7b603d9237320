"""reading/: windows and spans map back to exact characters; the answerer quotes verbatim; the shipped reader."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from regional_chat.reading.answerer import FEATURES, Calibration, ReaderAnswerer, is_answer_text, load_calibration, question_echo, trim_page_marks
from regional_chat.reading.model import ReaderError, backbone_folder, load_tokenizer, load_trained
from regional_chat.reading.reader import WEIGHTS, Reader, Reading
from regional_chat.reading.windows import SpanScore, best_spans, make_windows, trim_question
from regional_chat.types import Chunk, Document, Hit

ARTICLE = Path(__file__).resolve().parents[1] / "corpus" / "kazakhstan-un-preventive-diplomacy-unrcca-meeting.txt"


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(backbone_folder("minilm"))


@pytest.mark.parametrize("backbone", ["minilm", pytest.param("e5", marks=pytest.mark.slow)])
def test_context_tokens_point_at_the_exact_characters_of_their_passage(backbone):
    # e5's SentencePiece tokens ("▁Kaha") carry the space before their word: it is never part of a token's span
    tokenizer = load_tokenizer(backbone_folder(backbone))
    passages = ["UNRCCA was founded in 2007 in Ashgabat.", "Kaha Imnadze heads it\nsince 2023 — «Центр» too.", "  Indented , spaced ."]
    for headers in (None, ["Kazakhstan, 2023.", "", "Header"]):
        windows = make_windows(tokenizer, "Who heads UNRCCA?", passages, headers=headers)
        assert [w.passage for w in windows] == [0, 1, 2]
        for w in windows:
            text = passages[w.passage]
            pieces = [text[s:e] for s, e in w.offsets if s >= 0]
            assert pieces and all(p.strip() == p and p for p in pieces)
            # the pieces, in order, are the passage without its white space: under a header too, its first word
            assert "".join(pieces) == "".join(text.split())
            assert len(w.input_ids) == len(w.offsets) == len(w.token_type_ids)


def test_a_long_passage_is_read_in_overlapping_windows_that_cover_it(tokenizer):
    passage = " ".join(f"Sentence {i} names the town of Place{i}." for i in range(120))
    windows = make_windows(tokenizer, "Which town?", [passage], max_len=64, stride=16)
    assert len(windows) > 5 and all(len(w.input_ids) <= 64 for w in windows)
    covered = set()
    for w in windows:
        for s, e in w.offsets:
            if s >= 0:
                covered.update(range(s, e))
    assert covered == {i for i, ch in enumerate(passage) if not ch.isspace()}
    # neighbouring windows share tokens (the stride), so an answer on a border is whole in one of them
    first = {o for o in windows[0].offsets if o[0] >= 0}
    second = {o for o in windows[1].offsets if o[0] >= 0}
    assert len(first & second) == 16


def test_a_long_question_is_cut_at_a_token_end(tokenizer):
    q = "where " * 200
    cut = trim_question(tokenizer, q, 10)
    assert q.startswith(cut) and cut.endswith("where") and len(cut.split()) == 10
    assert trim_question(tokenizer, "short one?", 10) == "short one?"


def _window_and_zero_logits(tokenizer, question, passage):
    """One window of ``passage`` and all-zero start/end logits over it, to set by hand."""
    (window,) = make_windows(tokenizer, question, [passage])
    n = len(window.input_ids)
    return window, window.context, np.zeros((1, n)), np.zeros((1, n))


def test_best_span_takes_the_highest_start_plus_end_within_the_length_limit(tokenizer):
    passage = "Kaha Imnadze heads the centre in Ashgabat."
    window, ctx, start, end = _window_and_zero_logits(tokenizer, "Who?", passage)
    start[0, ctx[0]], end[0, ctx[1]] = 5.0, 5.0  # the first two context tokens: 10
    start[0, ctx[3]] = 9.0  # with the end at ctx[1] it would make 14, but an end before its start never counts
    start[0, 0], end[0, 0] = 1.0, 2.0
    (span,) = best_spans([window], start, end, max_answer_tokens=30)
    assert span.score == pytest.approx(10.0) and span.null == 3.0
    assert (span.start, span.end) == (window.offsets[ctx[0]][0], window.offsets[ctx[1]][1])
    assert passage[span.start : span.end].lower().startswith("kaha")


def test_the_answer_length_limit_is_kept(tokenizer):
    passage = "one two three four five six seven eight nine ten"
    window, ctx, start, end = _window_and_zero_logits(tokenizer, "What?", passage)
    start[0, ctx[0]], end[0, ctx[-1]] = 10.0, 10.0
    (span,) = best_spans([window], start, end, max_answer_tokens=3)
    assert len(passage[span.start : span.end].split()) <= 3


def test_a_length_penalty_prefers_the_short_answer_a_long_one_barely_beats_and_keeps_its_raw_score(tokenizer):
    passage = "the Kyoto Protocol to the United Nations Framework Convention on Climate Change"
    window, ctx, start, end = _window_and_zero_logits(tokenizer, "Which agreement?", passage)
    start[0, ctx[1]] = 8.0  # "Kyoto"
    end[0, ctx[2]], end[0, ctx[-1]] = 7.5, 8.0  # "Protocol" (2 tokens) against "... Change" (12 tokens): 15.5 < 16.0
    (long,) = best_spans([window], start, end)
    assert passage[long.start : long.end] == passage[len("the ") :] and long.score == pytest.approx(16.0)
    (short,) = best_spans([window], start, end, length_penalty=0.1)  # 15.5 - 0.1 > 16.0 - 1.1
    assert passage[short.start : short.end] == "Kyoto Protocol" and short.score == pytest.approx(15.5)
    # a penalty never picks a span the logits rank far lower
    end[0, ctx[2]] = 4.0
    (kept,) = best_spans([window], start, end, length_penalty=0.1)
    assert passage[kept.start : kept.end] == passage[len("the ") :]


def test_a_rejected_span_gives_way_to_the_window_s_next_best_and_all_rejected_gives_none(tokenizer):
    passage = "Kaha Imnadze heads the centre in Ashgabat."
    window, ctx, start, end = _window_and_zero_logits(tokenizer, "Who heads the centre?", passage)

    def token(at):  # the context token starting at character ``at`` of the passage
        return next(int(t) for t in ctx if window.offsets[t][0] == at)

    def last(upto):  # the context token ending at character ``upto``
        return next(int(t) for t in ctx if window.offsets[t][1] == upto)

    start[0, token(passage.index("heads"))], end[0, last(passage.index(" centre"))] = 9.0, 9.0  # "heads the": 18, the best
    start[0, token(0)], end[0, last(len("Kaha Imnadze"))] = 8.0, 8.0  # "Kaha Imnadze": 16, the next
    (best,) = best_spans([window], start, end)
    assert passage[best.start : best.end] == "heads the"
    seen = []

    def no_heads(p, a, b):
        seen.append((p, passage[a:b]))
        return "heads" in passage[a:b]

    (kept,) = best_spans([window], start, end, reject=no_heads)
    assert passage[kept.start : kept.end] == "Kaha Imnadze"
    assert kept.score == pytest.approx(16.0) and kept.null == best.null and seen[0] == (0, "heads the")
    assert best_spans([window], start, end, reject=lambda p, a, b: True) == []
    # with several spans a window, the rejected ones are left out of the list
    spans = best_spans([window], start, end, per_window=3, reject=no_heads)
    assert spans and all("heads" not in passage[s.start : s.end] for s in spans)


@pytest.mark.parametrize(
    "question, span, echoes",
    [
        ("Which integration organization did Kazakhstan consider very promising?", "that integration organization", True),
        ("Which integration organization did Kazakhstan consider very promising?", "Eurasian Economic Community", False),
        ("According to Kyrgyzstan's 1992 speech, how many countries recognized it?", "Kyrgyzstan", True),
        ("According to Kyrgyzstan's 1992 speech, how many countries recognized it?", "107 countries", False),
        ("Which committee did Afghanistan chair during the seventy-third session?", "Third Committee", False),
        ("When was it founded? (UNRCCA Kaha Imnadze)", "UNRCCA", True),
        ("When was the centre founded?", "founding", True),
        ("When was the centre founded?", "2007", False),
        ("What happened in 2007?", "2007", True),
        ("Who?", "the", False),
    ],
)
def test_a_span_that_only_repeats_the_question_is_told(question, span, echoes):
    assert question_echo(question)(span) is echoes


class FixedReader(Reader):
    """The reader's network replaced by given spans: what the answerer does with them is under test.

    It keeps the question and the headers it was last given (``asked``)."""

    def __init__(self, spans, null=0.0):
        super().__init__(folder=WEIGHTS)
        self.spans = spans
        self.null = null
        self.asked: tuple | None = None

    def read(self, question, passages, batch=16, headers=None, per_window=1, reject=None):
        self.asked = (question, headers)
        self.rejects = reject
        return Reading(tuple(self.spans), self.null, len(passages))


def _hits(text: str, doc_id: str = "a.txt", pieces=((0, None),)):
    out = []
    for seq, (a, b) in enumerate(pieces):
        b = len(text) if b is None else b
        out.append(Hit(Chunk(seq + 1, doc_id, seq, a, b, text[a:b]), score=1.0 - 0.1 * seq))
    return out


TEXT = "The centre opened in 2007. It is headed by Kaha Imnadze, who arrived in May. Its seat is Ashgabat."
DOC = Document("a.txt", TEXT, "A", "0" * 64, {"source": "https://example.org/a"})


def test_the_answer_quotes_the_sentence_holding_the_span_verbatim():
    at = TEXT.index("Kaha Imnadze")
    hits = _hits(TEXT, pieces=((0, 26), (27, len(TEXT))))
    span = SpanScore(0, 1, at - 27, at - 27 + len("Kaha Imnadze"), 9.0, 1.0)
    answerer = ReaderAnswerer(FixedReader([span]), Calibration.uncalibrated())
    answer = answerer.extract("Who heads it?", hits, {"a.txt": DOC}.__getitem__)
    assert answer.found and answer.short == "Kaha Imnadze"
    (quote,) = answer.quotes
    assert TEXT[quote.start : quote.end] == quote.text == "It is headed by Kaha Imnadze, who arrived in May."
    assert quote.highlighted_text == "Kaha Imnadze" and quote.source == "https://example.org/a"


def test_a_quote_is_the_whole_sentence_across_the_lines_a_speech_is_wrapped_at():
    text = "Poverty remains.\nVery few Afghans have access to water, and only 6 per cent of the\nAfghan population has electricity.\nOur achievements"
    doc = Document("s.txt", text, "S", "0" * 64)
    at = text.index("6 per cent")
    span = SpanScore(0, 0, at, at + len("6 per cent"), 9.0, 1.0)
    answer = ReaderAnswerer(FixedReader([span]), Calibration.uncalibrated()).extract("How many?", _hits(text, "s.txt"), {"s.txt": doc}.__getitem__)
    (quote,) = answer.quotes
    assert quote.text == "Very few Afghans have access to water, and only 6 per cent of the\nAfghan population has electricity." == text[quote.start : quote.end]
    assert quote.highlighted_text == "6 per cent"


def test_a_page_mark_at_either_end_of_a_span_is_not_part_of_the_short_answer():
    # TKM 2008: a page break left the document's job number and page between "organize in" and "2009"
    text = "Turkmenistan is prepared to organize in \n \n \n5 08-53135 \n \n2009 an international conference on that problem."
    doc = Document("s.txt", text, "S", "0" * 64)
    at = text.index("5 08-53135")
    span = SpanScore(0, 0, at, text.index("2009") + 4, 9.0, 1.0)
    answer = ReaderAnswerer(FixedReader([span]), Calibration.uncalibrated()).extract("In what year?", _hits(text, "s.txt"), {"s.txt": doc}.__getitem__)
    (quote,) = answer.quotes
    assert answer.short == quote.highlighted_text == "2009" and text[quote.start : quote.end] == quote.text
    assert trim_page_marks(text, text.index("\n \n \n5"), text.index("2009") + 4) == (text.index("2009"), text.index("2009") + 4)
    end = "in 2009\nA/63/PV.13\nnext"
    assert trim_page_marks(end, 3, end.index("PV.13") + 5) == (3, 7)
    # a mark inside the span stays (a quote is a verbatim slice); a span that is only a mark, or none, is left alone
    inside = "on\n20 August\n08-51749 30\n2010 at"
    assert trim_page_marks(inside, 3, inside.index("2010") + 4) == (3, inside.index("2010") + 4)
    assert trim_page_marks("a\n08-53135\nb", 2, 10) == (2, 10) and trim_page_marks("in\n23\n2009", 3, 10) == (3, 10)


def test_a_low_margin_is_refused_and_never_shows_a_high_confidence():
    span = SpanScore(0, 0, 21, 25, 1.0, 6.0)  # the window's no-answer score beats the span
    answerer = ReaderAnswerer(FixedReader([span], null=6.0), Calibration.uncalibrated())
    answer = answerer.extract("When?", _hits(TEXT), {"a.txt": DOC}.__getitem__)
    assert not answer.found and not answer.quotes and answer.related
    assert answer.confidence < answerer.calibration.threshold
    assert answer.related[0].highlight is None and TEXT[answer.related[0].start : answer.related[0].end] == answer.related[0].text
    told = answerer.extract("When?", _hits(TEXT), {"a.txt": DOC}.__getitem__, abstain=False)
    assert not told.found and told.short == "2007" and told.quotes


def test_markup_and_spans_without_letters_are_never_answers():
    assert not is_answer_text("a <script>x</script> b", 2, 9) and not is_answer_text("a -- b", 2, 4)
    assert not is_answer_text("see </div> here", 4, 9) and is_answer_text("x < 5 and y > 3", 0, 5)
    assert is_answer_text("Kaha Imnadze, 2007", 0, 12)
    text = "Alert: <script>alert(1)</script> was found in the page."
    doc = Document("s.txt", text, "S", "0" * 64)
    span = SpanScore(0, 0, 7, 14, 20.0, -5.0)  # "<script": a huge margin, still no answer
    assert text[7:14] == "<script"
    answer = ReaderAnswerer(FixedReader([span], null=-5.0), Calibration.uncalibrated()).extract("What?", _hits(text, "s.txt"), {"s.txt": doc}.__getitem__)
    assert not answer.found and answer.confidence <= 0.5


def test_no_passages_is_no_answer_without_loading_a_model(tmp_path):
    reader = Reader(tmp_path)  # no weights there: reading nothing must not need them
    assert reader.read("Who?", []) == Reading((), 0.0, 0)
    answer = ReaderAnswerer(reader, Calibration.uncalibrated()).extract("Who?", [], {}.__getitem__)
    assert not answer.found and answer.confidence == 0.0 and not answer.quotes and not answer.related


def test_calibration_refuses_features_it_was_not_fitted_on():
    cal = Calibration.uncalibrated()
    data = cal.to_json()
    assert Calibration.from_json(data) == cal
    with pytest.raises(ValueError, match="refit"):
        Calibration.from_json({**data, "features": ["margin"]})
    assert cal.probability([3.0] + [0.0] * (len(FEATURES) - 1)) > cal.probability([-3.0] + [0.0] * (len(FEATURES) - 1))


def test_a_missing_or_foreign_reader_folder_fails_with_what_to_run(tmp_path):
    with pytest.raises(ReaderError, match="train_reader.py"):
        load_trained(tmp_path)
    (tmp_path / "reader.json").write_text(json.dumps({"format": 999, "backbone": "minilm"}))
    with pytest.raises(ReaderError, match="format 999"):
        load_trained(tmp_path)


# ------------------------------------------------------------------ the shipped weights (real model)


@pytest.mark.slow
def test_the_shipped_reader_reads_what_its_file_says_it_read():
    meta = json.loads((WEIGHTS / "reader.json").read_text())
    assert meta["format"] == 1 and meta["backbone"] in ("minilm", "e5")
    assert meta["trained"]["data"] and all(len(h) == 64 for h in meta["trained"]["data"].values())
    assert (WEIGHTS / "model.safetensors").stat().st_size < 60 * 2**20
    probe = meta["probe"]
    assert load_calibration().fitted_on != "uncalibrated"
    # the probe was read in float32; bfloat16 (native on some CPUs, slow on others) must pick the same span
    for dtype, tolerance in (("float32", 0.01), ("bfloat16", 0.5)):
        best = Reader(dtype=dtype).read(probe["question"], [probe["passage"]]).best
        assert (best.start, best.end) == (probe["start"], probe["end"]), dtype
        assert best.score == pytest.approx(probe["score"], abs=tolerance), dtype


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="not met yet (issue 11): the second-stage reader highlights 'Preventive Diplomacy' "
                   "(confidence 0.52, over the 0.478 threshold) instead of Kaha Imnadze; strict, so it fails loudly once a better reader passes it")
def test_the_shipped_reader_names_who_heads_the_unrcca():
    text = ARTICLE.read_text(encoding="utf-8")
    doc = Document(ARTICLE.name, text, "Kazakhstan", "0" * 64)
    paragraphs, pos = [], 0
    for line in text.split("\n"):
        if line.strip():
            paragraphs.append((pos, pos + len(line)))
        pos += len(line) + 1
    hits = [Hit(Chunk(i + 1, ARTICLE.name, i, a, b, text[a:b]), score=1.0) for i, (a, b) in enumerate(paragraphs)]
    answer = ReaderAnswerer().extract("Who heads the UNRCCA?", hits, {ARTICLE.name: doc}.__getitem__)
    assert answer.found and "Imnadze" in answer.short
    quote = answer.quotes[0]
    assert text[quote.start : quote.end] == quote.text and "Imnadze" in quote.highlighted_text


@pytest.mark.slow
def test_one_reader_answers_from_several_threads_as_from_one():
    from concurrent.futures import ThreadPoolExecutor

    text = ARTICLE.read_text(encoding="utf-8")
    passages = [p for p in text.split("\n") if p.strip()]
    questions = ["Who heads the UNRCCA?", "When was UNRCCA founded?", "Where is UNRCCA headquartered?", "Who is Murat Nurtleu?"] * 3
    reader = Reader()
    alone = [reader.read(q, passages).best for q in questions]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda q: reader.read(q, passages).best, questions))
    assert [(s.passage, s.start, s.end) for s in together] == [(s.passage, s.start, s.end) for s in alone]


def test_a_header_is_read_but_never_part_of_a_span_and_offsets_stay_in_the_passage(tokenizer):
    passages = ["We propose the formula one plus one.", "It was founded in 2007."]
    headers = ["Kazakhstan, 1992, session 47.", ""]
    bare = make_windows(tokenizer, "What formula did Kazakhstan propose in 1992?", passages)
    read = make_windows(tokenizer, "What formula did Kazakhstan propose in 1992?", passages, headers=headers)
    # the header's tokens are in the input, so the model reads them ...
    assert len(read[0].input_ids) > len(bare[0].input_ids) and read[1].input_ids == bare[1].input_ids
    # ... but the selectable tokens, and their offsets, are the passage's alone
    assert [o for o in read[0].offsets if o[0] >= 0] == [o for o in bare[0].offsets if o[0] >= 0]
    for w in read:
        assert "".join(passages[w.passage][s:e] for s, e in w.offsets if s >= 0) == "".join(passages[w.passage].split())
    with pytest.raises(ValueError, match="headers"):
        make_windows(tokenizer, "Who?", passages, headers=["one"])


KAZ_DOC = Document("k.txt", TEXT, "K", "0" * 64, {"country_iso3": "KAZ", "year": "1993"})


def test_the_answerer_reads_each_passage_after_its_documents_header():
    reader = FixedReader([SpanScore(0, 0, 21, 25, 9.0, 1.0)])
    hits = _hits(TEXT, "k.txt")
    ReaderAnswerer(reader, Calibration.uncalibrated()).extract("When?", hits, {"k.txt": KAZ_DOC}.__getitem__)
    assert reader.asked == ("When?", ["Kazakhstan, 1993."])
    ReaderAnswerer(reader, Calibration.uncalibrated(), headers=False).extract("When?", hits, {"k.txt": KAZ_DOC}.__getitem__)
    assert reader.asked == ("When?", None)


def test_the_answerer_has_the_reader_reject_spans_that_repeat_the_whole_question():
    at = TEXT.index("Kaha Imnadze")
    reader = FixedReader([SpanScore(0, 0, at, at + len("Kaha Imnadze"), 9.0, 1.0)])
    question = "According to Kazakhstan's 2023 statement, who heads the centre?"
    ReaderAnswerer(reader, Calibration.uncalibrated()).extract(question, _hits(TEXT), {"a.txt": DOC}.__getitem__)
    heads = TEXT.index("headed")
    assert reader.asked[0] == "Who heads the centre?"  # the reader reads it without the clause naming the speech
    # ... but what a span may not repeat is the whole question, the clause included
    assert reader.rejects(0, TEXT.index("The centre"), TEXT.index("The centre") + len("The centre"))
    assert reader.rejects(0, heads, heads + len("headed"))
    assert not reader.rejects(0, at, at + len("Kaha Imnadze"))


def test_the_reader_reads_the_question_without_the_clause_that_named_the_speech():
    reader = FixedReader([SpanScore(0, 0, 21, 25, 9.0, 1.0)])
    asked = "According to Kazakhstan's 1993 General Assembly speech, when did the centre open?"
    answer = ReaderAnswerer(reader, Calibration.uncalibrated()).extract(asked, _hits(TEXT, "k.txt"), {"k.txt": KAZ_DOC}.__getitem__)
    assert reader.asked == ("When did the centre open?", ["Kazakhstan, 1993."])
    assert answer.question == asked and answer.short == "2007"


def _transformers_windows(tokenizer, question, texts, max_len, stride):
    """What transformers' fast tokenizer gives for the same call (the reference the windows must equal)."""
    enc = tokenizer([question] * len(texts), texts, truncation="only_second", max_length=max_len, stride=stride,
                    return_overflowing_tokens=True, return_offsets_mapping=True, return_token_type_ids=True, padding=False)
    return [(int(enc["overflow_to_sample_mapping"][i]), tuple(enc["input_ids"][i]), tuple(enc["token_type_ids"][i]),
             tuple(enc.sequence_ids(i)), tuple(tuple(o) for o in enc["offset_mapping"][i])) for i in range(len(enc["input_ids"]))]


@pytest.mark.parametrize("backbone", ["minilm", pytest.param("e5", marks=pytest.mark.slow)])
def test_windows_are_transformers_own_truncation_with_stride(backbone):
    """make_windows runs the tokenizers library directly (no transformers at question time): the same windows."""
    from tokenizers import Tokenizer

    hf = load_tokenizer(backbone_folder(backbone))
    question = "Какой проект предложил Казахстан в 1992 году, and who chaired the meeting?"
    passages = [" ".join(f"Sentence {i} names Place{i} — «Центр {i}»." for i in range(90)), "Short one.\nWith a break."]
    for max_len, stride in ((64, 16), (256, 96)):
        windows = make_windows(hf, question, passages, max_len=max_len, stride=stride)
        alone = make_windows(Tokenizer.from_file(str(backbone_folder(backbone) / "tokenizer.json")), question, passages,
                             max_len=max_len, stride=stride)
        want = _transformers_windows(hf, trim_question(hf, question, 64), passages, max_len, stride)
        assert len(windows) == len(want) > 3 and windows == alone
        for w, (sample, ids, types, seq, offsets) in zip(windows, want):
            assert (w.passage, w.input_ids, w.token_type_ids) == (sample, ids, types)
            # transformers' offsets, less the space a SentencePiece token holds before its word
            text = passages[w.passage]
            trimmed = [(o[0] + len(text[o[0]:o[1]]) - len(text[o[0]:o[1]].lstrip()), o[1]) if s == 1 else tuple(o)
                       for s, o in zip(seq, offsets)]
            assert w.offsets == tuple(o if s == 1 and o[1] > o[0] else (-1, -1) for s, o in zip(seq, trimmed))
            assert (backbone == "e5") == (trimmed != [tuple(o) for o in offsets])  # MiniLM's never hold a space


def test_the_numpy_engine_reads_as_torch_in_float32():
    """engine="numpy" (a one-off ask: no torch import) scores every span as transformers' float32 model does."""
    passages = [
        "UNRCCA, founded in 2007, has its headquarters in Ashgabat. Kaha Imnadze, Special Representative of the "
        "UN Secretary-General and Head of the UN Regional Center for Preventive Diplomacy, met the minister.",
        "The Trans-Caspian route carried 2.7 million tonnes of cargo in 2023. " * 40,  # several windows
    ]
    torch_reader, numpy_reader = Reader(dtype="float32"), Reader(dtype="float32", engine="numpy")
    for question in ("Who heads the UNRCCA?", "How much cargo did the route carry?", "Кто возглавляет UNRCCA?"):
        a = numpy_reader.read(question, passages, headers=["Kazakhstan, 2024.", ""])
        b = torch_reader.read(question, passages, headers=["Kazakhstan, 2024.", ""])
        assert a.windows == b.windows > 2
        assert [(s.window, s.start, s.end) for s in a.spans] == [(s.window, s.start, s.end) for s in b.spans]
        assert max(abs(x.score - y.score) for x, y in zip(a.spans, b.spans)) < 1e-4 and abs(a.null - b.null) < 1e-4
    with pytest.raises(ValueError, match="engine"):
        Reader(engine="onnx")


@pytest.mark.parametrize("engine", ["torch", "numpy"])
def test_forward_passes_of_any_size_read_the_same_spans(engine, monkeypatch):
    """Windows go through the model in passes of like length (READ_FILL); each row lands back on its window."""
    from regional_chat.reading import reader as reader_module

    passages = [
        "UNRCCA, founded in 2007, has its headquarters in Ashgabat.",
        "The Trans-Caspian route carried 2.7 million tonnes of cargo in 2023. " * 30,  # several long windows
        "Kaha Imnadze, Special Representative of the UN Secretary-General, heads the UN Regional Center for "
        "Preventive Diplomacy for Central Asia and met the minister in Astana.",
    ]
    reader = Reader(dtype="float32", engine=engine)
    readings = {}
    for fill in (2.0, 0.0):  # every window alone; all windows in one pass padded to the longest
        monkeypatch.setattr(reader_module, "READ_FILL", fill)
        readings[fill] = [reader.read(q, passages) for q in ("Who heads the UNRCCA?", "How much cargo did the route carry?")]
    for a, b in zip(readings[2.0], readings[0.0]):
        assert a.windows == b.windows > 3
        assert [(s.window, s.start, s.end) for s in a.spans] == [(s.window, s.start, s.end) for s in b.spans]
        assert max(abs(x.score - y.score) for x, y in zip(a.spans, b.spans)) < 1e-4 and abs(a.null - b.null) < 1e-4


def test_what_trains_is_what_is_shipped_for_each_backbone():
    """e5's word embeddings are not shipped (the packaged e5 gives them back): they must never train, not even when a
    second stage starts from a trained reader, whose loading leaves every weight trainable."""
    from transformers import BertConfig, BertForQuestionAnswering

    from regional_chat.reading.model import FROZEN_E5, freeze, shipped_names, shipped_tensors

    model = BertForQuestionAnswering(BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16))
    trainable = lambda: {n for n, p in model.named_parameters() if p.requires_grad}  # noqa: E731
    assert FROZEN_E5 in trainable() and not trainable() <= shipped_names(model, "e5")  # as load_trained leaves it
    freeze(model, "minilm")
    assert FROZEN_E5 in trainable() <= shipped_names(model, "minilm") == set(shipped_tensors(model, "minilm"))
    freeze(model, "e5")
    assert FROZEN_E5 not in trainable() and trainable() <= shipped_names(model, "e5") == set(shipped_tensors(model, "e5"))
    assert FROZEN_E5 not in shipped_tensors(model, "e5")
