"""Write XQuAD with the Russian questions put on the English paragraphs (same articles, same answers' paragraphs).

XQuAD's languages are translations of one another, question for question, so
this SQuAD-format file asks each Russian question of the English paragraph
that answers it: what `regional-chat eval` needs to measure ru -> en retrieval.

    .venv/bin/python bench/make_xquad_ru_en.py OUT.json
"""

from __future__ import annotations

import json
import sys

import benchlib


def main(out: str) -> None:
    en = json.loads((benchlib.SHARED / "xquad.en.json").read_text(encoding="utf-8"))
    ru = json.loads((benchlib.SHARED / "xquad.ru.json").read_text(encoding="utf-8"))
    for article_en, article_ru in zip(en["data"], ru["data"], strict=True):
        for para_en, para_ru in zip(article_en["paragraphs"], article_ru["paragraphs"], strict=True):
            for qa_en, qa_ru in zip(para_en["qas"], para_ru["qas"], strict=True):
                qa_en["question"] = qa_ru["question"]  # answers stay English spans of the English paragraph
    with open(out, "w", encoding="utf-8") as handle:
        json.dump(en, handle, ensure_ascii=False)
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1])
