"""The autoencoder baselines of Gradient Origin Networks (Bond-Taylor & Willcocks, ICLR 2021, sec. 4).

The paper's claim is that a GON reconstructs better than an autoencoder with about twice its
parameters. The baseline here is exactly that: the GON's own decoder (``core.models.gon``) plus a
conv encoder of about the decoder's size, trained on the same loss (squared error summed over
pixels), with the same batch size, learning rate and number of epochs, hence the same number of
steps. ``gon_ae`` pairs with ``gon``, ``implicit_gon_ae`` with ``implicit_gon``; a GON's
``measure`` loads its shipped partner for the comparison.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from core.models.gon import (CURVE_IMAGES, ConvDecoder, GONConfig, ImplicitGONConfig, SirenDecoder,
                             count_params, squared_error)


@dataclass
class GONAEConfig(GONConfig):
    encoder_width: int = 32  # channels of the first conv; the second has twice as many


@dataclass
class ImplicitGONAEConfig(ImplicitGONConfig):
    encoder_width: int = 8  # the SIREN is small: an encoder of about its size, for ~2x its params


class ConvEncoder(nn.Module):
    """images (B, 1, 28, 28) -> z (B, nz)."""

    def __init__(self, latent_dim: int, width: int):
        super().__init__()
        w = width
        self.net = nn.Sequential(
            nn.Conv2d(1, w, 4, 2, 1), nn.ELU(),  # (B, w, 14, 14)
            nn.Conv2d(w, 2 * w, 4, 2, 1), nn.ELU(),  # (B, 2w, 7, 7)
            nn.Flatten(),  # (B, 2w*49)
            nn.Linear(2 * w * 49, latent_dim),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class Autoencoder(nn.Module):
    family = ""
    Config = GONAEConfig
    # It trains on a GPU too: its methods take and return CPU tensors wherever its weights are.
    runs_on_any_device = True
    decoder: nn.Module
    TABLE_COLUMNS = (
        ("recon MSE (sum over pixels)", "recon_mse", "{:.2f}"),
        ("params", "params", "{:,}"),
        ("test images", "test_images", "{}"),
    )

    def forward(self, x: Tensor) -> Tensor:
        return self.decoder(self.encoder(x))

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        return self.encoder(x.to(self.device)).cpu()

    @torch.no_grad()
    def decode(self, z: Tensor, size: int = 28) -> Tensor:
        return self.decoder(z.to(self.device), size).cpu()

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        return self(x.to(self.device)).cpu()

    @torch.no_grad()
    def recon_errors(self, images: Tensor, batch_size: int = 500) -> Tensor:
        return torch.cat([squared_error(self.reconstruct(images[i : i + batch_size]), images[i : i + batch_size])
                          for i in range(0, len(images), batch_size)])

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"adam": torch.optim.Adam(self.parameters(), lr=self.config.lr)}

    def train_step(self, x, y, optimizers, *, epoch: int) -> dict[str, float]:
        loss = squared_error(self(x), x).mean()
        optimizers["adam"].zero_grad(set_to_none=True)
        loss.backward()
        optimizers["adam"].step()
        return {"loss": loss.item()}

    def curve_point(self, test) -> dict[str, float]:
        return {"test_recon_mse": self.recon_errors(test.images[:CURVE_IMAGES]).mean().item()}

    def measure(self, dataset: str, *, limit: int | None = None, progress: bool = True) -> dict:
        from core import data

        began = time.perf_counter()
        images = data.load(dataset, "test").images[:limit]
        return {"dataset": dataset, "test_images": len(images),
                "recon_mse": self.recon_errors(images).mean().item(), "params": count_params(self),
                "seconds": round(time.perf_counter() - began, 1)}


class GONAutoencoder(Autoencoder):
    family = "gon_ae"
    Config = GONAEConfig

    def __init__(self, config: GONAEConfig):
        super().__init__()
        self.config = config
        self.encoder = ConvEncoder(config.latent_dim, config.encoder_width)
        self.decoder = ConvDecoder(config.latent_dim, config.width)


class ImplicitGONAutoencoder(Autoencoder):
    family = "implicit_gon_ae"
    Config = ImplicitGONAEConfig

    def __init__(self, config: ImplicitGONAEConfig):
        super().__init__()
        self.config = config
        self.encoder = ConvEncoder(config.latent_dim, config.encoder_width)
        self.decoder = SirenDecoder(config.latent_dim, config.hidden, config.layers, config.w0)
