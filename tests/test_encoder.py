"""The numpy BERT encoder gives transformers' and sentence-transformers' vectors, without importing them."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from regional_chat.encoder import BertEncoder, EncoderError, SentenceEncoder, read_safetensors
from regional_chat.embedding import make_embedder
from regional_chat.settings import Settings

TINY = {
    "model_type": "bert", "hidden_size": 16, "num_attention_heads": 4, "num_hidden_layers": 2, "intermediate_size": 24,
    "vocab_size": 50, "max_position_embeddings": 32, "type_vocab_size": 2, "layer_norm_eps": 1e-12, "hidden_act": "gelu",
}


def _tiny_bert(folder, dtype=np.float32):
    """A random two-layer BERT written as transformers' BertModel would save it."""
    from safetensors.numpy import save_file

    rng = np.random.default_rng(7)
    h, i = TINY["hidden_size"], TINY["intermediate_size"]
    t = {"embeddings.word_embeddings.weight": (TINY["vocab_size"], h), "embeddings.position_embeddings.weight": (32, h),
         "embeddings.token_type_embeddings.weight": (2, h), "embeddings.LayerNorm.weight": (h,), "embeddings.LayerNorm.bias": (h,)}
    for n in range(TINY["num_hidden_layers"]):
        p = f"encoder.layer.{n}."
        for name in ("query", "key", "value"):
            t[p + f"attention.self.{name}.weight"], t[p + f"attention.self.{name}.bias"] = (h, h), (h,)
        t |= {p + "attention.output.dense.weight": (h, h), p + "attention.output.dense.bias": (h,),
              p + "attention.output.LayerNorm.weight": (h,), p + "attention.output.LayerNorm.bias": (h,),
              p + "intermediate.dense.weight": (i, h), p + "intermediate.dense.bias": (i,),
              p + "output.dense.weight": (h, i), p + "output.dense.bias": (h,),
              p + "output.LayerNorm.weight": (h,), p + "output.LayerNorm.bias": (h,)}
    tensors = {k: (rng.standard_normal(s) * 0.5 + (1.0 if k.endswith("LayerNorm.weight") else 0.0)).astype(np.float32) for k, s in t.items()}
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text(json.dumps(TINY))
    save_file(tensors, str(folder / "model.safetensors"))
    return tensors


def test_the_numpy_forward_is_transformers_bert_forward(tmp_path):
    torch = pytest.importorskip("torch")
    from transformers import BertConfig, BertModel

    tensors = _tiny_bert(tmp_path / "bert")
    reference = BertModel(BertConfig(**TINY), add_pooling_layer=False).eval()
    missing, unexpected = reference.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items()}, strict=False)
    assert not unexpected and all(m.endswith("position_ids") for m in missing)
    ids = np.array([[2, 17, 33, 5, 9, 0, 0], [4, 8, 15, 16, 23, 42, 3]])
    mask = np.array([[1, 1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1, 1]])
    with torch.inference_mode():
        want = reference(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).last_hidden_state.numpy()
    got = BertEncoder(tmp_path / "bert")(ids, mask)
    assert got.dtype == np.float32 and got.shape == want.shape
    real = mask.astype(bool)  # padding positions are never read
    assert np.abs(got[real] - want[real]).max() < 1e-5


def test_bfloat16_tensors_are_read_as_their_float32_values(tmp_path):
    from safetensors.numpy import save_file

    values = np.array([1.0, -2.5, 0.15625, 2.0**100], dtype=np.float32)
    raw = (values.view(np.uint32) >> 16).astype(np.uint16)  # these values are exact in bfloat16
    save_file({"x": raw}, str(tmp_path / "m.safetensors"))
    header_len = int.from_bytes((tmp_path / "m.safetensors").read_bytes()[:8], "little")
    data = (tmp_path / "m.safetensors").read_bytes()
    header = json.loads(data[8 : 8 + header_len])
    header["x"]["dtype"] = "BF16"  # numpy cannot write bfloat16: mark the uint16 bits as what they are
    text = json.dumps(header).encode()
    (tmp_path / "m.safetensors").write_bytes(len(text).to_bytes(8, "little") + text + data[8 + header_len :])
    assert read_safetensors(tmp_path / "m.safetensors")["x"].tolist() == values.tolist()


