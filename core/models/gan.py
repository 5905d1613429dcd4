"""A DCGAN for 28×28 images, with the discriminator calibration that Discriminator Rejection
Sampling needs (Azadi, Olsson, Darrell, Goodfellow & Odena, ICLR 2019; the paper has no official
code; ``core/drs.py`` holds the sampling rule).

DCGAN (Radford et al. 2016): transposed convolutions with BatchNorm and ReLU in G, strided
convolutions with LeakyReLU in D down to 4×4 and a 4×4 convolution to the logit, Adam(2e-4,
β1 = 0.5), the non-saturating loss. GANs shipped before 2026-11-26 had a shallower D ("two-layer":
two strided convolutions and a linear layer on the 7×7 map); their checkpoints still load, and
``scripts/drs_sweep.py`` still trains it. The DCGAN-shaped D gives a better G on both datasets
and the larger DRS gain on MNIST (README, DRS).

DRS reads D's logit D̃(x) as an estimate of log p_data(x)/p_g(x). That holds for the optimal D
only, so after GAN training D keeps training against the frozen G on real images the GAN never
saw (the last tenth of the training images) and fresh fakes, with early stopping on a validation
split of both (section 3.2 of the paper: "calibrate D" / keep training it). Then D's last layer
alone is refitted on the same split, a regularised logistic regression on its pooled last feature
map (``calibrate_last_layer``): the paper's calibration alone leaves a D that tells Fashion-MNIST
fakes from real almost perfectly, and DRS by it made the FD worse (README, DRS). Of the refitted
heads, the one kept is chosen together with γ's percentile by the FD of DRS's accepted samples
against the GAN's own training images (``last_layer_choice``): choosing by log loss left
Fashion-MNIST at about −8%. The GANs shipped until commit 4b9eef1 had the paper's calibration
only (``refit_last_layer`` false), those of commit c68512d the head chosen by log loss.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from core.models.inference import inference


@dataclass
class GANConfig:
    nz: int = 64  # latent size
    width: int = 64  # channels of G's last and D's first conv layer
    batch_size: int = 64
    lr: float = 2e-4
    holdout_fraction: float = 0.1  # the last tenth of the training images, unseen by the GAN, calibrate D
    calibration_steps: int = 3000  # upper bound; early stopping usually ends it sooner
    calibration_patience: int = 5  # validations (every 100 steps) without improvement
    discriminator: str = "dcgan"  # or "two-layer", the D of the GANs shipped before it (see LEGACY_CONFIG)
    # After the paper's calibration, refit D's last layer on the same split (calibrate_last_layer):
    # the paper's alone makes DRS worsen the FD on Fashion-MNIST (README, DRS).
    refit_last_layer: bool = True
    # How the refit chooses among its heads: "validation_fd", together with γ's percentile, by the
    # FD of DRS's accepted samples against the GAN's own training images in the shipped classifier's
    # features (never the test set's); or "log_loss" on the held-out validation fifth, which the GANs
    # of commit c68512d had (README, DRS).
    last_layer_choice: str = "validation_fd"
    validation_samples: int = 5_000  # accepted samples per FD for "validation_fd", from a pool 30× as large

    def __post_init__(self):
        if self.discriminator not in DISCRIMINATORS:
            raise ValueError(f"unknown discriminator {self.discriminator!r}; choose one of: {', '.join(DISCRIMINATORS)}")
        if self.last_layer_choice not in LAST_LAYER_CHOICES:
            raise ValueError(f"unknown last_layer_choice {self.last_layer_choice!r}; "
                             f"choose one of: {', '.join(LAST_LAYER_CHOICES)}")


DISCRIMINATORS = ("dcgan", "two-layer")
LAST_LAYER_CHOICES = ("validation_fd", "log_loss")


class Generator(nn.Module):
    def __init__(self, nz: int, width: int):
        super().__init__()
        w = width
        self.project = nn.Sequential(nn.Linear(nz, 2 * w * 7 * 7, bias=False),
                                     nn.BatchNorm1d(2 * w * 7 * 7), nn.ReLU())
        self.body = nn.Sequential(
            nn.ConvTranspose2d(2 * w, w, 4, 2, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(),  # (B, w, 14, 14)
            nn.ConvTranspose2d(w, 1, 4, 2, 1), nn.Tanh(),  # (B, 1, 28, 28) in [-1, 1]
        )
        self.width = width

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(self.project(z).view(len(z), 2 * self.width, 7, 7))


class Discriminator(nn.Module):
    def __init__(self, width: int, kind: str = "dcgan"):
        super().__init__()
        w = width
        # Both kinds build their first two stages first: a seed still gives the two-layer D the
        # weights it had before the DCGAN-shaped one existed (the recorded sweep reproduces).
        layers = [
            nn.Conv2d(1, w, 4, 2, 1), nn.LeakyReLU(0.2),  # (B, w, 14, 14)
            nn.Conv2d(w, 2 * w, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * w), nn.LeakyReLU(0.2),  # (B, 2w, 7, 7)
        ]
        if kind == "dcgan":
            layers += [
                nn.Conv2d(2 * w, 4 * w, 3, 2, 1, bias=False), nn.BatchNorm2d(4 * w), nn.LeakyReLU(0.2),  # (B, 4w, 4, 4)
                nn.Conv2d(4 * w, 1, 4, 1, 0), nn.Flatten(),  # (B, 1): every pixel reaches the logit
            ]
        else:
            layers += [nn.Flatten(), nn.Linear(2 * w * 7 * 7, 1)]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The logit D̃(x), shape (B,), of images in [-1, 1]."""
        return self.body(x).squeeze(1)

    def last_feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """What D's last layer reads, (B, C, H, W), of images in [-1, 1]: the body ends with (4×4
        conv, Flatten) in the DCGAN-shaped D and with (Flatten, Linear) in the two-layer one."""
        return self.body[:-2](x)

    @property
    def last_layer(self) -> nn.Conv2d | nn.Linear:
        """The layer from the last feature map to the logit: linear in the whole map either way."""
        return self.body[-2] if isinstance(self.body[-1], nn.Flatten) else self.body[-1]


