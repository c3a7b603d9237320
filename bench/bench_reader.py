"""The reader alone, on held-out paragraphs: SQuAD v1.1 odd articles (gold paragraph, and gold + 4
distractors) and XQuAD (Russian question, English paragraph). The same ``Reader`` the assistant serves.

    .venv/bin/python bench/bench_reader.py [--reader DIR] [--limit 1500]

Questions: SQuAD v1.1 dev, odd-indexed articles (none trained on), shuffled with seed 0, the first
``--limit``. Distractors: the best-BM25 other paragraphs of the same article (the hardest: same topic).
The reader's best span over all passages is the answer (no abstention: this measures reading, the
assistant's decision to answer is measured by `regional-chat eval`). XQuAD: the Russian questions read
against the English paragraphs (same ids), the first ``--limit`` of the 1,190. Writes bench/results/reader.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from regional_chat.evaluation import exact_match, f1_score  # noqa: E402
from regional_chat.reading.reader import WEIGHTS, Reader  # noqa: E402


def squad_odd(data: Path, limit: int) -> list[tuple[str, str, list[str], list[str], str]]:
    """(question, gold paragraph, gold answers, the article's other paragraphs, question id), held-out articles only."""
    rows = []
    for i, art in enumerate(json.loads((data / "squad-dev-v1.1.json").read_text())["data"]):
        if i % 2 == 1:
            paras = [p["context"] for p in art["paragraphs"]]
            for para in art["paragraphs"]:
                for qa in para["qas"]:
                    rows.append((qa["question"], para["context"], [a["text"] for a in qa["answers"]], [c for c in paras if c != para["context"]], qa["id"]))
    random.Random(0).shuffle(rows)
    return rows[:limit]


def with_distractors(rows, n: int) -> list[tuple[str, list[str], list[str]]]:
    import bm25s

    out = []
    for q, ctx, golds, others, _qid in rows:
        passages = [ctx]
        if n and others:
            r = bm25s.BM25()
            r.index(bm25s.tokenize(others, stopwords="en", show_progress=False), show_progress=False)
            idx, _ = r.retrieve(bm25s.tokenize([q], stopwords="en", show_progress=False), k=min(n, len(others)), show_progress=False)
            passages += [others[int(i)] for i in idx[0]]
        out.append((q, passages, golds))
    return out


def score(reader: Reader, items) -> dict:
    em = f1 = gold = 0.0
    ms = []
    for q, passages, golds in items:
        t = time.perf_counter()
        best = reader.read(q, passages).best
        ms.append(1000 * (time.perf_counter() - t))
        pred = passages[best.passage][best.start : best.end] if best else ""
        gold += bool(best and best.passage == 0)
        em += exact_match(pred, golds)
        f1 += f1_score(pred, golds)
    n = len(items)
    return {"questions": n, "EM": round(100 * em / n, 1), "F1": round(100 * f1 / n, 1), "from_gold_paragraph": round(100 * gold / n, 1),
            "ms_p50": round(statistics.median(ms), 1), "ms_p95": round(sorted(ms)[int(0.95 * (n - 1))], 1)}


def xquad_ru_en(data: Path, half: str = "all") -> list[tuple[str, list[str], list[str]]]:
    """XQuAD's Russian questions over the English paragraphs; ``half`` "even"/"odd": those articles only
    (the cross-lingual calibration and the pivot's word floor were chosen on the even ones)."""
    en = {qa["id"]: (p["context"], [a["text"] for a in qa["answers"]]) for art in json.loads((data / "xquad.en.json").read_text())["data"]
          for p in art["paragraphs"] for qa in p["qas"]}
    items = []
    for number, art in enumerate(json.loads((data / "xquad.ru.json").read_text())["data"]):
        if half != "all" and number % 2 != (half == "odd"):
            continue
        for p in art["paragraphs"]:
            for qa in p["qas"]:
                if qa["id"] in en:
                    ctx, golds = en[qa["id"]]
                    items.append((qa["question"], [ctx], golds))
    return items


def score_across(reader: Reader, model: str, items) -> dict:
    """Russian question, English gold paragraph, read the cross-lingual way the assistant reads it: the paragraph's
    sentence nearest the question by ``model`` (the index's encoder), the reader's span in it for the pivot question."""
    from regional_chat.embedding import make_embedder
    from regional_chat.reading.answerer import Calibration, ReaderAnswerer
    from regional_chat.settings import Settings
    from regional_chat.types import Chunk, Document, Hit

    embedder = make_embedder(Settings(model=model))
    answerer = ReaderAnswerer(reader, Calibration.uncalibrated())
    em = f1 = sentence_holds = 0.0
    ms = []
    for q, passages, golds in items:
        doc = Document("p", passages[0], "p", "0" * 64)
        hits = [Hit(Chunk(1, "p", 0, 0, len(doc.text), doc.text), score=1.0)]
        t = time.perf_counter()
        result = answerer.read_across(q, hits, {"p": doc}.__getitem__, embedder, embedder.embed_queries([q])[0])
        ms.append(1000 * (time.perf_counter() - t))
        _, a, b, _ = result.sentences[0]
        pred = doc.text[result.span[0] : result.span[1]] if result.span else doc.text[a:b]
        em += exact_match(pred, golds)
        f1 += f1_score(pred, golds)
        sentence_holds += any(g in doc.text[a:b] for g in golds)
    n = len(items)
    return {"questions": n, "EM": round(100 * em / n, 1), "F1": round(100 * f1 / n, 1), "sentence_holds_answer": round(100 * sentence_holds / n, 1),
            "encoder": embedder.name, "ms_p50": round(statistics.median(ms), 1), "ms_p95": round(sorted(ms)[int(0.95 * (n - 1))], 1)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reader", type=Path, default=WEIGHTS)
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--limit", type=int, default=1500)
    p.add_argument("--distractors", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "reader.json")
    p.add_argument("--across", default="", help="also read XQuAD's Russian questions the cross-lingual way with this encoder (e5)")
    p.add_argument("--across-only", action="store_true", help="only that row; the others are kept from --out")
    args = p.parse_args()
    reader = Reader(args.reader, threads=args.threads)
    reader.warm_up()
    if args.across_only:
        result = json.loads(args.out.read_text(encoding="utf-8")) if args.out.is_file() else {}
        t0 = time.time()
        result[f"xquad_ru_question_en_paragraph_across_{args.across}"] = score_across(reader, args.across, xquad_ru_en(args.data)[: args.limit])
        result[f"xquad_ru_question_en_paragraph_across_{args.across}_odd_articles"] = score_across(reader, args.across, xquad_ru_en(args.data, "odd")[: args.limit])
        result[f"across_{args.across}"] = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "command": "bench/bench_reader.py " + " ".join(sys.argv[1:]),
                                            "seconds": round(time.time() - t0, 1), "load_avg_after": os.getloadavg()}
        args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
        print(json.dumps(result, indent=1))
        return 0
    rows = squad_odd(args.data, args.limit)
    t0 = time.time()
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": "bench/bench_reader.py " + " ".join(sys.argv[1:]),
        "reader": str(args.reader),
        "trained": reader.meta["trained"]["command"],
        "squad_v1.1_odd_gold": score(reader, with_distractors(rows, 0)),
        f"squad_v1.1_odd_gold_plus_{args.distractors}": score(reader, with_distractors(rows, args.distractors)),
        "xquad_ru_question_en_paragraph": score(reader, xquad_ru_en(args.data)[: args.limit]),
    }
    if args.across:
        result[f"xquad_ru_question_en_paragraph_across_{args.across}"] = score_across(reader, args.across, xquad_ru_en(args.data)[: args.limit])
        result[f"xquad_ru_question_en_paragraph_across_{args.across}_odd_articles"] = score_across(reader, args.across, xquad_ru_en(args.data, "odd")[: args.limit])
    result["seconds"] = round(time.time() - t0, 1)
    result["load_avg_after"] = os.getloadavg()
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