def test_a_folder_that_is_not_bert_is_refused_with_a_reason(tmp_path):
    _tiny_bert(tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text(json.dumps(TINY | {"position_embedding_type": "relative_key"}))
    with pytest.raises(EncoderError, match="absolute positions"):
        BertEncoder(tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text(json.dumps(TINY))
    (tmp_path / "m" / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    with pytest.raises(EncoderError, match="has no tensor"):
        BertEncoder(tmp_path / "m")


TEXTS = [
    "query: Where is the UNRCCA headquartered?",
    "query: Где находится штаб-квартира UNRCCA?",
    "passage: Қазақстан Республикасы 1993 жылы БҰҰ-ға мүше болды.",
    "passage: " + "The Trans-Caspian route carried cargo. " * 120,  # past the model's limit: cut as sentence-transformers cuts
    "x",
]


@pytest.mark.slow
@pytest.mark.parametrize("model", ["e5", "minilm"])
def test_real_models_give_sentence_transformers_float32_vectors(model):
    embedder = make_embedder(Settings(model=model, dtype="float32"))
    want = embedder.model.encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True, batch_size=8)
    direct = SentenceEncoder(embedder.path, embedder.max_tokens)
    assert np.abs(direct.encode(TEXTS) - want).max() < 1e-5
    assert np.abs(np.vstack([direct.encode([t]) for t in TEXTS]) - want).max() < 1e-5  # alone or padded in a batch
    # and the token counts chunking uses are the model tokenizer's, without truncation
    counts = [len(ids) for ids in embedder.model.tokenizer(TEXTS, add_special_tokens=True, truncation=False)["input_ids"]]
    assert make_embedder(Settings(model=model)).count_tokens(TEXTS) == counts and max(counts) > embedder.max_tokens


@pytest.mark.slow
def test_embedding_a_question_imports_neither_torch_nor_sentence_transformers():
    code = textwrap.dedent("""
        import sys
        from regional_chat.embedding import make_embedder
        from regional_chat.settings import Settings
        e = make_embedder(Settings(model="e5", engine="numpy"))
        v = e.embed_queries(["Where is the UNRCCA headquartered?"])
        print(v.shape, round(float((v * v).sum()), 4), "torch" in sys.modules, "sentence_transformers" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-4:] == ["384)", "1.0", "False", "False"], out.stdout


# --------------------------------------------------------------------------- the Unigram tokenizer


def _unigram_folder(folder, *, recovered=True):
    """A small Unigram tokenizer.json built by the tokenizers library, with e5's pipeline (NFKC, metaspace, <s> $A </s>).

    Scores come in few values, so that equal-scoring paths occur and the tie rule is tested too.
    """
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram

    rng = np.random.default_rng(11)
    special = ["<s>", "<pad>", "</s>", "<unk>"]
    singles = list("▁abcdeklmnorstuxyzабвгдеклмнорстуқңө.,?-1290")
    multis = ["▁a", "▁th", "th", "the", "▁the", "ab", "abc", "bc", "cd", "st", "sta", "stan", "▁ка", "ка", "аз", "за", "қазақ", "стан", "12", "20", "2007", "e.", "<unk>x"]
    pieces = special + singles + multis
    vocab = [(p, 0.0) if p in special else (p, float(-rng.integers(1, 6))) for p in pieces]
    tok = Tokenizer(Unigram(vocab, unk_id=3, byte_fallback=False))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC()])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
                                                      special_tokens=[("<s>", 0), ("</s>", 2)])
    folder.mkdir()
    (folder / "tokenizer.json").write_text(tok.to_str(), encoding="utf-8")
    if recovered:
        (folder / "RECOVERED.json").write_text("{}")
    return tok, "abcdekstuxyz абвгдекқаз ▁.,?1290<>ü\u00a0\u2003Ωﬁ日"


def test_the_unigram_tokenizer_gives_the_librarys_ids_ties_unknowns_and_truncation_included(tmp_path):
    from regional_chat.encoder import UNIGRAM_SIDECAR, UnigramTokenizer

    library, alphabet = _unigram_folder(tmp_path / "m")
    rng = np.random.default_rng(5)
    texts = ["", " ", "the abc", "<unk>xx", "Қазақстан 2007 e.g.", "ﬁ日日 ü", *("".join(rng.choice(list(alphabet), rng.integers(1, 30))) for _ in range(2000))]
    for max_tokens in (512, 7):
        ours = UnigramTokenizer.load(tmp_path / "m", max_tokens)
        library.enable_truncation(max_tokens)
        want = [e.ids for e in library.encode_batch(texts, add_special_tokens=True)]
        got = ours.encode_batch(texts)
        assert [t for t, g, w in zip(texts, got, want) if g != w] == []
        assert any(len(w) == 7 for w in want) and any(3 in w for w in want)  # truncation and unknowns did occur
    assert len(list((tmp_path / "m").glob(UNIGRAM_SIDECAR + "*"))) == 2  # derived once, then read


def test_the_unigram_tokenizer_rederives_damaged_files_and_writes_only_into_recovered_folders(tmp_path):
    from regional_chat.encoder import UNIGRAM_SIDECAR, UnigramTokenizer

    library, _ = _unigram_folder(tmp_path / "m")
    first = UnigramTokenizer.load(tmp_path / "m", 512).encode("the stan")
    assert first == library.encode("the stan").ids
    for derived in (tmp_path / "m").glob(UNIGRAM_SIDECAR + "*.txt"):
        derived.write_text("not json\n")
    assert UnigramTokenizer.load(tmp_path / "m", 512).encode("the stan") == first
    _unigram_folder(tmp_path / "foreign", recovered=False)
    assert UnigramTokenizer.load(tmp_path / "foreign", 512) is None  # the caller uses the library
    assert not list((tmp_path / "foreign").glob(UNIGRAM_SIDECAR + "*"))
