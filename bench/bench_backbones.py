"""Compare trained readers (a pilot of each backbone) on the data where choices are made, never on reported data.

    python training/train_reader.py --backbone minilm --epochs 1 --steps 240 --seed 13 --out /tmp/pilot-minilm
    python training/train_reader.py --backbone e5 --epochs 1 --steps 240 --seed 13 --out /tmp/pilot-e5
    python bench/bench_backbones.py --readers /tmp/pilot-minilm /tmp/pilot-e5

The issue asks for the multilingual encoder as the reader's backbone when it reads English within 2 F1 of
MiniLM. A full stage takes hours on 2 cores, so the two are compared as pilots trained the same number of
steps on the same data and seed (each reader's ``reader.json`` records its command, steps and seconds). Each is read:
  * on the 725 answerable questions of SQuAD's calibration articles (the four articles that neither training
    nor any reported figure uses), against the gold paragraph, then the gold paragraph and its four best-BM25
    other paragraphs (``Reader.read``, the serving windows);
  * on XQuAD's Russian questions over the English paragraphs of the even articles (the half where the
    cross-lingual path was chosen), read directly: MiniLM's English word pieces cannot read a Russian question.
Writes ``--out`` (``bench/results/backbones.json``).
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
sys.path.insert(0, str(ROOT / "bench"))

from bench_reader import score, with_distractors, xquad_ru_en  # noqa: E402
from regional_chat.evaluation import squad_calibration_articles  # noqa: E402
from regional_chat.reading.reader import Reader  # noqa: E402


def calibration_articles(data: Path) -> list[tuple[str, str, list[str], list[str], str]]:
    """The answerable questions of SQuAD's calibration articles (``evaluation.squad_calibration_articles``), in file order,
    as (question, gold paragraph, answers, the article's other paragraphs, id) like ``bench_reader.squad_odd``."""
    v20 = json.loads((data / "squad-dev-v2.0-tune-half.json").read_text())["data"]
    v11 = json.loads((data / "squad-dev-v1.1.json").read_text())["data"]
    articles = squad_calibration_articles(v11, v20)
    rows = []
    for i, art in enumerate(v20):
        if i in articles:
            paras = [p["context"] for p in art["paragraphs"]]
            for p in art["paragraphs"]:
                for qa in p["qas"]:
                    if qa["answers"]:
                        rows.append((qa["question"], p["context"], [a["text"] for a in qa["answers"]], [c for c in paras if c != p["context"]], qa["id"]))
    return rows


def trained(folder: Path) -> dict:
    meta = json.loads((folder / "reader.json").read_text())
    t = meta["trained"]
    return {"backbone": meta["backbone"], "command": t["command"], "steps": t["steps"], "seconds": t["seconds"],
            "seconds_per_step": round(t["seconds"] / t["steps"], 2), "precision": t.get("precision", "bf16"),
            "windows": t["windows"], "loss_last": t["loss_curve"][-1][1] if t.get("loss_curve") else None}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--readers", type=Path, nargs="+", required=True)
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "backbones.json")
    args = p.parse_args()
    rows = calibration_articles(args.data)
    sets = {"calibration_articles_gold": with_distractors(rows, 0),
            "calibration_articles_gold_and_4_distractors": with_distractors(rows, 4),
            "xquad_ru_question_en_paragraph_even_articles": xquad_ru_en(args.data, "even")}
    result = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "command": " ".join(["python", *sys.argv]),
              "load_at_start": round(os.getloadavg()[0], 2), "readers": {}}
    for folder in args.readers:
        reader = Reader(folder, threads=args.threads)
        reader.warm_up()
        entry = {"training": trained(folder)}
        for name, items in sets.items():
            entry[name] = score(reader, items)
            print(folder.name, name, json.dumps(entry[name]), flush=True)
        result["readers"][str(folder)] = entry
    result["load_at_end"] = round(os.getloadavg()[0], 2)
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
