"""Our trained extractive reader next to Haystack's extractive reader: same weights, same passages, one run.

    python3 -m venv .venv-bench
    .venv-bench/bin/pip install -c constraints.txt -e . haystack-ai==3.4.1 transformers-haystack==2.0.0
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HAYSTACK_TELEMETRY_ENABLED=False \
        .venv-bench/bin/python bench/bench_reader_haystack.py --reader /tmp/reader-full [--questions 300]

In haystack-ai 3.x ``ExtractiveReader`` is no longer in haystack-ai itself
(``haystack.components.readers`` is gone); it lives on in the ``transformers-haystack``
integration as ``haystack_integrations.components.readers.transformers.TransformersExtractiveReader``,
the same component (the code is the 2.x ``ExtractiveReader``'s). That is what is measured here.

Questions: exactly as ``bench/bench_reader.py`` builds them: SQuAD v1.1 dev, odd-indexed articles,
every question, shuffled with ``random.Random(0)``, the first ``--questions``. Passages: the gold
paragraph first, then the ``--distractors`` best other paragraphs of the same article by BM25
(bm25s, English stop words, an index per question). The passage lists are built once, before
either system runs, and both get the identical lists (Haystack as ``Document(content=passage)``,
made before the clock starts).

Systems, all on the same ``--reader`` folder (the same bf16 safetensors):
  ours               ``regional_chat.reading.reader.Reader(DIR)`` as it ships: dtype "auto" (bfloat16
                     where the CPU has AVX512-BF16/AMX, else float32), windows of reader.json's
                     serve_max_len (else max_len) tokens, best span over all windows.
  ours-float32       ``Reader(DIR, dtype="float32")``: the same in Haystack's default precision.
  haystack-default   ``TransformersExtractiveReader(model=DIR, top_k=1, no_answer=False, device=cpu)``,
                     every other setting Haystack's default (max_seq_length 384, stride 128, float32:
                     transformers loads the config's dtype).
  haystack-matched   the same with ours' settings where it has them: max_seq_length = the window
                     ours uses, stride = reader.json stride, model dtype = ours' dtype (model_kwargs);
                     it has no answer-length or question-length limit.
  haystack-matched+types (diagnostic, not stock Haystack; ``--no-diagnostic`` drops it): matched, with
                     BERT segment ids passed to the model (Haystack passes only input_ids and
                     attention_mask, so a BERT model reads the passage as segment 0).

Questions are run interleaved (question i: every system in turn, order rotated by i) so that a
shared machine's load drifts over all systems alike; each system answered one question untimed
before the timed loop. Latency: time.perf_counter() around ``reader.read`` / ``reader.run``.
SIGTERM or Ctrl-C during the timed loop writes the questions done so far (``stopped_early`` says so).
On a machine shared with another CPU-bound job use ``--threads 1``: two threads then run about 4x slower.

Worth knowing when reading the numbers: Haystack scores spans as sigmoid(0.1 * (start + end logit))
in the model's dtype, so with a bfloat16 model the scores are coarse and many spans tie (top-k then
picks among them); most haystack-matched+types vs ours disagreements are such ties, and the rest
are spans over max_answer_tokens, which Haystack has no limit for.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))  # bench_reader: the same questions and passages

from regional_chat.evaluation import exact_match, f1_score, normalize_answer  # noqa: E402


def build_rows(data_dir: Path, n: int, distractors: int) -> list[dict]:
    """bench_reader.py's question set and passages (its own functions), with the passage lists made once."""
    from bench_reader import squad_odd, with_distractors

    rows = squad_odd(data_dir, n)
    return [{"id": row[4], "question": q, "golds": golds, "passages": passages}
            for row, (q, passages, golds) in zip(rows, with_distractors(rows, distractors))]


class WithTokenTypes:
    """Wraps a BERT QA model so that Haystack's (input_ids, attention_mask) call also gets segment ids:
    1 from the token after the first [SEP] on (the passage and its closing [SEP]), 0 for padding."""

    def __init__(self, model, sep_id: int) -> None:
        self.model, self.sep_id = model, sep_id

    def __getattr__(self, name):
        return getattr(self.model, name)

    def __call__(self, input_ids, attention_mask):
        import torch

        after_sep = (torch.cumsum((input_ids == self.sep_id).long(), dim=1) - (input_ids == self.sep_id).long()) >= 1
        types = (after_sep & (attention_mask == 1)).long()
        return self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=types)


