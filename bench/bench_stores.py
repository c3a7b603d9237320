"""The two stores side by side at 20k and 200k chunks: build throughput, retrieval latency, memory.

    .venv/bin/python bench/bench_stores.py [--sizes 20000 200000] [--questions 200]

The corpora and vectors are bench_scale.py's synthetic ones (documents of 40 real chunk texts,
vectors replayed from the real MiniLM vectors of those chunks plus noise; its docstring says how),
so both stores index exactly the same chunks and vectors. It needs bench_scale's base pool
(``/tmp/rc-bench/base-pool.npz``, made from the real indexes bench_throughput.py leaves).

Per size and store, each in a fresh process:
  * build: ``build_index`` into an index folder (FAISS + bm25s + SQLite), a milvus-lite file
    (``milvus:<file>``, the embedded Milvus: its server runs inside the process), or a
    ``milvus-lite server`` process this script starts on 127.0.0.1 (the client-server path; the
    server's own RSS is given apart), full build, seconds, chunks/s, peak RSS;
  * serve: ``Assistant.load`` then ``Assistant.search`` (what ``answer`` retrieves: question vector,
    dense search, BM25, fusion, chunk texts) on SQuAD questions: load time, RSS after the
    questions, p50/p95 latency. The reader is left out: it reads the same passages on both stores
    and costs the same (docs/BENCHMARKS.md, the reader's figures).
Writes bench/results/stores.json. ``breakdown`` (after a run, on the stores it built): the calls one
search makes (dense k=50, BM25 k=50, BM25 with the scores of the 50 dense candidates, five chunk
texts), each timed apart, median of 10; merged into the same file.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402
import bench_scale  # noqa: E402

sys.path.insert(0, str(benchlib.ROOT / "src"))

RESULT = "stores.json"
STORES = ("folder", "milvus-lite", "milvus-server")
SERVER_PORT = 19599  # the milvus-lite server this script starts for "milvus-server" (127.0.0.1 only)


def location(store: str, size: int) -> str:
    base = benchlib.WORK / "stores" / f"{store}-{size}"
    if store == "milvus-server":
        return f"milvus:http://127.0.0.1:{SERVER_PORT}#s{size}"
    return str(base) if store == "folder" else f"milvus:{base}.db"


@contextmanager
def milvus_server(size: int):
    """A `milvus-lite server` process on 127.0.0.1 with a fresh data folder, for one size."""
    from pymilvus import MilvusClient

    from regional_chat.store.milvus import QUIET_KEEPALIVE

    data = benchlib.WORK / "stores" / f"milvus-server-{size}"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    exe = Path(sys.executable).parent / "milvus-lite"
    log = (data / "server.log").open("w")
    proc = subprocess.Popen([str(exe), "server", "--data-dir", str(data / "db"), "--host", "127.0.0.1", "--port", str(SERVER_PORT)],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                MilvusClient(uri=f"http://127.0.0.1:{SERVER_PORT}", timeout=2, grpc_options=QUIET_KEEPALIVE).close()
                break
            except Exception:  # noqa: BLE001 - not listening yet
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"milvus-lite server did not start: {(data / 'server.log').read_text()[-2000:]}")
                time.sleep(0.3)
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def server_rss_mb(proc) -> float:
    """Resident memory of the server process (the client's is measured apart)."""
    for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def do_build(store: str, size: int) -> dict:
    from regional_chat.build import build_index
    from regional_chat.store import load_index
    from regional_chat.settings import Settings

    where = location(store, size)
    path = Path(where.removeprefix("milvus:"))
    if store != "milvus-server":  # the server starts with an empty data folder
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
        path.parent.mkdir(parents=True, exist_ok=True)
    _, vectors = bench_scale.base_pool()
    embedder = bench_scale.ReplayEmbedder(vectors)
    load = benchlib.load_average()[0]
    report = build_index(bench_scale.corpus_path(size), where, Settings(), embedder=embedder, full=True, warn=lambda m: None)
    index = load_index(where)
    kind = index.manifest.index_kind
    index.close()
    if store == "milvus-server":
        folder = benchlib.WORK / "stores" / f"milvus-server-{size}" / "db"
        disk = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    else:
        disk = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size
    return {
        "seconds": report.seconds, "chunks": report.chunks, "documents": report.documents, "chunks_per_s": report.chunks / report.seconds,
        "peak_rss_mb": benchlib.peak_rss_mb(), "index_kind": kind, "disk_mb": disk / 1e6, "load_1min": load,
    }


def do_serve(store: str, size: int, n_questions: int) -> dict:
    t0 = time.perf_counter()
    import numpy as np

    from regional_chat.assistant import Assistant
    from regional_chat.settings import Settings

    _, vectors = bench_scale.base_pool()
    embedder = bench_scale.ReplayEmbedder(vectors)
    bot = Assistant.load(location(store, size), Settings(), embedder=embedder)
    load_s = time.perf_counter() - t0
    rss_loaded = benchlib.rss_mb()
    _, questions = benchlib.squad_paragraphs()
    asked = [q["question"] for q in benchlib.spread(questions, n_questions + 5)]
    for q in asked[:5]:
        bot.search(q)
    times = []
    for q in asked[5:]:
        t = time.perf_counter()
        hits = bot.search(q)
        times.append(time.perf_counter() - t)
        assert len(hits) == bot.settings.top_k
    ms = lambda v: round(1000 * v, 2)  # noqa: E731
    return {
        "load_s": load_s, "rss_after_load_mb": rss_loaded, "rss_after_questions_mb": benchlib.rss_mb(), "peak_rss_mb": benchlib.peak_rss_mb(),
        "questions": len(times), "p50_ms": ms(benchlib.pct(times, 50)), "p95_ms": ms(benchlib.pct(times, 95)),
        "mean_ms": ms(float(np.mean(times))), "load_1min": benchlib.load_average()[0],
    }


def do_breakdown(store: str, size: int, repeats: int = 10) -> dict:
    """Where a search's time goes on a built store: the calls ``Assistant.search`` makes, timed apart (medians)."""
    from regional_chat.store import load_index

    _, vectors = bench_scale.base_pool()
    index = load_index(location(store, size))
    query = "Kazakhstan water conference Dushanbe 2023"
    ids = [i for i, _ in index.search(vectors[:1], 50)[0]]

    def median_ms(call) -> float:
        times = []
        for n in range(repeats):
            t = time.perf_counter()
            call(n)
            times.append(time.perf_counter() - t)
        return round(1000 * benchlib.median(times), 1)

    out = {
        "dense_k50_ms": median_ms(lambda n: index.search(vectors[n : n + 1], 50)),
        "bm25_k50_ms": median_ms(lambda n: index.lexical.search_and_score(query, 50, [])),
        "bm25_k50_and_scores_of_50_ids_ms": median_ms(lambda n: index.lexical.search_and_score(query, 50, ids)),
        "texts_of_5_chunks_ms": median_ms(lambda n: index.chunks(ids[:5])),
        "repeats": repeats, "load_1min": benchlib.load_average()[0],
    }
    index.close()
    return out


def in_subprocess(*args: str) -> dict:
    return benchlib.in_subprocess(__file__, *args)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("step", nargs="?", default="all", choices=("all", "build", "serve", "breakdown"))
    p.add_argument("--sizes", type=int, nargs="+", default=[20_000, 200_000])
    p.add_argument("--questions", type=int, default=200)
    p.add_argument("--store", choices=STORES)
    p.add_argument("--stores", nargs="+", choices=STORES, default=list(STORES))
    p.add_argument("--size", type=int)
    args = p.parse_args()
    if args.step == "build":
        print(json.dumps(do_build(args.store, args.size)))
        return
    if args.step == "serve":
        print(json.dumps(do_serve(args.store, args.size, args.questions)))
        return
    if args.step == "breakdown" and args.store:
        print(json.dumps(do_breakdown(args.store, args.size)))
        return
    if args.step == "breakdown":  # on the stores an earlier run built; merged into stores.json
        result = benchlib.read(RESULT) or {}
        found = result.setdefault("breakdown", {})
        for size in args.sizes:
            for store in [s for s in args.stores if s != "milvus-server"]:  # the server's data is gone with it
                found[f"{store}-{size}"] = row = in_subprocess("breakdown", "--store", store, "--size", str(size))
                print(size, store, row, flush=True)
        result["breakdown_command"] = "bench/bench_stores.py " + " ".join(sys.argv[1:])
        result["breakdown_date"] = benchlib.header()["date"]
        benchlib.write(RESULT, result)
        return
    texts, _ = bench_scale.base_pool()
    result = benchlib.header() | {"command": "bench/bench_stores.py " + " ".join(sys.argv[1:]), "sizes": {}}
    for size in args.sizes:
        corpus = bench_scale.make_corpus(size, texts)
        row: dict = {"corpus": corpus}
        for store in args.stores:  # the same corpus, one store after the other, each in fresh processes
            with milvus_server(size) if store == "milvus-server" else nullcontext() as server:
                built = in_subprocess("build", "--store", store, "--size", str(size))
                if server is not None:
                    built["server_rss_mb"] = server_rss_mb(server)
                served = in_subprocess("serve", "--store", store, "--size", str(size), "--questions", str(args.questions))
                if server is not None:
                    served["server_rss_mb"] = server_rss_mb(server)
            row[store] = {"build": built, "serve": served}
            print(f"{size:>8} {store:<12} build {built['seconds']:.0f} s ({built['chunks_per_s']:.0f} chunks/s, peak {built['peak_rss_mb']:.0f} MB), "
                  f"search p50 {served['p50_ms']:.1f} / p95 {served['p95_ms']:.1f} ms, RSS {served['rss_after_questions_mb']:.0f} MB", flush=True)
        result["sizes"][str(size)] = row
        benchlib.write(RESULT, result)
    result["load_average_at_end"] = benchlib.load_average()
    benchlib.write(RESULT, result)


if __name__ == "__main__":
    main()
