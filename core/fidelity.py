"""Sample quality measured with the project's own classifier (``core/models/classifier.py``).

- Fréchet distance (FD) between two sets of images: the FID formula (Heusel et al. 2017),
  ‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2(Σ₁Σ₂)^½), on the classifier's 128-d penultimate features instead of
  Inception's (whose weights cannot be downloaded here). Numbers are comparable with each other,
  not with published FIDs.
- Class shares: how a set of samples spreads over the classes by the classifier's labels, the
  mode-coverage view of the same samples.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import torch


def feature_statistics(features: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    f = features.double().numpy()
    return f.mean(axis=0), np.cov(f, rowvar=False)


def frechet_distance(stats_a: tuple[np.ndarray, np.ndarray], stats_b: tuple[np.ndarray, np.ndarray]) -> float:
    (mu_a, cov_a), (mu_b, cov_b) = stats_a, stats_b
    root, _ = scipy.linalg.sqrtm(cov_a @ cov_b, disp=False)
    if not np.isfinite(root).all():  # near-singular product: nudge both covariances, as FID code does
        eye = np.eye(len(cov_a)) * 1e-6
        root = scipy.linalg.sqrtm((cov_a + eye) @ (cov_b + eye))
    root = root.real  # imaginary parts are numerical noise for covariance matrices
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root))


def class_shares(labels: torch.Tensor, classes: int) -> list[float]:
    counts = torch.bincount(labels, minlength=classes).double()
    return (counts / counts.sum()).tolist()
