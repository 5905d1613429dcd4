"""Nearest neighbours in latent space, with faiss (exact L2 search)."""

from __future__ import annotations

import faiss
import numpy as np
import torch


def _f32(x: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)


def flat_index(base: torch.Tensor) -> faiss.IndexFlatL2:
    """An exact L2 index over the rows of ``base`` (N, D); build once, search many times."""
    index = faiss.IndexFlatL2(base.shape[1])
    index.add(_f32(base))
    return index


def search(base: torch.Tensor, query: torch.Tensor, k: int,
           index: faiss.IndexFlatL2 | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The k nearest rows of ``base`` (N, D) for each row of ``query`` (Q, D).

    Returns squared L2 distances and indices, each (Q, k), nearest first. Pass ``index`` (from
    ``flat_index(base)``) to reuse one across searches.
    """
    if not 1 <= k <= len(base):
        raise ValueError(f"k must be between 1 and {len(base)}, got {k}")
    dist, idx = (index or flat_index(base)).search(_f32(query), k)
    return torch.from_numpy(dist), torch.from_numpy(idx).long()


def knn_accuracy(train_z: torch.Tensor, train_y: torch.Tensor, test_z: torch.Tensor,
                 test_y: torch.Tensor, k: int = 5) -> float:
    """Accuracy of a k-nearest-neighbour majority vote (ties go to the smallest label)."""
    _, idx = search(train_z, test_z, k)
    votes = train_y[idx]  # (Q, k)
    predicted = torch.mode(votes, dim=1).values
    from sklearn.metrics import accuracy_score  # here: importing scikit-learn takes 2 s

    return float(accuracy_score(test_y.numpy(), predicted.numpy()))
