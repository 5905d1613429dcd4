"""Gradient Origin Networks (core.models.gon, gon_ae), interpolation (core.interpolation) and the
Interpolate page."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from core import checkpoint, data, evaluate, interpolation, models, pretrained
from core.models.gon import pixel_centres, squared_error

SMALL = {"gon": {"width": 4}, "implicit_gon": {"hidden": 16, "layers": 2},
         "gon_ae": {"width": 4, "encoder_width": 4}, "implicit_gon_ae": {"hidden": 16, "layers": 2, "encoder_width": 4}}


def small(family: str):
    torch.manual_seed(0)
    return models.build(family, SMALL[family])


def images(n: int = 4) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("family", list(SMALL))
def test_builds_and_reconstructs_with_the_right_shapes(family):
    model = small(family).eval()
    x = images()
    z = model.encode(x)
    assert z.shape == (4, 32)
    out = model.decode(z)
    assert out.shape == (4, 1, 28, 28) and out.min() >= 0 and out.max() <= 1
    assert model.reconstruct(x).shape == x.shape


@pytest.mark.parametrize("family", ["gon", "implicit_gon"])
def test_the_latent_is_minus_the_gradient_at_the_origin(family):
    model = small(family).eval()
    x = images(3)
    z0 = torch.zeros(3, 32, requires_grad=True)
    # Summed over pixels for the conv GON, averaged over them for the SIREN (its inner_scale).
    (squared_error(model.decoder(z0), x).sum() * model.config.inner_scale).backward()
    assert torch.allclose(model.encode(x), -z0.grad, atol=1e-6)
    # Each image's latent is its own: encoding it alone gives the same row.
    assert torch.allclose(model.encode(x[1:2]), -z0.grad[1:2], atol=1e-6)
    assert not torch.equal(model.encode(x), torch.zeros(3, 32))


@pytest.mark.parametrize("family", ["gon", "implicit_gon"])
def test_a_learned_inner_step_scales_the_latent_and_learns(family):
    torch.manual_seed(0)
    plain = models.build(family, SMALL[family])
    torch.manual_seed(0)
    stepped = models.build(family, {**SMALL[family], "learned_step": True})
    x = images(3)
    assert torch.allclose(stepped.encode(x), plain.encode(x))  # exp(0) = 1 at the start
    with torch.no_grad():
        stepped.log_step.fill_(1.0)
    assert torch.allclose(stepped.encode(x), plain.encode(x) * torch.e, rtol=1e-5)
    stepped.train_step(images(8), torch.zeros(8, dtype=torch.long), stepped.configure_optimizers(), epoch=0)
    assert stepped.log_step.item() != 1.0  # trained with the rest
    assert not hasattr(plain, "log_step")  # and absent unless asked for: shipped checkpoints load as they are


@pytest.mark.parametrize("family", list(SMALL))
def test_a_train_step_changes_the_weights_and_the_inner_gradient_is_second_order(family):
    model = small(family).train()
    optimizers = model.configure_optimizers()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    stats = model.train_step(images(8), torch.zeros(8, dtype=torch.long), optimizers, epoch=0)
    assert np.isfinite(stats["loss"])
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert any("decoder" in k for k in changed)
    if family.endswith("gon"):
        # create_graph=True: the latent itself depends on the weights, so the loss's gradient
        # has a path through it (without it, z would be a constant).
        z = model.gradient_origin(images(2), create_graph=True)
        assert z.requires_grad


def test_save_load_round_trip_keeps_weights_and_sampling_gaussian(tmp_path):
    model = small("implicit_gon").eval()
    model.fit_latent_gaussian(images(40))
    checkpoint.save(tmp_path / "m.pt", model, dataset="mnist", step=1, epoch=1)
    loaded, payload = checkpoint.load(tmp_path / "m.pt")
    assert payload["family"] == "implicit_gon" and payload["config"]["hidden"] == 16
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    assert torch.equal(model.sample(5, g()), loaded.sample(5, g()))
    cov = loaded.latent_scale_tril @ loaded.latent_scale_tril.T
    z = model.encode(images(40))
    assert torch.allclose(cov, torch.cov(z.T), atol=1e-3 * cov.abs().max().item() + 1e-4)


def test_slerp_and_lerp_ends_are_exactly_the_endpoints():
    z0, z1 = torch.randn(32), torch.randn(32)
    for method in interpolation.METHODS:
        p = interpolation.path(z0, z1, 7, method)
        assert p.shape == (7, 32)
        assert torch.equal(p[0], z0) and torch.equal(p[-1], z1), method
    # slerp keeps equal norms on the arc between two latents of equal norm
    p = interpolation.path(z0, z1 * z0.norm() / z1.norm(), 9, "slerp")
    assert torch.allclose(p.norm(dim=1), z0.norm().expand(9), rtol=1e-5)
    with pytest.raises(ValueError, match="unknown interpolation"):
        interpolation.path(z0, z1, 5, "cubic")
    with pytest.raises(ValueError, match="steps"):
        interpolation.path(z0, z1, 1)


def test_interpolation_and_corner_grid_shapes_and_ends():
    model = small("gon").eval()
    x = images(4)
    strip = interpolation.interpolate(model, x[0], x[1], 6, "linear")
    assert strip.shape == (6, 1, 28, 28)
    assert torch.allclose(strip[0], model.reconstruct(x[:1])[0], atol=1e-6)
    grid = interpolation.corner_grid(model, x, 8)
    assert grid.shape == (64, 1, 28, 28)
    recon = model.reconstruct(x)
    for corner, i in zip(range(4), (0, 7, 56, 63)):
        assert torch.allclose(grid[i], recon[corner], atol=1e-5)


def test_super_resolution_sizes_and_only_for_the_implicit_gon():
    model = small("implicit_gon").eval()
    renders = interpolation.super_resolution(model, images(1)[0, 0].numpy())
    assert list(renders) == [28, 56, 112, 224]
    for size, pair in renders.items():
        assert pair["implicit"].shape == pair["bicubic"].shape == (size, size)
        assert pair["implicit"].dtype == np.uint8
    # At 28 px, the render is the 28 px decode: pixel centres of the two grids agree.
    assert np.array_equal(renders[28]["implicit"], renders[28]["bicubic"])
    assert torch.allclose(pixel_centres(56)[0], torch.tensor([-1 + 1 / 56, -1 + 1 / 56]))
    with pytest.raises(ValueError, match="implicit_gon"):
        interpolation.super_resolution(small("gon"), images(1))


def test_gradient_energy_rewards_a_sharp_edge():
    """A step edge rendered sharp at 112 px has more energy than the same edge upscaled bicubically
    from 28 px; a flat picture has none; slopes are in units of a 28 px pixel at any size."""
    edge = np.zeros((28, 28), np.uint8)
    edge[:, 14:] = 255
    sharp = np.zeros((112, 112), np.uint8)
    sharp[:, 56:] = 255
    blurred = np.asarray(Image.fromarray(edge).resize((112, 112), Image.Resampling.BICUBIC))
    nearest = np.asarray(Image.fromarray(edge).resize((112, 112), Image.Resampling.NEAREST))
    assert interpolation.gradient_energy(np.zeros((1, 112, 112), np.uint8)) == 0
    assert interpolation.gradient_energy(sharp[None]) > 3 * interpolation.gradient_energy(blurred[None])
    # A unit step over one pixel: a slope of 1 per 28 px pixel at 28 px, of 4 at 112 px (in 28 px
    # units), in one of the 27 (111) columns of differences.
    assert interpolation.gradient_energy(edge[None]) == pytest.approx(1 / 27)
    assert interpolation.gradient_energy(nearest[None]) == pytest.approx(16 / 111)


def test_super_resolution_quality_reports_each_size_against_bicubic():
    model = small("implicit_gon").eval()
    x, labels = images(6), torch.arange(6) % 10

    class Constant:
        def predict(self, pictures):
            return torch.zeros(len(pictures), dtype=torch.long)

    result = interpolation.super_resolution_quality(model, x, labels, Constant(), sizes=(56, 112), batch_size=4)
    assert result["sr_images"] == 6 and result["sr_sizes"] == [56, 112]
    for s in (56, 112):
        assert result[f"sr_energy_ratio_{s}"] == pytest.approx(result[f"sr_energy_implicit_{s}"]
                                                               / result[f"sr_energy_bicubic_{s}"])
        assert result[f"sr_accuracy_implicit_{s}"] == result[f"sr_accuracy_bicubic_{s}"] == pytest.approx(1 / 6)
        assert result[f"sr_error_implicit_{s}"] > 0 and result[f"sr_energy_real_bicubic_{s}"] > 0
    # Box-filtered back to 28 px, bicubic upscaling of the 28 px render is close to that render.
    recon_error = squared_error(model.reconstruct(x), x).mean().item()
    assert result["sr_error_bicubic_56"] == pytest.approx(recon_error, rel=0.05)
    with pytest.raises(ValueError, match="implicit_gon"):
        interpolation.super_resolution_quality(small("gon"), x, labels)


def test_png_and_gif_bytes_decode_with_pil():
    model = small("gon").eval()
    frames = interpolation.interpolate(model, images(2)[0], images(2)[1], 5)
    png = Image.open(io.BytesIO(interpolation.png_bytes(interpolation.strip(frames))))
    assert png.format == "PNG" and png.size == (5 * (84 + 2) + 2, 84 + 4)
    # (Pillow merges identical consecutive frames, and an untrained net's frames barely differ.)
    gif = Image.open(io.BytesIO(interpolation.gif_bytes(images(5), scale=2)))
    assert gif.format == "GIF" and gif.n_frames == 8 and gif.size == (56, 56)  # 5 there, 3 back


def test_bad_images_are_refused_with_a_plain_message():
    with pytest.raises(ValueError, match="28×28"):
        interpolation.as_batch(np.zeros((32, 32)))


@pytest.fixture
def shipped_small_gons(isolated_dirs):
    """Tiny untrained GONs shipped into a temporary pretrained/, as the page loads them."""
    import streamlit as st

    runs, _ = isolated_dirs
    for family in ("gon", "implicit_gon"):
        run = runs / f"{family}-mnist" / "checkpoint.pt"
        checkpoint.save(run, small(family).eval(), dataset="mnist", step=0, epoch=0)
        metrics = {"recon_mse": 0.0}
        if family == "implicit_gon":  # measured on the tiny model, as evaluate measures the shipped one
            metrics |= interpolation.super_resolution_quality(small(family).eval(), images(4), torch.zeros(4))
        pretrained.ship(run, metrics, f"test fixture {family}")
    st.cache_resource.clear()
    yield
    st.cache_resource.clear()


def test_interpolate_page_with_endpoints_handed_over(shipped_small_gons):
    from streamlit.testing.v1 import AppTest

    from conftest import ROOT

    at = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=120)
    at.query_params["dataset"] = "mnist"
    at.run()
    ends = [{"image": np.full((28, 28), v, np.float32), "caption": c} for v, c in ((0.1, "map #5"), (0.9, "upload x"))]
    at.session_state["interpolation_endpoints"] = ends
    at.switch_page("views/interpolate.py")
    at.run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    pickers = [s for s in at.selectbox if s.label.startswith("Endpoint")]
    assert [p.value for p in pickers] == [0, 1]  # preselected: the first and second handed over
    assert "map #5 → upload x" in at.subheader[0].value.replace("\\", "")  # captions are escaped as text
    at.slider[0].set_value(5).run()
    assert not at.exception, at.exception
    assert any(s.value == "Super-resolution" for s in at.subheader)
    measured = pretrained.find("implicit_gon", "mnist")["metrics"]
    assert any(c.value.startswith(f"How sharp, over 4 test images: at 224 px the implicit GON's renders have "
                                  f"{measured['sr_energy_ratio_224']:.2f}× the gradient energy") for c in at.caption)


@pytest.mark.slow
def test_shipped_gons_beat_nothing_silently():
    """The shipped GONs' recorded numbers come from their own measure (rerun on 200 images)."""
    for family in ("gon", "implicit_gon"):
        for dataset in ("mnist", "fashion-mnist"):
            try:
                model, entry = pretrained.load(family, dataset)
            except pretrained.ArtifactError:
                pytest.skip(f"{family} on {dataset} not shipped")
            m = evaluate.measure(model, dataset, limit=200)
            assert m["params"] == entry["metrics"]["params"]
            assert m["recon_mse"] > 0 and "ae_recon_mse" in m


