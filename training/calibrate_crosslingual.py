"""Fit the confidence of the cross-lingual path (a Russian or Kazakh question, English passages).

    python training/calibrate_crosslingual.py [--model e5] [--rows FILE]

The reader reads English only; a Cyrillic question is answered with the sentence of the top passages
nearest to it by the index's (multilingual) encoder, and a short answer the reader finds in that
sentence for a pivot question ("Where UNRCCA?"): see ``regional_chat.reading.crosslingual``. Its
confidence is a logistic model over ``CROSS_FEATURES``, fitted here on XQuAD's Russian questions asked of
XQuAD's English paragraphs (all 240 as one corpus, through the served retrieval):
  * FIT and THRESHOLD on the even-numbered articles: each question as asked (right = the quoted sentence
    holds a gold answer) and, for every second question, the same question with its article left out
    (every quote is then wrong);
  * REPORTED on the odd-numbered articles, which nothing here was fitted on, and on the Russian questions
    of the domain dev set (bench/devset, both splits; 20 questions, so a check, not a fit).
A wrong answer costs ``--wrong-cost`` refused right ones when the threshold is chosen. Writes
<reader>/calibration-crosslingual.json (with the encoder it was fitted with: another encoder's cosines get
no confidence) and bench/results/crosslingual.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "training"))

from calibrate_reader import choose_threshold, devset_hash, fit_logistic, reader_hash  # noqa: E402

from regional_chat.assistant import Assistant  # noqa: E402
from regional_chat.embedding import make_embedder  # noqa: E402
from regional_chat.evaluation import Question, article_left_out, f1_score, normalize_answer, reliability, write_contexts_corpus  # noqa: E402
from regional_chat.build import build_index  # noqa: E402
from regional_chat.store import load_index
from regional_chat.reading.answerer import CROSS_CALIBRATION_FILE, CROSS_FEATURES, SHORT_ANSWER_MARGIN, Calibration, ReaderAnswerer  # noqa: E402
from regional_chat.reading.reader import WEIGHTS, Reader  # noqa: E402
from regional_chat.settings import Settings  # noqa: E402


def xquad_ru_on_en(data: Path) -> tuple[list[tuple[str, str, str]], list[Question]]:
    """XQuAD's English paragraphs, and its Russian questions with the English answers (question for question)."""
    en = json.loads((data / "xquad.en.json").read_text(encoding="utf-8"))["data"]
    ru = json.loads((data / "xquad.ru.json").read_text(encoding="utf-8"))["data"]
    paragraphs, questions = [], []
    for a, (art_en, art_ru) in enumerate(zip(en, ru, strict=True)):
        for p, (para_en, para_ru) in enumerate(zip(art_en["paragraphs"], art_ru["paragraphs"], strict=True)):
            local = f"a{a:03d}p{p:03d}"
            paragraphs.append((local, art_en.get("title", f"article {a}"), para_en["context"]))
            for qa_en, qa_ru in zip(para_en["qas"], para_ru["qas"], strict=True):
                questions.append(Question(qa_en["id"], qa_ru["question"], tuple(x["text"] for x in qa_en["answers"]), local, a))
    return paragraphs, questions


def holds(sentence: str, golds: tuple[str, ...]) -> bool:
    """The quoted sentence holds a gold answer (SQuAD-normalised containment)."""
    s = f" {normalize_answer(sentence)} "
    return any(f" {normalize_answer(g)} " in s for g in golds if normalize_answer(g))


def row_of(bot: Assistant, question: str, golds: tuple[str, ...], hits, vector, source: str, article: int) -> dict:
    """One question's features and right/wrong, read by the answerer the Assistant holds.

    The fit needs the cross-lingual path's raw features (CrossResult.features), which an Answer does not
    carry, so this reads rather than answers; the hits come from ``bot.passages`` and the reading from
    ``bot.extractor``: the objects the Assistant serves with, never a second copy of them.
    """
    result = bot.extractor.read_across(question, hits, bot.index.document, bot.reading_encoder(bot.index), vector)
    sentence = short = ""
    if result.sentences:
        passage, a, b, _ = result.sentences[0]
        doc = bot.index.document(result.hits[passage].chunk.doc_id)
        sentence = doc.text[a:b]
        short = doc.text[result.span[0] : result.span[1]] if result.span else sentence
    return {
        "features": list(result.features),
        "right": int(bool(golds) and holds(sentence, golds)),
        "short_right": int(bool(golds) and f1_score(short, list(golds)) >= 0.5),
        "has_span": result.span is not None or result.features[CROSS_FEATURES.index("span_margin")] != 0.0,
        "source": source,
        "article": article,
    }


