"""Which GAN makes Discriminator Rejection Sampling work? A sweep of generator and discriminator
variants, each trained from scratch, calibrated and scored the way ``python -m core evaluate drs``
scores the shipped GAN (README, DRS). Every variant starts from the shipped GAN's G and a
shallower, two-layer D (``TwoLayerDiscriminator``); the shipped GAN's D goes one stage deeper.

For every variant and checkpoint epoch it prints one JSON line: the FD of plain GAN samples and of
DRS samples (Algorithm 1, γ per batch of 1,000) at the 50/80/95th percentiles, and, as a yardstick
for the discriminator, the same selection driven by an "oracle" ratio: a logistic regression on
the classifier's features, fitted on held-out real images against other fakes (the README's
feature-space ratio; ``core.drs.feature_ratio`` standardises the features first). ``spearman`` is
the rank correlation of D's logits with that oracle on the same fakes: how much D's ranking of
fakes has to do with what the FD measures.

It runs wherever torch finds a GPU (the variants train side by side in separate processes), and on
the CPU otherwise (slowly):

    .venv/bin/python experiments/drs/drs_sweep.py --data data.npz --out results/   # data: see --export
    .venv/bin/python experiments/drs/drs_sweep.py --export data.npz                 # the datasets as uint8
    .venv/bin/python experiments/drs/drs_sweep.py --table experiments/drs/drs_sweep-h200.jsonl   # the README's table

``experiments/drs/drs_sweep-h200.jsonl`` holds the rows of one run on a lent NVIDIA H200 (one seed per
variant; GPU kernels are not bit-reproducible, so a rerun gives close, not equal, numbers).
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
try:  # core.models imports every family; nothing here needs neighbours, and a GPU box may lack faiss
    import faiss  # noqa: F401
except ImportError:
    sys.modules["faiss"] = types.ModuleType("faiss")
from core import drs, fidelity  # noqa: E402
from core.models.classifier import Classifier, ClassifierConfig  # noqa: E402
from core.models.gan import GAN, GANConfig, Generator  # noqa: E402

SN = nn.utils.parametrizations.spectral_norm

VARIANTS = {
    # name: dataset, generator, discriminator, checkpoint epochs, calibrations
    "fm_base": ("fm", "deconv", "batch", (10, 20, 40), ("standard", "none")),
    "fm_sn": ("fm", "deconv", "spectral", (10, 20, 40), ("standard", "none")),
    "fm_up": ("fm", "upsample", "batch", (10, 20, 40), ("standard",)),
    "fm_up_sn": ("fm", "upsample", "spectral", (10, 20, 40), ("standard", "none")),
    "mn_base": ("mn", "deconv", "batch", (40, 100, 200), ("standard", "none")),
    "mn_sn": ("mn", "deconv", "spectral", (40, 100, 200), ("standard", "none")),
}
NZ, WIDTH, BATCH, LR = 64, 64, 64, 2e-4


class UpsampleGenerator(nn.Module):
    """G with nearest upsampling + 3×3 conv instead of transposed convs (no checkerboard)."""

    def __init__(self, nz: int, w: int):
        super().__init__()
        self.w = w
        self.project = nn.Sequential(nn.Linear(nz, 2 * w * 49, bias=False), nn.BatchNorm1d(2 * w * 49), nn.ReLU())
        self.body = nn.Sequential(
            nn.Upsample(scale_factor=2), nn.Conv2d(2 * w, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(),
            nn.Upsample(scale_factor=2), nn.Conv2d(w, 1, 3, 1, 1), nn.Tanh())

    def forward(self, z):
        return self.body(self.project(z).view(len(z), 2 * self.w, 7, 7))


class TwoLayerDiscriminator(nn.Module):
    """The sweep's "batch" D: two strided convolutions with BatchNorm, then a linear layer on the
    7×7 map. Shallower than the shipped GAN's D, which goes down to 4×4."""

    def __init__(self, w: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, w, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(w, 2 * w, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * w), nn.LeakyReLU(0.2),
            nn.Flatten(), nn.Linear(2 * w * 49, 1))

    def forward(self, x):
        return self.body(x).squeeze(1)