def test_measure_reports_the_classifiers_accuracy_on_both_models_reconstructions():
    """A second yardstick beside the squared error: the shipped classifier on the reconstructions."""
    try:
        model, _ = pretrained.load("gon", "mnist")
        ae, _ = pretrained.load("gon_ae", "mnist")
        classifier, _ = pretrained.load("classifier", "mnist")
    except pretrained.ArtifactError:
        pytest.skip("gon, gon_ae or the classifier not shipped for mnist")
    m = evaluate.measure(model, "mnist", limit=60)
    test = data.load("mnist", "test")
    images, labels = test.images[:60], test.labels[:60]
    for key, net in (("recon_accuracy", model), ("ae_recon_accuracy", ae)):
        expected = (classifier.predict(net.reconstruct(images)) == labels).double().mean().item()
        assert m[key] == pytest.approx(expected)


def test_docs_quote_the_2x2_record():
    """docs/gon-vs-autoencoder.md's 2×2 table is experiments/gon/gon-2x2-mnist-40-epochs.json."""
    import json

    from conftest import ROOT

    runs = json.loads((ROOT / "experiments" / "gon" / "gon-2x2-mnist-40-epochs.json").read_text())["runs"]
    doc = (ROOT / "docs" / "gon-vs-autoencoder.md").read_text()
    for latent in (32, 128):
        gon, ae = runs[f"gon-z{latent}"], runs[f"gon_ae-z{latent}"]
        learned = runs[f"gon-z{latent}-learned-step"]
        change = gon["test_recon_mse"] / ae["test_recon_mse"] - 1
        row = (f"| {latent} | {gon['test_recon_mse']:.2f} | {learned['test_recon_mse']:.2f} | "
               f"{ae['test_recon_mse']:.2f} | {change:+.1%} | {gon['params']:,} / {ae['params']:,} |")
        assert row.replace("-", "−") in doc.replace("-", "−"), row


