"""The two engines side by side, in one process: the reader on five passages and the question encoder.

    .venv/bin/python bench/bench_engines.py [--repeats 15]

``Settings.engine`` "numpy" (encoder.py, float32) against "torch" in float32 and in bfloat16, each
on one thread (as `ask` and `serve` run): the reader reading one question against five passages of
the UN speeches (chunks of about 200 tokens, each after its context header, as the assistant
reads them), and the e5 encoder embedding one question. Warm: each engine is loaded and used
once before it is timed; medians of ``--repeats``. Writes bench/results/engines.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy: one thread, as `ask` runs it
sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

sys.path.insert(0, str(benchlib.ROOT / "src"))

QUESTION = "What did Kazakhstan propose to the General Assembly about nuclear testing?"


def passages(n: int = 5) -> list[str]:
    """Five passages of about 200 tokens from the first UN speech in ../shared/data."""
    line = (benchlib.SHARED / "ungdc-central-asia.jsonl").read_text(encoding="utf-8").splitlines()[0]
    words = json.loads(line)["text"].split()
    return [" ".join(words[i * 150 : (i + 1) * 150]) for i in range(n)]


def median_ms(call, repeats: int) -> float:
    call()  # warm
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        call()
        times.append(time.perf_counter() - t)
    return round(1000 * benchlib.median(times), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    import torch

    from regional_chat.embedding import make_embedder
    from regional_chat.reading.reader import Reader
    from regional_chat.settings import Settings

    torch.set_num_threads(1)
    texts = passages()
    headers = ["Kazakhstan, 1992, session 47."] * len(texts)
    result = benchlib.header() | {"question": QUESTION, "passages": len(texts), "repeats": args.repeats, "engines": {}}
    for name, engine, dtype in (("numpy", "numpy", "float32"), ("torch float32", "torch", "float32"), ("torch bfloat16", "torch", "bfloat16")):
        reader = Reader(dtype=dtype, engine=engine, threads=1)
        reading = reader.read(QUESTION, texts, headers=headers)
        embedder = make_embedder(Settings(model="e5", dtype=dtype, engine=engine))
        result["engines"][name] = row = {
            "reader_ms": median_ms(lambda: reader.read(QUESTION, texts, headers=headers), args.repeats),
            "windows": reading.windows,
            "e5_question_ms": median_ms(lambda: embedder.embed_queries([QUESTION]), args.repeats),
            "load_1min": benchlib.load_average()[0],
        }
        print(name, row, file=sys.stderr, flush=True)
    result["load_average_at_end"] = benchlib.load_average()
    benchlib.write("engines.json", result)


if __name__ == "__main__":
    main()
