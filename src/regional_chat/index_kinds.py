"""Which FAISS index holds the vectors: exact below a size, approximate (IVF) past it.

Kinds, as a manifest records them:

* ``flat``: ``IndexIDMap2`` over ``IndexFlatIP``, exact; every search reads
  every vector (about 10 ms per million vectors per GB/s of memory bandwidth).
* ``ivf``: ``IndexIVFFlat``: the vectors are split into ``nlist`` k-means
  cells and a search reads the ``nprobe`` nearest cells only. Same memory as
  ``flat`` (float32), approximate.
* ``ivf-fp16`` / ``ivf-sq8``: the same, with vectors stored as float16
  (half the memory, practically the same scores) or 8 bits per dimension
  (a quarter, scores off by about 1e-2).

All kinds keep the chunk id with each vector, so deleting the chunks of a
changed document works the same on every kind (``remove_ids``).

``choose_kind`` decides from the number of chunks and the settings;
``convert`` moves the vectors of an exact kind (``flat``, ``ivf``) into
another kind without re-embedding. The compressed kinds cannot give back the
exact vectors, so leaving them takes ``regional-chat build --full``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .settings import INDEX_KINDS

KINDS = INDEX_KINDS
EXACT_STORAGE = ("flat", "ivf")  # kinds that hold the float32 vectors as they were added
_FACTORY = {"ivf": "Flat", "ivf-fp16": "SQfp16", "ivf-sq8": "SQ8"}
_BYTES_PER_DIM = {"flat": 4.0, "ivf": 4.0, "ivf-fp16": 2.0, "ivf-sq8": 1.0}
MIN_IVF_VECTORS = 1024  # below this an IVF index is pointless and k-means has too little to learn from
TRAIN_PER_LIST = 48  # k-means sample: points per cell (FAISS warns under 39)
_ADD_BATCH = 65536


def _faiss():
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - install problem
        raise ImportError("FAISS is not available: install faiss-cpu (pip install faiss-cpu).") from exc
    return faiss


@dataclass(frozen=True)
class IvfParams:
    """The shape of an IVF index for a given number of vectors."""

    nlist: int
    nprobe: int

    @classmethod
    def for_size(cls, n: int) -> "IvfParams":
        """``nlist`` ~ sqrt(n) (a power of two), ``nprobe`` = nlist / 16, at least 32.

        sqrt(n) cells balance the two costs of a search (comparing the query
        with every centroid, then scanning nprobe cells of ~sqrt(n) vectors)
        and keep k-means training to seconds at a million vectors. On MiniLM
        vectors of real text (bench/bench_scale.py recall, docs/BENCHMARKS.md)
        recall@10 against exact search was 0.977 with 64 of 1,024 cells and
        0.963 with 32 of 512, but 0.944 with 16 of 256: below a few hundred
        cells it takes at least 32 probes to stay above 0.95.
        """
        n = max(int(n), 1)
        nlist = 2 ** max(4, round(math.log2(math.sqrt(n))))
        nlist = min(nlist, max(16, n // TRAIN_PER_LIST))
        return cls(nlist=nlist, nprobe=min(nlist, max(32, nlist // 16)))


def choose_kind(n: int, dim: int, settings: Any, current: str | None = None) -> str:
    """The kind an index of ``n`` vectors should be, given ``settings`` and its ``current`` kind.

    ``settings.index_kind`` other than ``"auto"`` is obeyed as given (IVF needs
    at least MIN_IVF_VECTORS vectors; below that it is flat). ``"auto"``:
    ``flat`` below ``settings.ann_threshold`` chunks; past it ``ivf``, or
    ``ivf-sq8`` when float32 vectors would take more than
    ``settings.vector_memory_mb``. An IVF index goes back to flat only below
    half the threshold (so a corpus hovering at the threshold does not switch
    at every build), and a compressed index stays compressed until a full
    build, since its exact vectors are gone.
    """
    wanted = settings.index_kind
    if wanted != "auto":
        return wanted if wanted == "flat" or n >= MIN_IVF_VECTORS else "flat"
    threshold = settings.ann_threshold
    is_ivf = current is not None and current != "flat"
    if n < (threshold // 2 if is_ivf else threshold) or n < MIN_IVF_VECTORS:
        kind = "flat"
    elif n * dim * 4 > settings.vector_memory_mb * 2**20:
        kind = "ivf-sq8"
    else:
        kind = "ivf"
    if current is not None and current not in EXACT_STORAGE and kind != current:
        return current  # leaving a compressed kind needs the exact vectors: only a full build
    return kind


def needs_retraining(index: Any, n: int) -> bool:
    """True for an ``ivf`` index whose cells were sized for a corpus 4x smaller or larger than ``n``.

    Only ``ivf`` can be retrained in place (it keeps the exact vectors); the
    compressed kinds keep their cells until ``regional-chat build --full``.
    """
    if kind_of(index) != "ivf" or n < MIN_IVF_VECTORS:
        return False
    have, want = int(index.nlist), IvfParams.for_size(n).nlist
    return max(have, want) >= 4 * min(have, want)


def new_flat(dim: int) -> Any:
    faiss = _faiss()
    return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))


def kind_of(index: Any) -> str:
    """The kind of a loaded FAISS index (for consistency checks)."""
    faiss = _faiss()
    if isinstance(index, faiss.IndexIDMap2) and isinstance(faiss.downcast_index(index.index), faiss.IndexFlat):
        return "flat"
    if isinstance(index, faiss.IndexIVFFlat):
        return "ivf"
    if isinstance(index, faiss.IndexIVFScalarQuantizer):
        qtype = index.sq.qtype
        if qtype == faiss.ScalarQuantizer.QT_fp16:
            return "ivf-fp16"
        if qtype == faiss.ScalarQuantizer.QT_8bit:
            return "ivf-sq8"
    return type(index).__name__


def describe(index: Any) -> dict[str, Any]:
    """What a manifest records beside the kind: IVF cells and probes, bytes per vector."""
    kind = kind_of(index)
    params: dict[str, Any] = {"bytes_per_vector": int(_BYTES_PER_DIM.get(kind, 4.0) * index.d)}
    if kind != "flat":
        ivf = _faiss().extract_index_ivf(index)
        params.update(nlist=int(ivf.nlist), nprobe=int(ivf.nprobe))
    return params


class _Held:
    """Memory ``owner`` holds, as numpy sees it: an array made from it keeps this object, and so ``owner``, alive.

    ``faiss.rev_swig_ptr`` gives a bare view of an index's storage, which does not keep the index: once
    the last reference to the index went, the view read freed memory (a repaired chunk store took its
    reused vectors from ``exact_vectors(read_index(...))``, and got garbage).
    """

    def __init__(self, view: np.ndarray, owner: Any) -> None:
        self.__array_interface__ = view.__array_interface__
        self._view, self._owner = view, owner


def _held(view: np.ndarray, owner: Any) -> np.ndarray:
    """``view`` as an array whose base keeps ``owner`` alive (numpy never collapses a base that is no array)."""
    return np.asarray(_Held(view, owner))


def exact_vectors(index: Any) -> tuple[np.ndarray, np.ndarray]:
    """(ids, float32 vectors) of a ``flat`` or ``ivf`` index, without re-embedding.

    For ``flat`` the vectors are a view of FAISS's own storage (no copy, a memory
    index of millions of vectors is not doubled); the view holds ``index``, so it
    stays valid however the caller holds the index.
    """
    faiss = _faiss()
    kind = kind_of(index)
    n, d = int(index.ntotal), int(index.d)
    if kind == "flat":
        inner = faiss.downcast_index(index.index)
        ids = faiss.vector_to_array(index.id_map).astype(np.int64, copy=False)
        if n == 0:
            return ids, np.zeros((0, d), dtype=np.float32)
        return ids, _held(faiss.rev_swig_ptr(inner.get_xb(), n * d), index).reshape(n, d)
    if kind == "ivf":
        invlists = index.invlists
        id_parts, vec_parts = [], []
        for cell in range(index.nlist):
            size = invlists.list_size(cell)
            if not size:
                continue
            id_parts.append(faiss.rev_swig_ptr(invlists.get_ids(cell), size).copy())
            codes = faiss.rev_swig_ptr(invlists.get_codes(cell), size * index.code_size)
            vec_parts.append(np.frombuffer(codes.copy().tobytes(), dtype=np.float32).reshape(size, d))
        if not id_parts:
            return np.zeros(0, dtype=np.int64), np.zeros((0, d), dtype=np.float32)
        ids = np.concatenate(id_parts).astype(np.int64, copy=False)
        vecs = np.concatenate(vec_parts)
        order = np.argsort(ids, kind="stable")  # id order, so a conversion does not depend on cell order
        return ids[order], vecs[order]
    raise ValueError(f"a {kind} index does not keep its exact vectors; rebuild with `regional-chat build --full`.")


def new_ivf(kind: str, vectors: np.ndarray, n_total: int | None = None) -> Any:
    """An empty, trained IVF index of ``kind``, sized for ``n_total`` vectors (default: len(vectors)).

    k-means learns from an evenly spaced sample of ``vectors`` (TRAIN_PER_LIST
    points per cell), so the result is the same on every run.
    """
    faiss = _faiss()
    if kind not in _FACTORY:
        raise ValueError(f"{kind!r} is not an IVF kind ({', '.join(_FACTORY)}).")
    n, d = vectors.shape
    if n < MIN_IVF_VECTORS:
        raise ValueError(f"an IVF index needs at least {MIN_IVF_VECTORS} vectors to train on; got {n}.")
    params = IvfParams.for_size(n_total or n)
    index = faiss.index_factory(d, f"IVF{params.nlist},{_FACTORY[kind]}", faiss.METRIC_INNER_PRODUCT)
    sample_size = min(n, params.nlist * TRAIN_PER_LIST)
    sample = vectors[np.linspace(0, n - 1, sample_size).astype(np.int64)] if sample_size < n else vectors
    index.train(np.ascontiguousarray(sample, dtype=np.float32))
    faiss.extract_index_ivf(index).nprobe = params.nprobe
    return index


def convert(index: Any, kind: str) -> Any:
    """The vectors and ids of ``index`` (a ``flat`` or ``ivf`` index) in a new index of ``kind``."""
    ids, vectors = exact_vectors(index)
    if kind == "flat":
        target = new_flat(int(index.d))
    else:
        target = new_ivf(kind, vectors)
    for lo in range(0, len(ids), _ADD_BATCH):  # batches: FAISS's add temporaries stay small
        target.add_with_ids(np.ascontiguousarray(vectors[lo : lo + _ADD_BATCH]), ids[lo : lo + _ADD_BATCH])
    return target
