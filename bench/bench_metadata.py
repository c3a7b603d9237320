"""Metadata that search uses (issue 12), measured on the domain dev set: retrieval only, through Assistant.search.

    .venv/bin/python bench/bench_metadata.py [--model minilm]

Four configurations on the 185 UN speeches + the shipped article: context headers off/on (two
indexes, under /tmp/rc-meta/) x question understanding (``prefer_named``) off/on. For each
answerable question that is not a follow-up: is a passage holding a gold answer in the top 5
(the chunk of the named document that covers the answer's offsets), and is the right document
first. Reported for the questions that name a country and year and for all, per split.
Writes bench/results/metadata.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from bench_domain import doc_id_of, domain_assistant, load_devset  # noqa: E402
from regional_chat.settings import Settings  # noqa: E402


def holds_answer(row: dict, hit) -> bool:
    if hit.chunk.doc_id != doc_id_of(row["doc"]):
        return False
    return any(hit.chunk.start <= a["start"] and a["start"] + len(a["text"]) <= hit.chunk.end for a in row["answers"])


def measure(bot, rows: list[dict]) -> dict:
    out: dict[str, dict] = {}
    for name, keep in (("country-year", lambda r: r["kind"] == "country-year"), ("all", lambda r: True)):
        chosen = [r for r in rows if keep(r)]
        top5 = first = 0
        for row in chosen:
            hits = bot.search(row["question"], k=5)
            top5 += any(holds_answer(row, h) for h in hits)
            first += bool(hits) and hits[0].chunk.doc_id == doc_id_of(row["doc"])
        n = len(chosen)
        out[name] = {"questions": n, "answer_in_top5": round(100 * top5 / max(1, n), 1), "right_doc_first": round(100 * first / max(1, n), 1)}
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="minilm")
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "metadata.json")
    args = p.parse_args()
    rows = [r for r in load_devset() if r["answerable"] and r["kind"] != "follow-up" and r["doc"]]
    results: dict = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "model": args.model, "configs": {}}
    for headers in (False, True):
        settings = Settings(model=args.model, context_headers=headers)
        started = time.perf_counter()
        bot = domain_assistant(settings, args.data, Path("/tmp/rc-meta") / ("headers" if headers else "plain"))
        built = time.perf_counter() - started
        for prefer in (False, True):
            bot.settings = settings.with_(prefer_named=prefer)
            name = f"headers={'on' if headers else 'off'}, understanding={'on' if prefer else 'off'}"
            figures = {split: measure(bot, [r for r in rows if split == "all" or r["split"] == split]) for split in ("dev", "test", "all")}
            results["configs"][name] = {"build_or_load_s": round(built, 1), **figures}
            print(name, json.dumps(figures["all"]), flush=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
