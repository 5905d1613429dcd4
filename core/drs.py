"""Discriminator Rejection Sampling (Azadi, Olsson, Darrell, Goodfellow & Odena, ICLR 2019).

With an optimal discriminator, D̃(x) = log p_data(x)/p_g(x), so accepting a sample of G with
probability p_data/(M·p_g) = exp(D̃(x) − D̃*_M) turns p_g into p_data (rejection sampling). In
practice that accepts almost nothing, so the paper (section 3.2, Algorithm 1) accepts with
probability sigmoid(F̂) instead, where

    F(x) = D̃(x) − D̃*_M − log(1 − exp(D̃(x) − D̃*_M − ε)),   F̂ = F − γ,

D̃*_M is the largest logit seen (BurnIn over many samples, raised online whenever a sample
exceeds it), ε = 1e-6 keeps the log finite at the maximum, and γ, the p-th percentile of F,
trades acceptance rate against quality.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

EPSILON = 1e-6
BURN_IN_SAMPLES = 10_000
# The percentile fixed before measuring anything, as the toy and the experiments' recorded
# protocols use it. `evaluate drs` chooses its own on training images (``choose_percentile``)
# unless given one; the sweep reports others beside it.
DEFAULT_PERCENTILE = 80.0
SWEEP_PERCENTILES = (0.0, 50.0, 80.0, 90.0, 95.0)
DRAWS = 3  # independent draws of the FD change at the chosen percentile: one draw's figure is noisy
VALIDATION_PERCENTILES = tuple(float(p) for p in range(0, 100, 5))  # 0, 5, ..., 95: the choices
VALIDATION_POOL_FACTOR = 30  # pool = 30 × the samples compared, so the 95th (≈7% accepted) fills them
# Independent random streams, one per purpose, so that adding or changing one part of the study
# leaves the samples of every other part as they were.
VALIDATION_STREAM, FEATURE_RATIO_STREAM = 10_000, 20_000
PRECISION_RECALL_SPACE, PRECISION_RECALL_K = "probe", 3  # k = 3, as Kynkäänniemi et al. recommend


def check_percentile(p: float) -> float:
    if not 0.0 <= p <= 100.0:
        raise ValueError(f"the γ percentile must be between 0 and 100, got {p}")
    return float(p)


def calibrate_discriminator(discriminator: torch.nn.Module, score: Callable[[torch.Tensor], torch.Tensor],
                            batch: Callable[[], tuple[torch.Tensor, torch.Tensor]],
                            val_real: torch.Tensor, val_fake: torch.Tensor,
                            optimizer: torch.optim.Optimizer, *, steps: int, patience: int = 5,
                            every: int = 100, progress: bool = False, desc: str = "calibrate D") -> dict:
    """Keep training D alone with the logistic loss (real against fake, G frozen) until its loss
    on a fixed validation set of both stops falling for ``patience`` checks (one every ``every``
    steps), then keep the best D: the paper's calibration, so that D̃ estimates log p_data/p_g.

    ``score(x)`` is D's logit (B,) of inputs as ``batch()`` returns them (a fresh (real, fake)
    pair per step) and as the validation sets hold them. Returns the validation losses before and
    after, and the steps taken."""
    from tqdm.auto import tqdm

    target = torch.cat([torch.ones(len(val_real)), torch.zeros(len(val_fake))])

    def val_loss() -> float:
        discriminator.eval()
        with torch.no_grad():
            logits = torch.cat([score(x[i : i + 1000]) for x in (val_real, val_fake)
                                for i in range(0, len(x), 1000)])
        return F.binary_cross_entropy_with_logits(logits, target).item()

    before = best = val_loss()
    best_state, waited, step = copy.deepcopy(discriminator.state_dict()), 0, 0
    bar = tqdm(range(steps), desc=desc, unit="step", disable=not progress)
    for step in bar:
        discriminator.train()
        real, fake = batch()
        logits = score(torch.cat([real, fake]))
        loss = F.binary_cross_entropy_with_logits(
            logits, torch.cat([torch.ones(len(real)), torch.zeros(len(fake))]))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if (step + 1) % every == 0:
            current = val_loss()
            bar.set_postfix(val_loss=f"{current:.4f}")
            if current < best - 1e-4:
                best, waited = current, 0
                best_state = copy.deepcopy(discriminator.state_dict())
            else:
                waited += 1
                if waited >= patience:
                    break
    discriminator.load_state_dict(best_state)
    discriminator.eval()
    return {"calibration_val_loss_before": before, "calibration_val_loss_after": best,
            "calibration_steps": step + 1}


Score = Callable[[torch.Tensor], torch.Tensor]  # images (N, 1, 28, 28) in [0, 1] -> log-ratio estimates (N,)


def burn_in(gan, samples: int = BURN_IN_SAMPLES, generator: torch.Generator | None = None,
            score: Score | None = None) -> float:
    """D̃*_M: the largest logit over ``samples`` draws of G (``score`` defaults to D's logit)."""
    return float((score or gan.logits)(gan.sample(samples, generator)).max())


def f_scores(logits: torch.Tensor, max_logit: float) -> torch.Tensor:
    """F of each logit given D̃*_M (which must be at least the largest logit), in float64."""
    d = logits.double() - max_logit
    return d - torch.log1p(-torch.exp(d - EPSILON))


def acceptance_probability(f: torch.Tensor, gamma: float) -> torch.Tensor:
    return torch.sigmoid(f - gamma)


@dataclass
class Draw:
    """N samples with everything DRS needs to accept or reject them, scored once."""

    images: torch.Tensor  # (N, 1, 28, 28) in [0, 1]
    logits: torch.Tensor  # (N,)
    f: torch.Tensor  # (N,) F, against D̃*_M as it stood when each batch was scored
    uniforms: torch.Tensor  # (N,) the u of each accept test, so re-thresholding is consistent
    max_logit: float  # D̃*_M after this draw

    def gamma(self, percentile: float) -> float:
        return float(np.percentile(self.f.numpy(), check_percentile(percentile)))

    def accepted(self, percentile: float) -> torch.Tensor:
        """Boolean mask (N,): u < sigmoid(F − γ), γ the p-th percentile of this draw's F."""
        return self.uniforms < acceptance_probability(self.f, self.gamma(percentile))


def draw(gan, n: int, max_logit: float, generator: torch.Generator | None = None,
         batch_size: int = 1000, score: Score | None = None) -> Draw:
    """Sample and score n images; D̃*_M is raised online when a batch holds a larger logit.
    ``score`` replaces D's logit as the log-ratio estimate (``feature_ratio``'s reference)."""
    score = score or gan.logits
    images, logits, f = [], [], []
    for start in range(0, n, batch_size):
        x = gan.sample(min(batch_size, n - start), generator)
        batch_logits = score(x)
        max_logit = max(max_logit, float(batch_logits.max()))
        images.append(x)
        logits.append(batch_logits)
        f.append(f_scores(batch_logits, max_logit))
    return Draw(torch.cat(images), torch.cat(logits), torch.cat(f),
                torch.rand(n, generator=generator, dtype=torch.float64), max_logit)


def accept_batch(scores: torch.Tensor, max_logit: float, percentile: float,
                 uniforms: torch.Tensor) -> tuple[torch.Tensor, float]:
    """One batch of Algorithm 1 on scores already computed: D̃*_M raised to the batch's largest
    score, γ the p-th percentile of the batch's F, sample i kept if uniforms[i] < sigmoid(F_i − γ).
    Returns the boolean mask and the new D̃*_M."""
    max_logit = max(max_logit, float(scores.max()))
    f = f_scores(scores, max_logit)
    gamma = float(np.percentile(f.numpy(), percentile))
    return uniforms < acceptance_probability(f, gamma), max_logit


def rejection_sample(gan, n: int, max_logit: float, percentile: float,
                     generator: torch.Generator | None = None, batch_size: int = 1000,
                     max_draws: int = 2_000_000, score: Score | None = None) -> tuple[torch.Tensor, float]:
    """Algorithm 1: draw batches, set γ from each batch's F, keep the accepted, until n are kept.
    Returns the first n accepted images and the acceptance rate over every sample drawn (the
    last batch's surplus counts as accepted: truncating it would bias the rate low)."""
    check_percentile(percentile)
    score = score or gan.logits
    kept, drawn, total = [], 0, 0
    while total < n:
        if drawn >= max_draws:
            raise ValueError(f"DRS accepted only {total} of {drawn} samples at the {percentile}th "
                             f"percentile; choose a lower percentile")
        images = gan.sample(batch_size, generator)
        accepted, max_logit = accept_batch(score(images), max_logit, percentile,
                                           torch.rand(batch_size, generator=generator, dtype=torch.float64))
        kept.append(images[accepted])
        drawn, total = drawn + batch_size, total + int(accepted.sum())
    return torch.cat(kept)[:n], total / drawn


def draw_with_and_without(gan, n: int, percentile: float, generator: torch.Generator | None = None,
                          score: Score | None = None) -> tuple[torch.Tensor, torch.Tensor, float]:
    """One independent draw of DRS: BurnIn, then n plain samples and n accepted by Algorithm 1.
    Returns (plain, accepted, acceptance rate). ``score`` replaces D's logit as the log-ratio
    estimate, as in ``draw``."""
    max_logit = burn_in(gan, BURN_IN_SAMPLES, generator, score)
    plain = gan.sample(n, generator)
    kept, rate = rejection_sample(gan, n, max_logit, percentile, generator, score=score)
    return plain, kept, rate


def fd_with_and_without(gan, yardstick, n: int, percentile: float,
                        generator: torch.Generator | None = None,
                        score: Score | None = None) -> tuple[float, float, float]:
    """``draw_with_and_without``, measured: (FD without, FD with, acceptance rate), the FD in
    ``yardstick`` (a ``fidelity.FeatureSpace``)."""
    plain, kept, rate = draw_with_and_without(gan, n, percentile, generator, score)
    return yardstick.fd(plain), yardstick.fd(kept), rate


def selection_features(dataset: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The features D's head and γ are chosen in: the shipped VAE's posterior means, a model of
    another family, trained without labels, in which no DRS figure is reported, so that no
    reported figure measures what was chosen (docs/drs.md)."""
    from core import pretrained

    vae, _ = pretrained.load("vae", dataset)
    vae.eval()

    def features(images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return torch.cat([vae.encode(images[i : i + 1000]) for i in range(0, len(images), 1000)])

    return features


def independent_spaces(dataset: str, test_images: torch.Tensor) -> dict:
    """Feature spaces that, like the yardstick's, play no part in calibrating D or choosing γ
    (those use ``selection_features``): the shipped probe, an MLP classifier of another
    architecture and seed (``core/models/probe.py``), and SwAV's globally pooled backbone, which
    no label shaped."""
    from core import fidelity, pretrained

    probe, _ = pretrained.load("probe", dataset)
    swav, _ = pretrained.load("swav", dataset)
    return {"probe": fidelity.FeatureSpace(probe.features, test_images),
            "swav_pooled": fidelity.FeatureSpace(lambda x: swav.feature_map(x, 1), test_images)}


def feature_ratio(features: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor,
                  fakes: torch.Tensor) -> Score:
    """A log-ratio estimate in a feature space: logistic regression on ``features(images)`` of
    real images against fakes, a discriminator that sees only those features. Two are fitted:

    - ``study``: on the classifier's features, the space the FD is measured in. Not DRS (it reads
      the yardstick's own features, so selecting by it is close to tuning on the metric): the
      reference for how far the same acceptance rule can move the FD when its ratio tracks what
      the FD measures; D's rank correlation with it says how much D's ratio does;
    - ``experiments/drs/drs_diagnosis.py``: on SwAV's features, which no label ever shaped, a semantic
      discriminator that does not read the yardstick. It is still not the paper's D (the GAN's
      own, calibrated)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    with torch.no_grad():
        x = torch.cat([features(real), features(fakes)]).double().numpy()
    y = np.r_[np.ones(len(real)), np.zeros(len(fakes))]
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000)).fit(x, y)

    def score(images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return torch.from_numpy(model.decision_function(features(images).double().numpy()))

    return score


def choose_percentile(gan, features: Callable[[torch.Tensor], torch.Tensor], reference: torch.Tensor,
                      samples: int, *, generator: torch.Generator | None = None,
                      percentiles: tuple[float, ...] = VALIDATION_PERCENTILES, progress: bool = False) -> dict:
    """γ's percentile chosen without the test set: the one whose accepted samples have the lowest
    FD (on ``features``) against ``reference``, real images the test set does not hold (``study``
    passes the GAN's own training images). ``validation_fds`` has how.

    Returns the chosen percentile, the FD at each (None where skipped), and the pool's size."""
    fds = validation_fds(gan, lambda images: gan.logits(images)[:, None], features, reference, samples,
                         generator=generator, percentiles=percentiles, progress=progress)[0]
    measured = {p: fd for p, fd in fds.items() if fd is not None}
    if not measured:
        raise ValueError(f"no γ percentile accepted {samples} of {VALIDATION_POOL_FACTOR * samples} samples")
    return {"percentile": float(min(measured, key=measured.get)), "pool": VALIDATION_POOL_FACTOR * samples,
            "samples": samples, "fd": {f"{p:g}": fd for p, fd in fds.items()}}


def validation_fds(gan, scores: Callable[[torch.Tensor], torch.Tensor],
                   features: Callable[[torch.Tensor], torch.Tensor], reference: torch.Tensor, samples: int, *,
                   generator: torch.Generator | None = None, percentiles: tuple[float, ...] = VALIDATION_PERCENTILES,
                   progress: bool = False) -> list[dict[float, float | None]]:
    """For each of K log-ratio estimates (``scores(images)`` is (N, K)) and each percentile, the FD
    (on ``features``) of DRS's accepted samples against ``reference``: [{percentile: FD}] * K.

    One pool of ``VALIDATION_POOL_FACTOR × samples`` fakes is drawn and scored once; every score
    and percentile runs Algorithm 1 over the same pool (BurnIn, D̃*_M raised online, γ per batch
    of 1,000, the same uniforms), and its first ``samples`` accepted are compared, so they differ
    only in what they accept. Where fewer than ``samples`` are accepted, the FD is None."""
    from tqdm.auto import tqdm

    from core import fidelity

    percentiles = tuple(check_percentile(p) for p in percentiles)
    pool = VALIDATION_POOL_FACTOR * samples
    with torch.no_grad():
        max_logits = scores(gan.sample(BURN_IN_SAMPLES, generator)).max(dim=0).values.tolist()  # BurnIn
    scored = []  # (scores (n, K), features, uniforms) per batch of Algorithm 1
    for start in tqdm(range(0, pool, 1000), desc="validation pool", unit="batch", disable=not progress):
        images = gan.sample(min(1000, pool - start), generator)
        with torch.no_grad():
            scored.append((scores(images), features(images),
                           torch.rand(len(images), generator=generator, dtype=torch.float64)))
    target = fidelity.feature_statistics(features(reference))
    table = []
    for k, max_logit in enumerate(max_logits):
        fds = {}
        for p in percentiles:
            batch_max, kept = max_logit, []
            for batch_scores, batch_features, uniforms in scored:
                accepted, batch_max = accept_batch(batch_scores[:, k], batch_max, p, uniforms)
                kept.append(batch_features[accepted])
            kept = torch.cat(kept)
            fds[p] = (fidelity.frechet_distance(fidelity.feature_statistics(kept[:samples]), target)
                      if len(kept) >= samples else None)
        table.append(fds)
    return table


def study(dataset: str, *, limit: int | None = None, progress: bool = True, model=None,
          percentile: float | None = None, seed: int = 0) -> dict:
    """``python -m core evaluate drs``: FD and class shares of the GAN with and without DRS.

    ``percentile``: γ's; by default chosen on the GAN's training images in ``selection_features``
    (``choose_percentile``), never on the test set or in a space a figure is measured in."""
    from tqdm.auto import tqdm

    from core import data, fidelity, pretrained
    from core.splits import held_out_images

    began = time.perf_counter()
    gan = model if model is not None else pretrained.load("gan", dataset)[0]
    if not int(gan.calibrated):
        raise ValueError("this GAN's discriminator is not calibrated; it is calibrated at the end of "
                         f"`python -m core train gan --dataset {dataset}`")
    n = limit or 10_000
    if n < 200:
        raise ValueError(f"--limit sets the samples per set for the Fréchet distance; use at least 200, got {n}")
    test = data.load(dataset, "test")
    yardstick = fidelity.Yardstick.shipped(dataset)
    classifier = yardstick.classifier
    generator = torch.Generator().manual_seed(seed)

    def quality(images: torch.Tensor) -> tuple[float, list[float]]:
        return yardstick.fd(images), yardstick.class_shares(images)

    train_images = data.load(dataset, "train").images
    held_out = held_out_images(gan, train_images)
    validation = None
    if percentile is None:
        gan_training_images = train_images[: len(train_images) - len(held_out)]
        validation = choose_percentile(gan, selection_features(dataset), gan_training_images, n // 2,
                                       generator=torch.Generator().manual_seed(VALIDATION_STREAM + seed),
                                       progress=progress)
        percentile = validation["percentile"]
    percentile = check_percentile(percentile)

    max_logit = burn_in(gan, BURN_IN_SAMPLES, generator)
    samples = gan.sample(n, generator)
    fd_gan, shares_gan = quality(samples)
    sweep = {}
    for p in tqdm(SWEEP_PERCENTILES, desc="DRS percentiles", disable=not progress):
        accepted, rate = rejection_sample(gan, n, max_logit, p, generator)
        fd, shares = quality(accepted)
        sweep[p] = {"fd": fd, "acceptance_rate": rate, "class_shares": shares,
                    "images": accepted if p == percentile else None}
    chosen = sweep[percentile] if percentile in sweep else None
    if chosen is None:
        accepted, rate = rejection_sample(gan, n, max_logit, percentile, generator)
        fd, shares = quality(accepted)
        chosen = {"fd": fd, "acceptance_rate": rate, "class_shares": shares, "images": accepted}
    # The same measurement in further independent draws (BurnIn, plain samples, DRS), so that the
    # figure comes with its spread: on Fashion-MNIST one draw's change is within that spread of 0.
    draws = [(samples, chosen["images"])]
    for draw_seed in tqdm(range(seed + 1, seed + DRAWS), desc="further draws", disable=not progress):
        plain, kept, _ = draw_with_and_without(gan, n, percentile, torch.Generator().manual_seed(draw_seed))
        draws.append((plain, kept))
    # Draw 0's FDs are the ones measured above; only the further draws are measured here.
    changes = [chosen["fd"] / fd_gan - 1] + [yardstick.fd(kept) / yardstick.fd(plain) - 1 for plain, kept in draws[1:]]
    # The same draws judged in features that chose nothing: a gain that holds only in the
    # yardstick's features would be a gain in the measure that was optimised.
    independent = {}
    for name, space in independent_spaces(dataset, test.images).items():
        fds = [(space.fd(plain), space.fd(kept)) for plain, kept in draws]  # draw 0: samples, chosen
        by_draw = [fd_kept / fd_plain - 1 for fd_plain, fd_kept in fds]
        independent[name] = {"fd_gan": fds[0][0], "fd_drs": fds[0][1],
                             "fd_change": by_draw[0], "fd_change_by_draw": by_draw,
                             "fd_change_median": float(np.median(by_draw)),
                             "fd_train_images": space.fd(train_images[:n])}
        if name == PRECISION_RECALL_SPACE:
            (p_gan, r_gan), (p_drs, r_drs) = (space.precision_recall(samples, PRECISION_RECALL_K),
                                              space.precision_recall(chosen["images"], PRECISION_RECALL_K))
            independent[name].update(precision_gan=p_gan, recall_gan=r_gan, precision_drs=p_drs,
                                     recall_drs=r_drs, precision_recall_k=PRECISION_RECALL_K)
    train_fd, _ = quality(train_images[:n])
    # The reference: the same rule with the ratio fitted in the FD's feature space, on the real
    # images the GAN never saw (the ones D was calibrated on) against as many fresh fakes.
    from scipy.stats import spearmanr

    reference_generator = torch.Generator().manual_seed(FEATURE_RATIO_STREAM + seed)
    reference_score = feature_ratio(classifier.features, held_out, gan.sample(len(held_out), reference_generator))
    reference_kept, reference_rate = rejection_sample(
        gan, n, burn_in(gan, BURN_IN_SAMPLES, reference_generator, reference_score), percentile,
        reference_generator, score=reference_score)
    rank_correlation = spearmanr(gan.logits(samples).numpy(), reference_score(samples).numpy()).statistic
    accuracy = (classifier.predict(test.images) == test.labels).float().mean().item()
    return {
        "dataset": dataset,
        "samples": n,
        "fd_gan": fd_gan,
        "fd_drs": chosen["fd"],
        "fd_change": chosen["fd"] / fd_gan - 1,
        "fd_change_by_draw": changes,  # the first is fd_change; then seeds seed+1, seed+2, ...
        "fd_change_median": float(np.median(changes)),
        # The FD change, in the same draws, in spaces no choice was made in (``independent_spaces``),
        # and precision and recall (test set against samples) in the probe's.
        "independent": independent,
        "acceptance_rate": chosen["acceptance_rate"],
        "gamma_percentile": percentile,
        # How γ's percentile was set: chosen on the GAN's training images (the FD at each choice
        # there), or given by the caller.
        "gamma_percentile_validation": validation,
        "fd_train_images": train_fd,  # the floor: real training images against the test set
        "fd_feature_ratio": quality(reference_kept)[0],  # the same rule, ratio fitted on the FD's features
        "acceptance_rate_feature_ratio": reference_rate,
        "rank_correlation_d_feature_ratio": float(rank_correlation),  # Spearman, on the n GAN samples
        "classifier_accuracy": accuracy,
        "burn_in_samples": BURN_IN_SAMPLES,
        "class_shares_gan": shares_gan,
        "class_shares_drs": chosen["class_shares"],
        "sweep": {f"{p:g}": {"fd": s["fd"], "acceptance_rate": s["acceptance_rate"]} for p, s in sweep.items()},
        "seconds": round(time.perf_counter() - began, 1),
    }
