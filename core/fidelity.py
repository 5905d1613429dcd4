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


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    values, vectors = scipy.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(stats_a: tuple[np.ndarray, np.ndarray], stats_b: tuple[np.ndarray, np.ndarray]) -> float:
    """Tr((Σ₁Σ₂)^½) is taken as Tr((Σ₁^½ Σ₂ Σ₁^½)^½), the same number from symmetric matrices: a
    ReLU layer has dead units, so Σ is singular and a general ``sqrtm`` of Σ₁Σ₂ is unstable."""
    (mu_a, cov_a), (mu_b, cov_b) = stats_a, stats_b
    root_a = _psd_sqrt(cov_a)
    middle = np.clip(scipy.linalg.eigvalsh(root_a @ cov_b @ root_a), 0, None)
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * np.sqrt(middle).sum())


def class_shares(labels: torch.Tensor, classes: int) -> list[float]:
    counts = torch.bincount(labels, minlength=classes).double()
    return (counts / counts.sum()).tolist()


class Yardstick:
    """The classifier and the test set's feature statistics, computed once: FD and class shares of
    any set of images against that test set."""

    def __init__(self, classifier, test_images: torch.Tensor, classes: int):
        self.classifier = classifier
        self.classes = classes
        self.reference = feature_statistics(classifier.features(test_images))

    @classmethod
    def shipped(cls, dataset: str) -> "Yardstick":
        """The shipped classifier of ``dataset`` against its test set."""
        from core import data, pretrained

        classifier, _ = pretrained.load("classifier", dataset)
        test = data.load(dataset, "test")
        return cls(classifier, test.images, len(test.classes))

    def fd(self, images: torch.Tensor) -> float:
        return frechet_distance(feature_statistics(self.classifier.features(images)), self.reference)

    def class_shares(self, images: torch.Tensor) -> list[float]:
        return class_shares(self.classifier.predict(images), self.classes)
