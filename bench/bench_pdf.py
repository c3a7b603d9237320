"""Build throughput on PDFs, per page: the UN speeches typeset as PDFs against the same text as .txt files.

    .venv/bin/python bench/bench_pdf.py [--model e5] [--limit 185] [--repeats 3]

Each speech of ../shared/data/ungdc-central-asia.jsonl is written as a PDF (Helvetica, lines cut at
95 characters, 48 lines a page, the country and year in the title; the same hand-written PDF writer
as the test fixtures, tests/fixtures/ingest/make_fixtures.py) and, beside it in a second corpus, as
a .txt file of the same lines with the same title and date as front matter (so that both get the
same context header and the same chunks). Measured in one run, repeats alternated so that load hits both alike:
  * text extraction alone (the PDF reader over every file): pages per second;
  * a full build of the PDF corpus and of the .txt corpus with the same warm encoder: pages per
    second, and what the PDF layer costs on top of the text (the ratio of the two builds).
The PDFs are typeset here, not real UN scans: they have a clean text layer, so this is the cost of
reading a text layer, not of damaged or scanned files. Writes bench/results/build-pdf.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import sys
import tempfile
import textwrap
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from regional_chat.embedding import make_embedder  # noqa: E402
from regional_chat.build import build_index  # noqa: E402
from regional_chat.ingest import reader  # noqa: E402
from regional_chat.settings import Settings  # noqa: E402

LINE_CHARS = 95
PAGE_LINES = 48


def _fixtures():
    spec = importlib.util.spec_from_file_location("make_fixtures", ROOT / "tests" / "fixtures" / "ingest" / "make_fixtures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def typeset(text: str) -> list[list[str]]:
    """The text cut into lines of at most LINE_CHARS characters, and the lines into pages."""
    lines: list[str] = []
    for paragraph in text.splitlines():
        paragraph = paragraph.encode("latin-1", "replace").decode("latin-1")  # Helvetica/WinAnsi: no Cyrillic
        lines.extend(textwrap.wrap(paragraph, LINE_CHARS) or [""])
    return [lines[i : i + PAGE_LINES] for i in range(0, len(lines), PAGE_LINES)]


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "ungdc-central-asia.jsonl")
    p.add_argument("--model", default="e5", help="the encoder (default e5, the product's default)")
    p.add_argument("--limit", type=int, default=185, help="speeches to typeset")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "build-pdf.json")
    args = p.parse_args()
    if not args.data.is_file():
        sys.exit(f"{args.data} not found: the benchmark reads the UN speeches from ../shared/data/")
    fixtures = _fixtures()
    speeches = [json.loads(line) for line in args.data.read_text(encoding="utf-8").splitlines() if line.strip()][: args.limit]
    settings = Settings(model=args.model)
    embedder = make_embedder(settings)
    embedder.warm_up()
    quiet = lambda msg: None  # noqa: E731
    read_pdf = reader(".pdf")

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        pdfs, txts = tmp / "pdf", tmp / "txt"
        pdfs.mkdir()
        txts.mkdir()
        pages = 0
        for s in speeches:
            laid = typeset(s["text"])
            pages += len(laid)
            info = {"Title": f"{s['country_iso3']} {s['year']} General Debate statement", "CreationDate": fixtures._pdf_date(f"{s['year']}-09-20")}
            (pdfs / f"{s['id']}.pdf").write_bytes(fixtures.make_pdf([fixtures._text_stream(lines) for lines in laid], info))
            # the same title and date as front matter, so both documents get the same context header
            front = f"---\ntitle: {info['Title']}\ndate: {s['year']}-09-20\n---\n"
            (txts / f"{s['id']}.txt").write_text(front + "\n\n".join("\n".join(lines) for lines in laid) + "\n", encoding="utf-8")
        files = sorted(pdfs.iterdir())
        megabytes = sum(f.stat().st_size for f in files) / 1e6

        extract_s, pdf_s, txt_s, warnings = [], [], [], []
        pdf_chunks = txt_chunks = 0
        for r in range(args.repeats):
            t = time.perf_counter()
            for f in files:
                _, w = read_pdf(f.name, f.read_bytes())
                warnings.extend(w)
            extract_s.append(time.perf_counter() - t)
            report = build_index(pdfs, tmp / f"pdf-index{r}", settings, embedder=embedder, warn=quiet)
            pdf_s.append(report.seconds)
            pdf_chunks = report.chunks
            report = build_index(txts, tmp / f"txt-index{r}", settings, embedder=embedder, warn=quiet)
            txt_s.append(report.seconds)
            txt_chunks = report.chunks
            print(f"repeat {r}: extract {extract_s[-1]:.1f} s, pdf build {pdf_s[-1]:.1f} s, txt build {txt_s[-1]:.1f} s", file=sys.stderr)

    med = statistics.median
    result = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cores": os.cpu_count(), "cpu": cpu_model(), "python": platform.python_version(), "load": os.getloadavg()},
        "command": "bench/bench_pdf.py " + " ".join(sys.argv[1:]),
        "model": embedder.name,
        "documents": len(files),
        "pages": pages,
        "pdf_megabytes": round(megabytes, 1),
        "repeats": args.repeats,
        "extract_s": extract_s,
        "extract_pages_per_s": pages / med(extract_s),
        "pdf_build_s": pdf_s,
        "pdf_build_pages_per_s": pages / med(pdf_s),
        "pdf_chunks": pdf_chunks,
        "txt_build_s": txt_s,
        "txt_chunks": txt_chunks,
        "pdf_over_txt_build": med(pdf_s) / med(txt_s),
        "extraction_share_of_pdf_build": med(extract_s) / med(pdf_s),
        "reader_warnings": len(warnings) // max(1, args.repeats),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print("| figure | value |\n|---|---|")
    print(f"| {len(files)} PDFs, {pages} pages, {megabytes:.1f} MB | |")
    print(f"| text extraction alone (pypdf) | {med(extract_s):.1f} s, {result['extract_pages_per_s']:.0f} pages/s |")
    print(f"| full build of the PDFs ({pdf_chunks} chunks, {embedder.name}) | {med(pdf_s):.1f} s, {result['pdf_build_pages_per_s']:.1f} pages/s |")
    print(f"| full build of the same text as .txt ({txt_chunks} chunks) | {med(txt_s):.1f} s |")
    print(f"| PDF build / text build | {result['pdf_over_txt_build']:.2f} (extraction is {100 * result['extraction_share_of_pdf_build']:.0f}% of the PDF build) |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
