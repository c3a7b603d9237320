"""A BERT encoder run directly in numpy: question vectors without importing torch or sentence-transformers.

Embedding one question is a few dozen tokens through 6 (MiniLM) or 12 (e5) layers of width 384:
microseconds of arithmetic, against seconds to import sentence-transformers and torch. This module
reads a model folder's ``config.json``, ``model.safetensors`` (memory-mapped: of e5's 250,037
vocabulary rows only those a text uses are read) and ``tokenizer.json`` (the Rust ``tokenizers``
library), and computes what sentence-transformers computes for these models: BERT, mean pooling
over the real tokens, unit length. In float32 it gives the same vectors as sentence-transformers'
float32 forward to 1e-5 (tests/test_encoder.py); batches of passages at build time still go
through torch, which is faster there (and computes in bfloat16 where the CPU has it).
"""

from __future__ import annotations

import json
import math
import mmap
import struct
import threading
from pathlib import Path
from typing import Sequence

import numpy as np

_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16, "I64": np.int64}


class EncoderError(RuntimeError):
    """The model folder is not a BERT encoder this module can run."""


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Every tensor of a safetensors file as a read-only array over a memory map (bfloat16 left as uint16)."""
    with path.open("rb") as f:
        size = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(size))
        data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    base = 8 + size
    out: dict[str, np.ndarray] = {}
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        if spec["dtype"] not in _DTYPES:
            raise EncoderError(f"{path}: tensor {name} has dtype {spec['dtype']}, which this reader does not take.")
        start, end = spec["data_offsets"]
        array = np.frombuffer(data, dtype=_DTYPES[spec["dtype"]], count=(end - start) // np.dtype(_DTYPES[spec["dtype"]]).itemsize,
                              offset=base + start)
        out[name] = array.reshape(spec["shape"])
        if spec["dtype"] == "BF16":  # the top half of a float32
            out[name] = (out[name].astype(np.uint32) << 16).view(np.float32)
    return out


def _erf(x: np.ndarray) -> np.ndarray:
    """erf to 1.2e-7 (Numerical Recipes' erfc approximation): GELU without scipy."""
    z = np.abs(x)
    t = 1.0 / (1.0 + 0.5 * z)
    poly = -z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (
        0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))))
    erfc = t * np.exp(poly)
    return np.where(x >= 0, 1.0 - erfc, erfc - 1.0)


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + _erf(x * (1.0 / math.sqrt(2.0)))).astype(np.float32)


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


class BertEncoder:
    """The token vectors of a BERT model folder (``BertModel`` without its pooler), in float32 numpy.

    Args:
        folder: holds ``config.json`` (model_type bert, absolute positions, GELU) and
            ``model.safetensors`` with ``BertModel``'s tensor names (or ``bert.``-prefixed, as a
            ``BertForQuestionAnswering`` saves them; the other tensors stay in ``weights``).
        words: the word-embedding matrix, when the folder leaves it out (a reader on e5 ships
            without e5's frozen 250,037 rows).
    """

    def __init__(self, folder: str | Path, words: np.ndarray | None = None) -> None:
        folder = Path(folder)
        try:
            config = json.loads((folder / "config.json").read_text())
        except (OSError, ValueError) as exc:
            raise EncoderError(f"{folder}/config.json cannot be read ({exc}).") from exc
        if config.get("model_type") not in ("bert", None) or config.get("hidden_act", "gelu") != "gelu" \
                or config.get("position_embedding_type", "absolute") != "absolute":
            raise EncoderError(f"{folder} is not a BERT encoder with absolute positions and GELU ({config.get('model_type')}).")
        self.hidden = int(config["hidden_size"])
        self.heads = int(config["num_attention_heads"])
        self.layers = int(config["num_hidden_layers"])
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        self.max_positions = int(config.get("max_position_embeddings", 512))
        weights = read_safetensors(folder / "model.safetensors")
        self.weights = weights
        prefix = "bert." if any(k.startswith("bert.embeddings.") for k in weights) else ""
        try:
            w = lambda name: weights[prefix + name]  # noqa: E731
            self.words = w("embeddings.word_embeddings.weight") if words is None else words  # memory-mapped: rows are read as used
            self.positions = np.asarray(w("embeddings.position_embeddings.weight"), dtype=np.float32)
            self.token_types = np.asarray(w("embeddings.token_type_embeddings.weight"), dtype=np.float32)
            self.embed_norm = (np.asarray(w("embeddings.LayerNorm.weight"), dtype=np.float32), np.asarray(w("embeddings.LayerNorm.bias"), dtype=np.float32))
            self.blocks = []
            f32 = lambda name: np.asarray(w(name), dtype=np.float32)  # noqa: E731 - a view of the map when stored as float32
            for i in range(self.layers):
                p = f"encoder.layer.{i}."
                # query, key and value as one (3 * hidden, hidden) product; weights stay (out, in) and are used transposed
                qkv = np.concatenate([f32(p + f"attention.self.{n}.weight") for n in ("query", "key", "value")])
                qkv_b = np.concatenate([f32(p + f"attention.self.{n}.bias") for n in ("query", "key", "value")])
                self.blocks.append((
                    qkv, qkv_b,
                    f32(p + "attention.output.dense.weight"), f32(p + "attention.output.dense.bias"),
                    f32(p + "attention.output.LayerNorm.weight"), f32(p + "attention.output.LayerNorm.bias"),
                    f32(p + "intermediate.dense.weight"), f32(p + "intermediate.dense.bias"),
                    f32(p + "output.dense.weight"), f32(p + "output.dense.bias"),
                    f32(p + "output.LayerNorm.weight"), f32(p + "output.LayerNorm.bias"),
                ))
        except KeyError as exc:
            raise EncoderError(f"{folder}/model.safetensors has no tensor {exc}: not a BERT encoder's weights.") from None

    def __call__(self, ids: np.ndarray, mask: np.ndarray, types: np.ndarray | None = None) -> np.ndarray:
        """Token vectors (batch, length, hidden) for token ids, an attention mask (1 real, 0 padding) and token types."""
        batch, length = ids.shape
        if length > self.max_positions:
            raise EncoderError(f"{length} tokens are more than the model's {self.max_positions} positions.")
        x = np.asarray(self.words[ids.ravel()], dtype=np.float32).reshape(batch, length, self.hidden)
        x += self.positions[:length]
        x += self.token_types[0] if types is None else self.token_types[types]
        x = _layer_norm(x, *self.embed_norm, self.eps)
        head = self.hidden // self.heads
        # padding keys get a large negative score, as transformers' extended attention mask does
        bias = ((1.0 - mask.astype(np.float32)) * np.finfo(np.float32).min)[:, None, None, :]
        scale = np.float32(1.0 / math.sqrt(head))
        for qkv, qkv_b, out_w, out_b, ln1_w, ln1_b, in_w, in_b, ff_w, ff_b, ln2_w, ln2_b in self.blocks:
            q, k, v = np.split((x @ qkv.T + qkv_b).reshape(batch, length, 3, self.heads, head).transpose(2, 0, 3, 1, 4), 3)
            scores = (q[0] @ k[0].transpose(0, 1, 3, 2)) * scale + bias
            scores -= scores.max(-1, keepdims=True)
            probs = np.exp(scores)
            probs /= probs.sum(-1, keepdims=True)
            context = (probs @ v[0]).transpose(0, 2, 1, 3).reshape(batch, length, self.hidden)
            x = _layer_norm(x + context @ out_w.T + out_b, ln1_w, ln1_b, self.eps)
            x = _layer_norm(x + _gelu(x @ in_w.T + in_b) @ ff_w.T + ff_b, ln2_w, ln2_b, self.eps)
        return x


