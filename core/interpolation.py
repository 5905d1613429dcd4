"""Latent interpolation, four-corner grids, super-resolution, and their PNG / GIF exports.

Works for every model with ``encode(images) -> (B, D)`` and ``decode(z) -> images``: the GON
families encode by the gradient at the origin (``core.models.gon``), the VAE families by their
posterior mean. Slerp follows the GON paper (Bond-Taylor & Willcocks, ICLR 2021), which
interpolates its latents spherically, as is usual for Gaussian-like latents whose mass lies near a
shell rather than near the centre the straight line passes through.
"""

from __future__ import annotations

import io
import time
from typing import Literal

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torchvision.utils import make_grid

Method = Literal["linear", "slerp"]
METHODS: tuple[str, ...] = ("linear", "slerp")
SR_SIZES = (28, 56, 112, 224)  # the super-resolution view's renders, in pixels
MAX_STEPS = 64


def _check(method: str, steps: int) -> None:
    if method not in METHODS:
        raise ValueError(f"unknown interpolation {method!r}; choose one of: {', '.join(METHODS)}")
    if not 2 <= steps <= MAX_STEPS:
        raise ValueError(f"steps must be between 2 and {MAX_STEPS}, got {steps}")


def lerp(z0: Tensor, z1: Tensor, t: Tensor) -> Tensor:
    """(T, D) points (1 - t) z0 + t z1 for t (T,)."""
    t = t[:, None]
    return (1 - t) * z0 + t * z1


