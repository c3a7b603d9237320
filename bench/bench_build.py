"""Build speed on the UN General Debate speeches: pipeline vs the model alone, incremental, no-change.

    .venv/bin/python bench/bench_build.py [--repeats 3] [--data ../shared/data/ungdc-central-asia.jsonl]

Measures, in one run and with one warm model:
  * a full build (chunk, embed, write FAISS + SQLite + BM25) against the model's own
    ``encode`` of exactly the same chunk texts: the ratio is the pipeline's overhead;
    with a multilingual encoder, the full build also without the sentence and word vectors
    (``Settings.sentence_vectors``, store/sentences.py): their cost is the difference, and the
    pipeline's overhead is measured on the build without them (the same work as ``encode``);
  * adding one speech to the built index, as a share of the full build;
  * a no-change build, in-process and as a fresh ``regional-chat build`` process,
    next to the bare start-up of that process.
Writes bench/results/build.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from regional_chat.embedding import make_embedder  # noqa: E402
from regional_chat.build import build_index  # noqa: E402
from regional_chat.store import load_index
from regional_chat.settings import Settings  # noqa: E402
from regional_chat.store.sentences import SENTENCES, reads_across  # noqa: E402


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "ungdc-central-asia.jsonl"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=None, help="default: bench/results/build.json (MiniLM), build-<model>.json otherwise")
    parser.add_argument("--model", default="minilm", help="the encoder: minilm (default) or e5")
    parser.add_argument("--no-incremental", action="store_true", help="only the full build against the encoder alone")
    args = parser.parse_args()
    data = Path(args.data)
    if not data.is_file():
        sys.exit(f"{data} not found: the benchmark reads the UN speeches from ../shared/data/")

    settings = Settings(model=args.model)
    out = args.out or str(ROOT / "bench" / "results" / ("build.json" if args.model == "minilm" else f"build-{args.model}.json"))
    embedder = make_embedder(settings)
    embedder.warm_up()
    lines = data.read_text(encoding="utf-8").splitlines()
    quiet = lambda msg: None  # noqa: E731

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        corpus = tmp / "corpus"
        corpus.mkdir()
        (corpus / "ungdc.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")

        # the chunk texts, once, for the model-only runs
        build_index(corpus, tmp / "probe", settings, embedder=embedder, warn=quiet)
        probe = load_index(tmp / "probe")
        texts = [c.text for c in probe.iter_chunks()]
        probe.close()
        model = embedder.model
        prefix = getattr(embedder, "passage_prefix", "") or ""  # e5 reads "passage: " before each chunk
        texts = [prefix + t for t in texts]

        table = settings.sentence_vectors and reads_across(embedder)
        build_s, encode_s, bare_s = [], [], []
        for r in range(args.repeats):  # alternate, so drift on a shared machine hits both alike
            t = time.perf_counter()
            model.encode(texts, batch_size=settings.batch_size, normalize_embeddings=True, convert_to_numpy=True)
            encode_s.append(time.perf_counter() - t)
            report = build_index(corpus, tmp / f"full{r}", settings, embedder=embedder, warn=quiet)
            build_s.append(report.seconds)
            if table:
                bare_s.append(build_index(corpus, tmp / f"bare{r}", settings.with_(sentence_vectors=False), embedder=embedder, warn=quiet).seconds)
            print(f"repeat {r}: encode {encode_s[-1]:.1f} s, build {build_s[-1]:.1f} s, without sentence vectors {bare_s[-1] if bare_s else '-'}", file=sys.stderr)
        chunks = report.chunks
        generation = tmp / "full0" / (tmp / "full0" / "CURRENT").read_text().strip()
        sentence_meta = json.loads((generation / SENTENCES / "meta.json").read_text()) if table else {}
        sentence_bytes = sum(f.stat().st_size for f in (generation / SENTENCES).iterdir()) if table else 0
        index_bytes = sum(f.stat().st_size for f in generation.rglob("*") if f.is_file())

        # add one speech to an index of the other 184
        inc_s, added_chunks = [], 0
        for r in range(0 if args.no_incremental else args.repeats):
            inc_corpus = tmp / f"inc{r}"
            inc_corpus.mkdir()
            path = inc_corpus / "ungdc.jsonl"
            path.write_text("\n".join(lines[:-1]) + "\n", encoding="utf-8")
            build_index(inc_corpus, tmp / f"incix{r}", settings, embedder=embedder, warn=quiet)
            with path.open("a", encoding="utf-8") as handle:
                handle.write(lines[-1] + "\n")
            report = build_index(inc_corpus, tmp / f"incix{r}", settings, embedder=embedder, warn=quiet)
            assert report.added == 1 and report.unchanged == len(lines) - 1
            inc_s.append(report.seconds)
            added_chunks = report.chunks_embedded

        # no change: in-process, and as a whole command next to a bare interpreter start
        nochange_s = [build_index(corpus, tmp / "full0", settings, embedder=embedder, warn=quiet).seconds for _ in range(5)]
        model_flag = [] if args.model == "minilm" else ["--model", args.model]
        exe = str(Path(sys.executable).parent / "regional-chat")
        cli_s, startup_s = [], []
        for _ in range(5):
            t = time.perf_counter()
            subprocess.run([exe, "build", "--corpus", str(corpus), "--index", str(tmp / "full0"), "--quiet", *model_flag], check=True, capture_output=True)
            cli_s.append(time.perf_counter() - t)
            t = time.perf_counter()
            subprocess.run([exe, "--help"], check=True, capture_output=True)
            startup_s.append(time.perf_counter() - t)

    med = statistics.median
    result = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cores": __import__("os").cpu_count(), "cpu": cpu_model(), "python": platform.python_version()},
        "command": "bench/bench_build.py " + " ".join(sys.argv[1:]),
        "model": embedder.name,
        "dtype": getattr(embedder, "dtype", ""),
        "documents": len(lines),
        "chunks": chunks,
        "repeats": args.repeats,
        "full_build_s": build_s,
        "model_encode_s": encode_s,
        "build_chunks_per_s": chunks / med(build_s),
        "encode_chunks_per_s": chunks / med(encode_s),
        "build_over_encode": med(bare_s or build_s) / med(encode_s),  # the pipeline's overhead, same work as encode
        "full_build_without_sentence_vectors_s": bare_s,
        "sentence_vectors_s": med(build_s) - med(bare_s) if bare_s else None,
        "sentence_vectors": sentence_meta,
        "sentence_vectors_bytes": sentence_bytes,
        "index_bytes": index_bytes,
        "add_one_s": inc_s,
        "add_one_chunks": added_chunks,
        "add_one_share_of_full": med(inc_s) / med(build_s) if inc_s else None,
        "no_change_in_process_s": nochange_s,
        "no_change_cli_s": cli_s,
        "cli_startup_s": startup_s,
        "no_change_cli_minus_startup_s": med(cli_s) - med(startup_s),
    }
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"| figure | value | goal |\n|---|---|---|")
    print(f"| full build, {chunks} chunks | {med(build_s):.1f} s ({result['build_chunks_per_s']:.1f} chunks/s) | |")
    print(f"| model encode alone, same texts | {med(encode_s):.1f} s ({result['encode_chunks_per_s']:.1f} chunks/s) | |")
    print(f"| build / encode | {result['build_over_encode']:.3f} | ≤ 1.15 |")
    if bare_s:
        print(f"| full build without sentence vectors | {med(bare_s):.1f} s | |")
        print(f"| sentence and word vectors ({sentence_meta['passages']} + {sentence_meta['queries']}) | "
              f"{result['sentence_vectors_s']:.1f} s, {sentence_bytes / 1e6:.1f} MB of {index_bytes / 1e6:.1f} MB | |")
    if inc_s:
        print(f"| add one speech ({added_chunks} chunks) | {med(inc_s):.2f} s = {100 * result['add_one_share_of_full']:.2f}% of a full build | < 2% |")
    print(f"| no-change build, in process | {med(nochange_s) * 1000:.0f} ms | < 1 s |")
    print(f"| no-change `regional-chat build` process | {med(cli_s):.2f} s (bare start-up {med(startup_s):.2f} s) | < 1 s + start-up |")


if __name__ == "__main__":
    main()
