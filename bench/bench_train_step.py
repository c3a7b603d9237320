"""What one training step of the reader costs here, in each precision (training/train_reader.py --precision).

    .venv/bin/python bench/bench_train_step.py [--steps 6] [--rounds 2]

The same batches train_reader.py makes (the shipped reader's weights, SQuAD questions of ../shared/data with two
distractor paragraphs each, windows of 256 tokens, 32 a batch, sorted by length within blocks), each step a
forward pass, the loss and an AdamW step (lr 1e-6: the weights hardly move, so every round sees the same
model). The precisions take turns (bf16, fp32, bf16, fp32, ...) so that a change in the machine's load falls on
both; the figure is each precision's median step. Writes bench/results/train-step.json with the CPU, whether it
computes bfloat16 natively, the load, and what ``--precision auto`` picks here.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def _train_module():
    spec = importlib.util.spec_from_file_location("train_reader", ROOT / "training" / "train_reader.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["train_reader"] = module
    spec.loader.exec_module(module)
    return module


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--steps", type=int, default=6, help="steps a precision takes in a round")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "train-step.json")
    args = p.parse_args()

    import torch

    from regional_chat.embedding import cpu_has_bf16
    from regional_chat.reading import model as reader_model
    from regional_chat.reading.reader import WEIGHTS

    train = _train_module()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    train.keep_freed_memory()
    examples, _files, pools = train.training_examples(args.data)
    random.Random(13).shuffle(examples)
    examples = examples[:400]
    negatives = train.add_distractors(examples, pools, 2, 13)
    model, tokenizer, meta = reader_model.load_trained(WEIGHTS, "float32")
    feats = train.featurise(tokenizer, examples + negatives, int(meta["max_len"]), int(meta["stride"]))
    batches = train.batches(feats, 32, random.Random(0))[: args.steps]
    pad = tokenizer.pad_token_id or 0
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-6)
    times: dict[str, list[float]] = {"bf16": [], "fp32": []}
    t0 = time.time()
    for _ in range(args.rounds):
        for precision in times:
            for batch in batches:
                ids, types, att, ctx, starts, ends = train.collate(batch, pad)
                t = time.perf_counter()
                with torch.autocast(device_type="cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                    out = model(input_ids=ids, token_type_ids=types, attention_mask=att)
                loss = train.loss_of(out.start_logits.float(), out.end_logits.float(), ctx, starts, ends, [f.qid for f in batch], 1.0)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                times[precision].append(time.perf_counter() - t)
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": "bench/bench_train_step.py " + " ".join(sys.argv[1:]),
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "threads": args.threads,
        "cpu_computes_bf16": cpu_has_bf16(),
        "auto_picks": train.autocast_precision("auto", "cpu"),
        "windows_per_step": 32,
        "mean_window_tokens": round(statistics.mean(len(f.input_ids) for b in batches for f in b), 1),
        "steps_each": len(times["bf16"]),
        "median_step_s": {k: round(statistics.median(v), 2) for k, v in times.items()},
        "steps_s": {k: [round(x, 2) for x in v] for k, v in times.items()},
        "bf16_over_fp32": round(statistics.median(times["bf16"]) / statistics.median(times["fp32"]), 2),
        "seconds": round(time.time() - t0, 1),
        "load_avg_after": os.getloadavg(),
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
