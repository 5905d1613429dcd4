"""Checkpoints load weights-only and strictly; shipped files are hash-checked and named when bad."""

import json

import numpy as np
import pytest
import torch

from core import checkpoint, pretrained
from core.models.vae import VAE, VAEConfig


def small() -> VAE:
    return VAE(VAEConfig(latent_dim=2, hidden_dim=8))


class NotAllowed:
    pass


def test_pickled_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"family": "vae", "config": {}, "state_dict": {}, "step": 0, "x": NotAllowed()}, path)
    with pytest.raises(checkpoint.CheckpointError, match="evil.pt"):
        checkpoint.read(path)


def test_missing_and_garbage_files_are_named(tmp_path):
    with pytest.raises(checkpoint.CheckpointError, match="nothing.pt is missing"):
        checkpoint.read(tmp_path / "nothing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(checkpoint.CheckpointError, match="junk.pt is corrupt"):
        checkpoint.read(tmp_path / "junk.pt")


def test_truncated_checkpoint_is_named_with_the_fix(tmp_path):
    checkpoint.save(tmp_path / "cut.pt", small(), dataset="mnist", step=1, epoch=1)
    whole = (tmp_path / "cut.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(checkpoint.CheckpointError, match="cut.pt is corrupt"):
        checkpoint.read(tmp_path / "cut.pt")


def test_keys_must_match_strictly(tmp_path):
    model = small()
    checkpoint.save(tmp_path / "m.pt", model, dataset="mnist", step=1, epoch=1)
    payload = checkpoint.read(tmp_path / "m.pt")
    payload["state_dict"].pop("to_mu.bias")
    with pytest.raises(checkpoint.CheckpointError, match="does not fit"):
        checkpoint.build_model(payload)


def test_a_checkpoint_without_every_config_field_is_refused(tmp_path):
    """No default is filled in for a field a checkpoint lacks: it may not be what it was trained with."""
    checkpoint.save(tmp_path / "m.pt", small(), dataset="mnist", step=1, epoch=1)
    payload = checkpoint.read(tmp_path / "m.pt")
    checkpoint.build_model(payload)  # complete: loads
    payload["config"].pop("hidden_dim")
    with pytest.raises(checkpoint.CheckpointError, match=r"without config field\(s\) \['hidden_dim'\]"):
        checkpoint.build_model(payload)


def test_a_field_added_later_is_filled_in_with_the_value_older_networks_had(tmp_path):
    """SwAV's top_stages, coarse_stages and optimizer came after its checkpoints shipped: one saved without them
    is the network it was trained as. Any other missing field is still refused."""
    import torch

    from core import models

    torch.manual_seed(0)
    checkpoint.save(tmp_path / "s.pt", models.build("swav", {"width": 4, "hidden_dim": 8, "proj_dim": 4,
                                                             "prototypes": 5}), dataset="mnist", step=1, epoch=1)
    payload = checkpoint.read(tmp_path / "s.pt")
    payload["config"].pop("top_stages")
    payload["config"].pop("coarse_stages")
    payload["config"].pop("optimizer")
    config = checkpoint.build_model(payload).config
    assert (config.top_stages, config.coarse_stages, config.optimizer) == (1, 0, "adamw")
    payload["config"].pop("width")
    with pytest.raises(checkpoint.CheckpointError, match=r"without config field\(s\) \['width'\]"):
        checkpoint.build_model(payload)


def ship_tiny(runs, dataset="mnist"):
    run = runs / "vae-mnist" / "checkpoint.pt"
    checkpoint.save(run, small(), dataset=dataset, step=3, epoch=1, seconds=1.0, commit="abc",
                    history=[{"epoch": 1, "train_loss": 500.0, "test_elbo": -480.0}])
    return pretrained.ship(run, {"nll": 470.0}, command="python -m core train vae --dataset mnist")


def test_ship_then_load_verifies_the_hash(isolated_dirs):
    runs, shipped = isolated_dirs
    entry = ship_tiny(runs)
    manifest = json.loads((shipped / "manifest.json").read_text())["artifacts"]
    assert manifest == [entry]
    assert entry["path"] == "pretrained/vae-mnist.pt" and entry["commit"] == "abc"
    assert entry["bytes"] == (shipped / "vae-mnist.pt").stat().st_size
    assert "optimizer" not in checkpoint.read(shipped / "vae-mnist.pt")
    model, found = pretrained.load("vae", "mnist")
    assert found == entry and isinstance(model, VAE)


def test_corrupt_and_missing_artifacts_are_named(isolated_dirs):
    runs, shipped = isolated_dirs
    ship_tiny(runs)
    with open(shipped / "vae-mnist.pt", "ab") as f:
        f.write(b"\0")
    with pytest.raises(pretrained.ArtifactError, match="vae-mnist.pt is corrupt"):
        pretrained.load("vae", "mnist")
    (shipped / "vae-mnist.pt").unlink()
    with pytest.raises(pretrained.ArtifactError, match="vae-mnist.pt is missing.*python -m core train"):
        pretrained.load("vae", "mnist")
    with pytest.raises(pretrained.ArtifactError, match="no shipped vae for fashion-mnist"):
        pretrained.load("vae", "fashion-mnist")


def test_every_shipped_artifact_matches_the_manifest():
    for entry in pretrained.read_manifest():
        path = pretrained.verify(entry)
        if entry["kind"] == "map":
            arrays = pretrained.load_map(entry["model"], entry["dataset"])
            assert arrays["coords"].shape == (entry["metrics"]["points"], 2)
            assert entry["checkpoint_sha256"] == pretrained.find(entry["model"], entry["dataset"])["sha256"]
            continue
        if entry["kind"] == "knn":
            table, _ = pretrained.load_arrays("knn", entry["model"], entry["dataset"])
            assert table["index"].shape == table["distance"].shape == (entry["metrics"]["points"], entry["metrics"]["k"])
            assert entry["checkpoint_sha256"] == pretrained.find(entry["model"], entry["dataset"])["sha256"]
            assert entry["command"].startswith(f"python -m core neighbour-table {entry['model']}")
            continue
        if entry["kind"] == "study":
            arrays, found = pretrained.load_study(entry["model"], entry["dataset"])
            assert found["sha256"] == entry["sha256"] and arrays
            assert entry["command"].startswith(f"python -m core evaluate {entry['model']}")
            continue
        payload = checkpoint.read(path)
        checkpoint.build_model(payload, path)  # today's code builds every shipped net
        assert payload["family"] == entry["model"] and payload["dataset"] == entry["dataset"]
        assert entry["command"].startswith("python -m core train ")
        assert payload["metrics"] == entry["metrics"]


def test_the_shipped_neighbour_table_is_the_models_exact_neighbours():
    """The map's click answers from this table: it must be what searching the codes gives."""
    from core import projection

    if not any(e["kind"] == "knn" and e["model"] == "vae" and e["dataset"] == "mnist" for e in pretrained.read_manifest()):
        pytest.skip("no vae neighbour table shipped for mnist")
    table, _ = pretrained.load_arrays("knn", "vae", "mnist")
    model, _ = pretrained.load("vae", "mnist")
    codes = projection.encode_all(model, "mnist")
    for i in range(0, len(codes), 499):
        found = projection.nearest_exemplars(codes, i, table["index"].shape[1])
        assert [j for j, _ in found] == table["index"][i].tolist()
        assert np.allclose([d for _, d in found], table["distance"][i].astype(float), rtol=2e-3, atol=2e-3)
