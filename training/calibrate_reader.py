"""Fit the reader's confidence (a probability that the answer is right) and its answer threshold.

    python training/calibrate_reader.py [--reader DIR] [--model minilm|e5]

The retriever's fused score is a feature and each encoder scores on its own scale, so each encoder
gets its own fit: calibration.json (MiniLM), calibration-e5.json (multilingual-e5-small).

The confidence is FITTED on held-out SQuAD questions only, nothing the reader was trained on and
nothing a reported figure uses:
  * the four articles of the SQuAD v2.0 tune half that are odd there but even in v1.1 (the reader's
    training leaves them out; the v1.1 report uses v1.1's odd articles, the v2.0 report the other
    five odd v2.0 articles), asked against all the half's paragraphs, answerable and unanswerable;
  * the same answerable questions asked with their own article left out (every answer is then wrong).
The answer THRESHOLD is CHOSEN on the dev split of the domain dev set (bench/devset, the UN speeches
and the shipped article; its test split is never read here): of the thresholds, the one with the most
right answers less ``--wrong-cost`` times the wrong ones (an answer to an unanswerable question is a
wrong one). SQuAD's own best threshold is recorded beside it: it answers far fewer domain questions.
Every question goes through the objects the assistant serves with (``Assistant.passages``, then ``read`` of
the answerer the Assistant holds, built uncalibrated here), so the features are the ones the assistant computes;
a question's article is left out the way ``regional-chat eval --leave-article-out`` leaves it out, with
``evaluation.article_left_out`` as the search's filter. Right = the short answer's SQuAD F1 >= 0.5 (and, for a
domain question naming its country and year, from that speech). Writes <reader>/calibration.json and
bench/results/calibration.json; ``--rows FILE`` keeps the read features, so a refit costs seconds.
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

from regional_chat.assistant import Assistant  # noqa: E402
from regional_chat.embedding import make_embedder  # noqa: E402
from regional_chat.evaluation import article_left_out, f1_score, read_squad, reliability, squad_calibration_articles, write_contexts_corpus  # noqa: E402
from regional_chat.build import build_index  # noqa: E402
from regional_chat.store import load_index
from regional_chat.reading.answerer import FEATURES, Calibration, ReaderAnswerer, calibration_file  # noqa: E402
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


def choose_threshold(p: np.ndarray, y: np.ndarray, wrong_cost: float, floor: float = 0.0) -> float:
    """The threshold (at least ``floor``) maximising right answers + avoided wrong ones, a wrong answer weighing ``wrong_cost``."""
    best_t, best_u = max(0.5, floor), -np.inf
    for t in np.unique(np.round(np.append(p, floor) if floor > 0 else p, 3)):
        if t < floor:
            continue
        answered = p >= t
        utility = float((answered & (y == 1)).sum() - wrong_cost * (answered & (y == 0)).sum())
        if utility > best_u:
            best_t, best_u = float(t), utility
    return best_t


# The fit needs what the reader computes before calibration (ReadResult.features), which an Answer does
# not carry, so these read rather than answer: with the passages the Assistant reads (bot.passages: its
# retriever, filters and question understanding) and its own answerer (bot.extractor, here the
# uncalibrated one the Assistant was built with), never a second copy of either.


def squad_rows(bot: Assistant, data: Path, limit: int = 0) -> list[tuple[list[float], int, str]]:
    v20 = json.loads((data / "squad-dev-v2.0-tune-half.json").read_text())["data"]
    v11 = json.loads((data / "squad-dev-v1.1.json").read_text())["data"]
    calib_articles = squad_calibration_articles(v11, v20)
    _, questions = read_squad(data / "squad-dev-v2.0-tune-half.json")
    rows = []
    questions = [q for q in questions if q.article in calib_articles]
    for q in questions[:limit] if limit else questions:
        hits = bot.passages(q.text)
        result = bot.extractor.read(q.text, hits, bot.index.document)
        text = bot.index.document(result.doc_id).text[result.doc_start : result.doc_end] if result.best else ""
        right = int(bool(q.answers) and f1_score(text, q.answers) >= 0.5)
        rows.append((list(result.features), right, "squad-v2"))
        if q.answers and len(rows) % 3 == 0:
            out = bot.extractor.read(q.text, bot.passages(q.text, filters=article_left_out(q.article)), bot.index.document)
            rows.append((list(out.features), 0, "squad-left-out"))
    return rows


def domain_rows(answerer: ReaderAnswerer, data: Path, settings: Settings) -> list[tuple[list[float], int, str]]:
    import bench_domain

    bot = bench_domain.domain_assistant(settings, data, answerer=answerer)
    rows = []
    for row in bench_domain.load_devset("dev"):
        if row.get("follow_up_of"):
            continue  # follow-ups are read several ways by the assistant; their own features come from those readings
        hits = bot.passages(row["question"])
        result = bot.extractor.read(row["question"], hits, bot.index.document)
        text = bot.index.document(result.doc_id).text[result.doc_start : result.doc_end] if result.best else ""
        rows.append((list(result.features), int(bench_domain.is_right(row, text, result.doc_id)), "domain-dev"))
    return rows


def devset_hash() -> str:
    """The domain dev set's file hash: rows read from another version of it are read again."""
    import bench_domain
    from regional_chat.documents import sha256_file

    return sha256_file(bench_domain.DEVSET)[:16]


