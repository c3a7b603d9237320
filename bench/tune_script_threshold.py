"""Fit the confidence threshold for questions in Cyrillic script, on Russian XQuAD.

    .venv/bin/python bench/tune_script_threshold.py            # fit, report, write answer_model.json
    .venv/bin/python bench/tune_script_threshold.py --no-write # report the packaged threshold only

The confidence model (bench/tune_answering.py) is fitted on English SQuAD; a Russian question gets
no spaCy answer types and the English embedding model reads it poorly, and its confidence runs high:
with the English threshold, 36% of Russian questions asked without their article in the corpus were
answered. This script asks every XQuAD ru question twice, as `regional-chat eval --leave-article-out`
does (its paragraphs indexed as documents, the retrieval and extractor of the product): with its
article in the corpus, and without it. On the even-indexed articles it picks the lowest threshold
that abstains on at least 96% of the questions without their article (the rule the English threshold
follows); the odd-indexed articles are reported as held out. The threshold is written to
answer_model.json as ``script_thresholds.cyrillic`` and the figures to bench/results/script_threshold.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from regional_chat import answering  # noqa: E402
from regional_chat.answering import AnswerExtractor, packaged_model  # noqa: E402
from regional_chat.embedding import make_embedder  # noqa: E402
from regional_chat.evaluation import ArticleLeftOut, read_squad, write_contexts_corpus  # noqa: E402
from regional_chat.index import build_index, load_index  # noqa: E402
from regional_chat.retrieval import Retriever  # noqa: E402
from regional_chat.settings import Settings  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "xquad.ru.json"
INDEX = Path("/tmp/regional-chat-eval/xquad.ru")
MODEL_PATH = ROOT / "src" / "regional_chat" / answering.MODEL_FILE
RESULTS = ROOT / "bench" / "results" / "script_threshold.json"
LAO_MIN = 0.96


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-write", action="store_true", help="report the packaged threshold; write nothing")
    args = parser.parse_args()
    if not DATA.is_file():
        sys.exit(f"{DATA} is missing: the benchmark data sit in ../shared/data/ beside the project.")
    import torch

    torch.set_num_threads(1)
    settings = Settings()
    paragraphs, questions = read_squad(DATA)
    corpus = write_contexts_corpus(paragraphs, INDEX.parent / f"{INDEX.name}.corpus")
    build_index(corpus.parent, INDEX, settings, warn=lambda m: print(f"warning: {m}", file=sys.stderr))
    embedder = make_embedder(settings)
    index = load_index(INDEX, settings, embedder)
    model = packaged_model()
    extractor = AnswerExtractor(settings, model.never_abstaining(), cache_size=4096)
    retriever = Retriever(index, index.lexical, embedder, settings)
    left_out = ArticleLeftOut(index, embedder, settings)
    rows = []
    for q in questions:
        vector = embedder.embed_queries([q.text])[0]
        inside = extractor.extract(q.text, retriever.search_vector(q.text, vector, settings.top_k), index.document, embedder, vector)
        outside = extractor.extract(q.text, left_out.hits(q.text, vector, q.doc_id), index.document, embedder, vector)
        first = (inside.quotes or inside.related)[:1]
        rows.append((q.article, inside.confidence, outside.confidence, bool(first) and any(g in first[0].text for g in q.answers)))
    art = np.array([r[0] for r in rows])
    conf_in, conf_out, hit = (np.array([r[i] for r in rows]) for i in (1, 2, 3))
    tune = art % 2 == 0
    if args.no_write:
        threshold = model.script_thresholds.get("cyrillic", model.threshold)
    else:
        # confidences are rounded to 4 places: just above one of them is the next threshold that changes anything
        options = [model.threshold] + [c + 1e-4 for c in sorted(set(conf_out[tune].tolist())) if c + 1e-4 > model.threshold]
        threshold = round(float(next((t for t in options if np.mean(conf_out[tune] < t) >= LAO_MIN), 1.0)), 4)

    def figures(mask: np.ndarray, t: float) -> dict:
        answered = conf_in[mask] >= t
        return {
            "questions": int(mask.sum()),
            "answered with the article in the corpus %": round(100 * float(answered.mean()), 2),
            "first quote holds the answer, when answered %": round(100 * float(hit[mask][answered].mean()), 2) if answered.any() else None,
            "abstained without the article %": round(100 * float((conf_out[mask] < t).mean()), 2),
        }

    result = {"data": str(DATA.name), "english threshold": model.threshold, "cyrillic threshold": threshold}
    for name, t in (("with the English threshold", model.threshold), ("with the Cyrillic threshold", threshold)):
        result[name] = {"tune (even articles)": figures(tune, t), "held out (odd articles)": figures(~tune, t), "all": figures(np.ones_like(tune), t)}
    print(json.dumps(result, indent=1))
    if not args.no_write:
        data = json.loads(MODEL_PATH.read_text())
        data["script_thresholds"] = {"cyrillic": threshold}
        MODEL_PATH.write_text(json.dumps(data, indent=1) + "\n")
        RESULTS.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