class GAN(nn.Module):
    family = "gan"
    Config = GANConfig
    # What checkpoints saved before these fields existed had.
    LEGACY_CONFIG = {"discriminator": "two-layer", "refit_last_layer": False, "last_layer_choice": "log_loss"}
    TABLE_COLUMNS = (("FD GAN", "fd_gan", "{:.2f}"), ("FD GAN+DRS", "fd_drs", "{:.2f}"),
                     ("FD change", "fd_change", "{:+.1%}"), ("median FD change", "fd_change_median", "{:+.1%}"),
                     ("acceptance", "acceptance_rate", "{:.1%}"),
                     ("γ percentile", "gamma_percentile", "{}"), ("samples", "samples", "{}"))

    def __init__(self, config: GANConfig):
        super().__init__()
        self.config = config
        self.generator = Generator(config.nz, config.width)
        self.discriminator = Discriminator(config.width, config.discriminator)
        # Set by calibrate(): 1 once D has been calibrated for DRS.
        self.register_buffer("calibrated", torch.zeros((), dtype=torch.long))

    @inference
    def sample(self, n: int, generator: torch.Generator | None = None, batch_size: int = 1000) -> torch.Tensor:
        """n images (n, 1, 28, 28) in [0, 1]."""
        out = []
        for start in range(0, n, batch_size):
            z = torch.randn(min(batch_size, n - start), self.config.nz, generator=generator)
            out.append(self.generator(z))
        return (torch.cat(out) + 1) / 2

    @inference
    def logits(self, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        """D̃(x) of images (N, 1, 28, 28) in [0, 1]; (N,)."""
        return torch.cat([self.discriminator(images[i : i + batch_size] * 2 - 1)
                          for i in range(0, len(images), batch_size)])

    # --- GAN training, through core.train.train_family ---
    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        betas = (0.5, 0.999)
        return {"generator": torch.optim.Adam(self.generator.parameters(), lr=self.config.lr, betas=betas),
                "discriminator": torch.optim.Adam(self.discriminator.parameters(), lr=self.config.lr, betas=betas)}

    def on_epoch_start(self, images: torch.Tensor) -> None:
        self.calibrated.fill_(0)  # D is back in the game: a run extended after calibration must recalibrate

    def train_step(self, x, y, optimizers, *, epoch: int) -> dict[str, float]:
        real = x * 2 - 1
        fake = self.generator(torch.randn(len(x), self.config.nz))
        ones, zeros = torch.ones(len(x)), torch.zeros(len(x))
        d_loss = (F.binary_cross_entropy_with_logits(self.discriminator(real), ones)
                  + F.binary_cross_entropy_with_logits(self.discriminator(fake.detach()), zeros))
        optimizers["discriminator"].zero_grad(set_to_none=True)
        d_loss.backward()
        optimizers["discriminator"].step()
        # Non-saturating generator loss: maximise log D(G(z)).
        g_loss = F.binary_cross_entropy_with_logits(self.discriminator(fake), ones)
        optimizers["generator"].zero_grad(set_to_none=True)
        g_loss.backward()
        optimizers["generator"].step()
        return {"loss": (d_loss + g_loss).item(), "d_loss": d_loss.item(), "g_loss": g_loss.item()}

    def curve_point(self, test) -> dict[str, float]:
        """D's accuracy on 1,000 test images against 1,000 fakes: near 0.5 when G keeps up."""
        real = self.logits(test.images[:1000]) > 0
        fake = self.logits(self.sample(1000, torch.Generator().manual_seed(0))) < 0
        return {"d_accuracy": torch.cat([real, fake]).float().mean().item()}

    def after_training(self, train_set, progress: bool = True) -> dict:
        """Calibrate D for DRS on the held-out real images and fresh fakes (G frozen), then refit
        its last layer on them (``refit_last_layer``)."""
        from core.train import held_out_images

        held_out = held_out_images(self, train_set.images)
        log = calibrate(self, held_out, progress=progress)
        if self.config.refit_last_layer:
            fd_against = None
            if self.config.last_layer_choice == "validation_fd":
                from core import pretrained

                classifier, _ = pretrained.load("classifier", train_set.name)
                fd_against = (classifier.features, train_set.images[: len(train_set.images) - len(held_out)])
            log["last_layer"] = calibrate_last_layer(self, held_out, fd_against=fd_against, progress=progress)
        return log

    def measure(self, dataset: str, *, limit: int | None = None, progress: bool = True) -> dict:
        from core import drs

        return drs.study(dataset, limit=limit, progress=progress, model=self)


def calibrate(gan: GAN, held_out: torch.Tensor, *, seed: int = 0, progress: bool = True,
              noise_std: float = 0.0) -> dict[str, float]:
    """Calibrate D for DRS (``core.drs.calibrate_discriminator``) on held-out real images, a fifth
    of them for validation, against fresh fakes of the frozen G.

    ``noise_std`` > 0 adds N(0, noise_std²) to every real and fake D sees, validation included
    (instance noise; ``scripts/drs_instance_noise.py``): the shipped calibration has none."""
    from core.drs import calibrate_discriminator

    config = gan.config
    rng = torch.Generator().manual_seed(seed)

    def noisy(x: torch.Tensor) -> torch.Tensor:
        return x + noise_std * torch.randn(x.shape, generator=rng) if noise_std else x

    n_val = len(held_out) // 5
    val_real, fit_real = noisy(held_out[:n_val] * 2 - 1), held_out[n_val:] * 2 - 1  # D sees [-1, 1]
    val_fake = noisy(gan.sample(n_val, rng) * 2 - 1)
    gan.generator.eval()

    def batch() -> tuple[torch.Tensor, torch.Tensor]:
        real = fit_real[torch.randint(len(fit_real), (config.batch_size,), generator=rng)]
        with torch.no_grad():
            fake = gan.generator(torch.randn(config.batch_size, config.nz, generator=rng))
        return noisy(real), noisy(fake)

    optimizer = torch.optim.Adam(gan.discriminator.parameters(), lr=config.lr, betas=(0.5, 0.999))
    log = calibrate_discriminator(gan.discriminator, gan.discriminator, batch, val_real, val_fake,
                                  optimizer, steps=config.calibration_steps,
                                  patience=config.calibration_patience, progress=progress)
    gan.calibrated.fill_(1)
    gan.eval()
    return log


LAST_LAYER_PENALTIES = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)  # scikit-learn's C, the inverse L2 strength