def test_docs_quote_the_latent_gap_records():
    """docs/gon-vs-autoencoder.md's table of what each implicit decoder draws with its best latents
    is experiments/gon/implicit-latent-gap-D.json."""
    import json

    from conftest import ROOT

    doc = (ROOT / "docs" / "gon-vs-autoencoder.md").read_text()
    for dataset, name in (("fashion-mnist", "Fashion-MNIST"), ("mnist", "MNIST")):
        r = json.loads((ROOT / "experiments" / "gon" / f"implicit-latent-gap-{dataset}.json").read_text())
        assert r["dataset"] == dataset and r["images"] == 100 and r["steps"] == 200
        for family in ("implicit_gon", "implicit_gon_ae"):  # measured on the nets shipped now
            assert r["checkpoints_sha256"][family] == pretrained.find(family, dataset)["sha256"]
        encoded = r["as_encoded"]["gon"], r["as_encoded"]["autoencoder"]
        best = r["gon_decoder_optimised"][str(r["steps"])], r["ae_decoder_optimised"][str(r["steps"])]
        row = (f"| {name} | {encoded[0]:.2f} / {encoded[1]:.2f} ({encoded[0] / encoded[1] - 1:+.0%}) | "
               f"{best[0]:.2f} / {best[1]:.2f} ({best[0] / best[1] - 1:+.0%}) | "
               f"{encoded[0] - best[0]:.2f} / {encoded[1] - best[1]:.2f} |")
        assert row.replace("-", "−") in doc.replace("-", "−"), row


