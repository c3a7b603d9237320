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
import os
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


_ERFC = (1.00002368, 0.37409196, 0.09678418, -0.18628806, 0.27886807, -1.13520398, 1.48851587, -0.82215223, 0.17087277)


def _gelu(x: np.ndarray) -> np.ndarray:
    """0.5 x (1 + erf(x / sqrt 2)), erf to 1.2e-7 from Numerical Recipes' erfc approximation: GELU without scipy or torch.

    Computed in place on two float32 buffers: the feed-forward activations are the largest arrays
    of a forward pass, and temporaries for each of the polynomial's terms cost a third of its time.
    """
    z = np.abs(x)
    z *= np.float32(1.0 / math.sqrt(2.0))
    t = z * np.float32(0.5)
    t += np.float32(1.0)
    np.reciprocal(t, out=t)
    p = t * np.float32(_ERFC[-1])
    for c in reversed(_ERFC[:-1]):  # Horner: t * (c0 + t * (c1 + ...))
        p += np.float32(c)
        p *= t
    p -= np.float32(1.26551223)
    z *= z
    p -= z
    np.exp(p, out=p)
    p *= t  # erfc(|x| / sqrt 2)
    np.subtract(np.float32(2.0), p, out=p, where=x >= 0)  # 1 + erf: 2 - erfc above zero, erfc below
    p *= x
    p *= np.float32(0.5)
    return p


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
        self.encoder = BertEncoder(folder)
        self._unigram = UnigramTokenizer.load(folder, max_tokens)  # e5: 0.1 s instead of the library's 0.55-1.0 s
        if self._unigram is None:
            self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
            self.tokenizer.enable_truncation(max_tokens)
            self.tokenizer.no_padding()
        self._lock = threading.Lock()  # the library tokenizer's truncation settings are shared state

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Each text's ids with the model's special tokens, cut to ``max_tokens``."""
        if self._unigram is not None:
            return self._unigram.encode_batch(texts)
        with self._lock:
            return [e.ids for e in self.tokenizer.encode_batch(list(texts), add_special_tokens=True)]

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), hidden) float32 unit vectors."""
        if not texts:
            return np.zeros((0, self.encoder.hidden), dtype=np.float32)
        encodings = self.token_ids(texts)
        length = max(map(len, encodings))
        ids = np.zeros((len(texts), length), dtype=np.int64)
        mask = np.zeros((len(texts), length), dtype=np.int64)
        for row, e in enumerate(encodings):
            ids[row, : len(e)] = e
            mask[row, : len(e)] = 1
        tokens = self.encoder(ids, mask)
        weights = mask[:, :, None].astype(np.float32)
        pooled = (tokens * weights).sum(1) / np.maximum(weights.sum(1), 1e-9)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)


# --------------------------------------------------------------------------- Unigram tokenization, loaded fast

UNIGRAM_SIDECAR = ".unigram-"  # file-name prefix of the derived vocabulary files (e5.folder_hash leaves them out)
_UNK_PENALTY = 10.0  # the tokenizers library's kUnkPenalty (from SentencePiece): an unknown character scores min - 10


