"""A GAN's discriminator calibrated for Discriminator Rejection Sampling, after GAN training.

DRS reads D's logit D̃(x) as an estimate of log p_data(x)/p_g(x). That holds for the optimal D
only, so after GAN training D keeps training against the frozen G on real images the GAN never
saw (the held-out tenth of the training images, ``core.splits``) and fresh fakes, with early
stopping on a validation split of both (section 3.2 of the paper; ``calibrate``). Then D's last
layer alone is refitted on the same split, a regularised logistic regression on its pooled last
feature map (``calibrate_last_layer``): the paper's calibration alone leaves a D that tells
Fashion-MNIST fakes from real almost perfectly, and DRS by it made the FD worse. Of the refitted
heads, the one kept is chosen together with γ's percentile by the FD of DRS's accepted samples
against the GAN's own training images (``GANConfig.refit_last_layer``), in the features of the
shipped VAE (``core.drs.selection_features``), in which no DRS figure is reported. docs/drs.md
has the findings behind each step.

This sits above the GAN model (``core.models.gan``) and DRS itself (``core.drs``), and uses the
shipped VAE of the dataset, which is why it is not part of the model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F

from core import drs
from core.drs import calibrate_discriminator
from core.models.gan import GAN
from core.splits import held_out_images


def after_training(gan: GAN, train_set, progress: bool = True) -> dict:
    """Calibrate D for DRS on the held-out real images and fresh fakes (G frozen), then refit
    its last layer on them (``refit_last_layer``). ``core.train`` runs it once a GAN's run has
    reached its last epoch; what it returns joins the run's history."""
    held_out = held_out_images(gan, train_set.images)
    log = calibrate(gan, held_out, progress=progress)
    if gan.config.refit_last_layer:
        fd_against = (drs.selection_features(train_set.name), train_set.images[: len(train_set.images) - len(held_out)])
        log["last_layer"] = calibrate_last_layer(gan, held_out, fd_against=fd_against, progress=progress)
    return log


def calibrate(gan: GAN, held_out: torch.Tensor, *, seed: int = 0, progress: bool = True,
              noise_std: float = 0.0) -> dict[str, float]:
    """Calibrate D for DRS (``core.drs.calibrate_discriminator``) on held-out real images, a fifth
    of them for validation, against fresh fakes of the frozen G.

    ``noise_std`` > 0 adds N(0, noise_std²) to every real and fake D sees, validation included
    (instance noise; ``experiments/drs/drs_instance_noise.py``): the shipped calibration has none."""
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
    grid and standardised, fitted on four fifths of ``calibrate``'s split (against as many fakes,
    or ``refit_min_fakes`` where that is more) for every g in ``grids`` and every penalty C in
    ``LAST_LAYER_PENALTIES`` (``fit_last_layer_heads``). The head kept is

    - by default, the one with the lowest log loss on the other fifth against as many other fakes;
    - with ``fd_against = (features, reference)``, the one that, at its best γ percentile, gives
      DRS's accepted samples the lowest FD on ``features`` against ``reference`` (real images that
      are not the test set's), over one scored pool (``core.drs.validation_fds``,
      ``config.validation_samples`` per FD). Log loss rewards telling real from fake, while DRS
      needs the fakes ranked, and the two choose differently on Fashion-MNIST (docs/drs.md).

    ``grids``: the sides g to try; by default every one that tiles the map evenly (4, 2, 1 for D's
    4×4 map). A pooled head is still linear in
    the whole map (each cell's weight shared by the cells it pools), so it folds into D's last
    layer without changing its shape.

    Returns the grid, penalty and criterion chosen, the validation log loss of every head, and with
    ``fd_against`` the percentile chosen and every head's validation FD at every percentile."""
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


class HeadFitSizes(NamedTuple):
    """How many images each of D's last-layer heads is fitted and validated on."""

    validation: int  # held-out real images, scored against as many fresh fakes
    real: int  # the rest of the held-out images
    fakes: int  # as many as ``real``, or the GAN's ``refit_min_fakes`` where that is more


def head_fit_sizes(held_out: int, refit_min_fakes: int) -> HeadFitSizes:
    """The split ``fit_last_layer_heads`` makes of ``held_out`` images: a fifth validates."""
    validation = held_out // 5
    real = held_out - validation
    return HeadFitSizes(validation, real, max(real, refit_min_fakes))


def fit_last_layer_heads(gan: GAN, held_out: torch.Tensor, *, seed: int = 0,
                         grids: tuple[int, ...] | None = None) -> dict[tuple[int, float], LastLayerHead]:
    """Every head ``calibrate_last_layer`` chooses from, fitted: {(grid, C): head}."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss
    from sklearn.preprocessing import StandardScaler

    rng = torch.Generator().manual_seed(seed)
    n_val, _, n_fakes = head_fit_sizes(len(held_out), gan.config.refit_min_fakes)
    val_real, fit_real = held_out[:n_val], held_out[n_val:]
    maps_fit = torch.cat([last_feature_maps(gan, fit_real), last_feature_maps(gan, gan.sample(n_fakes, rng))])
    maps_val = torch.cat([last_feature_maps(gan, val_real), last_feature_maps(gan, gan.sample(n_val, rng))])
    y_fit, y_val = np.r_[np.ones(len(fit_real)), np.zeros(n_fakes)], np.r_[np.ones(n_val), np.zeros(n_val)]
    # Fitted on n_fakes fakes to len(fit_real) reals, the logit is the log density ratio plus the
    # log of the classes' ratio; the bias takes it off, so D's logit stays an estimate of the ratio
    # (DRS itself is blind to a constant shift; the validation log loss, on balanced classes, is not).
    prior_shift = float(np.log(n_fakes / len(fit_real)))
    side = maps_fit.shape[-1]
    grids = grids or tuple(g for g in range(side, 0, -1) if side % g == 0)
    heads = {}
    for g in grids:
        x_fit = F.avg_pool2d(maps_fit, side // g).flatten(1).numpy()
        x_val = F.avg_pool2d(maps_val, side // g).flatten(1).numpy()
        scaler = StandardScaler().fit(x_fit)
        for c in LAST_LAYER_PENALTIES:
            head = LogisticRegression(C=c, max_iter=3000).fit(scaler.transform(x_fit), y_fit)
            head.intercept_ += prior_shift
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