@pytest.mark.parametrize("family", ["gon", "implicit_gon", "gon_ae", "implicit_gon_ae"])
def test_what_the_app_calls_takes_and_returns_cpu_tensors(family):
    """A GON trained on a GPU is used on the CPU, and during training its measurements take CPU
    data: encode, decode and reconstruct move inputs to the weights and hand back CPU tensors."""
    model = small(family).eval()
    x = torch.rand(3, 1, 28, 28)
    z = model.encode(x)
    assert z.device.type == "cpu" and model.decode(z).device.type == "cpu"
    assert model.reconstruct(x).device.type == "cpu" and model.recon_errors(x).shape == (3,)


@pytest.mark.parametrize("family", ["gon", "implicit_gon"])
def test_docs_quote_the_shipped_pairs(family):
    """docs/gon-vs-autoencoder.md's tables of the shipped pairs are the manifest's."""
    from conftest import ROOT

    doc = (ROOT / "docs" / "gon-vs-autoencoder.md").read_text().replace("−", "-")
    for dataset, name in (("mnist", "MNIST"), ("fashion-mnist", "Fashion-MNIST")):
        try:
            m = pretrained.find(family, dataset)["metrics"]
        except pretrained.ArtifactError:
            pytest.skip(f"no {family} shipped for {dataset}")
        change = m["recon_mse"] / m["ae_recon_mse"] - 1
        row = (f"| {m['recon_mse']:.2f} | {m['ae_recon_mse']:.2f} | {change:+.1%} | "
               f"{m['recon_accuracy']:.3f} / {m['ae_recon_accuracy']:.3f} |")
        assert f"| {name} |" in doc and row in doc, row


