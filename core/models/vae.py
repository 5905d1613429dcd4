"""Variational autoencoder with a standard Gaussian prior.

Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014.
The encoder and decoder are the gated MLPs (784-300-300, z=40) of the Exemplar VAE paper's
reference nets (Norouzi et al., NeurIPS 2020; code sajadn/Exemplar-VAE, built on the VampPrior
code), so that `vae` and `exemplar_vae` differ only in their prior. Pixels are Bernoulli: the
decoder returns logits, and images are shown as Bernoulli means.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

LOG_2PI = math.log(2 * math.pi)


@dataclass
class VAEConfig:
    latent_dim: int = 40
    hidden_dim: int = 300
    image_size: int = 28


@dataclass
class VAEOutput:
    loss: Tensor  # recon + beta * kl, mean over the batch: what training minimises
    recon: Tensor  # -log p(x|z) in nats, mean over the batch
    kl: Tensor  # log q(z|x) - log p(z) at the sampled z (one-sample estimate), mean over the batch
    z: Tensor  # (B, D)
    mu: Tensor  # (B, D)
    logvar: Tensor  # (B, D)

    @property
    def elbo(self) -> Tensor:
        return -(self.recon + self.kl)


class GatedDense(nn.Module):
    """h(x) * sigmoid(g(x)): the gated linear unit the paper's MLP nets are built from."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.h = nn.Linear(n_in, n_out)
        self.g = nn.Linear(n_in, n_out)

    def forward(self, x: Tensor) -> Tensor:
        return self.h(x) * torch.sigmoid(self.g(x))


def log_normal_diag(z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """log N(z; mu, diag(exp(logvar))), summed over the last dimension."""
    return -0.5 * (LOG_2PI + logvar + (z - mu).pow(2) * torch.exp(-logvar)).sum(-1)


class VAE(nn.Module):
    family = "vae"
    Config = VAEConfig
    # Trains on a GPU where one is lent: the loop moves each batch to the weights, and encode,
    # decode and sampling take and return CPU tensors. Everything else (the evaluator's importance
    # sampling, projections, uploads) runs on the CPU models that checkpoint.read loads.
    runs_on_any_device = True

    def __init__(self, config: VAEConfig):
        super().__init__()
        self.config = config
        pixels, hidden, latent = config.image_size**2, config.hidden_dim, config.latent_dim
        self.encoder = nn.Sequential(GatedDense(pixels, hidden), GatedDense(hidden, hidden))
        self.to_mu = nn.Linear(hidden, latent)
        self.to_logvar = nn.Linear(hidden, latent)
        self.decoder = nn.Sequential(
            GatedDense(latent, hidden), GatedDense(hidden, hidden), nn.Linear(hidden, pixels)
        )

    # -- the pieces of the ELBO ----------------------------------------------------------------

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Parameters of q(z|x): mean and log-variance, each (B, D)."""
        h = self.encoder(x.flatten(1))  # (B, 784) -> (B, H)
        # Bounded as in the reference code: a variance near 0 or huge makes the KL explode.
        return self.to_mu(h), F.hardtanh(self.to_logvar(h), -6.0, 2.0)

    def decode_logits(self, z: Tensor) -> Tensor:
        """Bernoulli logits, (B, 1, S, S)."""
        s = self.config.image_size
        return self.decoder(z).view(-1, 1, s, s)

    def log_prior(self, z: Tensor) -> Tensor:
        """log p(z) = log N(z; 0, I), (B,)."""
        return -0.5 * (LOG_2PI + z.pow(2)).sum(-1)

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        """log p(x|z) for binary x, (B,)."""
        logits = self.decode_logits(z)
        return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(-1)

    def training_log_prior(self, z: Tensor, mu: Tensor, index: Tensor) -> Tensor:
        """log p(z) as training sees it; families whose prior depends on the data override this."""
        return self.log_prior(z)

    def forward(self, x: Tensor, beta: float = 1.0, index: Tensor | None = None) -> VAEOutput:
        """Negative ELBO of binary images x (B, 1, S, S), with the KL term weighted by beta.

        ``index`` holds the images' positions in the training set, given in training only.
        """
        mu, logvar = self.posterior(x)
        # The noise comes from the CPU's generator whatever the device: the checkpoint carries that
        # generator's state, so a GPU run resumed in pieces draws what one run in one go would.
        eps = torch.randn(mu.shape, dtype=mu.dtype).to(mu.device)
        z = mu + eps * torch.exp(0.5 * logvar)
        recon = -self.log_likelihood(x, z)
        log_pz = self.log_prior(z) if index is None else self.training_log_prior(z, mu, index)
        # Monte-Carlo KL, as the reference code does: it works for any prior, exemplar one included.
        kl = log_normal_diag(z, mu, logvar) - log_pz
        recon, kl = recon.mean(), kl.mean()
        return VAEOutput(recon + beta * kl, recon, kl, z, mu, logvar)

    # -- what the app and the CLI call ----------------------------------------------------------

    @property
    def device(self) -> torch.device:
        return self.to_mu.weight.device

    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        """Posterior means, (B, D), on the CPU."""
        return self.posterior(x.to(self.device))[0].cpu()

    @torch.no_grad()
    def decode(self, z: Tensor) -> Tensor:
        """Bernoulli means in [0, 1], (B, 1, S, S), on the CPU."""
        return torch.sigmoid(self.decode_logits(z.to(self.device))).cpu()

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n images decoded from z ~ p(z)."""
        z = torch.randn(n, self.config.latent_dim, generator=generator)
        return self.decode(z)
