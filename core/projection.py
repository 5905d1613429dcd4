"""2-D maps of latent spaces: UMAP of every image's latent code, fitted offline, shipped as
coordinates only (no pickled UMAP object), and extended to new points without refitting.

A map holds the training images first, then the test images, in dataset order.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from sklearn.manifold import trustworthiness
from tqdm.auto import tqdm

from core import data, neighbors

QUALITY_SAMPLE = 5000  # points for trustworthiness: its cost grows with the square of this
QUALITY_NEIGHBORS = 10


def all_images(dataset: str) -> torch.Tensor:
    """Train then test images: the order of every map."""
    return torch.cat([data.load(dataset, "train").images, data.load(dataset, "test").images])


def all_labels(dataset: str) -> torch.Tensor:
    return torch.cat([data.load(dataset, "train").labels, data.load(dataset, "test").labels])


@torch.no_grad()
def encode_all(model, dataset: str, batch_size: int = 2000, progress: bool = False) -> torch.Tensor:
    """Latent codes (posterior means of the grey images, as the exemplar prior uses them) of all
    train then test images, (N, D)."""
    images = all_images(dataset)
    return torch.cat([model.encode(images[i : i + batch_size])
                      for i in tqdm(range(0, len(images), batch_size), desc="encode", unit="batch",
                                    disable=not progress)])


@torch.no_grad()
def latent_codes(model, dataset: str, batch_size: int = 2000, progress: bool = True) -> dict:
    """``encode_all`` with each image's reconstruction error, -log p(x | z = code) in nats on its
    fixed binarisation, labels and splits: what a map is made from."""
    codes = encode_all(model, dataset, batch_size, progress)
    errors = None  # a model without a decoder (SwAV) has no reconstruction error
    if hasattr(model, "log_likelihood"):
        binary = data.binarize_fixed(all_images(dataset))
        errors = torch.cat([-model.log_likelihood(binary[i : i + batch_size], codes[i : i + batch_size])
                            for i in range(0, len(codes), batch_size)])
    is_test = torch.zeros(len(codes), dtype=torch.bool)
    is_test[len(data.load(dataset, "train")):] = True
    return {"codes": codes, "recon_error": errors, "labels": all_labels(dataset), "is_test": is_test}


def fit_umap(codes: torch.Tensor, seed: int = 0, n_neighbors: int = 15,
             min_dist: float = 0.1) -> np.ndarray:
    """(N, D) codes -> (N, 2) float32 coordinates. A fixed seed makes the map reproducible."""
    import umap  # slow to import (numba); only the offline command needs it

    reducer = umap.UMAP(n_components=2, n_neighbors=n_neighbors, min_dist=min_dist,
                        random_state=seed, n_jobs=1, verbose=False)  # seeded UMAP runs on one thread
    return reducer.fit_transform(codes.numpy()).astype(np.float32)


def quality(codes: torch.Tensor, coords: np.ndarray, labels: torch.Tensor, is_test: torch.Tensor,
            seed: int = 0) -> dict:
    """How faithful the map is: trustworthiness on a fixed sample, and 5-NN accuracy of the 2-D
    coordinates (train -> test), to set beside the same accuracy in the latent space."""
    g = torch.Generator().manual_seed(seed)
    sample = torch.randperm(len(codes), generator=g)[:QUALITY_SAMPLE]
    trust = trustworthiness(codes[sample].numpy(), coords[sample.numpy()], n_neighbors=QUALITY_NEIGHBORS)
    xy = torch.from_numpy(coords)
    train, test = ~is_test, is_test
    return {
        "trustworthiness": float(trust),
        "trustworthiness_sample": len(sample),
        "knn_accuracy_2d": neighbors.knn_accuracy(xy[train], labels[train], xy[test], labels[test]),
        "knn_accuracy_latent": neighbors.knn_accuracy(codes[train], labels[train], codes[test], labels[test]),
    }


def place(new_codes: torch.Tensor, codes: torch.Tensor, coords: np.ndarray, k: int = 10,
          index=None) -> np.ndarray:
    """Map coordinates for new codes, from the coordinates of their k nearest exemplars
    (weights 1/distance), so the map never moves when points are added."""
    dist, idx = neighbors.search(codes, new_codes, k, index=index)
    weights = 1.0 / (dist.sqrt() + 1e-6)  # (Q, k)
    weights = weights / weights.sum(1, keepdim=True)
    xy = torch.from_numpy(coords)[idx]  # (Q, k, 2)
    return (weights.unsqueeze(-1) * xy).sum(1).numpy().astype(np.float32)


def nearest_exemplars(codes: torch.Tensor, i: int, k: int, index=None) -> list[tuple[int, float]]:
    """The k images nearest to image ``i`` in latent space, itself left out: (index, L2 distance)."""
    dist, idx = neighbors.search(codes, codes[i : i + 1], k + 1, index=index)
    pairs = [(int(j), float(d) ** 0.5) for j, d in zip(idx[0], dist[0]) if int(j) != i]
    return pairs[:k]


def build_map(model, dataset: str, seed: int = 0, progress: bool = True) -> tuple[dict, dict]:
    """Arrays for the map of ``dataset`` under ``model`` (``coords`` (N, 2), each image's
    ``recon_error`` (N,) where the model has a decoder, and the model's own ``map_arrays``), and
    the map's quality figures."""
    began = time.perf_counter()
    latents = latent_codes(model, dataset, progress=progress)
    coords = fit_umap(latents["codes"], seed=seed)
    metrics = quality(latents["codes"], coords, latents["labels"], latents["is_test"], seed=seed)
    metrics.update(points=len(coords), seconds=round(time.perf_counter() - began, 1))
    arrays = {"coords": coords}
    if latents["recon_error"] is not None:
        arrays["recon_error"] = latents["recon_error"].numpy().astype(np.float32)
    if hasattr(model, "map_arrays"):  # e.g. SwAV's cluster of every image, so pages need not recompute
        arrays.update(model.map_arrays(all_images(dataset)))
    return arrays, metrics


def neighbour_table(codes: torch.Tensor, k: int, batch_size: int = 4096,
                    progress: bool = False) -> dict[str, np.ndarray]:
    """Every image's k nearest other images in latent space, exact: ``index`` (N, k) int32 and
    ``distance`` (N, k) float16 (L2), nearest first. Shipped beside a map, it makes a click's
    neighbours a lookup instead of encoding every image while a person waits."""
    index = neighbors.flat_index(codes)
    rows, dists = [], []
    for start in tqdm(range(0, len(codes), batch_size), desc="neighbours", unit="batch", disable=not progress):
        query = codes[start : start + batch_size]
        dist, idx = neighbors.search(codes, query, k + 1, index=index)
        own = torch.arange(start, start + len(query)).unsqueeze(1)
        keep = idx != own  # itself (or, for an exact duplicate, one copy) is left out
        keep[keep.sum(1) > k, -1] = False  # itself was not among the k + 1: drop the farthest
        rows.append(idx[keep].view(len(query), k))
        dists.append(dist[keep].view(len(query), k).clamp(min=0).sqrt())
    return {"index": torch.cat(rows).numpy().astype(np.int32),
            "distance": torch.cat(dists).numpy().astype(np.float16)}