def slerp(z0: Tensor, z1: Tensor, t: Tensor) -> Tensor:
    """(T, D) points on the great circle from z0 to z1 (norms interpolated along with it):
    sin((1-t)Ω)/sin Ω · z0 + sin(tΩ)/sin Ω · z1, with Ω the angle between them.

    At t = 0 and t = 1 the weights are exactly (1, 0) and (0, 1), so the ends are the endpoints.
    """
    cos = torch.dot(z0, z1) / (z0.norm() * z1.norm()).clamp_min(1e-12)
    omega = torch.arccos(cos.clamp(-1.0, 1.0))
    if omega.abs() < 1e-4:  # (anti)parallel up to rounding: sin Ω ~ 0, and the arc is a line
        return lerp(z0, z1, t)
    t = t[:, None]
    return (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / torch.sin(omega)


def path(z0: Tensor, z1: Tensor, steps: int, method: Method = "slerp") -> Tensor:
    """``steps`` latents (steps, D) from z0 to z1, both included."""
    _check(method, steps)
    t = torch.linspace(0, 1, steps)
    return (slerp if method == "slerp" else lerp)(z0, z1, t)


def as_batch(images) -> Tensor:
    """Images as (B, 1, 28, 28) float in [0, 1]: accepts (28, 28) arrays or tensors too."""
    x = torch.as_tensor(np.asarray(images, dtype=np.float32))
    while x.ndim < 4:
        x = x.unsqueeze(0)
    if x.shape[-2:] != (28, 28) or x.shape[1] != 1:
        raise ValueError(f"expected 28×28 grayscale images, got shape {tuple(x.shape)}")
    return x.clamp(0, 1)


@torch.no_grad()
def interpolate(model, a, b, steps: int = 10, method: Method = "slerp") -> Tensor:
    """Decoded images (steps, 1, 28, 28) between images a and b, ends included.

    Both are encoded in one batch: for a GON that is one forward and one backward pass.
    """
    z = model.encode(torch.cat([as_batch(a), as_batch(b)]))  # (2, D)
    return model.decode(path(z[0], z[1], steps, method))


@torch.no_grad()
def corner_grid(model, corners, n: int = 8, method: Method = "slerp") -> Tensor:
    """(n*n, 1, 28, 28): a grid spanned by four images (top-left, top-right, bottom-left,
    bottom-right), row by row: the top and bottom edges are interpolated first, then every
    column between them."""
    x = as_batch(corners)
    if len(x) != 4:
        raise ValueError(f"a corner grid needs 4 images, got {len(x)}")
    z = model.encode(x)  # (4, D)
    top, bottom = path(z[0], z[1], n, method), path(z[2], z[3], n, method)  # (n, D) each
    columns = torch.stack([path(top[j], bottom[j], n, method) for j in range(n)], dim=1)  # (n rows, n cols, D)
    return model.decode(columns.reshape(n * n, -1))


@torch.no_grad()
def super_resolution(model, image, sizes=SR_SIZES) -> dict[int, dict[str, np.ndarray]]:
    """An implicit GON's renders of an image's latent at each size, beside bicubic upscaling of
    its 28 px render: {size: {"implicit": uint8 (S, S), "bicubic": uint8 (S, S)}}."""
    if not getattr(model, "renders_any_size", False):
        raise ValueError(f"{model.family} renders 28 px only; super-resolution needs implicit_gon")
    z = model.encode(as_batch(image))
    base = to_pil(model.decode(z, 28)[0])
    return {s: {"implicit": to_uint8(model.decode(z, s)[0]),
                "bicubic": np.asarray(base.resize((s, s), Image.Resampling.BICUBIC))} for s in sizes}


def gradient_energy(pictures: np.ndarray) -> float:
    """Mean squared intensity gradient of uint8 pictures (N, S, S), in units of a 28 px pixel:
    finite differences times S/28, so that renders of one image at any size are comparable. A
    blurred edge spreads its rise over more pixels and has less energy; a sharp one has more."""
    x = pictures.astype(np.float64) / 255
    scale = x.shape[-1] / 28
    dx, dy = np.diff(x, axis=-1) * scale, np.diff(x, axis=-2) * scale
    return float((dx**2).mean() + (dy**2).mean())


@torch.no_grad()
def super_resolution_quality(model, images: Tensor, labels: Tensor, classifier=None,
                             sizes: tuple[int, ...] = SR_SIZES[1:], batch_size: int = 50) -> dict:
    """How much sharper an implicit GON's renders are than bicubic upscaling of its 28 px render,
    the comparison the Interpolate page shows, over test ``images`` (N, 1, 28, 28).

    For each size S: the gradient energy of each (``gradient_energy``), with bicubic upscaling of
    the real images themselves as a reference; and, so that noise does not pass for sharpness,
    each render box-filtered back to 28 px, against the real image (squared error summed over
    pixels) and, with a ``classifier``, its accuracy on them. Both renders are uint8, as shown."""
    if not getattr(model, "renders_any_size", False):
        raise ValueError(f"{model.family} renders 28 px only; super-resolution needs implicit_gon")
    began = time.perf_counter()
    real = [to_pil(x) for x in images]
    renders: dict[str, dict[int, list[np.ndarray]]] = {"implicit": {}, "bicubic": {}, "real_bicubic": {}}
    for start in range(0, len(images), batch_size):
        z = model.encode(images[start : start + batch_size])
        base = [to_pil(r) for r in model.decode(z, 28)]
        for s in sizes:
            renders["implicit"].setdefault(s, []).extend(to_uint8(r) for r in model.decode(z, s))
            renders["bicubic"].setdefault(s, []).extend(
                np.asarray(b.resize((s, s), Image.Resampling.BICUBIC)) for b in base)
            renders["real_bicubic"].setdefault(s, []).extend(
                np.asarray(r.resize((s, s), Image.Resampling.BICUBIC)) for r in real[start : start + batch_size])
    result: dict = {"sr_images": len(images), "sr_sizes": list(sizes)}
    for s in sizes:
        energy = {kind: gradient_energy(np.stack(by_size[s])) for kind, by_size in renders.items()}
        result[f"sr_energy_ratio_{s}"] = energy["implicit"] / energy["bicubic"]
        for kind in ("implicit", "bicubic"):
            result[f"sr_energy_{kind}_{s}"] = energy[kind]
            back = torch.from_numpy(np.stack([np.asarray(Image.fromarray(p).resize((28, 28), Image.Resampling.BOX))
                                              for p in renders[kind][s]])).float().div(255)[:, None]
            result[f"sr_error_{kind}_{s}"] = (back - images).pow(2).flatten(1).sum(1).mean().item()
            if classifier is not None:
                result[f"sr_accuracy_{kind}_{s}"] = (classifier.predict(back) == labels).double().mean().item()
        result[f"sr_energy_real_bicubic_{s}"] = energy["real_bicubic"]
    result["sr_seconds"] = round(time.perf_counter() - began, 1)
    return result


# --- export -----------------------------------------------------------------------------------

def to_uint8(image: Tensor) -> np.ndarray:
    """(1, H, W) or (H, W) in [0, 1] -> uint8 (H, W)."""
    return (image.squeeze(0).clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def to_pil(image: Tensor) -> Image.Image:
    return Image.fromarray(to_uint8(image), mode="L")


def strip(images: Tensor, nrow: int | None = None, scale: int = 3, padding: int = 2) -> np.ndarray:
    """(N, 1, H, W) -> one uint8 picture, ``nrow`` images a row (all in one row by default),
    each pixel scale×scale (nearest: 28 px stay crisp)."""
    big = torch.nn.functional.interpolate(images.clamp(0, 1), scale_factor=scale, mode="nearest")
    g = make_grid(big, nrow=nrow or len(images), padding=padding, pad_value=1.0)  # (3, H', W')
    return to_uint8(g[:1])


def png_bytes(picture: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(picture, mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def gif_bytes(images: Tensor, scale: int = 4, frame_ms: int = 120, bounce: bool = True) -> bytes:
    """An animated GIF of the images in order (then back again when ``bounce``), looping."""
    frames = [to_pil(torch.nn.functional.interpolate(im[None], scale_factor=scale, mode="nearest")[0])
              for im in images.clamp(0, 1)]
    if bounce and len(frames) > 2:
        frames = frames + frames[-2:0:-1]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=frame_ms,
                   loop=0)
    return buffer.getvalue()


# --- benchmark --------------------------------------------------------------------------------

def benchmark(dataset: str = "fashion-mnist", steps: int = 16, repeats: int = 10) -> dict[str, float]:
    """Median milliseconds of one ``steps``-step slerp interpolation per GON family, both
    gradient-origin encodings included (the issue's budget: 300 ms on 2 CPU cores).

    Uses the shipped models where there are some, fresh ones of the same config otherwise (the
    cost does not depend on the weights). On a loaded machine, torch's two intra-op threads
    spin-wait on each other: compare runs with ``torch_threads`` alike (OMP_NUM_THREADS=1 measured
    ~50x faster here while other jobs ran).
    """
    from core import data, models, pretrained

    test = data.load(dataset, "test").images[:2]
    result: dict[str, float] = {"torch_threads": torch.get_num_threads()}
    for family in ("gon", "implicit_gon"):
        try:
            model, _ = pretrained.load(family, dataset)
        except pretrained.ArtifactError:
            model = models.build(family).eval()
        interpolate(model, test[0], test[1], steps)  # warm-up: first calls allocate
        times = []
        for _ in range(repeats):
            began = time.perf_counter()
            interpolate(model, test[0], test[1], steps)
            times.append(time.perf_counter() - began)
        result[f"{family}_interpolation_{steps}_steps_ms"] = round(1000 * float(np.median(times)), 1)
    return result
