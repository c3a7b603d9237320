import dataclasses
import json

import pytest

from conftest import FIXTURES
from regional_chat.cli import main
from regional_chat.evaluation import Figures, evaluate, exact_match, f1_score, normalize_answer, read_squad
from regional_chat.assistant import Assistant
from regional_chat.settings import Settings
from regional_chat.types import Filter

MINI = FIXTURES / "mini-squad-v2.json"


def test_official_normalisation_and_scores():
    assert normalize_answer("The  Vakhsh River!") == "vakhsh river"
    assert normalize_answer("an Apple, a day") == "apple day"
    assert exact_match("the Vakhsh river", ["Vakhsh River"]) == 1.0
    assert exact_match("Vakhsh", ["Vakhsh River"]) == 0.0
    assert f1_score("Vakhsh", ["Vakhsh River"]) == pytest.approx(2 / 3)
    assert f1_score("Baku", ["Baku in Azerbaijan", "Baku"]) == 1.0
    assert f1_score("", []) == 1.0 and f1_score("x", []) == 0.0  # unanswerable: only no answer is right


def test_read_squad_numbers_paragraphs_by_article():
    paragraphs, questions = read_squad(MINI)
    assert [p[0] for p in paragraphs] == ["a000p000", "a000p001", "a001p000"]
    assert paragraphs[0][1] == "Rogun Dam"
    assert [(q.qid, q.doc_id, q.article, q.answers) for q in questions][2:4] == [
        ("q3", "a000p000", 0, ()),
        ("q4", "a000p001", 0, ("13.3 cubic kilometres",)),
    ]


def test_evaluate_reports_every_figure(tmp_path):
    result = evaluate(MINI, tmp_path / "ix", Settings(model="hashing:64"), leave_article_out=True)
    assert (result.questions, result.paragraphs) == (5, 3)
    every = result.all
    assert every.questions == 5
    # each question shares rare words with its own paragraph only: BM25 ranks it first
    assert every.lexical_recall_at_1 == 100.0 and every.lexical_mrr == 1.0
    assert every.hybrid_recall_at_5 == 100.0  # three paragraphs: always within five
    # every figure is measured here: v2.0 (unanswerable questions), answers, the article left out
    assert all(value is not None for value in dataclasses.asdict(every).values())
    assert 0 <= every.sentence_hit_at_1 <= 100
    assert result.even_articles.questions == 4 and result.odd_articles.questions == 1
    assert [o.question.qid for o in result.outcomes] == ["q1", "q2", "q3", "q4", "q5"]


def test_a_figure_not_measured_is_none_and_left_out_of_the_json(tmp_path):
    result = evaluate(MINI, tmp_path / "ix", Settings(model="hashing:64"), mode="lexical", answers=False, articles=[1])
    assert result.all.lexical_recall_at_1 == 100.0
    assert result.all.short_f1 is None and result.all.leave_article_out_abstained is None and result.all.latency_p50_ms is None
    assert result.even_articles == Figures(questions=0)  # only article 1 was asked
    assert all(o.answer is None and o.right is None for o in result.outcomes)
    data = result.to_dict()
    assert list(data) == ["file", "questions", "paragraphs", "chunks", "mode", "settings", "reader", "articles",
                          "reliability", "all", "even_articles", "odd_articles"]  # fmt: skip
    assert data["articles"] == [1] and data["even_articles"] == {"questions": 0}
    assert data["reliability"] == {"all": [], "odd_articles": []}
    # the published names and order: dense, lexical, hybrid (bench/results/eval-*.json, docs/QUALITY.md)
    assert list(data["all"]) == ["questions"] + [f"{m}_{x}" for m in ("dense", "lexical", "hybrid") for x in ("recall@1", "recall@5", "recall@20", "mrr")]
    assert json.loads(json.dumps(data)) == data


def test_eval_measures_the_answers_the_assistant_serves(tmp_path):
    """Each question's answer in evaluate() equals a separately loaded Assistant's answer to it."""
    settings = Settings(model="hashing:64")
    result = evaluate(MINI, tmp_path / "ix", settings, leave_article_out=True)
    bot = Assistant.load(tmp_path / "ix", settings, corpus_dir=tmp_path / "ix.corpus")
    paragraphs, questions = read_squad(MINI)
    assert [o.question for o in result.outcomes] == questions
    # both branches are compared: answers with quotes, and abstentions with related passages
    assert {o.answer.found for o in result.outcomes} == {True, False}
    for outcome in result.outcomes:
        q, measured = outcome.question, outcome.answer
        served = bot.answer(q.text)
        assert (measured.found, measured.short, measured.confidence) == (served.found, served.short, served.confidence), q.qid
        assert (measured.quotes or measured.related)[:1] == (served.quotes or served.related)[:1], q.qid
        assert measured == served, q.qid  # and everything else the Answer holds
        # the left-out answer is the assistant's with the article's paragraphs, named one by one, filtered out
        article = tuple(f"contexts.jsonl#{local}" for local, _, _ in paragraphs if local.startswith(f"a{q.article:03d}p"))
        left_out = bot.answer(q.text, filters=Filter(exclude_paths=article))
        said = lambda a: (a.found, a.short, a.confidence, a.quotes, a.related)  # noqa: E731 - not `understood`: the filters are spelt apart
        assert said(outcome.left_out) == said(left_out), q.qid


def test_eval_command_writes_json(tmp_path, capsys):
    out = tmp_path / "eval.json"
    code = main(["eval", str(MINI), "--index", str(tmp_path / "ix"), "--model", "hashing:64", "--retrieval", "lexical",
                 "--json", str(out), "--quiet"])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "| lexical_recall@1 | 100.0 |" in printed
    data = json.loads(out.read_text())
    assert data["mode"] == "lexical" and data["all"]["questions"] == 5


def test_reliability_bins_confidence_against_how_often_it_was_right():
    from regional_chat.evaluation import Bin, reliability

    pairs = [(0.05, False), (0.95, True), (0.92, False), (1.0, True), (0.5, True)]
    assert reliability(pairs) == (
        Bin("0.0-0.1", 1, 0.05, 0.0),
        Bin("0.5-0.6", 1, 0.5, 1.0),
        Bin("0.9-1.0", 3, 0.957, 0.667),
    )


def test_calibration_articles_are_odd_in_v2_and_even_in_v1():
    from regional_chat.evaluation import squad_calibration_articles

    v11 = [{"title": t} for t in ("A", "B", "C", "D", "E")]  # even: A, C, E
    v20 = [{"title": t} for t in ("C", "A", "B", "E", "D", "C")]  # odd indices 1, 3, 5: A, E, C
    assert squad_calibration_articles(v11, v20) == {1, 3, 5}
    v20[3] = {"title": "D"}  # odd in both files: the reports' article, never calibration's
    assert squad_calibration_articles(v11, v20) == {1, 5}
    assert squad_calibration_articles(v11, [{"title": "A"}]) == set()  # index 0 is even in v2.0