def calibrate_last_layer(gan: GAN, held_out: torch.Tensor, *, seed: int = 0,
                         grids: tuple[int, ...] | None = None,
                         fd_against: tuple[Callable[[torch.Tensor], torch.Tensor], torch.Tensor] | None = None,
                         progress: bool = False) -> dict:
    """Refit D's last layer alone, in place, after ``calibrate``: L2-penalised logistic regression
    of held-out real images against fresh fakes on D's last feature map, average-pooled to a g×g
    grid and standardised, fitted on four fifths of ``calibrate``'s split for every g in ``grids``
    and every penalty C in ``LAST_LAYER_PENALTIES`` (``fit_last_layer_heads``). The head kept is

    - by default, the one with the lowest log loss on the other fifth against as many other fakes;
    - with ``fd_against = (features, reference)``, the one that, at its best γ percentile, gives
      DRS's accepted samples the lowest FD on ``features`` against ``reference`` (real images that
      are not the test set's), over one scored pool (``core.drs.validation_fds``,
      ``config.validation_samples`` per FD). Log loss rewards telling real from fake, while DRS
      needs the fakes ranked, and the two choose differently on Fashion-MNIST (README, DRS).

    ``grids``: the sides g to try; by default every one that tiles the map evenly (4, 2, 1 for the
    DCGAN-shaped D's 4×4 map, 7, 1 for the two-layer D's 7×7). A pooled head is still linear in
    the whole map (each cell's weight shared by the cells it pools), so it folds into D's last
    layer without changing its shape.

    Returns the grid, penalty and criterion chosen, the validation log loss of every head, and with
    ``fd_against`` the percentile chosen and every head's validation FD at every percentile."""
    from core import drs

    heads = fit_last_layer_heads(gan, held_out, seed=seed, grids=grids)
    record = {"chosen_by": "log_loss" if fd_against is None else "validation_fd", "val_log_loss": log_loss_table(heads)}
    if fd_against is None:
        grid, penalty = min(heads, key=lambda key: heads[key].val_log_loss)
    else:
        features, reference = fd_against
        keys = list(heads)
        table = drs.validation_fds(gan, lambda images: head_logits([heads[k] for k in keys], last_feature_maps(gan, images)),
                                   features, reference, gan.config.validation_samples,
                                   generator=torch.Generator().manual_seed(drs.VALIDATION_STREAM + seed), progress=progress)
        candidates = {(key, p): fd for key, fds in zip(keys, table) for p, fd in fds.items() if fd is not None}
        if not candidates:
            raise ValueError(f"no head accepted {gan.config.validation_samples} samples at any γ percentile")
        (grid, penalty), percentile = min(candidates, key=candidates.get)
        val_fd: dict[str, dict[str, dict[str, float | None]]] = {}
        for (g, c), fds in zip(keys, table):
            val_fd.setdefault(f"{g}x{g}", {})[f"{c:g}"] = {f"{p:g}": fd for p, fd in fds.items()}
        record.update(gamma_percentile=percentile, val_fd=val_fd)
    fold_last_layer_head(gan, heads[grid, penalty])
    return {"pooled_grid": grid, "penalty_c": penalty, **record}


