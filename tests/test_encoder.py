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
