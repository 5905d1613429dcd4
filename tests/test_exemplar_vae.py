"""The exemplar prior: exact mixture, leave-one-out retrieval, stability, and new exemplars."""

import math

import pytest
import torch
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal

from core import checkpoint
from core.models.exemplar_vae import ExemplarVAE, ExemplarVAEConfig, log_kernel_matrix
from core.models.vae import log_normal_diag


def tiny(seed: int = 0, neighbors: int = 10) -> ExemplarVAE:
    torch.manual_seed(seed)
    return ExemplarVAE(ExemplarVAEConfig(latent_dim=3, hidden_dim=16, neighbors=neighbors))


def images(n: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


def mixture(means: torch.Tensor, logvar: torch.Tensor) -> MixtureSameFamily:
    std = torch.exp(0.5 * logvar).expand_as(means)
    return MixtureSameFamily(Categorical(logits=torch.zeros(len(means))),
                             Independent(Normal(means, std), 1))


def test_exact_prior_is_the_uniform_parzen_mixture():
    model = tiny()
    model.set_exemplars(images(50))
    z = torch.randn(7, 3)
    expected = mixture(model.exemplar_means, model.kernel_logvar().detach()).log_prob(z)
    torch.testing.assert_close(model.log_prior(z, chunk=3).detach(), expected, rtol=1e-5, atol=1e-4)


def test_kernel_matrix_and_its_gradients_match_the_broadcast_form():
    # Training's GEMM form must give what N(z; mu, s2 I) gives pair by pair, gradients included,
    # also where z sits far from the origin and near a mean (the cancellation case).
    gen = torch.Generator().manual_seed(0)
    z = (30 + torch.randn(6, 40, generator=gen)).requires_grad_()
    means = (30 + torch.randn(9, 40, generator=gen))
    means = torch.cat([means, z.detach()[:2] + 1e-3]).requires_grad_()
    logvar = torch.tensor([-4.0], requires_grad=True)
    fast = log_kernel_matrix(z, means, logvar)
    slow = log_normal_diag(z.unsqueeze(1), means.unsqueeze(0), logvar)
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-3)
    weights = torch.rand(fast.shape, generator=gen)
    fast_grads = torch.autograd.grad((fast * weights).sum(), (z, means, logvar))
    slow_grads = torch.autograd.grad((slow * weights).sum(), (z, means, logvar))
    for got, expected in zip(fast_grads, slow_grads):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-2)


def test_retrieval_prior_leaves_each_image_out():
    # With k >= N every exemplar is retrieved, so the retrieval prior must equal the exact mixture
    # over the N - 1 *other* exemplars.
    model = tiny(neighbors=20)
    x = images(12)
    model.set_exemplars(x)
    index = torch.tensor([0, 5, 11])
    mu, _ = model.posterior(x[index])
    z = mu + 0.1
    got = model.training_log_prior(z, mu, index).detach()
    for row, i in enumerate(index.tolist()):
        others = torch.cat([model.exemplar_means[:i], model.exemplar_means[i + 1:]])
        expected = mixture(others, model.kernel_logvar().detach()).log_prob(z[row])
        torch.testing.assert_close(got[row], expected, rtol=1e-5, atol=1e-4)


def test_retrieval_prior_uses_faiss_neighbours_only():
    # With k = 1, each image sees itself (masked) and one neighbour: a lower bound of the exact
    # leave-one-out prior, never above it.
    model = tiny(neighbors=1)
    x = images(30)
    model.set_exemplars(x)
    index = torch.arange(10)
    mu, _ = model.posterior(x[index])
    approx = model.training_log_prior(mu, mu, index).detach()
    exact = tiny(neighbors=40)
    exact.load_state_dict(model.state_dict())
    exact.set_exemplars(x)
    full = exact.training_log_prior(mu, mu, index).detach()
    assert torch.all(approx <= full + 1e-5)


def test_log_sum_exp_is_stable_far_from_every_exemplar():
    model = tiny()
    model.set_exemplars(images(20))
    with torch.no_grad():
        model.prior_logvar.fill_(-10.0)
    far = torch.full((2, 3), 1e3)
    values = model.log_prior(far)
    assert torch.isfinite(values).all() and (values < -1e6).all()


def test_training_step_reaches_encoder_through_the_prior_and_sigma():
    model = tiny()
    x = torch.bernoulli(images(40))
    model.train()
    model.on_epoch_start(x)
    index = torch.arange(8)
    out = model(x[index], index=index)
    out.loss.backward()
    assert model.prior_logvar.grad is not None and model.prior_logvar.grad.abs() > 0
    assert all(p.grad is not None for p in model.encoder.parameters())
    before = model.prior_logvar.detach().clone()
    torch.optim.Adam(model.parameters(), lr=1e-2).step()
    assert not torch.equal(before, model.prior_logvar.detach())


def test_new_exemplars_change_the_prior_not_the_weights():
    model = tiny()
    model.set_exemplars(images(20))
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    new = images(3, seed=9)
    z_new = model.encode(new)
    before = model.log_prior(z_new)
    added = model.add_exemplars(new)
    after = model.log_prior(z_new)
    assert added.tolist() == [20, 21, 22] and len(model.exemplar_means) == 23
    assert torch.all(after > before)  # mass moved onto the new exemplars
    for key, value in model.state_dict().items():
        assert torch.equal(weights[key], value)


def test_generation_from_an_image_stays_near_it_when_sigma_is_small():
    model = tiny()
    model.set_exemplars(images(10))
    with torch.no_grad():
        model.prior_logvar.fill_(-10.0)
    ref = images(2, seed=3)
    out = model.generate_from(ref, per_image=4, generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 4, 1, 28, 28)
    centre = model.reconstruct(ref)
    assert (out - centre.unsqueeze(1)).abs().max() < 1e-2
    assert model.sample(5).shape == (5, 1, 28, 28)


def test_prior_needs_exemplars_first():
    with pytest.raises(ValueError, match="set_exemplars"):
        tiny().log_prior(torch.zeros(1, 3))


def test_checkpoint_round_trip_keeps_sigma(tmp_path):
    model = tiny()
    checkpoint.save(tmp_path / "e.pt", model, dataset="mnist", step=1, epoch=1)
    loaded, payload = checkpoint.load(tmp_path / "e.pt")
    assert payload["config"]["neighbors"] == 10
    assert torch.equal(loaded.prior_logvar, model.prior_logvar)
    assert math.isfinite(float(loaded.kernel_logvar().detach()))


def test_what_the_app_calls_takes_and_returns_cpu_tensors():
    """A VAE trained on a GPU is used on the CPU: encode, decode, generation and sampling move
    their inputs to the weights and hand back CPU tensors (here the weights are on the CPU too,
    so this pins the contract the GPU path relies on)."""
    model = tiny().eval()
    model.set_exemplars(images(20))
    x = images(3, seed=1)
    z = model.encode(x)
    assert z.device.type == "cpu" and model.decode(z).device.type == "cpu"
    assert model.reconstruct(x).shape == x.shape
    generated = model.generate_from(x, per_image=2, generator=torch.Generator().manual_seed(0))
    assert generated.shape == (3, 2, *x.shape[1:]) and generated.device.type == "cpu"
    assert model.sample(4, generator=torch.Generator().manual_seed(0)).device.type == "cpu"
    before = len(model.exemplar_means)
    assert model.add_exemplars(x).tolist() == [before, before + 1, before + 2]
