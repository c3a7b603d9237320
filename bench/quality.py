"""Run the quality evaluations and write docs/QUALITY.md from their results.

    .venv/bin/python bench/quality.py            # all runs (10-16 minutes on 2 cores)
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

# The files are sampled: 1,000 questions evenly spread (a percentage then has a standard error of at most
# 1.6 points; the 200 of the runs before 2026-12-07 had 3.5). The reader reads the passages within the read
# margin at about 0.1 s a question on these 2 cores: the two files took 10 to 16 minutes together on 2026-12-07. SQuAD v2.0: only the five
# odd articles of the tune half (2,024 questions) that neither the reader (training/train_reader.py) nor its
# calibration (training/calibrate_reader.py) saw.
V2_HELD_OUT = "3,9,11,13,15"
SAMPLE = "1000"
RUNS = {
    "squad-v1.1": ("squad-dev-v1.1.json", ["--leave-article-out", "--limit", SAMPLE]),
    "squad-v2.0-tune-half": ("squad-dev-v2.0-tune-half.json", ["--articles", V2_HELD_OUT, "--limit", SAMPLE]),
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


def _load(name: str) -> dict | None:
    path = RESULTS / name
    return json.loads(path.read_text()) if path.is_file() else None


XQUAD_ODD = 578  # XQuAD's Russian questions on its odd-numbered articles (bench_reader.xquad_ru_en(..., "odd"))


def _first(n: int, of: int) -> str:
    return f"all {of} questions" if n >= of else f"first {n} questions"


def _met(value, bar) -> str:
    if value is None:
        return "–"
    return "yes" if all(v >= b for v, b in zip(value, bar)) else "**no**"


def reader_section() -> list[str]:
    """Issue 11's table: every figure with its bar, from the result files the benches wrote."""
    from regional_chat.settings import DEFAULT_MODEL

    reader, v11, v2 = _load("reader.json"), _load("eval-squad-v1.1.json"), _load("eval-squad-v2.0-tune-half.json")
    domain_file = f"domain-reader-{DEFAULT_MODEL}.json"  # the default encoder's run (bench_domain.py --model <default>)
    dom, heur, hay = _load(domain_file), _load("domain-heuristic-minilm.json"), _load("haystack-reader.json")
    if not reader or not v11:
        return []
    g, d4 = reader["squad_v1.1_odd_gold"], reader["squad_v1.1_odd_gold_plus_4"]
    # what is served for a Russian question: the cross-lingual path with the default encoder when it reads Cyrillic
    xq = reader.get(f"xquad_ru_question_en_paragraph_across_{DEFAULT_MODEL}") or reader["xquad_ru_question_en_paragraph"]
    a = v11["all"]
    rows = [
        ("SQuAD v1.1 odd articles, gold paragraph, EM / F1", "first readers 45.7 / 59.6, 53.7 / 66.7", (58, 70), (g["EM"], g["F1"])),
        ("same, gold + 4 distractor paragraphs", "36.9 / 45.1", (50, 60), (d4["EM"], d4["F1"])),
        ("SQuAD v1.1, open (retrieval + reader), short EM / F1, odd (held-out) articles", "36.0 / 44.6", (50, 60), (v11["odd_articles"]["short_em"], v11["odd_articles"]["short_f1"])),
        ("answered when answerable (v1.1, article present)", "63.2", (80,), (a["answered_when_answerable"],)),
    ]
    if v2:
        rows.append(("SQuAD v2.0 abstention accuracy, held-out articles", "64.6", (72,), (v2["all"]["abstention_accuracy"],)))
    rows.append(("question's article left out: abstained", "99.3", (97,), (a["leave_article_out_abstained"],)))
    if dom:
        t = dom["splits"]["test"]["all"]
        before = f"{heur['splits']['test']['all']['right_when_answerable']} / {heur['splits']['test']['all']['refused_when_unanswerable']}" if heur else "–"
        rows.append(("domain dev set, test split: right (answerable) / refused (unanswerable)", before, (75, 80), (t["right_when_answerable"], t["refused_when_unanswerable"])))
    rows.append(("XQuAD ru -> en (Russian question, English passage), gold paragraph F1 of the answer shown", "0", (45,), (xq["F1"],)))
    odd = reader.get(f"xquad_ru_question_en_paragraph_across_{DEFAULT_MODEL}_odd_articles")
    if odd:  # the articles nothing cross-lingual was fitted or chosen on (the first 200 questions mix both halves)
        rows.append((f"same, XQuAD's odd (held-out) articles, {_first(odd['questions'], XQUAD_ODD)}", "–", (45,), (odd["F1"],)))
    out = [
        "## The trained reader against its bars (issue 11)",
        "",
        f"From `bench/results/reader.json` ({reader['date']}, `{reader['command']}`), `eval-squad-v1.1.json` and",
        f"`eval-squad-v2.0-tune-half.json` (below), `{domain_file}` and `domain-heuristic-minilm.json` (`bench/bench_domain.py`), "
        f"with the default encoder ({DEFAULT_MODEL}).",
        "",
        "| figure | before | bar | now | met |",
        "|---|---|---|---|---|",
    ]
    for name, before, bar, now in rows:
        out.append(f"| {name} | {before} | {' / '.join(map(str, bar))} | {' / '.join(map(str, now))} | {_met(now, bar)} |")
    if dom:
        t = dom["splits"]["test"]
        lat = (t["latency_ms_p50"], t["latency_ms_p95"])
        out.append(f"| warm latency p50 / p95, UN speeches (ms) | 48 / 75 | 80 / 150 | {lat[0]} / {lat[1]} | {'yes' if lat[0] <= 80 and lat[1] <= 150 else '**no**'} |")
    out.append("")
    if dom:
        out += ["Domain dev set, by split (`bench/bench_domain.py`; the dev split chose, the test split reports):", "",
                "| split | answerer | right when answerable | answered when answerable | first quote holds the answer | passages read hold the answer | refused when unanswerable | wrong answers | p50 / p95 ms |",
                "|---|---|---|---|---|---|---|---|---|"]
        for name, rep in (("reader", dom), ("heuristic (removed; timed while training held a core)", heur)):
            if not rep:
                continue
            for split in ("dev", "test"):
                x = rep["splits"][split]
                s_ = x["all"]
                out.append(f"| {split} | {name} | {s_['right_when_answerable']} | {s_['answered_when_answerable']} | {s_['first_quote_holds_answer']} | "
                           f"{s_.get('passages_read_hold_answer') if s_.get('passages_read_hold_answer') is not None else '–'} | {s_['refused_when_unanswerable']} | {s_['wrong_answers']} | {x['latency_ms_p50']} / {x['latency_ms_p95']} |")
        out += ["", "By kind and language, test split (reader):", "", "| group | questions | right when answerable | refused when unanswerable |", "|---|---|---|---|"]
        t = dom["splits"]["test"]
        for group in ("by_kind", "by_language"):
            for k, v in t[group].items():
                out.append(f"| {k} | {v['questions']} | {_v(v, 'right_when_answerable')} | {_v(v, 'refused_when_unanswerable')} |")
        out.append("")
    if hay:
        out += ["Side by side with Haystack's extractive reader, the same weights and the same passages "
                f"(`bench/bench_reader_haystack.py`, {hay.get('date', '?')}, {hay.get('questions', '?')} questions, gold + {hay.get('distractors', '?')} distractors):", "",
                "| system | EM | F1 | answer from the gold paragraph | p50 ms | p95 ms |", "|---|---|---|---|---|---|"]
        for name, x in hay["systems"].items():
            out.append(f"| {name} | {x['EM']} | {x['F1']} | {x['from_gold_paragraph']} | {x['latency_p50_ms']} | {x['latency_p95_ms']} |")
        out.append("")
    return out