def pct(xs: list[float], p: float) -> float:
    import numpy as np

    return float(np.percentile(np.array(xs), p))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--reader", type=Path, required=True, help="trained reader folder (config.json, model.safetensors, tokenizer, reader.json)")
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--questions", type=int, default=300)
    p.add_argument("--distractors", type=int, default=4)
    p.add_argument("--threads", type=int, default=2, help="torch threads (both systems)")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "haystack-reader.json")
    p.add_argument("--no-diagnostic", action="store_true", help="skip the haystack-matched+types diagnostic run")
    p.add_argument("--no-float32", action="store_true", help="skip the ours-float32 run (ours in float32 is still loaded for the weights check)")
    args = p.parse_args()
    folder = args.reader.resolve()

    import importlib.metadata as md

    import torch
    import transformers
    from haystack import Document
    from haystack.utils import ComponentDevice
    from haystack_integrations.components.readers.transformers import TransformersExtractiveReader

    from regional_chat.reading.reader import Reader

    torch.set_num_threads(args.threads)
    meta = json.loads((folder / "reader.json").read_text())
    t = time.perf_counter()
    rows = build_rows(args.data, args.questions, args.distractors)
    build_s = time.perf_counter() - t

    # --- the systems ---
    ours = Reader(folder)
    ours.warm_up()
    ours32 = Reader(folder, dtype="float32")
    ours32.warm_up()
    window = int(meta.get("serve_max_len", meta["max_len"]))  # what Reader.read uses
    ours_dtype = getattr(torch, ours.dtype)

    def make_haystack(**kw):
        r = TransformersExtractiveReader(model=str(folder), top_k=1, no_answer=False, device=ComponentDevice.from_str("cpu"), **kw)
        r.warm_up()
        return r

    hs_default = make_haystack()
    matched = dict(max_seq_length=window, stride=int(meta["stride"]), model_kwargs={"dtype": ours_dtype})
    hs_matched = make_haystack(**matched)
    systems: dict[str, dict] = {}

    def ours_runner(reader):
        def run(row):
            reading = reader.read(row["question"], row["passages"])
            b = reading.best
            if b is None:
                return "", None, reading.windows
            return row["passages"][b.passage][b.start : b.end], b.passage, reading.windows

        return run

    def haystack_runner(reader):
        def run(row):
            docs = row["docs"]
            answers = reader.run(query=row["question"], documents=docs)["answers"]
            if not answers:
                return "", None, None
            a = answers[0]
            src = next((i for i, d in enumerate(docs) if a.document is not None and d.id == a.document.id), None)
            return a.data or "", src, None

        return run

    def ours_settings(r):
        return {"component": "regional_chat.reading.reader.Reader", "dtype": r.dtype, "window_tokens": window, "trained_max_len": meta["max_len"],
                "stride": meta["stride"], "max_question_tokens": meta["max_question_tokens"], "max_answer_tokens": meta["max_answer_tokens"],
                "batch": 16, "padding": "to the longest window of each batch of 16", "token_type_ids": "passed (segment B = 1)",
                "span_score": "start+end logit, best over all windows"}

    systems["ours"] = {"run": ours_runner(ours), "settings": ours_settings(ours)}
    if not args.no_float32:
        systems["ours-float32"] = {"run": ours_runner(ours32), "settings": ours_settings(ours32)}

    def hs_settings(r, note):
        return {"component": "haystack_integrations.components.readers.transformers.TransformersExtractiveReader",
                "max_seq_length": r.max_seq_length, "stride": r.stride, "top_k": r.top_k, "no_answer": r.no_answer,
                "answers_per_seq": r.answers_per_seq or 20, "max_batch_size": r.max_batch_size, "calibration_factor": r.calibration_factor,
                "overlap_threshold": r.overlap_threshold, "score_threshold": r.score_threshold, "model_kwargs": {k: str(v) for k, v in r.model_kwargs.items()},
                "model_dtype": str(r.model.dtype), "tokenizer": type(r.tokenizer).__name__,
                "truncation": "True (longest_first), padding to the longest window, all windows in one batch",
                "max_answer_tokens": "none (any start <= end inside one window)", "max_question_tokens": "none",
                "token_type_ids": "not passed (all 0)", "span_score": "sigmoid(0.1 * (start+end logit)), best over all windows", "note": note}

    systems["haystack-default"] = {"run": haystack_runner(hs_default), "settings": hs_settings(hs_default, "Haystack defaults except top_k=1, no_answer=False, device=cpu")}
    systems["haystack-matched"] = {"run": haystack_runner(hs_matched), "settings": hs_settings(hs_matched, "max_seq_length = ours' window (reader.json serve_max_len, else max_len), stride = reader.json stride, dtype = ours' dtype")}
    if not args.no_diagnostic:
        hs_types = make_haystack(**matched)
        hs_types.model = WithTokenTypes(hs_types.model, hs_types.tokenizer.sep_token_id)
        s = hs_settings(hs_types, "DIAGNOSTIC, not stock Haystack: haystack-matched with BERT token_type_ids passed to the model")
        s["token_type_ids"] = "passed (segment B = 1) by a wrapper around the model"
        systems["haystack-matched+types"] = {"run": haystack_runner(hs_types), "settings": s}

    # same weights? compare Haystack's loaded parameters with ours
    def param_diff(a, b):
        sa, sb = a.state_dict(), b.state_dict()
        return {"max_abs_diff": max(float((sa[k].float() - sb[k].float()).abs().max()) for k in sa if k in sb),
                "keys_only_in_one": sorted(set(sa) ^ set(sb)), "dtypes": [str(next(a.parameters()).dtype), str(next(b.parameters()).dtype)]}

    weights_check = {"ours-float32 vs haystack-default": param_diff(ours32._load()[0], hs_default.model),
                     "ours vs haystack-matched": param_diff(ours._load()[0], hs_matched.model)}

    for row in rows:
        row["docs"] = [Document(content=p) for p in row["passages"]]

    # warm-up: one untimed question per system
    for s in systems.values():
        s["run"](rows[0])

    names = list(systems)
    per_q = []
    import signal

    class Stopped(Exception):
        pass

    def on_term(signum, frame):
        raise Stopped()

    signal.signal(signal.SIGTERM, on_term)
    stopped = None
    t_loop = time.perf_counter()
    try:
        for i, row in enumerate(rows):
            rec = {"id": row["id"], "question": row["question"], "golds": row["golds"]}
            order = names[i % len(names):] + names[: i % len(names)]
            for name in order:
                t = time.perf_counter()
                pred, src, windows = systems[name]["run"](row)
                ms = 1000 * (time.perf_counter() - t)
                rec[name] = {"pred": pred, "passage": src, "ms": round(ms, 2), "em": exact_match(pred, row["golds"]), "f1": f1_score(pred, row["golds"])}
                if windows is not None:
                    rec[name]["windows"] = windows
            per_q.append(rec)
            if (i + 1) % 25 == 0:
                print(f"[{i + 1}/{len(rows)}] {time.perf_counter() - t_loop:.0f} s, load {os.getloadavg()[0]:.2f}", file=sys.stderr, flush=True)
    except (Stopped, KeyboardInterrupt) as exc:
        stopped = f"{type(exc).__name__} after {len(per_q)} of {len(rows)} questions: partial results"
        print(stopped, file=sys.stderr, flush=True)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if not per_q:
        return 1
    rows = rows[: len(per_q)]

    n = len(per_q)
    results = {}
    for name in names:
        rs = [r[name] for r in per_q]
        ms = [r["ms"] for r in rs]
        results[name] = {
            "EM": round(100 * sum(r["em"] for r in rs) / n, 1),
            "F1": round(100 * sum(r["f1"] for r in rs) / n, 1),
            "from_gold_paragraph": round(100 * sum(r["passage"] == 0 for r in rs) / n, 1),
            "latency_p50_ms": round(pct(ms, 50), 1),
            "latency_p95_ms": round(pct(ms, 95), 1),
            "latency_mean_ms": round(sum(ms) / n, 1),
            "mean_answer_words": round(sum(len(r["pred"].split()) for r in rs) / n, 2),
            "settings": systems[name]["settings"],
        }
    tok = ours._load()[1]
    cap = int(meta["max_answer_tokens"])
    for name in names:
        long = sum(len(tok(r[name]["pred"], add_special_tokens=False)["input_ids"]) > cap for r in per_q)
        results[name][f"answers_over_{cap}_tokens_pct"] = round(100 * long / n, 1)
    for name in [x for x in ("ours", "ours-float32") if x in results]:
        results[name]["mean_windows"] = round(sum(r[name]["windows"] for r in per_q) / n, 2)
    for name, r in (("haystack-default", hs_default), ("haystack-matched", hs_matched)):
        w = 0
        for row in rows:
            enc = r.tokenizer([row["question"]] * len(row["passages"]), row["passages"], truncation=True, max_length=r.max_seq_length, stride=r.stride, return_overflowing_tokens=True)
            w += len(enc["input_ids"])
        results[name]["mean_windows"] = round(w / n, 2)
    if "haystack-matched+types" in results:
        results["haystack-matched+types"]["mean_windows"] = results["haystack-matched"]["mean_windows"]

    agreement = {}
    for a_i, a in enumerate(names):
        for b in names[a_i + 1 :]:
            same = sum(r[a]["pred"] == r[b]["pred"] for r in per_q)
            same_norm = sum(normalize_answer(r[a]["pred"]) == normalize_answer(r[b]["pred"]) for r in per_q)
            agreement[f"{a} vs {b}"] = {"same_text": round(100 * same / n, 1), "same_normalized": round(100 * same_norm / n, 1)}

    out = {
        "benchmark": "extractive reader: regional-chat Reader vs Haystack TransformersExtractiveReader (ex-ExtractiveReader), same weights, same passages",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "reader": str(folder),
        "reader_json": {k: meta[k] for k in ("format", "backbone", "max_len", "serve_max_len", "stride", "max_question_tokens", "max_answer_tokens") if k in meta},
        "reader_trained_command": meta.get("trained", {}).get("command"),
        "versions": {"python": sys.version.split()[0], "haystack-ai": md.version("haystack-ai"), "transformers-haystack": md.version("transformers-haystack"),
                     "torch": torch.__version__, "transformers": transformers.__version__, "tokenizers": md.version("tokenizers"), "bm25s": md.version("bm25s")},
        "questions": n,
        "questions_requested": args.questions,
        "stopped_early": stopped,
        "distractors": args.distractors,
        "passages_per_question": round(sum(len(r["passages"]) for r in rows) / n, 2),
        "question_set": "SQuAD v1.1 dev odd-indexed articles, random.Random(0).shuffle, first N (as bench/bench_reader.py); passages = gold + top-k BM25 (bm25s, en stop words) of the other paragraphs of its article",
        "threads": args.threads,
        "cpu_count": os.cpu_count(),
        "loadavg_start": None,
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        "timing": "interleaved per question, system order rotated; one untimed warm-up question per system; perf_counter around read()/run(); Documents made before timing",
        "passage_build_s": round(build_s, 1),
        "weights_check": weights_check,
        "systems": results,
        "agreement": agreement,
        "per_question": per_q,
    }
    out["loadavg_start"] = LOAD_START
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    tmp.replace(args.out)

    print(f"reader {folder}  questions {n}  passages/q {out['passages_per_question']}  threads {args.threads}  load {out['loadavg_start']} -> {out['loadavg_end']}")
    print(f"{'system':24} {'EM':>6} {'F1':>6} {'gold%':>6} {'p50ms':>7} {'p95ms':>7} {'windows':>7}")
    for name in names:
        r = results[name]
        print(f"{name:24} {r['EM']:6.1f} {r['F1']:6.1f} {r['from_gold_paragraph']:6.1f} {r['latency_p50_ms']:7.1f} {r['latency_p95_ms']:7.1f} {str(r.get('mean_windows', '')):>7}")
    for k, v in agreement.items():
        print(f"agreement {k}: {v['same_text']}% same text ({v['same_normalized']}% normalized)")
    print(f"weights: {json.dumps(weights_check)}; wrote {args.out}")
    return 0


LOAD_START = [round(x, 2) for x in os.getloadavg()]

if __name__ == "__main__":
    raise SystemExit(main())
