"""Gradient Origin Networks: latents without an encoder.

Bond-Taylor & Willcocks, "Gradient Origin Networks", ICLR 2021; official code cwkx/GON (GON.py).

A GON has only a decoder F. An image's latent is the negative gradient of the reconstruction loss
at the origin, z = -∇_{z0} L(F(z0), x) at z0 = 0, and training minimises the same loss at that z,
L(F(z), x), differentiating through the inner gradient (``create_graph=True``: second order). The
paper notes that without the second-order term the loss does not fall.

Two families live here, as the paper has them:

- ``gon``: a transposed-conv decoder (nz = 32), the official GON.py net resized to 28×28 pixels;
- ``implicit_gon``: a SIREN over pixel coordinates (x, y) with the latent concatenated,
  34-256-256-256-256-1 in the paper, sine activations with w0 = 30 and SIREN initialisation.
  It is a function of continuous coordinates, so it renders at any resolution.

What we do as the official code does: images in [0, 1], a sigmoid output, a squared-error loss,
Adam. Where we differ, and why:

- the loss is the squared error SUMMED over the pixels of each image (the official code sums over
  the single channel and averages over pixels). The inner loss is summed over the batch as well,
  so an image's latent does not depend on the other images in its batch or on the batch size
  (the official mean over the batch scales every z by 1/B); the outer loss is averaged over it.
  The implicit GON's inner loss is averaged over pixels instead (``inner_scale``), as the
  official code's is: its SIREN reads the latent through a sine, where the latent's scale matters;
- no BatchNorm in the conv decoder: batch statistics would also make one image's latent depend on
  its batch, and an image encoded alone at test time would get a different latent. ELU replaces
  ReLU, so that units switched off at the origin still pass a gradient to z0;
- 28×28 images (the official net upsamples to 32×32).

Sampling fits a full-covariance Gaussian to training latents (the paper's way): its mean and
Cholesky factor are buffers, refitted after every epoch, so they travel with the checkpoint.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from torch import Tensor, nn

FIT_IMAGES = 1000  # training images whose latents the sampling Gaussian is fitted to
CURVE_IMAGES = 300  # test images scored after each epoch, for the learning curve only


def squared_error(recon: Tensor, x: Tensor) -> Tensor:
    """Per-image squared error summed over pixels, (B,)."""
    return (recon - x).pow(2).flatten(1).sum(1)


def pixel_centres(size: int) -> Tensor:
    """(size*size, 2) coordinates (x, y) of pixel centres in [-1, 1], row by row.

    Centres, not edges: a 56-px grid then samples the same square as the 28-px one, at twice the
    density, which is what resolution-free rendering means.
    """
    t = (torch.arange(size, dtype=torch.float32) + 0.5) / size * 2 - 1
    yy, xx = torch.meshgrid(t, t, indexing="ij")
    return torch.stack([xx, yy], dim=-1).reshape(-1, 2)


@dataclass
class GONConfig:
    latent_dim: int = 32  # nz in the official code
    width: int = 16  # channels of the last hidden layer, 2x and 4x before it (ngf = 16 officially)
    batch_size: int = 32  # the official code has 64: halved for more steps in our CPU budget
    lr: float = 2e-4
    inner_scale: float = 1.0  # the inner loss's factor: 1 sums it over pixels (see ImplicitGONConfig)
    # z = -exp(s)·∇ with s learned (from 0), not z = -∇: the official decoder's BatchNorm makes the
    # latent's scale irrelevant, this one has none, so its weights must otherwise grow to set it.
    learned_step: bool = False


@dataclass
class ImplicitGONConfig:
    latent_dim: int = 32
    # The paper has 34-256-256-256-256-1. A GON step costs a forward, a double backward and a
    # second forward at all 784 pixels of every image: at that width one step of 32 images took
    # 8.5 s on this project's 2 CPU cores, so the shipped nets are 34-96-96-96-1 (9x cheaper).
    hidden: int = 96
    layers: int = 3  # sine layers
    w0: float = 30.0  # SIREN's frequency factor
    batch_size: int = 32
    lr: float = 1e-4
    # The inner loss is averaged over pixels here, as in the official code: a SIREN takes its
    # latent through sin(w0 · W·[c; z]), so a latent 784 times larger (summed loss) lands on
    # phases that wrap many times over, and training stalled at the mean image (loss ~104).
    inner_scale: float = 1 / 784
    learned_step: bool = False  # as in GONConfig


class ConvDecoder(nn.Module):
    """z (B, nz) -> images (B, 1, 28, 28) in [0, 1]."""

    def __init__(self, latent_dim: int, width: int):
        super().__init__()
        w = width
        self.net = nn.Sequential(
            nn.ConvTranspose2d(latent_dim, 4 * w, 7, 1, 0), nn.ELU(),  # (B, 4w, 7, 7)
            nn.ConvTranspose2d(4 * w, 2 * w, 4, 2, 1), nn.ELU(),  # (B, 2w, 14, 14)
            nn.ConvTranspose2d(2 * w, w, 4, 2, 1), nn.ELU(),  # (B, w, 28, 28)
            nn.Conv2d(w, 1, 3, 1, 1), nn.Sigmoid(),  # (B, 1, 28, 28)
        )

    def forward(self, z: Tensor, size: int = 28) -> Tensor:
        if size != 28:
            raise ValueError(f"the conv GON renders 28 px only (got {size}); implicit_gon renders any size")
        return self.net(z[:, :, None, None])  # (B, nz, 1, 1) in


class Sine(nn.Module):
    def __init__(self, n_in: int, n_out: int, w0: float, first: bool):
        super().__init__()
        self.w0 = w0
        self.linear = nn.Linear(n_in, n_out)
        # SIREN init (Sitzmann et al. 2020, sec. 3.2): the first layer spans [-1/n, 1/n] so that
        # sin(w0 * .) covers several periods over [-1, 1]; later layers sqrt(6/n)/w0, which keeps
        # the pre-activations' distribution the same from layer to layer.
        bound = 1 / n_in if first else math.sqrt(6 / n_in) / w0
        nn.init.uniform_(self.linear.weight, -bound, bound)

    def forward(self, h: Tensor) -> Tensor:
        return torch.sin(self.w0 * self.linear(h))


class SirenDecoder(nn.Module):
    """z (B, nz) -> images (B, 1, S, S) in [0, 1] for any S: the SIREN at every pixel centre."""

    def __init__(self, latent_dim: int, hidden: int, layers: int, w0: float):
        super().__init__()
        self.first = Sine(2 + latent_dim, hidden, w0, first=True)
        self.hidden = nn.Sequential(*[Sine(hidden, hidden, w0, first=False) for _ in range(layers - 1)])
        self.out = nn.Linear(hidden, 1)
        bound = math.sqrt(6 / hidden) / w0
        nn.init.uniform_(self.out.weight, -bound, bound)

    def forward(self, z: Tensor, size: int = 28) -> Tensor:
        coords = pixel_centres(size).to(z)  # (P, 2), P = size*size
        # The first layer on the concatenation [coords, z] split in two: W·[c; z] = W_c·c + W_z·z,
        # so the coordinate part is computed once for the batch instead of once per image.
        w = self.first.linear.weight  # (H, 2 + nz)
        pre = (coords @ w[:, :2].T)[None] + (z @ w[:, 2:].T + self.first.linear.bias)[:, None]  # (B, P, H)
        h = self.hidden(torch.sin(self.first.w0 * pre))
        return torch.sigmoid(self.out(h)).reshape(len(z), 1, size, size)  # (B, P, 1) -> (B, 1, S, S)


class GradientOrigin(nn.Module):
    """What both GON families share: gradient-origin encoding, training, sampling, measuring."""

    family = ""
    Config = GONConfig
    renders_any_size = False
    # It trains on a GPU too: its methods take and return CPU tensors wherever its weights are.
    runs_on_any_device = True
    decoder: nn.Module
    TABLE_COLUMNS = (
        ("recon MSE (sum over pixels)", "recon_mse", "{:.2f}"),
        ("params", "params", "{:,}"),
        ("AE recon MSE", "ae_recon_mse", "{:.2f}"),
        ("AE params", "ae_params", "{:,}"),
        ("classifier on recon", "recon_accuracy", "{:.3f}"),
        ("on AE recon", "ae_recon_accuracy", "{:.3f}"),
        ("test images", "test_images", "{}"),
    )

    def _shared_state(self, latent_dim: int) -> None:
        """The sampling Gaussian's buffers, and the learned inner step where the config asks for it."""
        self.register_buffer("latent_mean", torch.zeros(latent_dim))
        self.register_buffer("latent_scale_tril", torch.eye(latent_dim))  # Cholesky factor of the covariance
        if self.config.learned_step:
            self.log_step = nn.Parameter(torch.zeros(()))  # the inner step is exp(log_step)

    def forward(self, z: Tensor, size: int = 28) -> Tensor:
        return self.decoder(z, size)

    @property
    def device(self) -> torch.device:
        return self.latent_mean.device

    def gradient_origin(self, x: Tensor, *, create_graph: bool = False) -> Tensor:
        """z = -∇_{z0} Σ_i L(F(z0_i), x_i) at z0 = 0, (B, nz).

        Summed over the batch, so each row is its own image's gradient, whatever the batch.
        """
        with torch.enable_grad():  # encoding is a gradient, even inside no_grad callers
            z0 = torch.zeros(len(x), self.config.latent_dim, device=x.device, requires_grad=True)
            inner = squared_error(self.decoder(z0), x).sum() * self.config.inner_scale
            (grad,) = torch.autograd.grad(inner, z0, create_graph=create_graph)
        return -grad * self.log_step.exp() if self.config.learned_step else -grad

    # --- what the app and the CLI call ---
    def encode(self, x: Tensor, batch_size: int = 500) -> Tensor:
        """Latents (B, nz) of images (B, 1, 28, 28) in [0, 1], by their gradient at the origin."""
        if x.ndim != 4 or x.shape[1:] != (1, 28, 28):
            raise ValueError(f"expected images of shape (B, 1, 28, 28), got {tuple(x.shape)}")
        return torch.cat([self.gradient_origin(x[i : i + batch_size].to(self.device)).detach().cpu()
                          for i in range(0, len(x), batch_size)])

    @torch.no_grad()
    def decode(self, z: Tensor, size: int = 28) -> Tensor:
        """Images (B, 1, size, size) in [0, 1]."""
        return self(z.to(self.device), size).cpu()

    def reconstruct(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n images decoded from z ~ N(mean, cov) of the training latents."""
        eps = torch.randn(n, self.config.latent_dim, generator=generator)
        return self.decode(self.latent_mean.cpu() + eps @ self.latent_scale_tril.cpu().T)

    @torch.no_grad()
    def fit_latent_gaussian(self, images: Tensor) -> None:
        """Full-covariance Gaussian of the images' latents, into the sampling buffers."""
        z = self.encode(images).double()  # float64: latents can be large and nearly collinear
        cov = torch.cov(z.T)
        # Eigenvalues floored at a millionth of the largest: a positive-definite matrix for
        # Cholesky even when some latent directions are (numerically) unused.
        values, vectors = torch.linalg.eigh(cov)
        values = values.clamp_min(1e-6 * values.max().clamp_min(1e-12))
        cov = (vectors * values) @ vectors.T
        self.latent_mean.copy_(z.mean(0))
        self.latent_scale_tril.copy_(torch.linalg.cholesky((cov + cov.T) / 2))

    def recon_errors(self, images: Tensor, batch_size: int = 500) -> Tensor:
        """Per-image squared error summed over pixels, (N,)."""
        return torch.cat([squared_error(self.reconstruct(images[i : i + batch_size]),
                                        images[i : i + batch_size])
                          for i in range(0, len(images), batch_size)])

    # --- training, through core.train.train_family ---
    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"adam": torch.optim.Adam(self.parameters(), lr=self.config.lr)}

    def train_step(self, x, y, optimizers, *, epoch: int) -> dict[str, float]:
        z = self.gradient_origin(x, create_graph=True)  # the inner gradient keeps its graph
        loss = squared_error(self.decoder(z), x).mean()
        optimizers["adam"].zero_grad(set_to_none=True)
        loss.backward()
        optimizers["adam"].step()
        return {"loss": loss.item(), "latent_norm": z.detach().norm(dim=1).mean().item()}

    def curve_point(self, test) -> dict[str, float]:
        from core import data

        # The sampling Gaussian follows the weights: refitted after every epoch, so the checkpoint
        # saved right after this always carries one that fits it.
        self.fit_latent_gaussian(data.load(test.name, "train").images[:FIT_IMAGES])
        return {"test_recon_mse": self.recon_errors(test.images[:CURVE_IMAGES]).mean().item()}

    def measure(self, dataset: str, *, limit: int | None = None, progress: bool = True,
                autoencoder: tuple[nn.Module, int] | None = None, classifier: nn.Module | None = None) -> dict:
        """recon_mse (summed over pixels, mean over test images) and params, beside the
        ``autoencoder`` baseline and its epochs, where given (same decoder plus an encoder, the
        same number of steps; ``core.evaluate.measure`` passes the shipped one).

        With a ``classifier``, also its accuracy on each model's reconstructions of the test
        images (``recon_accuracy``, ``ae_recon_accuracy``): a yardstick the training loss plays no
        part in, since a lower squared error can come from blur that loses what tells classes apart."""
        from core import data

        began = time.perf_counter()
        test = data.load(dataset, "test")
        images, labels = test.images[:limit], test.labels[:limit]
        result = {"dataset": dataset, "test_images": len(images),
                  "recon_mse": self.recon_errors(images).mean().item(), "params": count_params(self),
                  "loss": "squared error summed over pixels, images in [0, 1], sigmoid output"}

        def accuracy_on_reconstructions(model) -> float:
            recon = torch.cat([model.reconstruct(images[i : i + 500]) for i in range(0, len(images), 500)])
            return (classifier.predict(recon) == labels).double().mean().item()

        if classifier is not None:
            result["recon_accuracy"] = accuracy_on_reconstructions(self)
        if autoencoder is not None:
            ae, ae_epochs = autoencoder
            ae_mse = ae.recon_errors(images).mean().item()
            result.update(ae_recon_mse=ae_mse, ae_params=count_params(ae), ae_epochs=ae_epochs,
                          gon_beats_ae=result["recon_mse"] < ae_mse,
                          ae_to_gon_params=round(count_params(ae) / count_params(self), 2))
            if classifier is not None:
                result["ae_recon_accuracy"] = accuracy_on_reconstructions(ae)
        result["seconds"] = round(time.perf_counter() - began, 1)
        return result


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


class GON(GradientOrigin):
    family = "gon"
    Config = GONConfig

    def __init__(self, config: GONConfig):
        super().__init__()
        self.config = config
        self.decoder = ConvDecoder(config.latent_dim, config.width)
        self._shared_state(config.latent_dim)


class ImplicitGON(GradientOrigin):
    family = "implicit_gon"
    Config = ImplicitGONConfig
    renders_any_size = True  # a function of continuous coordinates: decode(z, size) for any size

    def __init__(self, config: ImplicitGONConfig):
        super().__init__()
        self.config = config
        self.decoder = SirenDecoder(config.latent_dim, config.hidden, config.layers, config.w0)
        self._shared_state(config.latent_dim)