class UnigramTokenizer:
    """Token ids of a Unigram (SentencePiece) ``tokenizer.json``, as the ``tokenizers`` library gives them, in a tenth of its load time.

    e5's tokenizer holds 250,002 pieces; ``Tokenizer.from_file`` spends 0.55-1.0 s building its model
    (measured on these CPUs, holding the GIL throughout): most of a cold ``ask``, for one question.
    This class keeps the library's own normaliser and pre-tokeniser (built from the same file without
    its vocabulary, a millisecond) and runs the library's Viterbi over the pieces itself
    (``Unigram::encode_optimized``: pieces tried shortest first, a strictly better score wins, an
    unknown character scores the lowest piece minus 10, runs of unknowns fuse into one ``unk``).
    The pieces and scores are read from two files derived from ``tokenizer.json`` the first time
    (``.unigram-<size>-<mtime>.txt`` and ``.npy`` beside it, 0.1 s to read), written only into a
    recovered e5 folder (one with RECOVERED.json: ours to write into). tests/test_encoder.py compares
    the ids with the library's on the corpus, XQuAD questions and random Unicode.
    """

    def __init__(self, pipeline, pieces: list[str], scores: np.ndarray, unk_id: int, bos_id: int, eos_id: int, max_tokens: int) -> None:
        self._normalizer, self._pre_tokenizer = pipeline.normalizer, pipeline.pre_tokenizer
        self._ids = dict(zip(pieces, range(len(pieces))))  # a repeated piece: the last id, as the library's map
        self._scores = scores.tolist()
        self._longest = max(map(len, pieces))
        self._unk, self._bos, self._eos = unk_id, bos_id, eos_id
        self._unk_score = float(scores.min()) - _UNK_PENALTY
        self._content = max(max_tokens - 2, 0)  # truncation keeps room for <s> and </s>, as the library's does

    @classmethod
    def load(cls, folder: Path, max_tokens: int) -> "UnigramTokenizer | None":
        """The tokenizer of ``folder``, or None when its tokenizer.json is not one this class reproduces (the caller uses the library)."""
        from tokenizers import Tokenizer

        source = folder / "tokenizer.json"
        try:
            stat = source.stat()
        except OSError:
            return None
        stem = folder / f"{UNIGRAM_SIDECAR}{stat.st_size}-{stat.st_mtime_ns}"
        txt, npy = stem.with_suffix(".txt"), stem.with_suffix(".npy")
        try:
            header, *pieces = txt.read_text(encoding="utf-8").split("\n")
            meta = json.loads(header)
            scores = np.load(npy, allow_pickle=False)
        except (OSError, ValueError):
            meta = _derive_unigram(folder, source, txt, npy)
            if meta is None:
                return None
            meta, pieces, scores = meta
        if len(pieces) != meta["pieces"] or scores.shape != (len(pieces),):
            return None  # a damaged derived file: the library reads tokenizer.json itself
        pipeline = Tokenizer.from_str(json.dumps(meta["pipeline"]))
        return cls(pipeline, pieces, scores, meta["unk_id"], meta["bos_id"], meta["eos_id"], max_tokens)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [self.encode(text) for text in texts]

    def encode(self, text: str) -> list[int]:
        """``<s>`` + the pieces' ids (cut to ``max_tokens - 2``) + ``</s>``."""
        normalized = self._normalizer.normalize_str(text) if self._normalizer is not None else text
        words = self._pre_tokenizer.pre_tokenize_str(normalized) if self._pre_tokenizer is not None else [(normalized, None)]
        ids: list[int] = []
        for word, _ in words:
            ids += self._word(word)
            if len(ids) >= self._content:
                break
        return [self._bos, *ids[: self._content], self._eos]

    def _word(self, word: str) -> list[int]:
        n, get, scores, longest = len(word), self._ids.get, self._scores, self._longest
        best = [0.0] * (n + 1)
        start = [-1] * (n + 1)  # where the best path ending here starts; -1: none yet
        piece = [0] * (n + 1)
        for s in range(n):
            here = best[s]
            single = False
            for e in range(s + 1, min(n, s + longest) + 1):  # shortest first, as the library's trie yields them
                i = get(word[s:e])
                if i is None:
                    continue
                score = scores[i] + here
                if start[e] < 0 or score > best[e]:
                    best[e], start[e], piece[e] = score, s, i
                if e == s + 1:
                    single = True
            if not single:  # no piece is this one character: it is unknown
                score = self._unk_score + here
                if start[s + 1] < 0 or score > best[s + 1]:
                    best[s + 1], start[s + 1], piece[s + 1] = score, s, self._unk
        out: list[int] = []
        unknown: list[str] = []  # consecutive unknowns, fused into one token (the library's fuse_unk)
        e = n
        while e > 0:
            s = start[e]
            if piece[e] == self._unk:
                unknown.append(word[s:e])
            else:
                if unknown:
                    out.append(get("".join(reversed(unknown)), self._unk))
                    unknown = []
                out.append(piece[e])
            e = s
        if unknown:
            out.append(get("".join(reversed(unknown)), self._unk))
        out.reverse()
        return out


def _derive_unigram(folder: Path, source: Path, txt: Path, npy: Path):
    """Write the pieces and scores of ``source`` where UnigramTokenizer reads them; (meta, pieces, scores), or None when it does not apply."""
    if not (folder / "RECOVERED.json").is_file():
        return None  # not a folder this package recovered: nothing is written into it
    try:
        spec = json.loads(source.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    model, post = spec.get("model") or {}, spec.get("post_processor") or {}
    single = post.get("single") or []
    if model.get("type") != "Unigram" or model.get("byte_fallback") or model.get("unk_id") is None or spec.get("added_tokens") \
            or post.get("type") != "TemplateProcessing" or len(single) != 3 \
            or "SpecialToken" not in single[0] or "Sequence" not in single[1] or "SpecialToken" not in single[2]:
        return None  # another pipeline than e5's: the library reads it
    pieces = [p for p, _ in model["vocab"]]
    if not pieces or any("\n" in p for p in pieces):
        return None
    special = post["special_tokens"]
    bos_id, eos_id = (special[single[k]["SpecialToken"]["id"]]["ids"][0] for k in (0, 2))
    unk_id = int(model["unk_id"])
    pipeline = dict(spec, added_tokens=[], post_processor=None, truncation=None, padding=None,
                    model=dict(model, vocab=[[pieces[unk_id], 0.0]], unk_id=0))
    meta = {"pieces": len(pieces), "unk_id": unk_id, "bos_id": bos_id, "eos_id": eos_id, "pipeline": pipeline}
    scores = np.array([s for _, s in model["vocab"]], dtype=np.float64)
    tag = f".tmp-{os.getpid()}-{threading.get_ident()}"
    try:
        with open(npy.with_name(npy.name + tag), "wb") as f:
            np.save(f, scores, allow_pickle=False)
        os.replace(npy.with_name(npy.name + tag), npy)
        txt.with_name(txt.name + tag).write_text("\n".join([json.dumps(meta, ensure_ascii=False), *pieces]), encoding="utf-8")
        os.replace(txt.with_name(txt.name + tag), txt)  # last: the text file's presence says both are whole
    except OSError:
        pass  # a read-only folder: this process uses what it derived, the next derives again
    return meta, pieces, scores


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