def test_docs_quote_the_fashion_mnist_pair_trained_on():
    """docs/gon-vs-autoencoder.md's table of the Fashion-MNIST pair trained past the shipped 20
    epochs (experiments/gon/pair-curve-fashion-mnist.jsonl, written by experiments/gon/pair_curve.py):
    a row per milestone, both runs at the same steps, from one clean commit with the shipped
    recipe, every figure as recorded; the 20-epoch point is the shipped pair's to within 0.1%."""
    import json

    from conftest import ROOT

    doc = (ROOT / "docs" / "gon-vs-autoencoder.md").read_text().replace("−", "-")
    path = ROOT / "experiments" / "gon" / "pair-curve-fashion-mnist.jsonl"
    points = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    assert [p["epoch"] for p in points] == sorted({p["epoch"] for p in points}) and len(points) >= 2
    shipped = pretrained.find("gon", "fashion-mnist")
    for p in points:
        assert p["steps"] == p["ae_steps"] == p["epoch"] * 60000 // shipped["config"]["batch_size"]
        assert p["settings"] == {"latent_dim": shipped["config"]["latent_dim"]} and p["test_images"] == 10000
        assert p["commit"] == p["ae_commit"] == points[0]["commit"] and "+dirty" not in p["commit"]
        for model in ("gon", "gon_ae"):
            assert p["commands"][model].startswith(f"python -m core train {model} --dataset fashion-mnist "
                                                   f"--epochs {p['epoch']} ")
        change = p["gon_recon_mse"] / p["ae_recon_mse"] - 1
        row = (f"| {p['epoch']} | {p['steps']:,} | {p['gon_recon_mse']:.2f} | {p['ae_recon_mse']:.2f} | "
               f"{change:+.1%} | {p['gon_recon_accuracy']:.3f} / {p['ae_recon_accuracy']:.3f} |")
        assert row in doc, row
    twenty, m = next(p for p in points if p["epoch"] == 20), shipped["metrics"]
    assert twenty["gon_recon_mse"] == pytest.approx(m["recon_mse"], rel=1e-3)
    assert twenty["ae_recon_mse"] == pytest.approx(m["ae_recon_mse"], rel=1e-3)


def super_resolution_row(dataset: str, m: dict) -> str:
    """docs/reproductions.md's row for one dataset's implicit GON, from its manifest metrics."""
    return (f"| {dataset} | {m['sr_energy_implicit_224']:.4f} / {m['sr_energy_bicubic_224']:.4f} "
            f"({m['sr_energy_ratio_224']:.2f}×) | {m['sr_energy_real_bicubic_224']:.4f} | "
            f"{m['sr_error_implicit_224']:.2f} / {m['sr_error_bicubic_224']:.2f} | "
            f"{m['sr_accuracy_implicit_224']:.3f} / {m['sr_accuracy_bicubic_224']:.3f} |")


def test_docs_quote_the_super_resolution_measure():
    from core.paths import ROOT

    doc = (ROOT / "docs" / "reproductions.md").read_text()
    measured = {d: pretrained.find("implicit_gon", d)["metrics"] for d in ("mnist", "fashion-mnist")}
    for dataset, m in measured.items():
        assert super_resolution_row(dataset, m) in doc
    assert (f"(gradient energy {measured['mnist']['sr_energy_ratio_224']:.2f}× on MNIST, "
            f"{measured['fashion-mnist']['sr_energy_ratio_224']:.2f}× on Fashion-MNIST)") in doc