def render() -> str:
    loaded = {n: json.loads((RESULTS / f"eval-{n}.json").read_text()) for n in RUNS if (RESULTS / f"eval-{n}.json").is_file()}
    lines = [
        "# Quality",
        "",
        "Measured with `regional-chat eval` on the public data in `../shared/data/` (see its README), each paragraph of",
        "the file indexed as one document, every question asked through `Assistant.answer` (the served path). Every",
        "figure is given on all questions and on each half of the articles: the reader (`training/train_reader.py`)",
        "trained on even-numbered SQuAD v1.1 articles and the fusion weight (`bench/tune_retrieval.py`) was tuned on",
        "them, so the odd half is held out. Written by `bench/quality.py`; machine:",
        f"{os.cpu_count()} cores, {cpu_model()}.",
        "",
    ]
    v1 = loaded.get("squad-v1.1")
    if v1:
        a, odd = v1["all"], v1["odd_articles"]
        goals = [
            ("hybrid recall@5 ≥ 95.8 (issue 10)", a["hybrid_recall@5"], a["hybrid_recall@5"] >= 95.8),
            ("open SQuAD v1.1 (retrieval + reader), short EM ≥ 50, odd (held-out) articles", odd["short_em"], odd["short_em"] >= 50),
            ("open SQuAD v1.1, short F1 ≥ 60, odd (held-out) articles", odd["short_f1"], odd["short_f1"] >= 60),
            ("the same, all articles (the even ones trained the reader): EM / F1", f"{a['short_em']} / {a['short_f1']}", None),
            ("answered when answerable (article present) ≥ 80%", a.get("answered_when_answerable"), (a.get("answered_when_answerable") or 0) >= 80),
            ("question's article left out: abstained ≥ 97%", a.get("leave_article_out_abstained"), (a.get("leave_article_out_abstained") or 0) >= 97),
            ("warm latency p50 / p95 on SQuAD paragraphs (ms; no goal here, see the UN speeches)", f"{a['latency_p50_ms']} / {a['latency_p95_ms']}", None),
        ]
        v2 = loaded.get("squad-v2.0-tune-half")
        if v2:
            held = v2["all"]["abstention_accuracy"]
            goals.append(("SQuAD v2.0 abstention accuracy ≥ 72%, held-out articles (3, 9, 11, 13, 15)", held, held >= 72))
        lines += ["## Goals", "", "| goal (issue 11) | measured | met |", "|---|---|---|"]
        lines += [f"| {g} | {m} | {'–' if ok is None else 'yes' if ok else '**no**'} |" for g, m, ok in goals]
        lines += [""]
    lines += reader_section()
    def asked(name: str) -> str:
        return f"{loaded[name].get('questions', '?'):,}" if name in loaded else "?"

    titles = {
        "squad-v1.1": f"SQuAD v1.1 dev ({asked('squad-v1.1')} of its 10,570 questions, evenly spread; all 2,067 paragraphs indexed)",
        "squad-v2.0-tune-half": f"SQuAD v2.0 dev, tuning half: {asked('squad-v2.0-tune-half')} of the 2,024 questions of the five held-out articles (all 18 articles' paragraphs indexed)",
        "xquad-ru": "XQuAD Russian (1,190 questions and paragraphs in Russian)",
    }
    for name, data in loaded.items():
        lines += [
            f"## {titles[name]}",
            "",
            f"`{data['command']}` — encoder {data.get('settings', {}).get('model', '?')}, run {data.get('run_at', '?')}, {data.get('wall_s', '?')} s, "
            f"load average after {data.get('load_avg_after', '?')}",
            "",
            "| figure | all | even articles (tuning) | odd articles (held out) |",
            "|---|---|---|---|",
        ]
        for key in data["all"]:
            lines.append(f"| {key} | {_v(data['all'], key)} | {_v(data['even_articles'], key)} | {_v(data['odd_articles'], key)} |")
        lines.append("")
        rel = (data.get("reliability") or {}).get("all")
        if rel:
            lines += ["Reliability of the confidence (every question; right = short answer F1 ≥ 0.5, never for an unanswerable one):", "",
                      "| confidence | questions | mean confidence | share right |", "|---|---|---|---|"]
            lines += [f"| {b['bin']} | {b['n']} | {b['mean_confidence']} | {b['right']} |" for b in rel]
            lines.append("")
    lines += [
        "## How to read the figures",
        "",
        "- `*_recall@k` / `*_mrr`: the question's own paragraph among the first k distinct paragraphs retrieved.",
        "- `sentence_hit@1`: the first quote (or, when the assistant abstains, the first related passage) contains a gold answer.",
        "- `short_em` / `short_f1`: the answer shown first (`Answer.short`, else its quote) scored against the gold answers with the official normalisation, the",
        "  short answer taken even where the confidence is under the threshold (`Assistant.answer(..., abstain=False)`);",
        "  `*_as_answered` counts an abstention as",
        "  an empty answer. `sentence_em` / `sentence_f1` score the whole best sentence instead, for comparison.",
        "- `abstention_accuracy`: answered when answerable and abstained when not (v2.0), with both halves beside it.",
        "- `leave_article_out_abstained`: each question asked through `Assistant.answer` again with a filter that leaves",
        "  its whole article out (`evaluation.article_left_out`: FAISS and BM25 search only the other articles' chunks;",
        "  BM25 statistics still include them), where abstaining is the right answer.",
        "- `latency_*`: one question at a time, warm: question embedding, hybrid retrieval and reading.",
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
