import json

import pytest

from conftest import FIXTURES
from regional_chat.cli import main
from regional_chat.evaluation import evaluate, exact_match, f1_score, normalize_answer, read_squad
from regional_chat.settings import Settings

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
    assert (result["questions"], result["paragraphs"]) == (5, 3)
    every = result["all"]
    assert every["questions"] == 5
    # each question shares rare words with its own paragraph only: BM25 ranks it first
    assert every["lexical_recall@1"] == 100.0 and every["lexical_mrr"] == 1.0
    assert every["hybrid_recall@5"] == 100.0  # three paragraphs: always within five
    for key in ("sentence_hit@1", "short_em", "short_f1", "sentence_em", "sentence_f1", "abstention_accuracy",
                "answered_when_answerable", "abstained_when_unanswerable", "leave_article_out_abstained",
                "latency_p50_ms", "latency_p95_ms"):  # fmt: skip
        assert key in every, key
    assert 0 <= every["sentence_hit@1"] <= 100
    assert result["even_articles"]["questions"] == 4 and result["odd_articles"]["questions"] == 1


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
    from regional_chat.evaluation import reliability

    rows = [{"confidence": 0.05, "right": False}, {"confidence": 0.95, "right": True}, {"confidence": 0.92, "right": False},
            {"confidence": 1.0, "right": True}, {"confidence": 0.5, "right": True}, {"found": False}]
    assert reliability(rows) == [
        {"bin": "0.0-0.1", "n": 1, "mean_confidence": 0.05, "right": 0.0},
        {"bin": "0.5-0.6", "n": 1, "mean_confidence": 0.5, "right": 1.0},
        {"bin": "0.9-1.0", "n": 3, "mean_confidence": 0.957, "right": 0.667},
    ]