def rows_key(reader: Path, settings: Settings, limit: int) -> dict:
    """What the cached rows of ``--rows`` were read with; any difference and they are read again."""
    # "left_out": rows read before the left-out questions were searched with the served filter are not reused
    key = {"reader": reader_hash(reader), "features": list(FEATURES), "limit": limit, "headers": settings.reader_headers,
           "left_out": "filter", "devset": devset_hash()}
    if settings.model != "minilm":
        key["model"] = settings.model
    return key


def read_rows(args: argparse.Namespace, settings: Settings) -> list[tuple[list[float], int, str]]:
    """The features and right/wrong of every calibration question, read now or from ``--rows``."""
    reader = Reader(args.reader)
    key = rows_key(args.reader, settings, args.limit)
    if args.rows and args.rows.is_file():
        cached = json.loads(args.rows.read_text(encoding="utf-8"))
        if cached.get("key") == key:
            return [tuple(r) for r in cached["rows"]]
    answerer = ReaderAnswerer(reader, Calibration.uncalibrated(), headers=settings.reader_headers)
    paragraphs, _ = read_squad(args.data / "squad-dev-v2.0-tune-half.json")
    corpus = write_contexts_corpus(paragraphs, args.work / "v2.corpus")
    embedder = make_embedder(settings)
    index_dir = args.work / ("v2.index" if settings.model == "minilm" else f"v2.index.{settings.model}")
    build_index(corpus.parent, index_dir, settings, embedder=embedder, wait=True)
    bot = Assistant(load_index(index_dir, settings, embedder), settings, embedder, corpus.parent, answerer=answerer)
    rows = squad_rows(bot, args.data, args.limit) + domain_rows(answerer, args.data, settings)
    if args.rows:
        args.rows.write_text(json.dumps({"key": key, "rows": rows}) + "\n", encoding="utf-8")
    return rows


def _logit(p: float) -> float:
    p = min(max(p, 1e-9), 1 - 1e-9)
    return float(np.log(p / (1 - p)))


def reader_hash(folder: Path) -> str:
    from regional_chat.documents import sha256_file

    return sha256_file(folder / "model.safetensors")[:16]


