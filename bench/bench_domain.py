"""The domain dev set (bench/devset/domain-dev.jsonl) through the assistant, exactly as it is served.

    .venv/bin/python bench/bench_domain.py [--model e5|minilm]     # default: the product's default encoder (e5)
    .venv/bin/python bench/bench_domain.py --reader DIR --out F    # another trained reader (its calibrations beside it)

The corpus is the 185 UN General Assembly speeches of ../shared/data (one JSON Lines file) plus the
shipped article; it is indexed under /tmp/rc-domain/<model>/ (reused while up to date). Each question
is asked with ``Assistant.answer``; a follow-up is asked with the Answer to its first question as
history. An answerable question is answered right when the assistant answers (found) with a short
answer whose SQuAD F1 against a gold answer is at least 0.5 (and, for a question that names its
country and year, quoted from that speech). Beside it, whether the passages the reader read held a gold answer at
all: what is lost under that share, the reader and its confidence lost; above it, retrieval (or the read margin).
Reports the dev split (for choosing), the test split (for reporting) and both;
writes bench/results/domain-reader-<model>.json (domain-heuristic-minilm.json is the run of the
sentence-ranker answerer this reader replaced, measured the same way on 2026-12-02).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import benchlib  # noqa: E402
from regional_chat import countries  # noqa: E402
from regional_chat.assistant import Assistant, make_answerer  # noqa: E402
from regional_chat.embedding import make_embedder  # noqa: E402
from regional_chat.evaluation import f1_score  # noqa: E402
from regional_chat.build import build_index  # noqa: E402
from regional_chat.store import load_index
from regional_chat.settings import DEFAULT_MODEL, Settings  # noqa: E402

DEVSET = ROOT / "bench" / "devset" / "domain-dev.jsonl"
ARTICLE = "kazakhstan-un-preventive-diplomacy-unrcca-meeting.txt"
SPEECHES = "ungdc-central-asia.jsonl"


def load_devset(split: str = "all") -> list[dict]:
    rows = [json.loads(line) for line in DEVSET.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in rows if split == "all" or r["split"] == split]


def doc_id_of(doc: str | None) -> str | None:
    if doc is None:
        return None
    return ARTICLE if doc == ARTICLE else f"{SPEECHES}#{doc}"


def domain_assistant(settings: Settings, data: Path, work: Path = Path("/tmp/rc-domain"), answerer: object | None = None) -> Assistant:
    """An assistant over the speeches + the article, indexed under ``work`` (built when needed)."""
    corpus = work / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    for src in (data / SPEECHES, ROOT / "corpus" / ARTICLE):
        dst = corpus / src.name
        if not dst.exists() or dst.stat().st_size != src.stat().st_size:
            shutil.copyfile(src, dst)
    index_dir = work / settings.model.replace("/", "_").replace(":", "_")
    embedder = make_embedder(settings)
    build_index(corpus, index_dir, settings, embedder=embedder, wait=True, warn=lambda m: print(f"warning: {m}", file=sys.stderr))
    return Assistant(load_index(index_dir, settings, embedder), settings, embedder, corpus, answerer=answerer)


def is_right(row: dict, text: str, doc_id: str) -> bool:
    """A short answer ``text`` found in ``doc_id`` answers ``row``: F1 >= 0.5 against a gold answer, and
    from the speech the question names when it names its country and year."""
    if not row["answerable"] or f1_score(text, [a["text"] for a in row["answers"]]) < 0.5:
        return False
    return row["kind"] != "country-year" or doc_id == doc_id_of(row["doc"])


def holds_gold(text: str, golds) -> bool:
    """A gold answer is written in ``text``, whitespace aside (PDF line breaks fall inside answers)."""
    flat = " ".join(text.split())
    return any(" ".join(g.split()) in flat for g in golds)


def passages_hold_answer(row: dict, passages) -> bool:
    """A gold answer is written (whitespace aside) in one of ``passages`` (Hits), from the speech the question names
    when it names its country and year: the reader had the answer in front of it."""
    golds = [a["text"] for a in row["answers"] or ()]
    return any(
        holds_gold(h.chunk.text, golds) and (row["kind"] != "country-year" or h.chunk.doc_id == doc_id_of(row["doc"]))
        for h in passages
    )


def judge(row: dict, answer, passages=None) -> dict:
    """``passages``: the Hits the reader read for the question (None: not recorded)."""
    golds = [a["text"] for a in row["answers"]]
    out = {"id": row["id"], "kind": row["kind"], "language": row["language"], "answerable": row["answerable"], "found": answer.found,
           "confidence": answer.confidence, "text": answer.headline() if answer.found else "", "quote_doc": answer.quotes[0].doc_id if answer.quotes else ""}
    if row["answerable"]:
        f1 = max(f1_score(answer.headline(), golds), 0.0) if answer.found else 0.0
        out["f1"] = round(f1, 3)
        out["right"] = bool(answer.found and is_right(row, answer.headline(), answer.quotes[0].doc_id if answer.quotes else ""))
        shown = answer.quotes or answer.related
        out["quote_holds_answer"] = bool(shown) and holds_gold(shown[0].text, golds)
        if passages is not None:
            out["read_holds_answer"] = passages_hold_answer(row, passages)
    else:
        out["refused"] = not answer.found
    return out


def summarise(rows: list[dict]) -> dict:
    ans = [r for r in rows if r["answerable"]]
    una = [r for r in rows if not r["answerable"]]
    pct = lambda xs: round(100.0 * sum(xs) / len(xs), 1) if xs else None  # noqa: E731
    return {
        "questions": len(rows),
        "answerable": len(ans),
        "right_when_answerable": pct([r["right"] for r in ans]),
        "answered_when_answerable": pct([r["found"] for r in ans]),
        "first_quote_holds_answer": pct([r["quote_holds_answer"] for r in ans]),
        # the passages read held the answer: what is missed beyond this share, retrieval missed; under it, the reader
        "passages_read_hold_answer": pct([r["read_holds_answer"] for r in ans if "read_holds_answer" in r]),
        "unanswerable": len(una),
        "refused_when_unanswerable": pct([r["refused"] for r in una]),
        "wrong_answers": sum(1 for r in ans if r["found"] and not r["right"]) + sum(1 for r in una if r["found"]),
    }


def run(bot: Assistant, rows: list[dict]) -> tuple[list[dict], list[float]]:
    by_id = {}
    results, ms = [], []
    for row in rows:
        history = [by_id[row["follow_up_of"]]] if row.get("follow_up_of") in by_id else []
        t = time.perf_counter()
        answer = bot.answer(row["question"], history)
        ms.append(1000 * (time.perf_counter() - t))
        by_id[row["id"]] = answer
        # the passages of the reading that gave the answer (a follow-up's winning reading is its search_query), untimed
        read = bot.passages(answer.search_query or row["question"]) if row["answerable"] else None
        results.append(judge(row, answer, read))
    return results, ms


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=DEFAULT_MODEL, help="the encoder (default: the product's, %(default)s)")
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--reader", type=Path, default=None,
                   help="another trained reader folder, its calibration files beside it (default: the shipped one); give --out too")
    args = p.parse_args()
    settings = Settings(model=args.model)
    bot = domain_assistant(settings, args.data, answerer=make_answerer(settings, args.reader) if args.reader else None)
    bot.warm_up()  # warm latency: the models loaded and every country alias compiled, as a server is once it is up
    countries.warm_up()
    rows = load_devset("all")
    load_at_start = benchlib.load_average()
    # follow-ups need their first question asked first: ask all, then report each split
    results, ms = run(bot, rows)

    def report_of(split: str) -> dict:
        keep = [r for r, row in zip(results, rows) if split == "all" or row["split"] == split]
        keep_ms = sorted(m for m, row in zip(ms, rows) if split == "all" or row["split"] == split)
        return {
            "all": summarise(keep),
            "by_kind": {k: summarise([r for r in keep if r["kind"] == k]) for k in sorted({r["kind"] for r in keep})},
            "by_language": {k: summarise([r for r in keep if r["language"] == k]) for k in sorted({r["language"] for r in keep})},
            "latency_ms_p50": round(statistics.median(keep_ms), 1),
            "latency_ms_p95": round(keep_ms[int(0.95 * (len(keep_ms) - 1))], 1),
        }

    report = {
        "answerer": "reader",
        "model": args.model,
        "reader": str(args.reader or "shipped"),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": "bench/bench_domain.py " + " ".join(sys.argv[1:]),
        "machine": benchlib.machine(),  # the latencies are this machine's: they differ about 2x between CPUs
        "load_average": {"at_start": load_at_start, "at_end": benchlib.load_average()},
        "splits": {split: report_of(split) for split in ("dev", "test", "all")},
        "rows": [dict(r, split=row["split"], ms=round(m, 1)) for r, row, m in zip(results, rows, ms)],
    }
    out = args.out or ROOT / "bench" / "results" / f"domain-reader-{args.model.split(':')[0]}.json"
    out.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    for split, rep in report["splits"].items():
        print(split, json.dumps(rep["all"], ensure_ascii=False), "p50", rep["latency_ms_p50"], "p95", rep["latency_ms_p95"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
