#!/usr/bin/env python3
"""Check bench/devset/domain-dev.jsonl against its sources and the rules it was written to.

Standard library only. Usage (from anywhere):

    python3 bench/devset/check_devset.py [--data PATH] [--corpus DIR] [--devset PATH]

Defaults, relative to the repository root (the parent of bench/):
    --data    ../shared/data/ungdc-central-asia.jsonl   (the 185 UN General Debate speeches)
    --corpus  corpus/                                   (the shipped article lives here)
    --devset  bench/devset/domain-dev.jsonl

Exits 0 and prints the counts when every rule holds; prints every violation and exits 1
otherwise. The sources are only read, never copied.
"""
import argparse
import collections
import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent

FIELDS = ["id", "question", "language", "doc", "answerable", "answers", "kind",
          "follow_up_of", "split"]
KINDS = ["factoid", "paraphrase", "country-year", "unanswerable", "follow-up"]
LANGS = ["en", "ru"]
SPLITS = ["dev", "test"]
ISO3 = ["KAZ", "KGZ", "TJK", "TKM", "UZB", "AFG"]
# How a question may name each country (English, Russian).
COUNTRY_NAMES = {
    "KAZ": r"Kazakh|Kazak|Казахстан|казахстан",
    "KGZ": r"Kyrgyz|Кыргыз|кыргыз|Киргиз|киргиз",
    "TJK": r"Tajik|Таджикистан|таджик",
    "TKM": r"Turkmen|Туркменистан|туркмен",
    "UZB": r"Uzbek|Узбекистан|узбек",
    "AFG": r"Afghan|Афганистан|афган",
}
SPEECH_ID = re.compile(r"^(KAZ|KGZ|TJK|TKM|UZB|AFG)_(\d+)_(\d{4})$")
CYRILLIC = re.compile(r"[\u0400-\u04FF]")

# Minimums the set was written to (see README.md).
MIN_TOTAL = 130
MIN_KIND = {"country-year": 30, "unanswerable": 25, "follow-up": 10}
MIN_RU = 15
MIN_ARTICLE = 15          # questions on the shipped article (answerable or not)
MIN_ARTICLE_UNANSWERABLE = 4
MIN_SPEECH = 80           # questions on the speeches, plus unanswerable ones with doc null
MAX_ANSWERS = 3
MAX_ANSWER_WORDS = 15     # hard limit; SQuAD-style answers are usually 1-8 words
MIN_SPEECH_COUNTRIES = 6
YEAR_SPAN = (1993, 2023)  # the speeches used must reach at least this far back / forward


def load_speeches(path):
    docs = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            docs[row["id"]] = row["text"]
    return docs


