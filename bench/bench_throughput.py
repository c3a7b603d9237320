"""Build throughput: chunks per second of a full build next to the model's own encode of the same texts.

    .venv/bin/python bench/bench_throughput.py [--repeats 2] [--profile]

For each data set (the UN speeches, ../shared/data/ungdc-central-asia.jsonl, and the
2,067 SQuAD v1.1 dev paragraphs, one document each), in one process with one warm model:

* a full ``build_index`` (read, chunk, embed, write SQLite + FAISS + BM25, swap);
* ``SentenceTransformer.encode`` alone on exactly the chunk texts that build made, with the
  same batch size, normalisation and dtype;

alternating build and encode ``--repeats`` times so that drift on a shared machine hits both.
The ratio build / encode is the pipeline's overhead (goal: at most 1.10).

``--profile`` also samples one full build of each data set with py-spy (a separate process)
and writes the top functions by own time and by total time to the results.

Writes bench/results/throughput.json; leaves the built indexes in /tmp/rc-bench/<name>-index
for bench_scale.py (real vectors) and bench_haystack.py.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

sys.path.insert(0, str(benchlib.ROOT / "src"))
from regional_chat.embedding import make_embedder  # noqa: E402
from regional_chat.build import build_index  # noqa: E402
from regional_chat.store import load_index
from regional_chat.settings import Settings  # noqa: E402


def corpora() -> dict[str, Path]:
    """name -> corpus file (the SQuAD paragraphs are written as JSON Lines once)."""
    squad_docs, _ = benchlib.squad_paragraphs()
    squad = benchlib.WORK / "squad-corpus" / "squad-dev-paragraphs.jsonl"
    if not squad.is_file():
        benchlib.write_jsonl(squad, squad_docs)
    ungdc = benchlib.SHARED / "ungdc-central-asia.jsonl"
    if not ungdc.is_file():
        sys.exit(f"{ungdc} not found: the benchmark reads the UN speeches from ../shared/data/")
    return {"squad": squad, "ungdc": ungdc}


def one_build(corpus: str, index: str) -> None:
    """A full build and nothing else (the process py-spy samples)."""
    settings = Settings()
    report = build_index(corpus, index, settings, full=True, warn=lambda m: None)
    print(json.dumps({"chunks": report.chunks, "seconds": report.seconds}))


def profile(corpus: Path, index: Path, rate: int = 50) -> dict:
    """py-spy samples of one full build in a fresh process: top functions by own and by total samples."""
    raw = benchlib.WORK / f"profile-{index.name}.txt"
    spy = Path(sys.executable).parent / "py-spy"
    cmd = [str(spy), "record", "--format", "raw", "--rate", str(rate), "--output", str(raw), "--",
           sys.executable, __file__, "--one-build", str(corpus), str(index)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    build = json.loads(next(line for line in out.stdout.splitlines() if line.startswith("{")))
    return {"build": build, **summarise(raw)}


# stages of a build, by the function whose frames hold them (a sample counts for every stage on its stack)
STAGES = {
    "model forward (SentenceTransformer.encode)": "SentenceTransformer.encode ",
    "chunking (Chunker.chunks)": "Chunker.chunks ",
    "  of which the model's tokenizer (count_tokens)": "SentenceTransformerEmbedder.count_tokens ",
    "  of which tiktoken": "Encoding.encode_ordinary",
    "reading documents (read_documents)": "read_documents ",
    "planning (_plan)": "_plan ",
    "SQLite (Store.add_*)": "Store.add_",
    "FAISS add (add_with_ids)": "add_with_ids ",
    "BM25 build (_build_lexical)": "_build_lexical ",
    "fsync (_fsync_tree)": "_fsync_tree ",
    "imports (_find_and_load)": "_find_and_load ",
}


def summarise(raw: Path) -> dict:
    """Top functions by own and by total samples of a py-spy ``--format raw`` file, and the share of each build stage."""
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    stages: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        samples += n
        frames = [f.split(" (")[0] + " (" + f.split(" (")[1].split(":")[0].rsplit("/", 1)[-1] + ")" if " (" in f else f
                  for f in stack.split(";")]
        own[frames[-1]] += n
        for f in set(frames):
            total[f] += n
        for stage, marker in STAGES.items():
            if marker in stack:
                stages[stage] += n
    return {
        "samples": samples,
        "top_own": [(f, round(100 * n / samples, 1)) for f, n in own.most_common(15)],
        "top_total": [(f, round(100 * n / samples, 1)) for f, n in total.most_common(40)],
        "stages": {stage: round(100 * stages[stage] / samples, 1) for stage in STAGES},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--profile", action="store_true", help="also sample one build of each data set with py-spy")
    parser.add_argument("--only", choices=("ungdc", "squad"), help="one data set only")
    parser.add_argument("--profile-sets", nargs="+", default=["ungdc", "squad"], help="which data sets --profile samples")
    parser.add_argument("--out", default="throughput.json")
    parser.add_argument("--one-build", nargs=2, metavar=("CORPUS", "INDEX"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one_build:
        one_build(*args.one_build)
        return

    result = benchlib.header()
    settings = Settings()
    embedder = make_embedder(settings)
    embedder.warm_up()
    model = embedder.model
    result.update(model=embedder.name, dtype=embedder.dtype, batch_size=settings.batch_size, embed_buffer=settings.embed_buffer,
                  torch_threads=__import__("torch").get_num_threads(), sets={})
    quiet = lambda msg: None  # noqa: E731
    for name, corpus in corpora().items():
        if args.only and name != args.only:
            continue
        index = benchlib.WORK / f"{name}-index"
        # the chunk texts: from an index of this corpus left by an earlier run, else from a first build
        build_index(corpus, index, settings, embedder=embedder, warn=quiet)
        probe = load_index(index)
        texts = [c.text for c in probe.iter_chunks()]
        documents = len(probe.manifest.documents)
        probe.close()
        model.encode(texts[:256], batch_size=settings.batch_size, normalize_embeddings=True, show_progress_bar=False)  # warm
        build_s, encode_s, loads = [], [], []
        for r in range(args.repeats):
            loads.append(benchlib.load_average()[0])
            t = time.perf_counter()
            model.encode(texts, batch_size=settings.batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
            encode_s.append(time.perf_counter() - t)
            report = build_index(corpus, index, settings, embedder=embedder, full=True, warn=quiet)
            build_s.append(report.seconds)
            print(f"{name} repeat {r}: encode {encode_s[-1]:.1f} s, build {build_s[-1]:.1f} s (load {loads[-1]})", file=sys.stderr)
        med = benchlib.median
        entry = {
            "corpus": str(corpus), "documents": documents, "chunks": len(texts),
            "build_s": build_s, "encode_s": encode_s, "load_1min": loads,
            "build_chunks_per_s": len(texts) / med(build_s),
            "encode_chunks_per_s": len(texts) / med(encode_s),
            "build_over_encode": med(build_s) / med(encode_s),
            "per_repeat_ratio": [b / e for b, e in zip(build_s, encode_s)],
        }
        if args.profile and name in args.profile_sets:
            entry["profile"] = profile(corpus, benchlib.WORK / f"{name}-profiled")
        result["sets"][name] = entry
        print(f"{name}: {len(texts)} chunks, build {entry['build_chunks_per_s']:.1f}/s, encode {entry['encode_chunks_per_s']:.1f}/s, "
              f"ratio {entry['build_over_encode']:.3f}", file=sys.stderr)
    benchlib.write(args.out, result)


if __name__ == "__main__":
    main()
