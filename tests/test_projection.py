"""Maps: UMAP coordinates, their quality figures, and placing new points without refitting."""

import json

import numpy as np
import pytest
import torch

from conftest import run_cli
from core import checkpoint, pretrained, projection
from core.models.vae import VAE, VAEConfig


def two_clusters(n: int = 150, dim: int = 8, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    codes = torch.cat([torch.randn(n, dim, generator=g), torch.randn(n, dim, generator=g) + 6])
    labels = torch.arange(2).repeat_interleave(n)
    is_test = (torch.arange(2 * n) % 5) == 0
    return codes, labels, is_test


@pytest.mark.slow  # numba compiles UMAP on first use: over a minute in a fresh environment
def test_umap_keeps_clusters_apart_and_is_reproducible():
    codes, labels, is_test = two_clusters()
    xy = projection.fit_umap(codes, seed=0)
    assert xy.shape == (300, 2) and xy.dtype == np.float32
    np.testing.assert_array_equal(xy, projection.fit_umap(codes, seed=0))
    figures = projection.quality(codes, xy, labels, is_test)
    assert figures["knn_accuracy_2d"] == 1.0 and figures["trustworthiness"] > 0.8


def test_quality_of_a_perfect_map():
    codes, labels, is_test = two_clusters(dim=2)
    figures = projection.quality(codes, codes.numpy(), labels, is_test)
    assert figures["trustworthiness"] == pytest.approx(1.0)
    assert figures["knn_accuracy_2d"] == figures["knn_accuracy_latent"]


def test_new_points_land_by_their_neighbours_and_the_map_stays():
    codes, _, _ = two_clusters()
    coords = np.stack([np.arange(300), np.zeros(300)], axis=1).astype(np.float32)
    before = coords.copy()
    at_exemplar = projection.place(codes[[7]], codes, coords, k=5)
    np.testing.assert_allclose(at_exemplar[0], coords[7], atol=1e-3)  # distance 0 dominates
    far_cluster = projection.place(codes[150:160].mean(0, keepdim=True), codes, coords, k=5)
    assert 150 <= far_cluster[0, 0] <= 299
    np.testing.assert_array_equal(coords, before)


@pytest.mark.slow
def test_map_command_ships_coordinates_for_every_image(isolated_dirs):
    runs, shipped = isolated_dirs
    torch.manual_seed(0)
    run = runs / "vae-mnist" / "checkpoint.pt"
    checkpoint.save(run, VAE(VAEConfig(latent_dim=4, hidden_dim=16)), dataset="mnist", step=1,
                    epoch=1, seconds=1.0, commit="abc", history=[])
    pretrained.ship(run, {"nll": 1.0}, command="python -m core train vae --dataset mnist --epochs 1")
    result = run_cli("map", "vae", "--dataset", "mnist", "--quiet", timeout=900)
    assert result.returncode == 0, result.stderr
    arrays = pretrained.load_map("vae", "mnist")
    assert arrays["coords"].shape == (5000, 2) and arrays["recon_error"].shape == (5000,)
    assert (arrays["recon_error"] > 0).all()
    entry = pretrained.find("vae", "mnist", kind="map")
    assert entry["command"] == "python -m core map vae --dataset mnist"
    assert entry["metrics"]["points"] == 5000 and 0 < entry["metrics"]["trustworthiness"] <= 1
    listed = json.loads(run_cli("list", "--json").stdout)
    assert {e["kind"] for e in listed} == {"checkpoint", "map"}


def test_map_figure_names_every_class_and_carries_indices():
    from core import figures

    coords = np.random.default_rng(0).normal(size=(50, 2)).astype(np.float32)
    labels = np.arange(50) % 3
    fig = figures.latent_map(coords, labels, ("a", "b", "c"), highlight=[4])
    assert [t.name for t in fig.data] == ["a", "b", "c", "selected"]
    assert all(t.type == "scattergl" for t in fig.data)
    assert sorted(np.concatenate([t.customdata for t in fig.data[:3]]).tolist()) == list(range(50))
    errors = figures.latent_map(coords, labels, ("a", "b", "c"), "recon_error", values=np.arange(50.0))
    assert len(errors.data) == 1 and errors.data[0].marker.showscale
    with pytest.raises(ValueError, match="unknown colouring"):
        figures.latent_map(coords, labels, ("a", "b", "c"), "nope")


def test_selection_points_become_image_indices():
    from core import figures

    points = [{"customdata": 7}, {"customdata": [3]}, {"customdata": 7}, {"x": 1.0}]
    assert figures.selected_indices(points) == [7, 3]


def test_nearest_exemplars_leave_the_image_out():
    codes = torch.tensor([[0.0], [1.0], [3.0], [10.0]])
    assert projection.nearest_exemplars(codes, 1, k=2) == [(0, 1.0), (2, 2.0)]


def test_neighbour_table_is_every_images_exact_nearest_others():
    codes = torch.randn(300, 6, generator=torch.Generator().manual_seed(0))
    codes[7] = codes[8]  # a duplicate: each must list the other, never itself
    table = projection.neighbour_table(codes, 5, batch_size=64)
    distances = torch.cdist(codes, codes)
    distances.fill_diagonal_(float("inf"))
    expected = distances.topk(5, largest=False)
    assert table["index"].shape == (300, 5) and table["index"].dtype == np.int32
    assert (table["index"] != np.arange(300)[:, None]).all()
    # the same neighbours; the two duplicates tie, so either may come first
    assert [set(row) for row in table["index"]] == [set(row) for row in expected.indices.tolist()]
    assert np.allclose(table["distance"], expected.values.numpy(), atol=2e-3)
    assert table["index"][7, 0] == 8 and table["index"][8, 0] == 7