class SpectralDiscriminator(nn.Module):
    """D with spectral normalisation on every layer and no BatchNorm (as SAGAN's D)."""

    def __init__(self, w: int):
        super().__init__()
        self.body = nn.Sequential(
            SN(nn.Conv2d(1, w, 4, 2, 1)), nn.LeakyReLU(0.2),
            SN(nn.Conv2d(w, 2 * w, 4, 2, 1)), nn.LeakyReLU(0.2),
            nn.Flatten(), SN(nn.Linear(2 * w * 49, 1)))

    def forward(self, x):
        return self.body(x).squeeze(1)


def export(path: str) -> None:
    from core import data

    arrays = {}
    for name, key in (("fashion-mnist", "fm"), ("mnist", "mn")):
        for split in ("train", "test"):
            d = data.load(name, split)
            arrays[f"{key}_{split}_x"] = (d.images * 255).round().to(torch.uint8).numpy()
            arrays[f"{key}_{split}_y"] = d.labels.numpy()
    np.savez_compressed(path, **arrays)


def batched(fn, x, size=2000):
    with torch.no_grad():
        return torch.cat([fn(x[i : i + size]) for i in range(0, len(x), size)])


def run_variant(name: str, data_path: str, out_dir: Path, device: str, epochs: int = 0, limit: int = 0) -> None:
    torch.set_default_device(device)  # core.drs.calibrate_discriminator makes its targets on the default device
    torch.manual_seed(0)
    key, g_kind, d_kind, checkpoints, calibrations = VARIANTS[name]
    checkpoints = (epochs,) if epochs else checkpoints
    arrays = np.load(data_path)
    to = lambda a: torch.tensor(a, dtype=torch.float32, device=device).div(255)  # noqa: E731
    train, test = to(arrays[f"{key}_train_x"]), to(arrays[f"{key}_test_x"])
    holdout = len(train) // 10
    train, held = train[:-holdout], train[-holdout:]
    train = train[:limit] if limit else train
    dataset = "fashion-mnist" if key == "fm" else "mnist"
    payload = torch.load(ROOT / "pretrained" / f"classifier-{dataset}.pt", map_location=device, weights_only=True)
    clf = Classifier(ClassifierConfig(**payload["config"])).to(device)
    clf.load_state_dict(payload["state_dict"])
    clf.eval()
    features = lambda x: batched(clf.body, x).double().cpu().numpy()  # noqa: E731
    ref = fidelity.feature_statistics(torch.from_numpy(features(test)))
    held_features = features(held)

    # The shipped GAN's training step around the sweep's own networks, drawn from seed 0 in the
    # order the recorded runs drew them: G, then the two-layer D, then any replacement.
    gan = GAN(GANConfig(nz=NZ, width=WIDTH, batch_size=BATCH, lr=LR))
    torch.manual_seed(0)
    gan.generator, gan.discriminator = Generator(NZ, WIDTH), TwoLayerDiscriminator(WIDTH)
    if g_kind == "upsample":
        gan.generator = UpsampleGenerator(NZ, WIDTH)
    if d_kind == "spectral":
        gan.discriminator = SpectralDiscriminator(WIDTH)
    gan.to(device)
    gen, disc = gan.generator, gan.discriminator
    optimizers = gan.configure_optimizers()
    began, log = time.time(), open(out_dir / f"{name}.jsonl", "a")
    for epoch in range(1, max(checkpoints) + 1):  # core.train.train_family's loop, on one device
        gan.train()
        order = torch.randperm(len(train))
        for start in range(0, len(train) - BATCH + 1, BATCH):
            gan.train_step(train[order[start : start + BATCH]], None, optimizers, epoch=epoch)
        if epoch not in checkpoints:
            continue
        for calibration in calibrations:
            row = evaluate(gen, copy.deepcopy(disc), calibration, held, held_features, features, ref,
                           n=4000 if limit else 100_000)
            row.update(variant=name, epoch=epoch, calibration=calibration, minutes=round((time.time() - began) / 60, 2))
            log.write(json.dumps(row) + "\n")
            log.flush()
            print(json.dumps(row), flush=True)


