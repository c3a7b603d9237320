"""Fit the reader's confidence (a probability that the answer is right) and its answer threshold.

    python training/calibrate_reader.py [--reader DIR]

Held-out questions only, nothing the reader was trained on and nothing a reported figure uses:
  * the four articles of the SQuAD v2.0 tune half that are odd there but even in v1.1 (the reader's
    training leaves them out; the v1.1 report uses v1.1's odd articles, the v2.0 report the other
    five odd v2.0 articles), asked against all the half's paragraphs, answerable and unanswerable;
  * the same answerable questions asked with their own article left out (every answer is then wrong);
  * the dev split of the domain dev set (bench/devset), through the assistant over the UN speeches.
Every question goes through the served path (``Assistant.search`` then the answerer's ``read``), so the
features are the ones the assistant computes. Right = the short answer's SQuAD F1 >= 0.5 (unanswerable:
never). A logistic regression on the features gives the confidence; the threshold maximises
"right answers + refusals of what would have been wrong", with a wrong answer counted ``--wrong-cost``
times a refusal of a right one. Writes <reader>/calibration.json and bench/results/calibration.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from regional_chat.assistant import Assistant  # noqa: E402
from regional_chat.embedding import make_embedder  # noqa: E402
from regional_chat.evaluation import ArticleLeftOut, f1_score, read_squad, reliability, write_contexts_corpus  # noqa: E402
from regional_chat.index import build_index, load_index  # noqa: E402
from regional_chat.reading.answerer import FEATURES, Calibration, ReaderAnswerer  # noqa: E402
from regional_chat.reading.reader import WEIGHTS, Reader  # noqa: E402
from regional_chat.settings import Settings  # noqa: E402


def fit_logistic(X: np.ndarray, y: np.ndarray, l2: float = 1.0, iters: int = 50) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
    """L2-regularised logistic regression by Newton's method on standardised features."""
    mean = X.mean(0)
    scale = X.std(0)
    scale[scale < 1e-9] = 1.0
    Z = np.hstack([(X - mean) / scale, np.ones((len(X), 1))])
    w = np.zeros(Z.shape[1])
    reg = np.full(Z.shape[1], l2)
    reg[-1] = 0.0
    for _ in range(iters):
        p = 1 / (1 + np.exp(-np.clip(Z @ w, -30, 30)))
        grad = Z.T @ (p - y) + reg * w
        H = (Z * (p * (1 - p))[:, None]).T @ Z + np.diag(reg) + 1e-9 * np.eye(len(w))
        step = np.linalg.solve(H, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w[:-1], float(w[-1]), mean, scale


def choose_threshold(p: np.ndarray, y: np.ndarray, wrong_cost: float) -> float:
    """The threshold maximising right answers + avoided wrong ones, a wrong answer weighing ``wrong_cost``."""
    best_t, best_u = 0.5, -np.inf
    for t in np.unique(np.round(p, 3)):
        answered = p >= t
        utility = float((answered & (y == 1)).sum() - wrong_cost * (answered & (y == 0)).sum())
        if utility > best_u:
            best_t, best_u = float(t), utility
    return best_t


def squad_rows(bot: Assistant, answerer: ReaderAnswerer, data: Path, limit: int = 0) -> list[tuple[list[float], int, str]]:
    v20 = json.loads((data / "squad-dev-v2.0-tune-half.json").read_text())["data"]
    v11 = json.loads((data / "squad-dev-v1.1.json").read_text())["data"]
    v11_even = {a["title"] for i, a in enumerate(v11) if i % 2 == 0}
    calib_articles = {i for i, a in enumerate(v20) if i % 2 == 1 and a["title"] in v11_even}
    _, questions = read_squad(data / "squad-dev-v2.0-tune-half.json")
    left_out = ArticleLeftOut(bot.index, bot.embedder, bot.settings)
    rows = []
    questions = [q for q in questions if q.article in calib_articles]
    for q in questions[:limit] if limit else questions:
        hits = bot.search(q.text)
        result = answerer.read(q.text, hits)
        text = bot.index.document(result.doc_id).text[result.doc_start : result.doc_end] if result.best else ""
        right = int(bool(q.answers) and f1_score(text, q.answers) >= 0.5)
        rows.append((list(result.features), right, "squad-v2"))
        if q.answers and len(rows) % 3 == 0:
            vector = bot.embedder.embed_queries([q.text])[0]
            out = answerer.read(q.text, left_out.hits(q.text, vector, q.doc_id))
            rows.append((list(out.features), 0, "squad-left-out"))
    return rows


def domain_rows(answerer: ReaderAnswerer, data: Path) -> list[tuple[list[float], int, str]]:
    import bench_domain

    bot = bench_domain.domain_assistant(Settings(), data)
    rows = []
    for row in bench_domain.load_devset("dev"):
        if row.get("follow_up_of"):
            continue  # follow-ups are read several ways by the assistant; their own features come from those readings
        hits = bot.search(row["question"])
        result = answerer.read(row["question"], hits)
        text = bot.index.document(result.doc_id).text[result.doc_start : result.doc_end] if result.best else ""
        rows.append((list(result.features), int(bench_domain.is_right(row, text, result.doc_id)), "domain-dev"))
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reader", type=Path, default=WEIGHTS)
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--wrong-cost", type=float, default=1.5, help="a wrong answer costs this many refused right ones")
    p.add_argument("--work", type=Path, default=Path("/tmp/rc-calibrate"))
    p.add_argument("--limit", type=int, default=0, help="at most this many SQuAD questions (smoke runs)")
    args = p.parse_args()
    t0 = time.time()
    settings = Settings()
    answerer = ReaderAnswerer(Reader(args.reader), Calibration.uncalibrated())
    paragraphs, _ = read_squad(args.data / "squad-dev-v2.0-tune-half.json")
    corpus = write_contexts_corpus(paragraphs, args.work / "v2.corpus")
    embedder = make_embedder(settings)
    build_index(corpus.parent, args.work / "v2.index", settings, embedder=embedder, wait=True)
    bot = Assistant(load_index(args.work / "v2.index", settings, embedder), settings, embedder, corpus.parent)
    rows = squad_rows(bot, answerer, args.data, args.limit) + domain_rows(answerer, args.data)
    X = np.array([r[0] for r in rows], dtype=np.float64)
    y = np.array([r[1] for r in rows], dtype=np.float64)
    w, b, mean, scale = fit_logistic(X, y)
    cal = Calibration(tuple(map(float, w)), b, tuple(map(float, mean)), tuple(map(float, scale)), 0.5, "")
    probs = np.array([cal.probability(x) for x in X])
    threshold = choose_threshold(probs, y, args.wrong_cost)
    counts = {src: sum(1 for r in rows if r[2] == src) for src in sorted({r[2] for r in rows})}
    cal = Calibration(
        cal.weights, cal.bias, cal.mean, cal.scale, threshold,
        f"training/calibrate_reader.py: {counts} (wrong answer cost {args.wrong_cost})",
    )
    (args.reader / "calibration.json").write_text(json.dumps(cal.to_json(), indent=1) + "\n", encoding="utf-8")
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "reader": str(args.reader),
        "rows": counts,
        "right_share": round(float(y.mean()), 3),
        "threshold": threshold,
        "weights": dict(zip(FEATURES, map(lambda v: round(float(v), 4), w))),
        "reliability_on_fit_data": reliability([{"confidence": float(c), "right": bool(r)} for c, r in zip(probs, y)]),
        "seconds": round(time.time() - t0, 1),
    }
    (ROOT / "bench" / "results" / "calibration.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
