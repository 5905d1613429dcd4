"""The 25-Gaussians toy of the DRS paper (Azadi et al. 2019, Figure 3).

Real data: a uniform mixture of 25 isotropic Gaussians, std 0.05, centred on the 5×5 grid
{−2, −1, 0, 1, 2}². A sample is "high quality" when it lies within 4σ of some centre; a mode is
kept when at least one high-quality sample falls near it. A small MLP GAN trains in seconds on
two CPU cores; its D is then calibrated on fresh real points and fakes (early stopping on a
validation set), and DRS (``core/drs.py``) filters its samples.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core import drs

STD = 0.05
CENTRES = torch.tensor([(x, y) for x in range(-2, 3) for y in range(-2, 3)], dtype=torch.float32)


@dataclass
class ToyConfig:
    nz: int = 2
    hidden: int = 128
    steps: int = 6000
    batch_size: int = 256
    lr: float = 2e-4
    calibration_steps: int = 3000
    percentile: float = drs.DEFAULT_PERCENTILE
    samples: int = 10_000
    seed: int = 0


def real_points(n: int, generator: torch.Generator) -> torch.Tensor:
    centres = CENTRES[torch.randint(len(CENTRES), (n,), generator=generator)]
    return centres + STD * torch.randn(n, 2, generator=generator)


def mlp(n_in: int, hidden: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, n_out))


class ToyGAN(nn.Module):
    """Just enough of the image GAN's interface (sample, logits) for ``core.drs`` to use it."""

    def __init__(self, config: ToyConfig):
        super().__init__()
        self.config = config
        self.generator = mlp(config.nz, config.hidden, 2)
        self.discriminator = mlp(2, config.hidden, 1)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.generator(torch.randn(n, self.config.nz, generator=generator))

    @torch.no_grad()
    def logits(self, points: torch.Tensor) -> torch.Tensor:
        return self.discriminator(points).squeeze(1)


def train(config: ToyConfig, progress: bool = True) -> tuple[ToyGAN, dict]:
    from tqdm.auto import tqdm

    torch.manual_seed(config.seed)
    rng = torch.Generator().manual_seed(config.seed)
    gan = ToyGAN(config)
    opt_g = torch.optim.Adam(gan.generator.parameters(), lr=config.lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(gan.discriminator.parameters(), lr=config.lr, betas=(0.5, 0.999))
    ones, zeros = torch.ones(config.batch_size), torch.zeros(config.batch_size)
    began = time.perf_counter()
    for _ in tqdm(range(config.steps), desc="toy GAN", unit="step", disable=not progress):
        real = real_points(config.batch_size, rng)
        fake = gan.generator(torch.randn(config.batch_size, config.nz, generator=rng))
        d_loss = (F.binary_cross_entropy_with_logits(gan.discriminator(real).squeeze(1), ones)
                  + F.binary_cross_entropy_with_logits(gan.discriminator(fake.detach()).squeeze(1), zeros))
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        g_loss = F.binary_cross_entropy_with_logits(gan.discriminator(fake).squeeze(1), ones)
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
    gan_seconds = time.perf_counter() - began

    # Calibration: D alone, fresh real points against fresh fakes, early stopping on a fixed
    # validation set of both.
    val_real, val_fake = real_points(5000, rng), gan.sample(5000, rng)
    log = drs.calibrate_discriminator(
        gan.discriminator, lambda x: gan.discriminator(x).squeeze(1),
        lambda: (real_points(config.batch_size, rng), gan.sample(config.batch_size, rng)),
        val_real, val_fake, opt_d, steps=config.calibration_steps)
    before, best = log["calibration_val_loss_before"], log["calibration_val_loss_after"]
    return gan, {"gan_train_seconds": round(gan_seconds, 1),
                 "train_seconds": round(time.perf_counter() - began, 1),
                 "calibration_val_loss_before": before, "calibration_val_loss_after": best}


def quality(points: torch.Tensor) -> dict:
    """Share of high-quality points (within 4σ of a centre), modes they cover, and their spread."""
    distance, nearest = torch.cdist(points, CENTRES).min(dim=1)
    good = distance < 4 * STD
    offsets = points[good] - CENTRES[nearest[good]]
    return {"hq": good.float().mean().item(),
            "modes": int(nearest[good].unique().numel()),
            "hq_std": float(offsets.std()) if good.sum() > 1 else float("nan")}


def run(config: ToyConfig = ToyConfig(), progress: bool = True) -> tuple[dict, dict[str, np.ndarray]]:
    """Train, sample with and without DRS; the metrics and the three point clouds."""
    gan, log = train(config, progress)
    rng = torch.Generator().manual_seed(config.seed + 1)
    max_logit = drs.burn_in(gan, drs.BURN_IN_SAMPLES, rng)
    plain = gan.sample(config.samples, rng)
    accepted, rate = drs.rejection_sample(gan, config.samples, max_logit, config.percentile, rng)
    q_gan, q_drs = quality(plain), quality(accepted)
    metrics = {
        "hq_gan": q_gan["hq"], "hq_drs": q_drs["hq"],
        "modes_gan": q_gan["modes"], "modes_drs": q_drs["modes"],
        "hq_std_gan": q_gan["hq_std"], "hq_std_drs": q_drs["hq_std"],
        "acceptance_rate": rate, "gamma_percentile": config.percentile,
        "samples": config.samples, "real_std": STD, **log, "config": asdict(config),
    }
    clouds = {"real": real_points(config.samples, rng).numpy(), "gan": plain.numpy(),
              "drs": accepted.numpy()}
    return metrics, clouds


def study(dataset: str | None = None, *, limit: int | None = None, progress: bool = True,
          record: bool = False) -> dict:
    """``python -m core evaluate drs-toy [--record]``: the dataset argument does not apply (the
    toy makes its own points); ``--limit`` sets the number of samples. ``record`` ships the
    metrics and the three point clouds for the DRS page."""
    from core import pretrained, train

    config = ToyConfig(samples=limit or ToyConfig.samples)
    commit = train.git_commit()  # the code that measures: edits made while it runs are not in it
    metrics, clouds = run(config, progress)
    if record:
        command = "python -m core evaluate drs-toy --record" + (f" --limit {limit}" if limit else "")
        pretrained.ship_study("drs-toy", "toy", clouds, metrics, command, commit)
    return metrics
