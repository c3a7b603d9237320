"""Shared helpers of the bench/ scripts: machine facts, memory, percentiles, results files.

Not part of the package: the scripts import it as ``benchlib`` from this folder.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
SHARED = ROOT.parent / "shared" / "data"
WORK = Path(os.environ.get("REGIONAL_CHAT_BENCH_DIR", "/tmp/rc-bench"))


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def machine() -> dict[str, Any]:
    from regional_chat.embedding import cpu_has_bf16

    return {
        "cores": os.cpu_count(),
        "cpu": cpu_model(),
        "bf16": cpu_has_bf16(),  # the product's own test: what decides whether its models run in bfloat16
        # fp32 matrix work runs about twice as fast with AVX-512 as with AVX2 alone: the same reader answered the domain
        # test split in p50 67 ms on an Intel Xeon with AVX-512 and 106-128 ms on an AMD EPYC with AVX2 (docs/QUALITY.md)
        "avx512": "avx512f" in Path("/proc/cpuinfo").read_text(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
    }


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def command() -> str:
    exe = sys.executable
    if exe.startswith(str(ROOT) + "/"):
        exe = exe[len(str(ROOT)) + 1 :]
    return " ".join(shlex.quote(str(a)) for a in [exe, *sys.argv])


def header() -> dict[str, Any]:
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "command": command(),
        "load_average_at_start": load_average(),
    }


def rss_mb() -> float:
    """Resident memory of this process now, MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), linear interpolation."""
    if not values:
        return float("nan")
    data = sorted(values)
    pos = (len(data) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


median = statistics.median


def write(name: str, result: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    result.setdefault("load_average_at_end", load_average())
    path = RESULTS / name
    path.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {path}", file=sys.stderr)
    return path


def read(name: str) -> dict[str, Any] | None:
    path = RESULTS / name
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def squad_paragraphs(path: Path | None = None) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """SQuAD v1.1 dev as (documents, questions): one document per paragraph, ids ``<title>#<n>``."""
    raw = json.loads((path or SHARED / "squad-dev-v1.1.json").read_text(encoding="utf-8"))
    docs, questions = [], []
    for article in raw["data"]:
        for n, para in enumerate(article["paragraphs"]):
            doc_id = f"{article['title']}#{n}"
            docs.append({"id": doc_id, "title": article["title"].replace("_", " "), "text": para["context"]})
            for qa in para["qas"]:
                questions.append({"question": qa["question"], "doc": doc_id, "answers": [a["text"] for a in qa["answers"]]})
    return docs, questions


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def spread(items: list, n: int) -> list:
    """``n`` items evenly spread over ``items`` (all of them when there are fewer)."""
    if n >= len(items):
        return list(items)
    step = len(items) / n
    return [items[int(i * step)] for i in range(n)]


def in_subprocess(script: str, *args: str) -> dict:
    """Run one step of a benchmark script in a fresh process; its last line of output is its JSON result."""
    out = subprocess.run([sys.executable, script, *args], capture_output=True, text=True)
    if out.returncode:
        sys.stderr.write(out.stderr[-4000:])
        raise SystemExit(f"{Path(script).name} {' '.join(args)} failed")
    return json.loads(out.stdout.strip().splitlines()[-1])