def read_rows(args: argparse.Namespace, settings: Settings) -> list[dict]:
    reader = Reader(args.reader)
    # "left_out": rows read before the left-out questions were searched with the served filter are not reused
    # "pivot": 2 since the pivot question carries aligned words (rows read with the plain pivot are not reused),
    # 3 since a "which" question's pivot says the kind it asks for ("What country ...") or "Who" for people
    key = {"reader": reader_hash(args.reader), "features": list(CROSS_FEATURES), "model": settings.model, "limit": args.limit, "left_out": "filter",
           "pivot": 3, "devset": devset_hash()}
    if args.rows and args.rows.is_file():
        cached = json.loads(args.rows.read_text(encoding="utf-8"))
        if cached.get("key") == key:
            return cached["rows"]
    answerer = ReaderAnswerer(reader, headers=settings.reader_headers)
    embedder = make_embedder(settings)
    paragraphs, questions = xquad_ru_on_en(args.data)
    corpus = write_contexts_corpus(paragraphs, args.work / "xquad.corpus")
    index_dir = args.work / f"xquad.index.{settings.model}"
    build_index(corpus.parent, index_dir, settings, embedder=embedder, wait=True)
    bot = Assistant(load_index(index_dir, settings, embedder), settings, embedder, corpus.parent, answerer=answerer)
    rows = []
    questions = questions[: args.limit] if args.limit else questions
    for n, q in enumerate(questions):
        vector = embedder.embed_queries([q.text])[0]
        hits = bot.passages(q.text)
        rows.append(row_of(bot, q.text, q.answers, hits, vector, "xquad", q.article))
        if n % 2 == 0:
            # the question's article left out as `regional-chat eval --leave-article-out` leaves it out
            left_out = bot.passages(q.text, filters=article_left_out(q.article))
            rows.append(row_of(bot, q.text, (), left_out, vector, "xquad-left-out", q.article))
        if n % 100 == 0:
            print(f"{n} / {len(questions)} questions", file=sys.stderr, flush=True)
    rows += domain_rows(answerer, args.data, settings)
    if args.rows:
        args.rows.write_text(json.dumps({"key": key, "rows": rows}) + "\n", encoding="utf-8")
    return rows


def domain_rows(answerer: ReaderAnswerer, data: Path, settings: Settings) -> list[dict]:
    """The domain dev set's Russian questions that are not follow-ups (both splits: a check only)."""
    import bench_domain

    bot = bench_domain.domain_assistant(settings, data, answerer=answerer)
    rows = []
    for row in bench_domain.load_devset("all"):
        if row["language"] == "en" or row.get("follow_up_of"):
            continue
        vector = bot.embedder.embed_queries([row["question"]])[0]
        golds = tuple(a["text"] for a in row["answers"])
        out = row_of(bot, row["question"], golds, bot.passages(row["question"]), vector, f"domain-{row['split']}", -1)
        rows.append(out)
    return rows