def evaluate(gen, disc, calibration, held, held_features, features, ref, n: int = 100_000) -> dict:
    gen.eval()
    row = {}
    if calibration == "standard":  # core.drs_calibration.calibrate, on the same split
        n_val = len(held) // 5
        val_real, fit_real = held[:n_val] * 2 - 1, held[n_val:] * 2 - 1
        with torch.no_grad():
            val_fake = gen(torch.randn(n_val, NZ))

        def batch():
            with torch.no_grad():
                return fit_real[torch.randint(len(fit_real), (BATCH,))], gen(torch.randn(BATCH, NZ))

        opt = torch.optim.Adam(disc.parameters(), lr=LR, betas=(0.5, 0.999))
        row.update(drs.calibrate_discriminator(disc, disc, batch, val_real, val_fake, opt, steps=3000, patience=5))
    disc.eval()
    with torch.no_grad():
        fakes = batched(gen, torch.randn(n + 10_000, NZ))
    logits = batched(disc, fakes).double().cpu()
    all_feats = features((fakes + 1) / 2)
    burn, logits, feats = logits[:10_000], logits[10_000:], all_feats[10_000:]

    def fd(f):
        return fidelity.frechet_distance(fidelity.feature_statistics(torch.from_numpy(f)), ref)

    # The oracle: a feature-space ratio estimate, fitted on held-out real vs fakes not scored below.
    from scipy.stats import spearmanr
    from sklearn.linear_model import LogisticRegression

    k = len(held_features)
    fit_fake = features((batched(gen, torch.randn(k, NZ)) + 1) / 2)
    oracle = LogisticRegression(max_iter=3000).fit(np.concatenate([held_features, fit_fake]), np.r_[np.ones(k), np.zeros(k)])
    oracle_scores = torch.from_numpy(oracle.decision_function(feats))
    burn_scores = {"drs": burn, "oracle": torch.from_numpy(oracle.decision_function(all_feats[:10_000]))}
    row.update(fd_gan=fd(feats[:10_000]), spearman=float(spearmanr(logits.numpy(), oracle_scores.numpy()).correlation),
               logit_std=float(logits.std()))
    generator = torch.Generator(device="cpu").manual_seed(0)
    uniforms = torch.rand(n, generator=generator, dtype=torch.float64, device="cpu")
    for label, scores in (("drs", logits), ("oracle", oracle_scores)):
        for p in (50, 80, 95):
            # Algorithm 1 batch by batch, as core.drs.rejection_sample runs it, but on scores
            # already computed on the device (rejection_sample samples from a CPU generator).
            accepted, m = [], float(burn_scores[label].max())
            for i in range(0, n, 1000):
                batch, m = drs.accept_batch(scores[i : i + 1000], m, p, uniforms[i : i + 1000])
                accepted.append(batch)
            mask = torch.cat(accepted).numpy()
            chosen = feats[mask][:10_000]
            row[f"fd_{label}_{p}"] = fd(chosen)
            row[f"acc_{label}_{p}"] = float(mask.mean())
            row[f"n_{label}_{p}"] = int(len(chosen))
    for key in [k for k in row if k.startswith("fd_") and k != "fd_gan"]:
        row[key.replace("fd_", "change_")] = row[key] / row["fd_gan"] - 1
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}


def table(path: str) -> None:
    print("| variant | epochs | D calibrated | FD GAN | DRS, FD change | accepted | feature ratio, FD change | ρ(D, feature ratio) |")
    print("|---|---|---|---|---|---|---|---|")
    for line in open(path):
        r = json.loads(line)
        print(f"| {r['variant']} | {r['epoch']} | {'yes' if r['calibration'] == 'standard' else 'no'} | "
              f"{r['fd_gan']:.1f} | {r['change_drs_80']:+.1%} | {r['acc_drs_80']:.1%} | "
              f"{r['change_oracle_80']:+.1%} | {r['spearman']:+.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="npz written by --export")
    parser.add_argument("--out", default="drs-sweep")
    parser.add_argument("--export", help="write the datasets to this npz and stop")
    parser.add_argument("--table", help="print a results file as a markdown table and stop")
    parser.add_argument("--one", choices=VARIANTS, help="run one variant in this process")
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS))
    parser.add_argument("--epochs", type=int, default=0, help="smoke test: one checkpoint at this epoch")
    parser.add_argument("--limit", type=int, default=0, help="smoke test: this many training images")
    args = parser.parse_args()
    if args.export:
        return export(args.export)
    if args.table:
        return table(args.table)
    if not args.data or not Path(args.data).is_file():
        parser.error("--data must name the npz that --export writes")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.one:
        return run_variant(args.one, args.data, out, device, args.epochs, args.limit)
    extra = ["--epochs", str(args.epochs), "--limit", str(args.limit)] if args.epochs else []
    children = [subprocess.Popen([sys.executable, __file__, "--data", args.data, "--out", str(out), "--one", v, *extra])
                for v in args.variants]
    sys.exit(max(c.wait() for c in children))


if __name__ == "__main__":
    main()
