"""Sample quality in a feature space: by default the project's own classifier
(``core/models/classifier.py``, the yardstick), or any other feature map (``FeatureSpace``).

- Fréchet distance (FD) between two sets of images: the FID formula (Heusel et al. 2017),
  ‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2(Σ₁Σ₂)^½), on the classifier's 128-d penultimate features instead of
  Inception's (whose weights cannot be downloaded here). Numbers are comparable with each other,
  not with published FIDs.
- Class shares: how a set of samples spreads over the classes by the classifier's labels, the
  mode-coverage view of the same samples.
- Precision and recall (Kynkäänniemi et al. 2019): FD mixes fidelity and diversity into one
  number; these separate them, on any features.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.linalg
import torch
from threadpoolctl import ThreadpoolController

# Found once: each ``threadpool_limits`` call would otherwise scan the loaded libraries again
# (about 4 ms, as long as the FD itself).
_THREADPOOLS = ThreadpoolController()


def feature_statistics(features: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    f = features.double().numpy()
    return f.mean(axis=0), np.cov(f, rowvar=False)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    values, vectors = scipy.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(stats_a: tuple[np.ndarray, np.ndarray], stats_b: tuple[np.ndarray, np.ndarray]) -> float:
    """Tr((Σ₁Σ₂)^½) is taken as Tr((Σ₁^½ Σ₂ Σ₁^½)^½), the same number from symmetric matrices: a
    ReLU layer has dead units, so Σ is singular and a general ``sqrtm`` of Σ₁Σ₂ is unstable.

    On one BLAS thread: a 128×128 eigendecomposition gains nothing from two, and while another
    process holds a core, OpenBLAS's threads wait on each other (0.5 s instead of 3 ms each, and
    choosing DRS's head and γ takes 300 of them)."""
    with _THREADPOOLS.limit(limits=1, user_api="blas"):
        return _frechet_distance(stats_a, stats_b)


def _frechet_distance(stats_a, stats_b) -> float:
    (mu_a, cov_a), (mu_b, cov_b) = stats_a, stats_b
    root_a = _psd_sqrt(cov_a)
    middle = np.clip(scipy.linalg.eigvalsh(root_a @ cov_b @ root_a), 0, None)
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * np.sqrt(middle).sum())


def knn_radii(features: torch.Tensor, k: int) -> torch.Tensor:
    """Each point's distance to its k-th nearest other point of the same set (exact, faiss)."""
    import faiss

    x = np.ascontiguousarray(features.float().numpy())
    index = faiss.IndexFlatL2(x.shape[1])
    index.add(x)
    squared, _ = index.search(x, k + 1)  # the first hit is the point itself
    return torch.from_numpy(squared[:, k]).double().clamp_min(0).sqrt()


def share_inside_manifold(queries: torch.Tensor, support: torch.Tensor, radii: torch.Tensor,
                          chunk: int = 1000) -> float:
    """The share of ``queries`` that fall inside at least one ball around ``support`` (ball i has
    radius ``radii[i]``): the manifold estimate of Kynkäänniemi et al."""
    support = support.double()
    inside = 0
    for start in range(0, len(queries), chunk):
        distances = torch.cdist(queries[start : start + chunk].double(), support)
        inside += int((distances <= radii[None, :]).any(dim=1).sum())
    return inside / len(queries)


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) of ``fake`` against ``real``
    features: precision is the share of fakes inside the real manifold (a ball around each real
    point reaching its k-th neighbour), recall the share of reals inside the fake manifold."""
    precision = share_inside_manifold(fake, real, knn_radii(real, k))
    recall = share_inside_manifold(real, fake, knn_radii(fake, k))
    return precision, recall


def class_shares(labels: torch.Tensor, classes: int) -> list[float]:
    counts = torch.bincount(labels, minlength=classes).double()
    return (counts / counts.sum()).tolist()


class FeatureSpace:
    """A feature map and the test set's features in it, computed once: the FD of any set of
    images against that test set, and the test features for precision and recall."""

    def __init__(self, features: Callable[[torch.Tensor], torch.Tensor], test_images: torch.Tensor):
        self.features = features
        self.test_features = features(test_images)
        self.reference = feature_statistics(self.test_features)

    def fd(self, images: torch.Tensor) -> float:
        return frechet_distance(feature_statistics(self.features(images)), self.reference)

    def precision_recall(self, images: torch.Tensor, k: int = 3) -> tuple[float, float]:
        """Of ``images`` against the test set, on as many of each (the first m of the larger):
        the k-NN radii, and so both figures, depend on how many points a set has."""
        m = min(len(self.test_features), len(images))
        return precision_recall(self.test_features[:m], self.features(images[:m]), k)


class Yardstick(FeatureSpace):
    """The shipped classifier's feature space: FD against the test set, and class shares of any
    set of images by the classifier's labels."""

    def __init__(self, classifier, test_images: torch.Tensor, classes: int):
        super().__init__(classifier.features, test_images)
        self.classifier = classifier
        self.classes = classes

    @classmethod
    def shipped(cls, dataset: str) -> "Yardstick":
        """The shipped classifier of ``dataset`` against its test set."""
        from core import data, pretrained

        classifier, _ = pretrained.load("classifier", dataset)
        test = data.load(dataset, "test")
        return cls(classifier, test.images, len(test.classes))

    def class_shares(self, images: torch.Tensor) -> list[float]:
        return class_shares(self.classifier.predict(images), self.classes)