def figures(rows: list[dict], cal: Calibration) -> dict:
    """Answered-right share of the answerable, abstained share of the left-out, at ``cal``'s threshold."""
    probs = [cal.probability(r["features"]) for r in rows]
    asked = [(p, r) for p, r in zip(probs, rows) if not r["source"].endswith("left-out")]
    out = [(p, r) for p, r in zip(probs, rows) if r["source"].endswith("left-out")]
    t = cal.threshold
    answered = [(p, r) for p, r in asked if p >= t]
    res = {
        "questions": len(asked),
        "quote_right_at_best_sentence": round(100 * np.mean([r["right"] for _, r in asked]), 1) if asked else None,
        "answered": round(100 * len(answered) / len(asked), 1) if asked else None,
        "answered_right_of_all": round(100 * sum(r["right"] for _, r in answered) / len(asked), 1) if asked else None,
        "precision_of_answered": round(100 * np.mean([r["right"] for _, r in answered]), 1) if answered else None,
        "short_answer_right_of_answered": round(100 * np.mean([r["short_right"] for _, r in answered]), 1) if answered else None,
    }
    # the highlight is shown only when the pivot span beats no-answer (SHORT_ANSWER_MARGIN); "short_right" is that span's F1 >= 0.5
    shown = [r for _, r in answered if r["has_span"] and r["features"][CROSS_FEATURES.index("span_margin")] > SHORT_ANSWER_MARGIN]
    res["short_answer_shown_of_answered"] = round(100 * len(shown) / len(answered), 1) if answered else None
    res["short_answer_right_when_shown"] = round(100 * np.mean([r["short_right"] for r in shown]), 1) if shown else None
    if out:
        res["left_out_questions"] = len(out)
        res["left_out_abstained"] = round(100 * np.mean([p < t for p, _ in out]), 1)
    res["reliability"] = [asdict(b) for b in reliability(((p, r["right"]) for p, r in zip(probs, rows)), bins=5)]
    return res


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reader", type=Path, default=WEIGHTS)
    p.add_argument("--model", default="e5", help="the multilingual encoder the index is built with")
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--wrong-cost", type=float, default=2.0, help="a wrong answer costs this many refused right ones")
    p.add_argument("--work", type=Path, default=Path("/tmp/rc-crosslingual"))
    p.add_argument("--rows", type=Path, default=None, help="keep (and reuse) the read features in this JSON file")
    p.add_argument("--limit", type=int, default=0, help="at most this many XQuAD questions (smoke runs)")
    p.add_argument("--results", type=Path, default=ROOT / "bench" / "results" / "crosslingual.json")
    args = p.parse_args()
    t0 = time.time()
    settings = Settings(model=args.model)
    rows = read_rows(args, settings)
    fit = [r for r in rows if r["source"].startswith("xquad") and r["article"] % 2 == 0]
    held = [r for r in rows if r["source"].startswith("xquad") and r["article"] % 2 == 1]
    domain = [r for r in rows if r["source"].startswith("domain")]
    X = np.array([r["features"] for r in fit], dtype=np.float64)
    y = np.array([r["right"] for r in fit], dtype=np.float64)
    w, b, mean, scale = fit_logistic(X, y)
    cal = Calibration(tuple(map(float, w)), b, tuple(map(float, mean)), tuple(map(float, scale)), 0.5, "", CROSS_FEATURES)
    threshold = choose_threshold(np.array([cal.probability(x) for x in X]), y, args.wrong_cost)
    encoder = make_embedder(settings).name.split("@")[0]
    how = (f"training/calibrate_crosslingual.py: fitted on XQuAD ru questions over the English paragraphs, even articles "
           f"({len(fit)} rows, left-out included), threshold {threshold:.3f} chosen there (wrong answer cost {args.wrong_cost})")
    cal = Calibration(cal.weights, cal.bias, cal.mean, cal.scale, threshold, how, CROSS_FEATURES)
    (args.reader / CROSS_CALIBRATION_FILE).write_text(json.dumps(dict(cal.to_json(), encoder=encoder), indent=1) + "\n", encoding="utf-8")
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": "python training/calibrate_crosslingual.py " + " ".join(sys.argv[1:]),
        "encoder": encoder,
        "threshold": threshold,
        "weights": dict(zip(CROSS_FEATURES, (round(float(v), 4) for v in w))),
        "fit_even_articles": figures(fit, cal),
        "held_out_odd_articles": figures(held, cal),
        "domain_russian": figures(domain, cal),
        "domain_russian_rows": [{k: r[k] for k in ("source", "right", "short_right")} | {"confidence": round(cal.probability(r["features"]), 3)} for r in domain],
        "seconds": round(time.time() - t0, 1),
    }
    args.results.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in result.items() if k != "domain_russian_rows"}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