def threshold_table(probs: np.ndarray, y: np.ndarray, wrong_cost: float) -> list[dict]:
    """Right, wrong and refused at each threshold from 0.05 to 0.95 (utility = right - wrong_cost * wrong)."""
    out = []
    for t in np.round(np.arange(0.05, 0.951, 0.05), 2):
        answered = probs >= t
        right, wrong = int((answered & (y == 1)).sum()), int((answered & (y == 0)).sum())
        out.append({"threshold": float(t), "right": right, "wrong": wrong, "refused": int((~answered).sum()), "utility": right - wrong_cost * wrong})
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reader", type=Path, default=WEIGHTS)
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--wrong-cost", type=float, default=2.0, help="a wrong answer costs this many refused right ones")
    p.add_argument("--work", type=Path, default=Path("/tmp/rc-calibrate"))
    p.add_argument("--rows", type=Path, default=None, help="keep (and reuse) the read features in this JSON file")
    p.add_argument("--limit", type=int, default=0, help="at most this many SQuAD questions (smoke runs)")
    p.add_argument("--no-headers", action="store_true", help="read passages without their documents' context headers")
    p.add_argument("--model", default="minilm", help="the encoder retrieval uses (its fused scores are a feature): minilm or e5")
    p.add_argument("--results", type=Path, default=None, help="where the report goes (default: bench/results/<the calibration's file name>)")
    p.add_argument("--left-out-refused", type=float, default=0.97,
                   help="the threshold refuses at least this share of the fit's questions asked with their article left out")
    args = p.parse_args()
    t0 = time.time()
    settings = Settings(reader_headers=not args.no_headers, model=args.model)
    rows = read_rows(args, settings)
    fit = [r for r in rows if r[2] != "domain-dev"]
    dev = [r for r in rows if r[2] == "domain-dev"]
    X = np.array([r[0] for r in fit], dtype=np.float64)
    y = np.array([r[1] for r in fit], dtype=np.float64)
    w, b, mean, scale = fit_logistic(X, y)
    squad = Calibration(tuple(map(float, w)), b, tuple(map(float, mean)), tuple(map(float, scale)), 0.5, "")
    probs = np.array([squad.probability(x) for x in X])
    squad_threshold = choose_threshold(probs, y, args.wrong_cost)
    counts = {src: sum(1 for r in rows if r[2] == src) for src in sorted({r[2] for r in rows})}
    fitted = {k: v for k, v in counts.items() if k != "domain-dev"}
    cal, rescale = squad, (1.0, 0.0)
    if dev:
        # SQuAD's mix (half of v2.0 unanswerable, every left-out question wrong) sets a base rate far
        # below the speeches': a passage the retriever found holds the answer more often there. One
        # slope and one offset on the SQuAD logit (Platt scaling, 2 numbers, on the dev split) move
        # the confidence to the domain's scale; the features' weights stay SQuAD's.
        dev_logit = np.array([[_logit(squad.probability(r[0]))] for r in dev])
        dev_y = np.array([r[1] for r in dev], dtype=np.float64)
        (a,), c, m, sd = fit_logistic(dev_logit, dev_y, l2=1.0)
        slope, offset = float(a / sd[0]), float(c - a * m[0] / sd[0])
        rescale = (slope, offset)
        cal = Calibration(tuple(slope * v for v in squad.weights), slope * squad.bias + offset, squad.mean, squad.scale, 0.5, "")
        dev_probs = np.array([cal.probability(r[0]) for r in dev])
        # a question whose documents are absent must be refused: the threshold keeps at least
        # --left-out-refused of the fit's left-out questions (answers from another article) under it
        left_out = np.sort([cal.probability(r[0]) for r in fit if r[2] == "squad-left-out"])
        k = max(0, int(np.ceil(args.left_out_refused * len(left_out))) - 1)  # refused: probability under the threshold
        floor = float(np.ceil((left_out[k] + 1e-6) * 1000) / 1000) if len(left_out) else 0.0
        threshold = choose_threshold(dev_probs, dev_y, args.wrong_cost, floor=floor)
        how = (f"threshold {threshold:.3f} and the domain rescale (slope {slope:.3f}, offset {offset:.3f}) chosen on the domain dev "
               f"split ({len(dev)} non-follow-up questions), a wrong answer costing {args.wrong_cost} refused right ones, the threshold "
               f"no lower than {floor:.3f}, which refuses {args.left_out_refused:.0%} of the fit's left-out questions "
               f"(SQuAD's own threshold would be {squad_threshold:.3f} before the rescale)")
    else:
        threshold, how = squad_threshold, f"threshold {squad_threshold:.3f} chosen on the fit data, wrong answer cost {args.wrong_cost}"
    cal = Calibration(cal.weights, cal.bias, cal.mean, cal.scale, threshold, f"training/calibrate_reader.py: fitted on {fitted}; {how}")
    (args.reader / calibration_file(args.model)).write_text(
        json.dumps(dict(cal.to_json(), threshold_from_squad=squad_threshold, domain_rescale=list(rescale)), indent=1) + "\n", encoding="utf-8"
    )
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": "python training/calibrate_reader.py " + " ".join(sys.argv[1:]),
        "reader": str(args.reader),
        "rows": counts,
        "right_share_fit": round(float(y.mean()), 3),
        "threshold": threshold,
        "threshold_from_squad": squad_threshold,
        "threshold_floor_left_out": floor if dev else None,
        "left_out_refused_at_threshold": round(float(np.mean([cal.probability(r[0]) < threshold for r in fit if r[2] == "squad-left-out"])), 4),
        "weights_squad": dict(zip(FEATURES, map(lambda v: round(float(v), 4), w))),
        "domain_rescale": {"slope": round(rescale[0], 4), "offset": round(rescale[1], 4)},
        "reliability_on_fit_data_before_rescale": [asdict(b) for b in reliability(zip(probs, y))],
        "domain_dev_by_threshold": threshold_table(np.array([cal.probability(r[0]) for r in dev]), np.array([r[1] for r in dev]), args.wrong_cost) if dev else [],
        "seconds": round(time.time() - t0, 1),
    }
    report = args.results or ROOT / "bench" / "results" / calibration_file(args.model)
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in result.items() if not k.startswith("reliability")}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
