"""Start-up: `regional-chat ask` from a cold process to the printed answer; the web app from launch to its first answer.

    .venv/bin/python bench/bench_startup.py [--repeats 5] [--model e5] [--large /tmp/rc-bench/synthetic-200000]
    .venv/bin/python bench/bench_startup.py --encoders    # cold ask with MiniLM and with e5, English and Russian

Indexes: the seed corpus (corpus/, built here into /tmp/rc-bench/seed-index) and, when present,
the 200k-chunk synthetic index that bench_scale.py builds (``--large``: a folder holding
``corpus.jsonl`` and ``index/``).

* ``ask``: wall time of ``.venv/bin/regional-chat ask --index I "<question>"`` (a new process each
  time; the OS file cache is warm after the first run, as on a machine in use). Median of repeats.
  ``-X importtime`` of one run lists the slowest imports, to show what the command loads.
* web: wall time from starting ``python app.py --read-only --corpus C --index I --port P`` to the
  first answer returned by its ``/ask`` API (gradio_client, polled from the moment the port
  answers). The app checks the corpus against the index first (nothing to embed here).

Writes bench/results/startup.json.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

QUESTION = "Where is the UNRCCA headquartered?"
QUESTION_RU = "Где находится штаб-квартира UNRCCA?"
BIN = Path(sys.executable).parent


def ensure_seed_index(model: str = "minilm") -> Path:
    index = benchlib.WORK / ("seed-index" if model == "minilm" else f"seed-index-{model}")
    subprocess.run([str(BIN / "regional-chat"), "build", "--corpus", str(benchlib.ROOT / "corpus"), "--index", str(index), "--quiet", "--model", model],
                   check=True, capture_output=True)
    return index


def time_ask(index: Path, repeats: int, model: str = "minilm", question: str = QUESTION) -> dict:
    cmd = [str(BIN / "regional-chat"), "ask", "--index", str(index), "--model", model, question]
    subprocess.run(cmd, check=True, capture_output=True)  # the file cache, as on a machine in use
    times, loads, cpu = [], [], []
    for _ in range(repeats):
        loads.append(benchlib.load_average()[0])
        before = children_cpu()
        t = time.perf_counter()
        out = subprocess.run(cmd, check=True, capture_output=True, text=True)
        times.append(time.perf_counter() - t)
        cpu.append(children_cpu() - before)
    imports = subprocess.run([sys.executable, "-X", "importtime", "-m", "regional_chat", "ask", "--index", str(index), "--model", model, question],
                             capture_output=True, text=True, check=True).stderr
    top = []
    for line in imports.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
        if m and len(m.group(3)) <= 2:  # top-level imports only
            top.append((m.group(4), int(m.group(2)) / 1e6))
    top.sort(key=lambda p: -p[1])
    return {"median_s": benchlib.median(times), "runs_s": times, "cpu_s": cpu, "median_cpu_s": benchlib.median(cpu), "load_1min": loads, "answer_first_line": out.stdout.splitlines()[0] if out.stdout else "",
            "slowest_top_level_imports_s": [(n, round(s, 2)) for n, s in top[:8]]}


def children_cpu() -> float:
    """User + system CPU seconds of the finished child processes so far (independent of how busy the machine is)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def time_web(corpus: Path, index: Path) -> dict:
    from gradio_client import Client

    port = free_port()
    cmd = [sys.executable, str(benchlib.ROOT / "app.py"), "--read-only", "--corpus", str(corpus), "--index", str(index), "--port", str(port)]
    load = benchlib.load_average()[0]
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=os.environ | {"GRADIO_ANALYTICS_ENABLED": "False"})
    try:
        up = None
        while up is None:
            if proc.poll() is not None:
                raise SystemExit(f"app.py exited: {proc.stderr.read()[-3000:]}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    up = time.perf_counter() - t
            except OSError:
                time.sleep(0.05)
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        answer = client.predict(QUESTION, [], api_name="/ask")
        first = time.perf_counter() - t
        # the app's CPU up to its first answer: /proc/<pid>/stat utime + stime, in clock ticks
        fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        first_cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        t2 = time.perf_counter()
        client.predict(QUESTION, [], api_name="/ask")
        second = time.perf_counter() - t2
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    text = answer.get("short", "") if isinstance(answer, dict) else str(answer)[:100]
    return {"port_open_s": up, "first_answer_s": first, "first_answer_cpu_s": first_cpu, "second_answer_s": second, "answer": text, "load_1min": load}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--large", default=str(benchlib.WORK / "synthetic-200000"))
    parser.add_argument("--web-repeats", type=int, default=2)
    parser.add_argument("--model", default="e5", help="the encoder of the seed index (default e5, the default encoder)")
    parser.add_argument("--encoders", action="store_true",
                        help="only cold `ask` on the seed corpus with each encoder (MiniLM, e5; English and Russian questions): startup-encoders.json")
    args = parser.parse_args()
    result = benchlib.header()
    if args.encoders:
        for model in ("minilm", "e5"):
            index = ensure_seed_index(model)
            for lang, question in (("en", QUESTION), ("ru", QUESTION_RU)):
                result[f"{model} {lang}"] = ask = time_ask(index, args.repeats, model, question)
                print(model, lang, ask, file=sys.stderr)
        benchlib.write("startup-encoders.json", result)
        return
    seed = ensure_seed_index(args.model)
    targets = {"seed": (benchlib.ROOT / "corpus", seed)}
    large = Path(args.large)
    if (large / "index" / "CURRENT").is_file():
        targets["200k"] = (large / "corpus.jsonl", large / "index")
    else:
        print(f"no index in {large}: run bench/bench_scale.py first for the 200k figures", file=sys.stderr)
    for name, (corpus, index) in targets.items():
        ask = time_ask(index, args.repeats, args.model if name == "seed" else "minilm")
        print(name, "ask", ask, file=sys.stderr)
        web_runs = [time_web(corpus, index) for _ in range(args.web_repeats)]
        print(name, "web", web_runs, file=sys.stderr)
        result[name] = {"index": str(index), "model": args.model if name == "seed" else "minilm", "ask": ask, "web": web_runs,
                        "web_first_answer_median_s": benchlib.median([w["first_answer_s"] for w in web_runs])}
    benchlib.write("startup.json", result)


if __name__ == "__main__":
    main()
