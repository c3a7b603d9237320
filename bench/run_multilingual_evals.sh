#!/usr/bin/env bash
# Retrieval recall of both encoders on XQuAD en->en, ru->ru, ru->en and SQuAD v1.1 (docs/QUALITY.md, "Multilingual retrieval").
set -euxo pipefail
# the recovered e5 folder: ~/.cache/regional-chat unless REGIONAL_CHAT_CACHE says otherwise
RC=.venv/bin/regional-chat
cd "$(dirname "$0")/.."
# Russian questions against the English paragraphs: bench/make_xquad_ru_en.py writes the file
mkdir -p /tmp/rc-multilingual
.venv/bin/python bench/make_xquad_ru_en.py /tmp/rc-multilingual/xquad-ru-questions-en-paragraphs.json
for m in e5 minilm; do
  $RC eval /tmp/rc-multilingual/xquad-ru-questions-en-paragraphs.json --model $m --retrieval-only --quiet --index /tmp/rc-multilingual/ix-xq-ruen-$m --json bench/results/retrieval-xq-ruen-$m.json
  $RC eval ../shared/data/xquad.ru.json --model $m --retrieval-only --quiet --index /tmp/rc-multilingual/ix-xq-ru-$m --json bench/results/retrieval-xq-ru-$m.json
  $RC eval ../shared/data/xquad.en.json --model $m --retrieval-only --quiet --index /tmp/rc-multilingual/ix-xq-en-$m --json bench/results/retrieval-xq-en-$m.json
done
$RC eval ../shared/data/squad-dev-v1.1.json --model e5 --retrieval-only --quiet --index /tmp/rc-multilingual/ix-squad-e5 --json bench/results/retrieval-squad-e5.json

