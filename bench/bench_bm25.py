"""BM25 at scale: the lexical index alone, its load, memory and search time, on SQuAD questions.

    .venv/bin/python bench/bench_bm25.py /tmp/rc-bench/synthetic-1000000/index [--questions 200]

Loads only the lexical index of the live generation (as a serving process does) and times the
search as the app runs it (LexicalIndex.search_and_score, top 50) and bm25s's column sum alone
(get_scores_from_ids; numpy 2's np.add.at). A fancy-indexed ``+=`` per column was tried and was
slower (0.13 vs 0.08 ms median at 200k chunks), so bm25s's own sum stays. Merges its figures into
bench/results/scale.json under "bm25".
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

sys.path.insert(0, str(benchlib.ROOT / "src"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("index")
    parser.add_argument("--questions", type=int, default=200)
    args = parser.parse_args()
    from regional_chat.store.folder import current_generation
    from regional_chat.retrieval import LexicalIndex

    rss0 = benchlib.rss_mb()
    t = time.perf_counter()
    lexical = LexicalIndex.load(current_generation(Path(args.index)) / "lexical")
    load_s = time.perf_counter() - t
    rss = benchlib.rss_mb() - rss0
    bm = lexical._bm25
    _, questions = benchlib.squad_paragraphs()
    qs = [q["question"] for q in benchlib.spread(questions, args.questions)]
    search, add_at, postings = [], [], []
    for q in qs:
        ids = lexical._term_ids(q)
        if not ids:
            continue
        t = time.perf_counter()
        lexical.search_and_score(q, 50, [])
        search.append(time.perf_counter() - t)
        t = time.perf_counter()
        bm.get_scores_from_ids(ids)
        add_at.append(time.perf_counter() - t)
        indptr = bm.scores["indptr"]
        postings.append(int(sum(indptr[i + 1] - indptr[i] for i in ids)))
    ms = lambda v: round(1000 * benchlib.pct(v, 50), 2)  # noqa: E731
    ms95 = lambda v: round(1000 * benchlib.pct(v, 95), 2)  # noqa: E731
    out = {
        "index": args.index, "chunks": len(lexical), "nonzeros": int(len(bm.scores["data"])), "vocabulary": len(bm.vocab_dict),
        "load_s": load_s, "rss_mb": rss, "questions": len(search), "postings_p50": benchlib.pct(postings, 50),
        "search_and_score_p50_ms": ms(search), "search_and_score_p95_ms": ms95(search),
        "bm25s_add_at_p50_ms": ms(add_at), "bm25s_add_at_p95_ms": ms95(add_at),
        "load_1min": benchlib.load_average()[0], "command": benchlib.command(),
    }
    print(out)
    result = benchlib.read("scale.json") or benchlib.header()
    result.setdefault("bm25", {})[f"{len(lexical)}"] = out
    benchlib.write("scale.json", result)


if __name__ == "__main__":
    main()
