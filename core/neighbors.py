"""Nearest neighbours in latent space, with faiss (exact L2 search)."""

from __future__ import annotations

import faiss
import numpy as np
import torch
from sklearn.metrics import accuracy_score


def search(base: torch.Tensor, query: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k nearest rows of ``base`` (N, D) for each row of ``query`` (Q, D).

    Returns squared L2 distances and indices, each (Q, k), nearest first.
    """
    if not 1 <= k <= len(base):
        raise ValueError(f"k must be between 1 and {len(base)}, got {k}")
    index = faiss.IndexFlatL2(base.shape[1])
    index.add(np.ascontiguousarray(base.detach().cpu().numpy(), dtype=np.float32))
    dist, idx = index.search(np.ascontiguousarray(query.detach().cpu().numpy(), dtype=np.float32), k)
    return torch.from_numpy(dist), torch.from_numpy(idx).long()


def knn_accuracy(train_z: torch.Tensor, train_y: torch.Tensor, test_z: torch.Tensor,
                 test_y: torch.Tensor, k: int = 5) -> float:
    """Accuracy of a k-nearest-neighbour majority vote (ties go to the smallest label)."""
    _, idx = search(train_z, test_z, k)
    votes = train_y[idx]  # (Q, k)
    predicted = torch.mode(votes, dim=1).values
    return float(accuracy_score(test_y.numpy(), predicted.numpy()))
