"""A searchable set of exemplar latents (encoder means) over faiss.

- ``LatentIndex``: exact ``IndexFlatL2`` by default; above ``APPROXIMATE_ABOVE`` exemplars an IVF
  index, whose recall against the exact search is measured when it is built (``recall``).
  Every exemplar has a stable integer id (dataset images: their map index), so exemplars can be
  added and removed without retraining and without renumbering the others.
- ``save`` / ``load``: one ``.npz`` written to a temporary file and renamed over the old one, so a
  reader sees the old file or the new one, never half of one; ``load`` checks a sha256 of the
  arrays and that the faiss index agrees with them.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Literal

import faiss
import numpy as np
import torch

APPROXIMATE_ABOVE = 200_000  # exemplars; an exact search over more is slower than a person waits
IVF_PROBES = 16  # inverted lists searched per query: recall ~0.99 on VAE latents (see ``recall``)
RECALL_QUERIES = 1000
FEW_QUERIES = 16  # searched on one thread (see ``_search``)
FORMAT = 1

Kind = Literal["auto", "flat", "ivf"]


class IndexFileError(ValueError):
    """A saved index or store that cannot be trusted: missing, truncated, or inconsistent."""


def _f32(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.ascontiguousarray(x, dtype=np.float32)


def _digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def atomic_write(path: Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` so that a crash at any moment leaves the old file or the new
    one: a temporary file in the same folder, flushed to disk, then renamed over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic on POSIX within one file system
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)  # make the rename itself durable
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _read_npz(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in keys if k not in f.files]
            if missing:
                raise IndexFileError(f"{path} is not a Latent Lab file (missing {', '.join(missing)}); "
                                     "delete it and save again")
            return {k: f[k] for k in keys}
    except FileNotFoundError:
        raise
    except IndexFileError:
        raise
    except Exception as exc:  # zip or npy errors of a truncated or foreign file
        raise IndexFileError(f"{path} is damaged ({exc}); delete it and save again") from None


class LatentIndex:
    """Exemplar latents with labels and stable ids, searchable by L2 distance."""

    def __init__(self, dim: int, kind: Kind = "flat"):
        if kind not in ("flat", "ivf"):
            raise ValueError(f"unknown index kind {kind!r}; choose flat or ivf")
        self.dim, self.kind = int(dim), kind
        self.codes = np.zeros((0, dim), np.float32)
        self.labels = np.zeros(0, np.int64)
        self.ids = np.zeros(0, np.int64)  # ascending: new ids are always larger than old ones
        self.next_id = 0
        self.recall: float | None = None  # of an IVF index against the exact search, at build
        self._index = faiss.IndexIDMap2(faiss.IndexFlatL2(self.dim))

    # -- building -------------------------------------------------------------------------------

    @classmethod
    def from_codes(cls, codes, labels, kind: Kind = "auto", seed: int = 0) -> LatentIndex:
        """An index over ``codes`` (N, D) with ``labels`` (N,); ids are 0..N-1 (the map's order).

        ``kind="auto"``: exact up to ``APPROXIMATE_ABOVE`` exemplars, IVF above.
        """
        codes = _f32(codes)
        if kind == "auto":
            kind = "ivf" if len(codes) > APPROXIMATE_ABOVE else "flat"
        index = cls(codes.shape[1], kind)
        if kind == "ivf":
            index._index = index._train_ivf(codes, seed)
        index.add(codes, labels)
        if kind == "ivf":
            index.recall = index.measure_recall(seed=seed)
        return index

    def _train_ivf(self, codes: np.ndarray, seed: int):
        nlist = int(max(1, min(4 * np.sqrt(len(codes)), len(codes) // 39)))  # faiss: >= 39 points a list
        quantizer = faiss.IndexFlatL2(self.dim)
        ivf = faiss.IndexIVFFlat(quantizer, self.dim, nlist)
        ivf.cp.seed = seed
        sample = codes[np.random.default_rng(seed).permutation(len(codes))[: 256 * nlist]]
        ivf.train(sample)
        ivf.nprobe = min(IVF_PROBES, nlist)
        self._quantizer = quantizer  # faiss does not own it from Python: keep it alive
        return ivf

    def measure_recall(self, k: int = 10, queries: int = RECALL_QUERIES, seed: int = 0) -> float:
        """Fraction of the exact k nearest neighbours that this index returns, over exemplars
        used as queries (each query's own exemplar included on both sides)."""
        n = len(self)
        if n == 0:
            raise ValueError("the index is empty")
        k = min(k, n)
        pick = np.random.default_rng(seed).choice(n, size=min(queries, n), replace=False)
        q = self.codes[pick]
        exact = faiss.IndexFlatL2(self.dim)
        exact.add(self.codes)
        _, truth = exact.search(q, k)  # rows
        _, got = self._index.search(q, k)  # ids
        truth_ids = self.ids[truth]
        hits = sum(len(set(a.tolist()) & set(b.tolist())) for a, b in zip(truth_ids, got))
        return hits / (len(q) * k)

    # -- changing -------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, codes, labels) -> np.ndarray:
        """Append exemplars; returns their new ids. Checks everything before changing anything."""
        codes = _f32(codes)
        labels = np.asarray(labels.numpy() if isinstance(labels, torch.Tensor) else labels, np.int64)
        if codes.ndim != 2 or codes.shape[1] != self.dim:
            raise ValueError(f"expected codes of shape (N, {self.dim}), got {codes.shape}")
        if labels.shape != (len(codes),):
            raise ValueError(f"expected {len(codes)} labels, got shape {labels.shape}")
        if not np.isfinite(codes).all():
            raise ValueError("codes must be finite numbers")
        ids = np.arange(self.next_id, self.next_id + len(codes), dtype=np.int64)
        self._index.add_with_ids(codes, ids)
        self.codes = np.concatenate([self.codes, codes])
        self.labels = np.concatenate([self.labels, labels])
        self.ids = np.concatenate([self.ids, ids])
        self.next_id += len(codes)
        return ids

    def remove(self, ids) -> int:
        """Remove exemplars by id; every id must be present (nothing is removed otherwise)."""
        ids = np.unique(np.asarray(ids, np.int64))
        unknown = ids[~np.isin(ids, self.ids)]
        if len(unknown):
            raise ValueError(f"no exemplar with id {', '.join(map(str, unknown[:5]))} in the index")
        removed = self._index.remove_ids(faiss.IDSelectorBatch(ids))
        assert removed == len(ids), (removed, len(ids))
        keep = ~np.isin(self.ids, ids)
        self.codes, self.labels, self.ids = self.codes[keep], self.labels[keep], self.ids[keep]
        return len(ids)

    # -- searching ------------------------------------------------------------------------------

    def search(self, query, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The k nearest exemplars of each query row (Q, D): L2 distances (not squared), ids and
        labels, each (Q, k), nearest first. Fewer than k exemplars: the rest are id -1, label -1,
        distance inf."""
        query = _f32(query)
        if query.ndim == 1:
            query = query[None]
        if query.ndim != 2 or query.shape[1] != self.dim:
            raise ValueError(f"expected queries of shape (Q, {self.dim}), got {query.shape}")
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        if len(self) == 0:
            shape = (len(query), k)
            return np.full(shape, np.inf, np.float32), np.full(shape, -1), np.full(shape, -1)
        sq, ids = self._search(query, k)
        missing = ids < 0
        rows = np.searchsorted(self.ids, np.where(missing, 0, ids))
        labels = np.where(missing, -1, self.labels[np.minimum(rows, len(self) - 1)])
        dist = np.where(missing, np.inf, np.sqrt(np.maximum(sq, 0))).astype(np.float32)
        return dist, ids, labels

    def _search(self, query: np.ndarray, k: int):
        if len(query) > FEW_QUERIES:
            return self._index.search(query, k)
        # A few queries (a person waiting on one upload): one thread. faiss's OpenMP team costs
        # more than it saves here, and on a busy 2-core machine far more (measured on 70k x 40:
        # 0.4 ms on one thread, 25 ms on two with other jobs running).
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            return self._index.search(query, k)
        finally:
            faiss.omp_set_num_threads(threads)

    def code_of(self, ids) -> np.ndarray:
        ids = np.asarray(ids, np.int64)
        rows = np.searchsorted(self.ids, ids)
        if (rows >= len(self)).any() or (self.ids[np.minimum(rows, len(self) - 1)] != ids).any():
            raise ValueError("unknown exemplar id")
        return self.codes[rows]

    # -- saving ---------------------------------------------------------------------------------

    def save(self, path: Path, meta: dict | None = None) -> None:
        """Atomically write the index (arrays, the faiss index and a checksum) to ``path``."""
        header = {"format": FORMAT, "kind": self.kind, "dim": self.dim, "count": len(self),
                  "next_id": self.next_id, "recall": self.recall, "meta": meta or {},
                  "sha256": _digest(self.codes, self.labels, self.ids)}
        faiss_bytes = faiss.serialize_index(self._index)  # uint8 array
        atomic_write(Path(path), _npz_bytes({
            "header": np.array(json.dumps(header)), "codes": self.codes, "labels": self.labels,
            "ids": self.ids, "faiss": faiss_bytes}))

    @classmethod
    def load(cls, path: Path) -> LatentIndex:
        """Read an index written by ``save``; raises ``IndexFileError`` if anything disagrees."""
        path = Path(path)
        if not path.exists():
            raise IndexFileError(f"no saved index at {path}")
        f = _read_npz(path, ("header", "codes", "labels", "ids", "faiss"))
        try:
            header = json.loads(str(f["header"]))
            kind, dim, count = header["kind"], int(header["dim"]), int(header["count"])
        except (ValueError, KeyError, TypeError):
            raise IndexFileError(f"{path} has an unreadable header; delete it and save again") from None
        codes, labels, ids = f["codes"], f["labels"], f["ids"]
        problems = []
        if header.get("format") != FORMAT:
            problems.append(f"format {header.get('format')} (expected {FORMAT})")
        if codes.dtype != np.float32 or codes.shape != (count, dim):
            problems.append(f"codes of shape {codes.shape} for {count} exemplars of dimension {dim}")
        if labels.shape != (count,) or ids.shape != (count,):
            problems.append("labels or ids do not match the codes")
        elif count and ((np.diff(ids) <= 0).any() or ids[-1] >= int(header["next_id"])):
            problems.append("ids out of order")
        if not problems and _digest(codes, labels, ids) != header.get("sha256"):
            problems.append("checksum differs")
        if not problems:
            try:
                faiss_index = faiss.deserialize_index(f["faiss"])
            except RuntimeError:
                faiss_index = None
            if faiss_index is None or faiss_index.ntotal != count or faiss_index.d != dim:
                problems.append("the faiss index does not hold the same exemplars")
        if problems:
            raise IndexFileError(f"{path} is inconsistent ({'; '.join(problems)}); delete it and save again")
        index = cls(dim, kind)
        index._index = faiss_index
        index.codes, index.labels, index.ids = codes, labels, ids
        index.next_id, index.recall = int(header["next_id"]), header.get("recall")
        if kind == "ivf":
            index._index.nprobe = min(IVF_PROBES, faiss.extract_index_ivf(index._index).nlist)
        return index


def for_dataset(model, dataset: str, kind: Kind = "auto", progress: bool = False) -> LatentIndex:
    """The index of a model's encoder means of every image of ``dataset``, in the map's order
    (train then test), so an exemplar's id is its index on the map."""
    from core import projection

    codes = projection.encode_all(model, dataset, progress=progress)
    return LatentIndex.from_codes(codes, projection.all_labels(dataset), kind=kind)
