"""Why the implicit GON loses to its autoencoder: the decoder, or the encoding?

A GON's encoder is one gradient step from the origin, a function the decoder fixes. This measures,
on the shipped paper-width pair and the same test images:

1. the error as each model encodes (the GON's gradient step, the autoencoder's encoder);
2. the GON's step scaled by alpha (z = -alpha * grad): whether a longer or shorter step does better,
   that is, whether the inner step size is off; and the same step taken again from where the first
   one landed (z_t+1 = z_t - grad at z_t), a non-linear encoding that still needs no encoder;
3. each decoder's own best: the latent optimised per image by Adam on the squared error, starting
   from its model's encoding. What that reaches is what the decoder can draw, and the distance
   from (1) to (3) is what the encoding leaves on the table (the amortisation gap).

If the GON's decoder at its best draws as well as the autoencoder's, the loss is the encoding's;
if it draws worse by as much as the gap, the loss is in the decoder.

    python experiments/gon/implicit_latent_gap.py --dataset fashion-mnist --images 100 --steps 200 --out FILE
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
ALPHAS = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0)
REPORT_AT = (0, 10, 25, 50, 100, 200, 400)
REPEATED_STEPS = 5


def squared_error(images: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per image, summed over pixels: the measure of the manifest and the curves."""
    return (images - target).pow(2).flatten(1).sum(1)


def repeated_steps(gon, target: torch.Tensor, steps: int) -> dict[int, float]:
    """The GON's own inner step taken ``steps`` times from the origin; the mean error after each."""
    z = torch.zeros(len(target), gon.config.latent_dim)
    curve = {}
    for step in range(1, steps + 1):
        z = z.requires_grad_(True)
        inner = squared_error(gon.decoder(z), target).sum() * gon.config.inner_scale
        (grad,) = torch.autograd.grad(inner, z)
        step_size = gon.log_step.exp() if gon.config.learned_step else 1.0  # as gradient_origin scales it
        z = (z - step_size * grad).detach()
        with torch.no_grad():
            curve[step] = round(float(squared_error(gon.decoder(z), target).mean()), 4)
    return curve


def best_latents(decoder, z: torch.Tensor, target: torch.Tensor, steps: int, lr: float) -> dict[int, float]:
    """Adam on each image's latent (the weights fixed); the mean error at the steps in REPORT_AT."""
    z = z.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([z], lr=lr)
    curve = {}
    for step in range(steps + 1):
        error = squared_error(decoder(z), target)
        if step in REPORT_AT:
            curve[step] = round(float(error.detach().mean()), 4)
            print(f"  step {step}: {curve[step]:.3f}", flush=True)
        if step == steps:
            break
        optimizer.zero_grad()
        error.sum().backward()
        optimizer.step()
    return curve


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="fashion-mnist", choices=["fashion-mnist", "mnist"])
    parser.add_argument("--images", type=int, default=100, help="the first N test images")
    parser.add_argument("--steps", type=int, default=200, help="Adam steps on each latent")
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from core import checkpoint, data, paths

    torch.manual_seed(0)
    images = data.load(args.dataset, "test").images[: args.images]
    files = {name: paths.PRETRAINED_DIR / f"{name}-{args.dataset}.pt" for name in ("implicit_gon", "implicit_gon_ae")}
    gon, _ = checkpoint.load(files["implicit_gon"])
    ae, _ = checkpoint.load(files["implicit_gon_ae"])
    gon.eval(), ae.eval()
    for model in (gon, ae):
        model.requires_grad_(False)
    record = {"what": __doc__.split("\n\n")[0], "dataset": args.dataset, "images": args.images,
              "steps": args.steps, "lr": args.lr, "measure": "squared error summed over pixels, mean over the images",
              "checkpoints_sha256": {name: hashlib.sha256(path.read_bytes()).hexdigest() for name, path in files.items()}}
    began = time.perf_counter()

    z_gon = gon.gradient_origin(images)
    z_ae = ae.encode(images)
    with torch.no_grad():
        record["as_encoded"] = {"gon": round(float(squared_error(gon.decoder(z_gon), images).mean()), 4),
                                "autoencoder": round(float(squared_error(ae.decoder(z_ae), images).mean()), 4)}
        record["gon_step_scaled"] = {str(a): round(float(squared_error(gon.decoder(a * z_gon), images).mean()), 4)
                                     for a in ALPHAS}
    record["gon_step_repeated"] = repeated_steps(gon, images, REPEATED_STEPS)
    print("as encoded:", record["as_encoded"], "\nstep scaled:", record["gon_step_scaled"],
          "\nstep repeated:", record["gon_step_repeated"], flush=True)
    record["latent_norms"] = {"gon": round(float(z_gon.norm(dim=1).mean()), 4),
                              "autoencoder": round(float(z_ae.norm(dim=1).mean()), 4)}
    print("GON decoder, latents optimised:")
    record["gon_decoder_optimised"] = best_latents(gon.decoder, z_gon, images, args.steps, args.lr)
    print("autoencoder's decoder, latents optimised:")
    record["ae_decoder_optimised"] = best_latents(ae.decoder, z_ae, images, args.steps, args.lr)
    record["seconds"] = round(time.perf_counter() - began, 1)
    text = json.dumps(record, indent=1)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