class SentenceEncoder:
    """Texts -> unit vectors, as sentence-transformers' Transformer + mean Pooling + Normalize, without it.

    Args:
        folder: a sentence-transformers model folder with mean pooling (MiniLM, or the recovered e5).
        max_tokens: texts are cut to this many tokens (the model's ``max_seq_length``).
    """

    def __init__(self, folder: str | Path, max_tokens: int) -> None:
        from tokenizers import Tokenizer

        folder = Path(folder)
        pooling = folder / "1_Pooling" / "config.json"
        if pooling.is_file() and not json.loads(pooling.read_text()).get("pooling_mode_mean_tokens", False):
            raise EncoderError(f"{folder} pools otherwise than by the mean of its tokens; this encoder only averages.")
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_tokens)
        self.tokenizer.no_padding()
        self.encoder = BertEncoder(folder)
        self._lock = threading.Lock()  # the tokenizer's truncation settings are shared state

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), hidden) float32 unit vectors."""
        if not texts:
            return np.zeros((0, self.encoder.hidden), dtype=np.float32)
        with self._lock:
            encodings = self.tokenizer.encode_batch(list(texts), add_special_tokens=True)
        length = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(texts), length), dtype=np.int64)
        mask = np.zeros((len(texts), length), dtype=np.int64)
        for row, e in enumerate(encodings):
            ids[row, : len(e.ids)] = e.ids
            mask[row, : len(e.ids)] = 1
        tokens = self.encoder(ids, mask)
        weights = mask[:, :, None].astype(np.float32)
        pooled = (tokens * weights).sum(1) / np.maximum(weights.sum(1), 1e-9)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)


class SpanScorer:
    """A ``BertForQuestionAnswering`` folder run in numpy: start and end logits per token.

    Args:
        folder: the reader's weights (``bert.``-prefixed encoder, ``qa_outputs``).
        words: the word embeddings when the folder leaves them out (see ``BertEncoder``).
    """

    def __init__(self, folder: str | Path, words: np.ndarray | None = None) -> None:
        self.encoder = BertEncoder(folder, words)
        try:
            self.head = np.asarray(self.encoder.weights["qa_outputs.weight"], dtype=np.float32)
            self.head_bias = np.asarray(self.encoder.weights["qa_outputs.bias"], dtype=np.float32)
        except KeyError:
            raise EncoderError(f"{folder}/model.safetensors has no qa_outputs: not a question-answering model.") from None

    def __call__(self, ids: np.ndarray, types: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(start logits, end logits), each (batch, length)."""
        logits = self.encoder(ids, mask, types) @ self.head.T + self.head_bias
        return logits[..., 0], logits[..., 1]
