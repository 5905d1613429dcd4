"""The Gaussian-prior VAE: shapes, a training step, the ELBO's pieces and the NLL estimate."""

import torch
from torch.distributions import Normal

from core import checkpoint, models
from core.evaluate import importance_sampled_nll
from core.models.vae import VAE, VAEConfig, log_normal_diag


def tiny_vae(seed: int = 0) -> VAE:
    torch.manual_seed(seed)
    return VAE(VAEConfig(latent_dim=4, hidden_dim=16))


def binary_batch(n: int = 8, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.bernoulli(torch.full((n, 1, 28, 28), 0.3), generator=g)


def test_forward_returns_named_parts_with_shapes():
    model, x = tiny_vae(), binary_batch()
    out = model(x)
    assert out.z.shape == out.mu.shape == out.logvar.shape == (8, 4)
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    torch.testing.assert_close(out.loss, out.recon + out.kl)
    assert torch.isclose(out.elbo, -(out.recon + out.kl))
    assert model.decode(out.z).shape == (8, 1, 28, 28)
    assert model.sample(3).shape == (3, 1, 28, 28)


def test_decoded_images_are_bernoulli_means():
    images = tiny_vae().sample(16, generator=torch.Generator().manual_seed(1))
    assert float(images.min()) >= 0.0 and float(images.max()) <= 1.0


def test_beta_weights_only_the_kl_term():
    model, x = tiny_vae(), binary_batch()
    torch.manual_seed(3)
    full = model(x, beta=1.0)
    torch.manual_seed(3)
    half = model(x, beta=0.5)
    torch.testing.assert_close(half.loss, half.recon + 0.5 * half.kl)
    torch.testing.assert_close(full.kl, half.kl)


def test_one_optimizer_step_changes_every_weight():
    model, x = tiny_vae(), binary_batch()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(x).loss.backward()
    opt.step()
    for key, value in model.state_dict().items():
        assert not torch.equal(before[key], value), f"{key} did not change"


def test_log_normal_diag_matches_torch_distributions():
    z, mu, logvar = torch.randn(5, 3), torch.randn(5, 3), torch.randn(5, 3)
    expected = Normal(mu, torch.exp(0.5 * logvar)).log_prob(z).sum(-1)
    torch.testing.assert_close(log_normal_diag(z, mu, logvar), expected)


def test_importance_sampled_nll_is_tighter_than_the_elbo():
    # log of a mean of weights >= mean of log weights (Jensen), so with many samples the NLL
    # estimate sits below -ELBO; a bug in the weights usually breaks this.
    model, x = tiny_vae(), binary_batch(16)
    g = torch.Generator().manual_seed(0)
    nll = importance_sampled_nll(model, x, samples=500, generator=g)
    torch.manual_seed(0)
    with torch.no_grad():
        neg_elbo = torch.stack([-model(x).elbo for _ in range(200)]).mean()
    assert nll.shape == (16,)
    assert float(nll.mean()) < float(neg_elbo)
    assert float(nll.mean()) > 0


def test_nll_does_not_depend_on_the_chunk_size():
    model, x = tiny_vae(), binary_batch(4)
    a = importance_sampled_nll(model, x, 64, torch.Generator().manual_seed(5), chunk=4 * 64)
    b = importance_sampled_nll(model, x, 64, torch.Generator().manual_seed(5), chunk=4 * 64)
    c = importance_sampled_nll(model, x, 64, torch.Generator().manual_seed(5), chunk=4 * 8)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a, c)


def test_save_and_load_round_trip(tmp_path):
    model = tiny_vae()
    checkpoint.save(tmp_path / "m.pt", model, dataset="mnist", step=7, epoch=1, metrics={"nll": 1.5})
    loaded, payload = checkpoint.load(tmp_path / "m.pt")
    assert payload["step"] == 7 and payload["metrics"] == {"nll": 1.5}
    assert payload["config"] == {"latent_dim": 4, "hidden_dim": 16, "image_size": 28}
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)
    x = binary_batch()
    torch.testing.assert_close(loaded.encode(x), model.encode(x))


def test_build_rejects_unknown_config_fields():
    import pytest

    with pytest.raises(ValueError, match="no config field"):
        models.build("vae", {"latent_dims": 3})
