"""Run the quality evaluations and write docs/QUALITY.md from their results.

    .venv/bin/python bench/quality.py            # all runs (about half an hour on 2 cores)
    .venv/bin/python bench/quality.py --render   # only rewrite docs/QUALITY.md from bench/results/

Each run is the same as a `regional-chat eval` command line (printed in the
report) and writes bench/results/eval-<name>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT / "src"))

NOTES_MARKER = "## What the figures say"

RUNS = {
    "squad-v1.1": ("squad-dev-v1.1.json", ["--leave-article-out"]),
    "squad-v2.0-tune-half": ("squad-dev-v2.0-tune-half.json", []),
    "xquad-ru": ("xquad.ru.json", ["--leave-article-out"]),
    "squad-v1.1-cold": ("squad-dev-v1.1.json", ["--limit", "1000", "--no-vector-cache"]),
}


def command(name: str) -> str:
    file, extra = RUNS[name]
    return " ".join(["regional-chat eval", f"../shared/data/{file}", "--corpus-from-contexts", *extra, "--json", f"bench/results/eval-{name}.json"])


def run(name: str) -> None:
    from regional_chat.cli import main

    file, extra = RUNS[name]
    started = time.time()
    code = main(["eval", str(DATA / file), "--corpus-from-contexts", *extra, "--json", str(RESULTS / f"eval-{name}.json"), "--quiet"])
    if code:
        sys.exit(f"{name}: eval failed with exit code {code}")
    data = json.loads((RESULTS / f"eval-{name}.json").read_text())
    data["command"] = command(name)
    data["run_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    data["wall_s"] = round(time.time() - started, 1)
    data["load_avg_after"] = os.getloadavg()
    (RESULTS / f"eval-{name}.json").write_text(json.dumps(data, indent=1) + "\n")


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def _v(section: dict, key: str):
    value = section.get(key)
    return "–" if value is None else value


def render() -> str:
    loaded = {n: json.loads((RESULTS / f"eval-{n}.json").read_text()) for n in RUNS if (RESULTS / f"eval-{n}.json").is_file()}
    lines = [
        "# Quality",
        "",
        "Measured with `regional-chat eval` on the public data in `../shared/data/` (see its README), each paragraph of",
        "the file indexed as one document. Every figure is given on all questions and on each half of the articles:",
        "the answer weights (`bench/tune_answering.py`) and the fusion weight (`bench/tune_retrieval.py`) were tuned on",
        "the even-numbered articles, so the odd half is held out. Written by `bench/quality.py`; machine:",
        f"{os.cpu_count()} cores, {cpu_model()}.",
        "",
    ]
    v1 = loaded.get("squad-v1.1")
    if v1:
        a, odd = v1["all"], v1["odd_articles"]
        best_single = max(a["dense_recall@5"], a["lexical_recall@5"])
        best_single_odd = max(odd["dense_recall@5"], odd["lexical_recall@5"])
        goals = [
            ("hybrid recall@5 ≥ 95%", a["hybrid_recall@5"], a["hybrid_recall@5"] >= 95),
            ("hybrid recall@5 ≥ better single + 2", f"{a['hybrid_recall@5']} vs {best_single} (held out: {odd['hybrid_recall@5']} vs {best_single_odd})",
             a["hybrid_recall@5"] - best_single >= 2),
            ("answer-sentence hit@1 ≥ 78%", a["sentence_hit@1"], a["sentence_hit@1"] >= 78),
            ("short answer EM ≥ 30", a["short_em"], a["short_em"] >= 30),
            ("short answer F1 ≥ 40", a["short_f1"], a["short_f1"] >= 40),
            ("leave-the-article-out abstention ≥ 95%", a.get("leave_article_out_abstained"), (a.get("leave_article_out_abstained") or 0) >= 95),
            ("answered when the article is in the corpus (v1.1, all answerable; no goal, reported)", a.get("answered_when_answerable"), None),
            ("warm latency p50 < 60 ms (sentence vectors cached between questions)", a["latency_p50_ms"], a["latency_p50_ms"] < 60),
            ("warm latency p95 < 150 ms (sentence vectors cached between questions)", a["latency_p95_ms"], a["latency_p95_ms"] < 150),
        ]
        cold = loaded.get("squad-v1.1-cold")
        if cold:
            c = cold["all"]
            goals.append(("warm latency p50 < 60 ms, no vector cache (1,000 questions)", c["latency_p50_ms"], c["latency_p50_ms"] < 60))
            goals.append(("warm latency p95 < 150 ms, no vector cache (1,000 questions)", c["latency_p95_ms"], c["latency_p95_ms"] < 150))
        v2 = loaded.get("squad-v2.0-tune-half")
        if v2:
            held = v2["odd_articles"]["abstention_accuracy"]
            goals.append(("SQuAD v2.0 abstention accuracy ≥ 65% on the tuning-half file", v2["all"]["abstention_accuracy"],
                          v2["all"]["abstention_accuracy"] >= 65))
            goals.append(("the same on its held-out (odd) articles, which no weight was tuned on", held, held >= 65))
        lines += ["## Goals", "", "| goal (issue #3) | measured (all questions) | met |", "|---|---|---|"]
        lines += [f"| {g} | {m} | {'–' if ok is None else 'yes' if ok else '**no**'} |" for g, m, ok in goals]
        lines += [""]
    titles = {
        "squad-v1.1": "SQuAD v1.1 dev (10,570 questions, 2,067 paragraphs)",
        "squad-v2.0-tune-half": "SQuAD v2.0 dev, tuning half (6,307 questions, 3,288 unanswerable)",
        "xquad-ru": "XQuAD Russian (1,190 questions; English model, Russian quality is a later issue)",
        "squad-v1.1-cold": "SQuAD v1.1, 1,000 questions evenly spread, no sentence-vector cache (latency as if every passage were new)",
    }
    for name, data in loaded.items():
        lines += [
            f"## {titles[name]}",
            "",
            f"`{data['command']}` — run {data.get('run_at', '?')}, {data.get('wall_s', '?')} s, load average after {data.get('load_avg_after', '?')}",
            "",
            "| figure | all | even articles (tuning) | odd articles (held out) |",
            "|---|---|---|---|",
        ]
        for key in data["all"]:
            lines.append(f"| {key} | {_v(data['all'], key)} | {_v(data['even_articles'], key)} | {_v(data['odd_articles'], key)} |")
        lines.append("")
    lines += [
        "## How to read the figures",
        "",
        "- `*_recall@k` / `*_mrr`: the question's own paragraph among the first k distinct paragraphs retrieved.",
        "- `sentence_hit@1`: the first quote (or, when the assistant abstains, the first related passage) contains a gold answer.",
        "- `short_em` / `short_f1`: `Answer.text` scored against the gold answers with the official normalisation, the",
        "  short answer taken even where the confidence is under the threshold; `*_as_answered` counts an abstention as",
        "  an empty answer. `sentence_em` / `sentence_f1` score the whole best sentence instead, for comparison.",
        "- `abstention_accuracy`: answered when answerable and abstained when not (v2.0), with both halves beside it.",
        "- `leave_article_out_abstained`: each question asked with its whole article left out of the retrieved passages",
        "  (the article's chunks are dropped from the ranked candidates; BM25 statistics still include them), where",
        "  abstaining is the right answer.",
        "- `latency_*`: one question at a time, warm: question embedding, hybrid retrieval and answer extraction.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--render", action="store_true", help="only rewrite docs/QUALITY.md")
    parser.add_argument("--only", choices=sorted(RUNS), action="append")
    args = parser.parse_args()
    if not args.render:
        if not DATA.is_dir():
            sys.exit(f"{DATA} not found: the evaluation data lives beside the project in ../shared/data/")
        RESULTS.mkdir(parents=True, exist_ok=True)
        for name in args.only or RUNS:
            print(f"== {command(name)}", file=sys.stderr)
            run(name)
    target = ROOT / "docs" / "QUALITY.md"
    # the written reading of the figures follows the tables; it is kept, and must be re-read against them
    old = target.read_text(encoding="utf-8") if target.is_file() else ""
    notes = old[old.index(NOTES_MARKER) :] if NOTES_MARKER in old else ""
    target.write_text(render() + ("\n" + notes if notes else ""), encoding="utf-8")
    print((ROOT / "docs" / "QUALITY.md").read_text())


if __name__ == "__main__":
    main()