def load_articles(corpus):
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(Path(corpus).glob("*.txt"))}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str((REPO / ".." / "shared" / "data" / "ungdc-central-asia.jsonl").resolve()),
                    help="speeches JSONL (default: ../shared/data/ungdc-central-asia.jsonl from the repo root)")
    ap.add_argument("--corpus", default=str(REPO / "corpus"),
                    help="folder holding the shipped article (default: corpus/ in the repo root)")
    ap.add_argument("--devset", default=str(HERE / "domain-dev.jsonl"),
                    help="the question set (default: bench/devset/domain-dev.jsonl)")
    args = ap.parse_args(argv)

    errors = []
    notes = []

    def err(qid, msg):
        errors.append(f"{qid}: {msg}")

    for p, what in ((args.data, "--data"), (args.corpus, "--corpus"), (args.devset, "--devset")):
        if not Path(p).exists():
            print(f"ERROR: {what} path not found: {p}", file=sys.stderr)
            return 1
    speeches = load_speeches(args.data)
    articles = load_articles(args.corpus)
    docs = dict(speeches)
    docs.update(articles)

    rows = []
    with open(args.devset, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                err(f"line {n}", "blank line")
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                err(f"line {n}", f"not valid JSON ({e})")
                continue
            if not isinstance(row, dict):
                err(f"line {n}", "not a JSON object")
                continue
            rows.append((n, row))

    seen_ids = {}
    seen_questions = {}
    by_id = {}
    for pos, (n, r) in enumerate(rows):
        qid = r.get("id", f"line {n}")
        missing = [k for k in FIELDS if k not in r]
        extra = [k for k in r if k not in FIELDS]
        if missing:
            err(qid, f"missing field(s) {missing}")
            continue
        if extra:
            err(qid, f"unexpected field(s) {extra}")
        if not isinstance(qid, str) or not re.fullmatch(r"d\d{3,}", qid):
            err(qid, "id must look like d001")
        if qid in seen_ids:
            err(qid, f"duplicate id (also line {seen_ids[qid]})")
        seen_ids[qid] = n
        by_id[qid] = (pos, r)

        q = r["question"]
        if not isinstance(q, str) or not q.strip():
            err(qid, "question must be a non-empty string")
            q = ""
        elif not q.rstrip().endswith("?"):
            err(qid, "question should end with '?'")
        if q and q in seen_questions:
            err(qid, f"same question text as {seen_questions[q]}")
        seen_questions.setdefault(q, qid)

        lang = r["language"]
        if lang not in LANGS:
            err(qid, f"language must be one of {LANGS}, got {lang!r}")
        elif lang == "ru" and not CYRILLIC.search(q):
            err(qid, "language ru but the question has no Cyrillic text")
        elif lang == "en" and CYRILLIC.search(q):
            err(qid, "language en but the question contains Cyrillic text")

        kind = r["kind"]
        if kind not in KINDS:
            err(qid, f"kind must be one of {KINDS}, got {kind!r}")
        if r["split"] not in SPLITS:
            err(qid, f"split must be one of {SPLITS}, got {r['split']!r}")
        if not isinstance(r["answerable"], bool):
            err(qid, "answerable must be true or false")

        doc = r["doc"]
        text = None
        if doc is not None:
            if not isinstance(doc, str) or doc not in docs:
                err(qid, f"doc {doc!r} is neither a speech id in --data nor a file in --corpus")
            else:
                text = docs[doc]

        answers = r["answers"]
        if not isinstance(answers, list):
            err(qid, "answers must be a list")
            answers = []
        if r["answerable"] is True:
            if kind == "unanswerable":
                err(qid, "kind unanswerable but answerable is true")
            if doc is None:
                err(qid, "answerable question needs a doc")
            if not 1 <= len(answers) <= MAX_ANSWERS:
                err(qid, f"answerable question needs 1-{MAX_ANSWERS} answers, has {len(answers)}")
        elif r["answerable"] is False:
            if kind != "unanswerable":
                err(qid, "answerable is false, so kind must be unanswerable")
            if answers:
                err(qid, "unanswerable question must have answers = []")
        seen_spans = set()
        for i, a in enumerate(answers):
            tag = f"answer {i}"
            if not isinstance(a, dict) or sorted(a) != ["start", "text"]:
                err(qid, f"{tag} must be an object with exactly 'text' and 'start'")
                continue
            t, s = a["text"], a["start"]
            if not isinstance(t, str) or not t:
                err(qid, f"{tag} text must be a non-empty string")
                continue
            if isinstance(s, bool) or not isinstance(s, int) or s < 0:
                err(qid, f"{tag} start must be a non-negative integer")
                continue
            if t != t.strip():
                err(qid, f"{tag} text {t!r} has leading/trailing whitespace")
            if CYRILLIC.search(t):
                err(qid, f"{tag} text {t!r} is not an English span of the document")
            nwords = len(t.split())
            if nwords > MAX_ANSWER_WORDS:
                err(qid, f"{tag} has {nwords} words (> {MAX_ANSWER_WORDS}); answers should be short spans")
            elif nwords > 8:
                notes.append(f"{qid}: {tag} is {nwords} words")
            if (t, s) in seen_spans:
                err(qid, f"{tag} repeats an earlier answer of this question")
            seen_spans.add((t, s))
            if text is not None:
                got = text[s:s + len(t)]
                if got != t:
                    err(qid, f"{tag} {t!r} not found verbatim at start {s} of {doc} (found {got!r})")

        fu = r["follow_up_of"]
        if kind == "follow-up":
            if not fu:
                err(qid, "kind follow-up needs follow_up_of")
        elif fu is not None:
            err(qid, "follow_up_of must be null unless kind is follow-up")

        m = SPEECH_ID.match(doc) if isinstance(doc, str) else None
        if kind == "country-year":
            if not m:
                err(qid, "country-year question must point at a speech")
            else:
                iso, year = m.group(1), m.group(3)
                if year not in q:
                    err(qid, f"country-year question does not name the year {year}")
                if not re.search(COUNTRY_NAMES[iso], q):
                    err(qid, f"country-year question does not name the country ({iso})")
        if kind == "unanswerable" and m:
            # doc is set on an unanswerable question only when the question names that speech
            iso, year = m.group(1), m.group(3)
            if year not in q or not re.search(COUNTRY_NAMES[iso], q):
                err(qid, f"unanswerable question with doc {doc} must name that country and year")

    # follow-ups: parent exists, comes earlier, same document, same split, is answerable
    for pos, (n, r) in enumerate(rows):
        if r.get("kind") != "follow-up" or not r.get("follow_up_of"):
            continue
        qid, pid = r["id"], r["follow_up_of"]
        if pid not in by_id:
            err(qid, f"follow_up_of {pid!r} does not exist")
            continue
        ppos, parent = by_id[pid]
        if ppos >= pos:
            err(qid, f"follow_up_of {pid} must come earlier in the file")
        if parent.get("doc") != r.get("doc"):
            err(qid, f"follow-up is on {r.get('doc')} but {pid} is on {parent.get('doc')}")
        if parent.get("split") != r.get("split"):
            err(qid, f"follow-up split {r.get('split')} differs from {pid}'s {parent.get('split')}")
        if parent.get("answerable") is not True:
            err(qid, f"follow-up of {pid}, which is not answerable")

    # ---- counts and mix ----
    R = [r for _, r in rows if all(k in r for k in FIELDS)]
    kinds = collections.Counter(r["kind"] for r in R)
    langs = collections.Counter(r["language"] for r in R)
    splits = collections.Counter(r["split"] for r in R)
    ks = collections.Counter((r["kind"], r["split"]) for r in R)
    is_art = lambda r: isinstance(r["doc"], str) and r["doc"] in articles
    art = [r for r in R if is_art(r)]
    spe = [r for r in R if not is_art(r)]
    spe_docs = [r["doc"] for r in R if isinstance(r["doc"], str) and SPEECH_ID.match(r["doc"])]
    countries = collections.Counter(d[:3] for d in spe_docs)
    years = sorted(int(SPEECH_ID.match(d).group(3)) for d in spe_docs)

    def need(cond, msg):
        if not cond:
            errors.append(f"set: {msg}")

    need(len(R) >= MIN_TOTAL, f"{len(R)} questions, need at least {MIN_TOTAL}")
    for k, lo in MIN_KIND.items():
        need(kinds[k] >= lo, f"{kinds[k]} questions of kind {k}, need at least {lo}")
    for k in KINDS:
        need(kinds[k] > 0, f"no questions of kind {k}")
    need(langs["ru"] >= MIN_RU, f"{langs['ru']} Russian questions, need at least {MIN_RU}")
    need(len(art) >= MIN_ARTICLE, f"{len(art)} questions on the article, need at least {MIN_ARTICLE}")
    art_un = sum(1 for r in art if r["kind"] == "unanswerable")
    need(art_un >= MIN_ARTICLE_UNANSWERABLE,
         f"{art_un} unanswerable questions on the article, need at least {MIN_ARTICLE_UNANSWERABLE}")
    need(len(spe) >= MIN_SPEECH, f"{len(spe)} questions on the speeches, need at least {MIN_SPEECH}")
    missing_c = [c for c in ISO3 if countries[c] == 0]
    need(len(ISO3) - len(missing_c) >= MIN_SPEECH_COUNTRIES, f"no questions on speeches of {missing_c}")
    if years:
        need(years[0] <= YEAR_SPAN[0] and years[-1] >= YEAR_SPAN[1],
             f"speech years run {years[0]}-{years[-1]}, need to reach {YEAR_SPAN[0]} and {YEAR_SPAN[1]}")
    need(abs(splits["dev"] - splits["test"]) <= max(2, len(R) // 10),
         f"splits unbalanced: dev {splits['dev']}, test {splits['test']}")
    for k in KINDS:
        d, t = ks[(k, "dev")], ks[(k, "test")]
        need(abs(d - t) <= max(2, (d + t) // 5), f"kind {k} unbalanced across splits: dev {d}, test {t}")
    ls = collections.Counter((r["language"], r["split"]) for r in R)
    for l in LANGS:
        d, t = ls[(l, "dev")], ls[(l, "test")]
        need(abs(d - t) <= max(2, (d + t) // 5), f"language {l} unbalanced across splits: dev {d}, test {t}")

    # ---- report ----
    print(f"devset: {args.devset}")
    print(f"sources: {len(speeches)} speeches ({args.data}), {len(articles)} article(s) ({args.corpus})")
    print(f"questions: {len(R)}  (article {len(art)}, speeches/other {len(spe)})")
    print("by kind:     " + ", ".join(f"{k} {kinds[k]}" for k in KINDS))
    print("by language: " + ", ".join(f"{l} {langs[l]}" for l in LANGS))
    print("by split:    " + ", ".join(f"{s} {splits[s]}" for s in SPLITS))
    print("language x split: " + ", ".join(
        f"{l} dev {ls[(l, 'dev')]} / test {ls[(l, 'test')]}" for l in LANGS))
    print("kind x split:")
    for k in KINDS:
        print(f"  {k:13s} dev {ks[(k, 'dev')]:3d}  test {ks[(k, 'test')]:3d}")
    lk = collections.Counter((r["language"], r["kind"]) for r in R)
    print("ru by kind:  " + ", ".join(f"{k} {lk[('ru', k)]}" for k in KINDS))
    print("speech questions by country: " + ", ".join(f"{c} {countries[c]}" for c in ISO3))
    if years:
        print(f"speech years: {years[0]}-{years[-1]}, {len(set(spe_docs))} distinct speeches")
    print(f"answerable {sum(1 for r in R if r['answerable'] is True)}, "
          f"unanswerable {sum(1 for r in R if r['answerable'] is False)} "
          f"(doc null {sum(1 for r in R if r['answerable'] is False and r['doc'] is None)})")
    for nline in notes:
        print("note: " + nline)

    if errors:
        print(f"\nFAILED: {len(errors)} violation(s)", file=sys.stderr)
        for e in errors:
            print("  " + e, file=sys.stderr)
        return 1
    print("\nOK: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
