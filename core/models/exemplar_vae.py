"""Exemplar VAE: a VAE whose prior is a Parzen window over the latent means of real exemplars.

Norouzi, Fleet & Norouzi, "Exemplar VAE: Linking Generative Models, Nearest Neighbor Retrieval,
and Data Augmentation", NeurIPS 2020. Official code: github.com/sajadn/Exemplar-VAE.

    p(z) = (1/N) sum_n N(z; mu_phi(x_n), sigma^2 I)

mu_phi is the VAE's own encoder mean and sigma^2 is ONE learned scalar, shared by every exemplar and
dimension. Training follows the official code:
- leave-one-out: a training image's own exemplar is masked out of its prior;
- retrieval: a cache of all exemplar means is refreshed every epoch; per batch, faiss finds each
  image's k nearest cached exemplars, and only their union, re-encoded with gradients, enters the
  log-sum-exp (far exemplars add almost nothing to it).
Evaluation uses the exact prior over all exemplars. Exemplars can be added after training (uploads):
the prior changes, the weights do not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from core import neighbors
from core.models.inference import inference
from core.models.vae import LOG_2PI, VAE, VAEConfig


def log_kernel_matrix(z: Tensor, means: Tensor, logvar: Tensor) -> Tensor:
    """log N(z_b; mu_p, s2 I) for every pair of a row of z (B, D) and of means (P, D): (B, P).

    |z - mu|^2 = |z|^2 - 2 z.mu + |mu|^2 makes the pairs one GEMM. Broadcast to (B, P, D) instead,
    the elementwise work and its backward took half of a training step. The GEMM runs in float64,
    so the cancellation between the three terms loses nothing a float32 result can show.
    """
    z64, means64, logvar64 = z.double(), means.double(), logvar.double()
    sq_dist = z64.pow(2).sum(1, keepdim=True) - 2 * z64 @ means64.T + means64.pow(2).sum(1)
    log_kernel = -0.5 * (z.shape[1] * (LOG_2PI + logvar64) + sq_dist * torch.exp(-logvar64))
    return log_kernel.to(z.dtype)


@dataclass
class ExemplarVAEConfig(VAEConfig):
    neighbors: int = 10  # k of the retrieval approximation (the official code's default)


class ExemplarVAE(VAE):
    family = "exemplar_vae"
    Config = ExemplarVAEConfig

    def __init__(self, config: ExemplarVAEConfig):
        super().__init__(config)
        # log sigma^2 of the Parzen kernel; the official code starts it at a standard normal draw.
        self.prior_logvar = nn.Parameter(torch.randn(1))
        self.exemplar_images: Tensor | None = None  # (N, 1, S, S), what the prior is built from
        self.exemplar_means: Tensor | None = None  # (N, D), cached mu_phi(x_n), no gradient
        self._index = None  # faiss index over exemplar_means, for retrieval in training

    # -- the exemplar set -----------------------------------------------------------------------

    @inference
    def set_exemplars(self, images: Tensor, batch_size: int = 2000) -> None:
        """Make ``images`` the exemplars: encode all of them (the cache) and index the means."""
        if len(images) < 2:
            raise ValueError("the exemplar prior needs at least 2 exemplars")
        # The images stay where they are (the CPU); the means live with the weights, where the
        # prior is computed.
        means = [self.posterior(images[i : i + batch_size].to(self.device))[0]
                 for i in range(0, len(images), batch_size)]
        self.exemplar_images, self.exemplar_means = images, torch.cat(means)
        self._index = None  # rebuilt on first use

    @torch.no_grad()
    def add_exemplars(self, images: Tensor) -> Tensor:
        """Append exemplars without retraining; returns their indices in the exemplar set."""
        if self.exemplar_means is None:
            raise ValueError("set_exemplars() first: the model has no exemplar set yet")
        start = len(self.exemplar_means)
        self.exemplar_images = torch.cat([self.exemplar_images, images])
        self.exemplar_means = torch.cat([self.exemplar_means, self.encode(images).to(self.exemplar_means.device)])
        self._index = None
        return torch.arange(start, start + len(images))

    # Hooks of the training loop and the evaluator.
    def on_epoch_start(self, images: Tensor) -> None:
        self.set_exemplars(images)  # refresh the cache of means once per epoch

    def prepare_prior(self, images: Tensor) -> None:
        self.set_exemplars(images)

    # -- the prior ------------------------------------------------------------------------------

    def kernel_logvar(self) -> Tensor:
        return self.prior_logvar.clamp(-10.0, 4.0)  # keeps exp() finite early in training

    def log_prior(self, z: Tensor, chunk: int = 32) -> Tensor:
        """Exact log p(z) over every exemplar, (B,).

        log (1/N) sum_n N(z; mu_n, s2 I) = logsumexp_n(-|z - mu_n|^2 / 2s2) - log N - D/2 log(2 pi s2)

        This is the whole cost of evaluating the model, so it is written for speed (measured on
        60k exemplars, one thread: the GEMM form in small chunks was 5x faster than |z - mu|^2 in
        1024-row chunks, and the clamp 3-4x faster again on a trained model's means):
        - |z - mu_n|^2 = |z|^2 - 2 z.mu_n + |mu_n|^2 makes the sum's argument one GEMM with a bias,
          (z.mu_n - |mu_n|^2 / 2) / s2, and -|z|^2 / 2s2 a per-z constant outside it;
        - small chunks of z keep each (chunk, N) block in cache;
        - terms more than 80 nats below the largest are clamped there before exp(): exp() of far
          smaller numbers takes a slow path on x86, and each such term weighs < e^-80 relative,
          so N of them change the sum by < N e^-80 (1e-30 for 60k), far below float32 precision.
        """
        means = self._means_or_fail()
        logvar = self.kernel_logvar()
        inv_var = torch.exp(-logvar)
        bias = -0.5 * inv_var * means.pow(2).sum(1)  # (N,)
        scaled_means_t = (means * inv_var).T.contiguous()  # (D, N)
        const = -math.log(len(means)) - 0.5 * z.shape[1] * (LOG_2PI + logvar)
        out = []
        for zc in z.split(chunk):
            a = torch.addmm(bias, zc, scaled_means_t)  # (chunk, N)
            top = a.max(dim=1, keepdim=True).values
            lse = (a - top).clamp_min(-80.0).exp().sum(1).log() + top.squeeze(1)
            out.append(lse - 0.5 * inv_var * zc.pow(2).sum(1))
        return torch.cat(out) + const

    def training_log_prior(self, z: Tensor, mu: Tensor, index: Tensor) -> Tensor:
        """Training-time log p(z), (B,): leave-one-out, over the batch's retrieved neighbours.

        The neighbours are re-encoded with gradients, so the encoder learns from the prior too.
        """
        means = self._means_or_fail()
        k = min(self.config.neighbors + 1, len(means))  # +1: an image usually retrieves itself
        _, nearest = neighbors.search(means, mu.detach(), k, index=self._faiss_index())
        pool = torch.unique(nearest.flatten())  # (P,) exemplar indices, union over the batch
        pool_mu, _ = self.posterior(self.exemplar_images[pool].to(z.device))  # (P, D), with gradients
        log_kernel = log_kernel_matrix(z, pool_mu, self.kernel_logvar())  # (B, P)
        own = (pool.unsqueeze(0) == index.cpu().unsqueeze(1)).to(z.device)  # (B, P): leave one out
        log_kernel = log_kernel.masked_fill(own, float("-inf"))
        # The mixture is over all N - 1 other exemplars; the ones not retrieved add ~0 mass.
        return torch.logsumexp(log_kernel, dim=1) - math.log(len(means) - 1)

    # -- generation -----------------------------------------------------------------------------

    @torch.no_grad()
    def generate_from(self, images: Tensor, per_image: int,
                      generator: torch.Generator | None = None) -> Tensor:
        """``per_image`` samples around each image's latent mean: z ~ N(mu(x), s2 I), decoded.

        Returns (len(images), per_image, 1, S, S).
        """
        mu = self.encode(images)  # (M, D), on the CPU
        std = torch.exp(0.5 * self.kernel_logvar()).cpu()
        eps = torch.randn(len(mu), per_image, mu.shape[1], generator=generator)  # (M, n, D)
        z = (mu.unsqueeze(1) + std * eps).flatten(0, 1)  # (M*n, D)
        return self.decode(z).unflatten(0, (len(mu), per_image))

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n images from the whole prior: a uniformly chosen exemplar, then z ~ N(mu_n, s2 I)."""
        means = self._means_or_fail()
        pick = torch.randint(len(means), (n,), generator=generator)
        std = torch.exp(0.5 * self.kernel_logvar())
        z = means[pick] + std * torch.randn(n, means.shape[1], generator=generator).to(means.device)
        return self.decode(z)

    # -- internals ------------------------------------------------------------------------------

    def _means_or_fail(self) -> Tensor:
        if self.exemplar_means is None:
            raise ValueError("the exemplar prior has no exemplars: call set_exemplars(images) first")
        return self.exemplar_means

    def _faiss_index(self):
        if self._index is None:
            self._index = neighbors.flat_index(self.exemplar_means)
        return self._index
