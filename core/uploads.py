"""A user's own images as exemplars: preprocessing the way MNIST was made, and a per-user session
of uploads on top of a model's shared exemplar index.

Preprocessing (LeCun et al.: size-normalised to 20x20 keeping the aspect ratio, anti-aliased, then
centred by centre of mass in a 28x28 field):
1. decode any PNG, JPEG, WebP, BMP or GIF (first frame), with its EXIF orientation applied;
2. to grey in [0, 1] from any mode (RGBA and LA over white paper, CMYK, 16-bit, palette);
3. detect the background from the border and invert if it is light, so ink is light on dark as in
   MNIST; subtract the background and its noise;
4. crop to the ink's bounding box; scale the longest side to 20 px; centre by centre of mass.

Every way an upload can be unusable raises ``UploadError`` (a ``ValueError``) with a plain
message, before anything is added anywhere.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image, ImageFilter, ImageOps, UnidentifiedImageError
from torch.nn import functional as F

MAX_BYTES = 5 * 1024 * 1024  # the app's uploader and the CLI share it (streamlit_config.toml too)
MAX_PIXELS = 40_000_000
FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF")
WORK_SIDE = 512  # big photos are reduced to this first: 20 px of output need no more
BOX, SIZE = 20, 28
MIN_CONTRAST = 0.08  # ink darker than the paper by less than this (of black-to-white) is no ink


class UploadError(ValueError):
    """An upload that cannot become an exemplar; the message says why, in plain words."""


def _looks_like_markup(head: bytes) -> str | None:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()  # a UTF-8 BOM, then white space
    if text.startswith(b"<?xml") or b"<svg" in text[:1024]:
        return "SVG"
    if text.startswith(b"<") or b"<html" in text[:1024]:
        return "HTML"
    return None


def open_image(content: bytes) -> Image.Image:
    """Decode an upload's first frame, EXIF orientation applied, after every check that can be
    made without decoding pixels (size in bytes, markup, format, dimensions)."""
    if not content:
        raise UploadError("the file is empty")
    if len(content) > MAX_BYTES:
        raise UploadError(f"the file is {len(content) / 2**20:.1f} MB; the limit is {MAX_BYTES // 2**20} MB")
    markup = _looks_like_markup(content[:2048])
    if markup:
        raise UploadError(f"this is {markup}, not a picture: upload a PNG, JPEG, WebP, BMP or GIF")
    # No warnings.catch_warnings() here: it is not thread-safe, and every session is a thread.
    # PIL's bomb warning (89-179 Mpx) needs no handling: the 40 Mpx check below refuses those.
    try:
        im = Image.open(io.BytesIO(content), formats=FORMATS)  # reads the header only
    except Image.DecompressionBombError:  # PIL's own limit (> 179 Mpx), raised by the header
        raise UploadError(f"the image is far too large; the limit is {MAX_PIXELS // 1_000_000} megapixels") from None
    except UnidentifiedImageError:
        raise UploadError("this is not an image Latent Lab can read: upload a PNG, JPEG, WebP, BMP or GIF") from None
    except Exception:  # a header that breaks a decoder is still just an unreadable file
        raise UploadError("the file is damaged: its image header cannot be read") from None
    width, height = im.size
    if width * height > MAX_PIXELS:  # decided from the header, before a single pixel is decoded
        raise UploadError(f"the image is {width}x{height} = {width * height / 1e6:.1f} megapixels; "
                          f"the limit is {MAX_PIXELS // 1_000_000} megapixels")
    if width < 1 or height < 1:
        raise UploadError("the image has no pixels")
    try:
        im.seek(0)  # an animated GIF or WebP: its first frame
        if im.format == "JPEG" and max(im.size) > 2 * WORK_SIDE:
            im.draft("L", (WORK_SIDE, WORK_SIDE))  # JPEG decodes at 1/2..1/8 scale for free
        im.load()
    except Image.DecompressionBombError:
        raise UploadError(f"the image is too large; the limit is {MAX_PIXELS // 1_000_000} megapixels") from None
    except Exception:  # truncated data, bad chunks, broken EXIF: PIL raises many kinds
        raise UploadError("the file is truncated or damaged: its pixels cannot be read") from None
    try:
        im = ImageOps.exif_transpose(im)
    except Exception:  # broken EXIF on good pixels: use the pixels as stored
        pass
    return im


def to_grey(im: Image.Image) -> np.ndarray:
    """Any PIL mode -> (H, W) float32 in [0, 1], 0 black, transparent parts as white paper."""
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        im = im.convert("RGBA")
        paper = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(paper, im)
    if im.mode.startswith("I;16") or im.mode == "I":
        a = np.asarray(im, dtype=np.float64) / 65535.0  # 16-bit grey
    elif im.mode == "F":
        a = np.asarray(im, dtype=np.float64)
        lo, hi = np.nanmin(a), np.nanmax(a)
        a = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
    else:
        a = np.asarray(im.convert("L"), dtype=np.float64) / 255.0  # CMYK, RGB, YCbCr, 1, L
    return np.nan_to_num(np.clip(a, 0.0, 1.0)).astype(np.float32)


def _reduce(im: Image.Image) -> Image.Image:
    """Shrink a big picture before the per-pixel work (keeps the aspect ratio)."""
    if max(im.size) <= WORK_SIDE:
        return im
    if im.mode not in ("L", "RGB", "RGBA", "LA", "CMYK", "P", "1"):
        return im  # 16-bit and float modes: reduced after conversion to grey
    if im.mode in ("P", "1"):
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    im = im.copy()
    im.thumbnail((WORK_SIDE, WORK_SIDE), Image.Resampling.BOX)
    return im


def ink_map(grey: np.ndarray) -> np.ndarray:
    """(H, W) grey -> ink in [0, 1] on a black background, paper and its noise removed."""
    if grey.shape[0] > 64 and grey.shape[1] > 64:  # photographs: salt-and-pepper noise away
        grey = np.asarray(Image.fromarray(grey, mode="F").filter(ImageFilter.MedianFilter(3)))
    h, w = grey.shape
    b = max(1, min(h, w) // 20)  # the border strip where the background is measured
    border = np.concatenate([grey[:b].ravel(), grey[-b:].ravel(), grey[:, :b].ravel(), grey[:, -b:].ravel()])
    background = float(np.median(border))
    ink = 1.0 - grey if background > 0.5 else grey  # dark ink on light paper -> light on dark
    bg_ink = 1.0 - background if background > 0.5 else background
    border_ink = 1.0 - border if background > 0.5 else border
    noise = 1.4826 * float(np.median(np.abs(border_ink - bg_ink)))  # robust std of the paper
    top = float(np.percentile(ink, 99.9)) if ink.size > 1000 else float(ink.max())
    if top - bg_ink < max(MIN_CONTRAST, 6.0 * noise):  # nothing stands out of the paper's grain
        raise UploadError("the image is blank: no strokes stand out from the background")
    floor = bg_ink + max(4.0 * noise, 0.25 * (top - bg_ink))
    out = np.clip((ink - floor) / max(top - floor, 1e-6), 0.0, 1.0)
    if (out > 0.5).sum() < 2:
        raise UploadError("the image is blank: no strokes stand out from the background")
    return out.astype(np.float32)


def normalise(ink: np.ndarray) -> torch.Tensor:
    """Ink (H, W) -> (1, 28, 28): crop to the ink, longest side 20 px, centre of mass centred."""
    rows, cols = np.nonzero(ink > 0)
    crop = torch.from_numpy(ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].copy())
    h, w = crop.shape
    scale = BOX / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    small = F.interpolate(crop[None, None], size=(nh, nw), mode="bilinear", antialias=True,
                          align_corners=False)[0, 0].clamp(0, 1)  # (nh, nw)
    peak = float(small.max())
    if peak <= 0:
        raise UploadError("the image is blank: no strokes stand out from the background")
    small = small / peak  # thin strokes fade when shrunk; MNIST strokes reach full white
    mass = small.sum()
    cy = float((small.sum(1) * torch.arange(nh)).sum() / mass)
    cx = float((small.sum(0) * torch.arange(nw)).sum() / mass)
    top = int(np.clip(round((SIZE - 1) / 2 - cy), 0, SIZE - nh))
    left = int(np.clip(round((SIZE - 1) / 2 - cx), 0, SIZE - nw))
    out = torch.zeros(1, SIZE, SIZE)
    out[0, top : top + nh, left : left + nw] = small
    return out


def preprocess(content: bytes) -> torch.Tensor:
    """Raw upload bytes -> (1, 28, 28) float32 in [0, 1], light ink on black, MNIST-style."""
    im = _reduce(open_image(content))
    try:
        grey = to_grey(im)
    except Exception:  # e.g. a mode PIL decodes but cannot convert
        raise UploadError("the image's colour format cannot be converted to grey") from None
    if max(grey.shape) > WORK_SIDE:  # 16-bit pictures reduced here, after conversion
        t = torch.from_numpy(grey)[None, None]
        s = WORK_SIDE / max(grey.shape)
        size = (max(1, round(grey.shape[0] * s)), max(1, round(grey.shape[1] * s)))
        grey = F.interpolate(t, size=size, mode="area")[0, 0].numpy()
    return normalise(ink_map(grey))


# -- a user's session -------------------------------------------------------------------------------


@dataclass
class Upload:
    id: int  # in the session's index; larger than every id of the shared index
    name: str
    image: torch.Tensor  # (1, 28, 28)
    code: torch.Tensor  # (D,)
    label: int = -1  # -1: the user gave none
    shared: bool = False  # came from, or was saved to, the shared store


@dataclass
class UploadSession:
    """One user's uploads on top of a model's shared exemplar index and prior.

    The shared ``base`` index and ``model`` are read, never changed (other sessions use them):
    uploads go into a small index of the session's own, searched beside the shared one; the
    exemplar prior samples from the model's exemplars and the session's together.
    """

    model: torch.nn.Module
    base: object  # LatentIndex over the dataset, ids = map indices
    uploads: dict[int, Upload] = field(default_factory=dict)

    def __post_init__(self):
        from core.latent_index import LatentIndex

        self.own = LatentIndex(self.base.dim)
        self.own.next_id = self.base.next_id  # ids never collide with the shared index's

    @torch.no_grad()
    def add(self, image: torch.Tensor, name: str, label: int = -1, shared: bool = False) -> Upload:
        """Encode a preprocessed (1, 28, 28) image and make it an exemplar of this session."""
        if image.shape != (1, SIZE, SIZE):
            raise UploadError(f"expected a preprocessed (1, 28, 28) image, got {tuple(image.shape)}")
        code = self.model.encode(image[None])[0]  # (D,)
        [uid] = self.own.add(code[None], [label])
        upload = Upload(int(uid), name, image, code, int(label), shared)
        self.uploads[upload.id] = upload
        return upload

    def add_file(self, content: bytes, name: str, label: int = -1) -> Upload:
        return self.add(preprocess(content), name, label)

    def join_store(self, store, dataset: str) -> int:
        """Add the shared store's saved exemplars to this session (marked shared); their count."""
        saved = store.load(dataset)
        for image, label, name in zip(saved["images"], saved["labels"], saved["names"]):
            self.add(torch.from_numpy(image)[None], str(name), int(label), shared=True)
        return len(saved["labels"])

    def save_to_store(self, store, dataset: str) -> list[str]:
        """Save this session's unshared uploads to the shared store; the store's ids of them."""
        mine = [u for u in self.uploads.values() if not u.shared]
        if not mine:
            return []
        uids = store.add(dataset, torch.stack([u.image[0] for u in mine]), [u.label for u in mine],
                         [u.name for u in mine])
        for u in mine:
            u.shared = True
        return uids

    def remove(self, uid: int) -> None:
        if uid not in self.uploads:
            raise ValueError(f"no upload with id {uid} in this session")
        self.own.remove([uid])
        del self.uploads[uid]

    def neighbors(self, code: torch.Tensor, k: int, exclude: int | None = None) -> list[dict]:
        """The k nearest exemplars, shared and the session's own, nearest first:
        ``{"index", "label", "distance", "upload"}`` (``upload``: the session's own, by id)."""
        found = []
        for index, own in ((self.base, False), (self.own, True)):
            if len(index):
                dist, ids, labels = index.search(code[None], min(k + 1, len(index)))
                found += [{"index": int(i), "label": int(lab), "distance": float(d), "upload": own}
                          for d, i, lab in zip(dist[0], ids[0], labels[0]) if i >= 0 and i != exclude]
        return sorted(found, key=lambda f: f["distance"])[:k]

    def exemplar_means(self) -> torch.Tensor:
        """The prior's exemplars for this session: the model's, then this session's uploads."""
        own = [u.code for u in self.uploads.values()]
        return torch.cat([self.model.exemplar_means, torch.stack(own)]) if own else self.model.exemplar_means

    @torch.no_grad()
    def sample_prior(self, n: int, generator: torch.Generator | None = None,
                     own_only: bool = False) -> torch.Tensor:
        """n images from the exemplar prior over the model's exemplars plus this session's
        uploads (the same draw as ``ExemplarVAE.sample``, without changing the shared model).
        ``own_only``: the prior over this session's uploads alone."""
        if own_only and not self.uploads:
            raise ValueError("add an upload first: the session has no exemplars of its own")
        means = torch.stack([u.code for u in self.uploads.values()]) if own_only else self.exemplar_means()
        pick = torch.randint(len(means), (n,), generator=generator)
        std = torch.exp(0.5 * self.model.kernel_logvar())
        z = means[pick] + std * torch.randn(n, means.shape[1], generator=generator)
        return self.model.decode(z)

    @torch.no_grad()
    def around(self, uid: int, n: int = 16, generator: torch.Generator | None = None) -> torch.Tensor:
        """n samples of the exemplar prior's kernel around one upload, (n, 1, 28, 28)."""
        return self.model.generate_from(self.uploads[uid].image[None], n, generator=generator)[0]

    @torch.no_grad()
    def reconstruction(self, uid: int) -> torch.Tensor:
        return self.model.decode(self.uploads[uid].code[None])[0]