@dataclass
class LastLayerHead:
    """A logistic head on D's last feature map average-pooled to grid × grid and standardised."""

    grid: int
    penalty_c: float
    weight: torch.Tensor  # (cells,) on the pooled map, standardisation folded in
    bias: float
    val_log_loss: float


def last_feature_maps(gan: GAN, images: torch.Tensor) -> torch.Tensor:
    """D's last feature map of images in [0, 1], in float64 and in batches of 1,000."""
    gan.eval()
    with torch.no_grad():
        return torch.cat([gan.discriminator.last_feature_map(images[i : i + 1000] * 2 - 1)
                          for i in range(0, len(images), 1000)]).double()


def fit_last_layer_heads(gan: GAN, held_out: torch.Tensor, *, seed: int = 0,
                         grids: tuple[int, ...] | None = None) -> dict[tuple[int, float], LastLayerHead]:
    """Every head ``calibrate_last_layer`` chooses from, fitted: {(grid, C): head}."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss
    from sklearn.preprocessing import StandardScaler

    rng = torch.Generator().manual_seed(seed)
    n_val = len(held_out) // 5
    val_real, fit_real = held_out[:n_val], held_out[n_val:]
    maps_fit = torch.cat([last_feature_maps(gan, fit_real), last_feature_maps(gan, gan.sample(len(fit_real), rng))])
    maps_val = torch.cat([last_feature_maps(gan, val_real), last_feature_maps(gan, gan.sample(n_val, rng))])
    y_fit, y_val = np.r_[np.ones(len(fit_real)), np.zeros(len(fit_real))], np.r_[np.ones(n_val), np.zeros(n_val)]
    side = maps_fit.shape[-1]
    grids = grids or tuple(g for g in range(side, 0, -1) if side % g == 0)
    heads = {}
    for g in grids:
        x_fit = F.avg_pool2d(maps_fit, side // g).flatten(1).numpy()
        x_val = F.avg_pool2d(maps_val, side // g).flatten(1).numpy()
        scaler = StandardScaler().fit(x_fit)
        for c in LAST_LAYER_PENALTIES:
            head = LogisticRegression(C=c, max_iter=3000).fit(scaler.transform(x_fit), y_fit)
            loss = log_loss(y_val, head.predict_proba(scaler.transform(x_val))[:, 1])
            # Fold the standardisation in: w·(p − μ)/σ + b = (w/σ)·p + (b − (w/σ)·μ).
            weight = head.coef_[0] / scaler.scale_
            heads[g, c] = LastLayerHead(g, c, torch.from_numpy(weight), float(head.intercept_[0] - weight @ scaler.mean_),
                                        float(loss))
    return heads


def log_loss_table(heads: dict[tuple[int, float], LastLayerHead]) -> dict[str, dict[str, float]]:
    """{"4x4": {"0.1": loss, ...}, ...}: the validation log loss of each head, as logged."""
    table: dict[str, dict[str, float]] = {}
    for (g, c), head in heads.items():
        table.setdefault(f"{g}x{g}", {})[f"{c:g}"] = round(head.val_log_loss, 4)
    return table


def head_logits(heads: list[LastLayerHead], maps: torch.Tensor) -> torch.Tensor:
    """(N, len(heads)): each head's logit of the same last feature maps (N, C, side, side)."""
    side = maps.shape[-1]
    return torch.stack([F.avg_pool2d(maps, side // h.grid).flatten(1) @ h.weight + h.bias for h in heads], dim=1)


def fold_last_layer_head(gan: GAN, head: LastLayerHead) -> None:
    """Write a head into D's last layer, in place: a pooled cell's weight spread evenly over the
    k×k cells it averages, so the layer keeps its shape and D's logit is the head's."""
    import math

    layer = gan.discriminator.last_layer
    k = math.isqrt(layer.weight.numel() // head.weight.numel())  # the side of the cells one pooled cell averages
    weight = head.weight.view(-1, head.grid, head.grid)
    weight = weight.repeat_interleave(k, dim=1).repeat_interleave(k, dim=2) / k**2
    with torch.no_grad():
        layer.weight.copy_(weight.reshape_as(layer.weight))
        layer.bias.fill_(head.bias)
    gan.eval()
