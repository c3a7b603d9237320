"""Choose the word floor of the cross-lingual pivot (reading/crosslingual.py, MIN_WORD_COSINE) on XQuAD's even articles.

    .venv/bin/python bench/bench_pivot.py [--half even] [--limit 200]

A Russian question over its English gold paragraph, read as the assistant reads it: the paragraph's sentence
nearest the question (e5), then the reader's span in that sentence for the pivot question, shown when it beats
its no-answer score (else the whole sentence is the answer shown). For each floor, the pivot carries the
sentence's English words nearest the question's content words at that cosine or more; "plain" is the pivot
without them (the question word, Latin words, numbers, country names). The even articles choose; the odd
ones are reported by bench/bench_reader.py --across e5. Writes bench/results/crosslingual-pivot.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from bench_reader import xquad_ru_en  # noqa: E402
from regional_chat.embedding import make_embedder  # noqa: E402
from regional_chat.evaluation import exact_match, f1_score  # noqa: E402
from regional_chat.reading.answerer import SHORT_ANSWER_MARGIN, Calibration, ReaderAnswerer, is_answer_text  # noqa: E402
from regional_chat.reading.crosslingual import aligned_words, pivot_question  # noqa: E402
from regional_chat.reading.reader import Reader  # noqa: E402
from regional_chat.settings import Settings  # noqa: E402
from regional_chat.types import Chunk, Document, Hit  # noqa: E402

FLOORS = (None, 0.74, 0.80, 0.83, 0.86)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--half", default="even", choices=("even", "odd", "all"))
    p.add_argument("--limit", type=int, default=200)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "crosslingual-pivot.json")
    args = p.parse_args()
    embedder = make_embedder(Settings(model="e5"))
    reader = Reader(threads=2)
    reader.warm_up()
    answerer = ReaderAnswerer(reader, Calibration.uncalibrated())
    vectors = lambda words: answerer._vectors(embedder, words, "query")  # noqa: E731 - the path read_across takes
    items = xquad_ru_en(args.data, args.half)[: args.limit]
    scores = {str(f): {"EM": 0.0, "F1": 0.0, "short_answers_shown": 0} for f in FLOORS}
    holds = 0
    t0 = time.time()
    for question, passages, golds in items:
        doc = Document("p", passages[0], "p", "0" * 64)
        hits = [Hit(Chunk(1, "p", 0, 0, len(doc.text), doc.text), score=1.0)]
        result = answerer.read_across(question, hits, {"p": doc}.__getitem__, embedder, embedder.embed_queries([question])[0])
        _, a, b, _ = result.sentences[0]
        sentence = doc.text[a:b]
        holds += any(g in sentence for g in golds)
        for floor in FLOORS:
            pivot = pivot_question(question, aligned_words(question, sentence, vectors, floor) if floor is not None else ())
            best = reader.read(pivot, [sentence]).best if pivot else None
            row = scores[str(floor)]
            if best is not None and is_answer_text(sentence, best.start, best.end) and best.score - best.null > SHORT_ANSWER_MARGIN:
                shown = sentence[best.start : best.end]
                row["short_answers_shown"] += 1
            else:
                shown = sentence
            row["EM"] += exact_match(shown, golds)
            row["F1"] += f1_score(shown, golds)
    n = len(items)
    for row in scores.values():
        row["EM"], row["F1"] = round(100 * row["EM"] / n, 1), round(100 * row["F1"] / n, 1)
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": "bench/bench_pivot.py " + " ".join(sys.argv[1:]),
        "half": args.half,
        "questions": n,
        "nearest_sentence_holds_answer": round(100 * holds / n, 1),
        "by_floor": scores,
        "seconds": round(time.time() - t0, 1),
        "load_avg_after": os.getloadavg(),
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
