"""The shipped checkpoints: they load, generate, and score what the manifest says they score."""

import json

import pytest
import torch

from conftest import run_cli
from core import pretrained

SHIPPED = [(e["model"], e["dataset"]) for e in pretrained.read_manifest()
           if e["kind"] == "checkpoint" and e["model"] in ("vae", "exemplar_vae")]


@pytest.mark.parametrize("model, dataset", SHIPPED)
def test_shipped_vae_generates_images(model, dataset):
    net, entry = pretrained.load(model, dataset)
    images = net.sample(8, generator=torch.Generator().manual_seed(0))
    assert images.shape == (8, 1, 28, 28)
    assert 0.0 <= float(images.min()) and float(images.max()) <= 1.0
    assert entry["metrics"]["test_images"] == {"fashion-mnist": 10000, "mnist": 1000}[dataset]
    assert entry["metrics"]["importance_samples"] >= 1000


def quick_on_mnist(shipped: list[tuple[str, str]]) -> list:
    """MNIST's in the default suite; Fashion-MNIST's (60k exemplars, a minute each) marked slow."""
    return [pytest.param(m, d, marks=[pytest.mark.slow] if d == "fashion-mnist" else []) for m, d in shipped]


@pytest.mark.parametrize("model, dataset", quick_on_mnist(SHIPPED))
def test_a_quick_evaluation_agrees_with_the_manifest(model, dataset):
    # 200 test images and 30 importance samples: close to the full figure, not equal to it.
    result = run_cli("evaluate", model, "--dataset", dataset, "--limit", "200", "--samples", "30",
                     "--json", "--quiet")
    assert result.returncode == 0, result.stderr
    quick, full = json.loads(result.stdout), pretrained.find(model, dataset)["metrics"]
    assert abs(quick["nll"] - full["nll"]) < 10.0
    assert quick["nll"] < -quick["elbo"]


@pytest.mark.slow
@pytest.mark.parametrize("model, dataset", SHIPPED)
def test_the_manifest_figures_reproduce_exactly(model, dataset):
    full = pretrained.find(model, dataset)["metrics"]
    result = run_cli("evaluate", model, "--dataset", dataset, "--samples",
                     str(full["importance_samples"]), "--json", "--quiet", timeout=3600)
    assert result.returncode == 0, result.stderr
    again = json.loads(result.stdout)
    for key in ("nll", "elbo", "kl"):
        assert again[key] == pytest.approx(full[key], abs=0.05), key
    assert again["active_units"] == full["active_units"]
    assert again["knn_accuracy"] == pytest.approx(full["knn_accuracy"], abs=1e-3)
