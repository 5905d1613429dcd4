"""Evaluation of the VAE family on a dataset's test split.

- ``nll``: -log p(x) by importance sampling with q(z|x) as proposal (Burda et al. 2016),
  averaged over the test images, in nats;
- ``elbo`` and ``kl``: one-sample estimates, averaged;
- ``active_units``: latent dims whose posterior mean varies across the data, Cov_x(E_q[z_u]) > 0.01;
- ``knn_accuracy``: 5-NN classification on posterior means, train -> test.

Test images are binarised once with a fixed seed, so every model scores the same bits.
"""

from __future__ import annotations

import math
import time

import torch
from tqdm.auto import tqdm

from core import data
from core.models.vae import VAE, log_normal_diag
from core.neighbors import knn_accuracy

ACTIVE_UNIT_THRESHOLD = 0.01


@torch.no_grad()
def importance_sampled_nll(model: VAE, x: torch.Tensor, samples: int,
                           generator: torch.Generator, chunk: int = 4096) -> torch.Tensor:
    """-log p(x) for each image in x (B, 1, S, S), from ``samples`` draws of q(z|x); (B,)."""
    mu, logvar = model.posterior(x)
    std = torch.exp(0.5 * logvar)
    log_weights = []
    per_chunk = max(1, chunk // len(x))
    for start in range(0, samples, per_chunk):
        n = min(per_chunk, samples - start)
        eps = torch.randn(n, *mu.shape, generator=generator)  # (n, B, D)
        z = (mu + eps * std).flatten(0, 1)  # (n*B, D)
        xs = x.expand(n, *x.shape).flatten(0, 1)  # (n*B, 1, S, S)
        mus, logvars = mu.expand(n, *mu.shape).flatten(0, 1), logvar.expand(n, *logvar.shape).flatten(0, 1)
        w = model.log_likelihood(xs, z) + model.log_prior(z) - log_normal_diag(z, mus, logvars)
        log_weights.append(w.view(n, len(x)))
    log_weights = torch.cat(log_weights)  # (samples, B)
    return -(torch.logsumexp(log_weights, dim=0) - math.log(samples))


@torch.no_grad()
def evaluate(model: VAE, dataset: str, *, limit: int | None = None, samples: int = 1000,
             batch_size: int = 100, seed: int = 0, progress: bool = True) -> dict:
    if samples < 1:
        raise ValueError(f"--samples must be at least 1, got {samples}")
    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be at least 1, got {limit}")
    began = time.perf_counter()
    model.eval()
    train, test = data.load(dataset, "train"), data.load(dataset, "test")
    if hasattr(model, "prepare_prior"):
        model.prepare_prior(train.images)  # the exemplar prior over all training exemplars
    x_all = data.binarize_fixed(test.images)[:limit]
    y_test = test.labels[: len(x_all)]
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # the reparameterisation noise of the one-sample ELBO

    nll, elbo, kl, test_mu = [], [], [], []
    for start in tqdm(range(0, len(x_all), batch_size), desc="evaluate", unit="batch",
                      disable=not progress):
        x = x_all[start : start + batch_size]
        out = model(x)
        elbo.append(out.elbo * len(x))
        kl.append(out.kl * len(x))
        test_mu.append(out.mu)
        nll.append(importance_sampled_nll(model, x, samples, generator))
    test_mu = torch.cat(test_mu)
    train_mu = torch.cat([model.encode(train.images[i : i + 1000])
                          for i in range(0, len(train.images), 1000)])
    active = (test_mu.var(dim=0) > ACTIVE_UNIT_THRESHOLD).sum()
    n = len(x_all)
    return {
        "dataset": dataset,
        "test_images": n,
        "importance_samples": samples,
        "nll": float(torch.cat(nll).mean()),
        "elbo": float(torch.stack(elbo).sum() / n),
        "kl": float(torch.stack(kl).sum() / n),
        "active_units": int(active),
        "latent_dim": model.config.latent_dim,
        "knn_accuracy": knn_accuracy(train_mu, train.labels, test_mu, y_test),
        "seconds": round(time.perf_counter() - began, 1),
    }


def measure(model, dataset: str, *, limit: int | None = None, samples: int = 1000,
            progress: bool = True) -> dict:
    """A shipped-model measurement, by family: DRS's study for a GAN; a GON beside its shipped
    autoencoder; SwAV beside the shipped VAEs; a family's own ``measure`` otherwise (the
    classifier, the autoencoders); the VAE family's ``evaluate`` for the rest. The models compared
    with are loaded here, so that no model file depends on what is shipped."""
    from core import pretrained

    if model.family == "gan":
        from core import drs

        return drs.study(dataset, limit=limit, progress=progress, model=model)
    if model.family in ("gon", "implicit_gon"):
        try:
            classifier, _ = pretrained.load("classifier", dataset)
        except pretrained.ArtifactError:
            classifier = None  # the accuracy on reconstructions is left out, not made up
        extra = super_resolution_measure(model, dataset, limit, classifier)
        try:
            ae, entry = pretrained.load(model.family + "_ae", dataset)
        except pretrained.ArtifactError as exc:
            return {**model.measure(dataset, limit=limit, progress=progress, classifier=classifier),
                    "ae_missing": str(exc), **extra}
        return {**model.measure(dataset, limit=limit, progress=progress, autoencoder=(ae, entry["epochs"]),
                                classifier=classifier), **extra}
    if model.family == "swav":
        shipped = {}
        for other in ("vae", "exemplar_vae"):
            try:
                shipped[other], _ = pretrained.load(other, dataset)
            except pretrained.ArtifactError:
                continue  # nothing shipped to compare with: the key is left out, not made up
        return model.measure(dataset, limit=limit, progress=progress, compare_with=shipped)
    if hasattr(model, "measure"):
        return model.measure(dataset, limit=limit, progress=progress)
    return evaluate(model, dataset, limit=limit, samples=samples, progress=progress)


SR_IMAGES = 500  # test images rendered at 56, 112 and 224 px by super_resolution_measure


def super_resolution_measure(model, dataset: str, limit: int | None, classifier) -> dict:
    """An implicit GON's renders against bicubic upscaling (``core.interpolation``), on the first
    ``SR_IMAGES`` test images; nothing for a family that renders 28 px only."""
    if not getattr(model, "renders_any_size", False):
        return {}
    from core import interpolation

    test = data.load(dataset, "test")
    n = min(SR_IMAGES, limit or SR_IMAGES)
    return interpolation.super_resolution_quality(model, test.images[:n], test.labels[:n], classifier)


def has_own_measure(model) -> bool:
    """Whether ``measure`` ignores ``samples`` (everything but the VAE family's NLL)."""
    return model.family in ("gan", "gon", "implicit_gon", "swav") or hasattr(model, "measure")
