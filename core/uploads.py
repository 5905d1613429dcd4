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
import threading
import uuid
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image, ImageFilter, ImageOps, UnidentifiedImageError
from torch.nn import functional as F

from core.files import MAX_UPLOAD_BYTES

MAX_BYTES = MAX_UPLOAD_BYTES
MAX_PIXELS = 40_000_000
# What the decoded first frame may occupy. The file size says nothing about it: a 99 KB PNG can
# hold 40 megapixels of 16-bit grey. Together with the small copies made after shrinking, this
# keeps one upload under about 100 MB.
DECODE_BUDGET = 80 * 2**20
FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF")
WORK_SIDE = 512  # pictures are shrunk to this right after decoding: 20 px of output need no more
BOX, SIZE = 20, 28
MIN_CONTRAST = 0.08  # ink darker than the paper by less than this (of black-to-white) is no ink
# Uploads decoded at once. More wait their turn, so a burst of uploads queues instead of adding
# up its decode budgets.
DECODE_SLOTS = threading.BoundedSemaphore(2)


class UploadError(ValueError):
    """An upload that cannot become an exemplar; the message says why, in plain words."""


def _looks_like_markup(head: bytes) -> str | None:
    """SVG or HTML by its first bytes. A PNG's text chunks may mention ``<html>``: only a file
    that is not a known image format is judged by its text."""
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()  # a UTF-8 BOM, then white space
    if text.startswith(b"<?xml") or b"<svg" in text[:1024]:
        return "SVG"
    if text.startswith(b"<") or b"<html" in text[:1024]:
        return "HTML"
    return None


IMAGE_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM")


def _is_image_signature(head: bytes) -> bool:
    return head.startswith(IMAGE_SIGNATURES) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


def decoded_bytes(im: Image.Image, full_size: tuple[int, int]) -> int:
    """Peak memory that decoding and shrinking ``im``'s first frame takes, from its header
    (measured per format by tests/test_upload_memory.py). PIL keeps 1 byte per pixel for "1",
    "L" and "P", 2 for 16-bit grey and 4 for every other mode. Copies on top of that: a palette
    image's grey version; the premultiplied copy that resizing an image with alpha makes;
    libwebp's own buffers. A progressive JPEG also holds every DCT coefficient of the full-size
    image (2 bytes per pixel per band), whatever scale it is drafted to."""
    width, height = im.size
    per_pixel = 1 if im.mode in ("1", "L", "P") else 2 if im.mode.startswith("I;16") else 4
    copies = 4 if im.format == "WEBP" else 2 if im.mode in ("P", "RGBA", "LA", "PA") else 1
    need = width * height * per_pixel * copies
    if im.format == "JPEG" and im.info.get("progressive"):
        need += full_size[0] * full_size[1] * 2 * getattr(im, "layers", 3)
    return need


def open_image(content: bytes) -> Image.Image:
    """Decode an upload's first frame, after every check that can be made without decoding pixels
    (size in bytes, markup, format, dimensions, the memory its pixels need)."""
    if not content:
        raise UploadError("the file is empty")
    if len(content) > MAX_BYTES:
        raise UploadError(f"the file is {len(content) / 2**20:.1f} MB; the limit is {MAX_BYTES // 2**20} MB")
    markup = None if _is_image_signature(content[:16]) else _looks_like_markup(content[:2048])
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
    if im.format == "JPEG" and max(im.size) > 2 * WORK_SIDE:
        im.draft("L", (WORK_SIDE, WORK_SIDE))  # JPEG decodes at 1/2..1/8 scale for free
    need = decoded_bytes(im, (width, height))
    if need > DECODE_BUDGET:
        fits = DECODE_BUDGET / need * width * height / 1e6
        raise UploadError(f"the image is {width}x{height} in a format that takes {need / 2**20:.0f} MB "
                          f"to decode; the limit is {DECODE_BUDGET // 2**20} MB: scale it down to "
                          f"{fits:.0f} megapixels or fewer")
    try:
        im.seek(0)  # an animated GIF or WebP: its first frame
        im.load()
    except Image.DecompressionBombError:
        raise UploadError(f"the image is too large; the limit is {MAX_PIXELS // 1_000_000} megapixels") from None
    except Exception:  # truncated data, bad chunks, broken EXIF: PIL raises many kinds
        raise UploadError("the file is truncated or damaged: its pixels cannot be read") from None
    return im


def _palette_to_grey(im: Image.Image) -> Image.Image:
    """A "P" or "1" image as "L", transparent entries composited over white paper. Done on the
    palette (256 entries) so that the full-size copy is one byte per pixel."""
    if im.mode == "1":
        return im.convert("L")
    rgb = np.asarray(im.getpalette("RGB") or [], np.float64).reshape(-1, 3)
    rgb = np.concatenate([rgb, np.zeros((256 - len(rgb), 3))]) if len(rgb) < 256 else rgb[:256]
    alpha = np.ones(256)
    transparency = im.info.get("transparency")
    if isinstance(transparency, int) and 0 <= transparency < 256:
        alpha[transparency] = 0.0
    elif isinstance(transparency, bytes):
        alpha[: len(transparency)] = np.frombuffer(transparency[:256], np.uint8) / 255.0
    over_white = rgb * alpha[:, None] + 255.0 * (1.0 - alpha[:, None])
    grey = over_white @ np.array([0.299, 0.587, 0.114])  # ITU-R 601, as PIL's "L"
    lut = np.clip(np.rint(grey), 0, 255).astype(np.uint8)
    # Grey palette entries convert to exactly themselves. The image is this upload's own, so its
    # palette is changed in place rather than copied at full size.
    im.putpalette(np.repeat(lut, 3).tolist())
    im.info.pop("transparency", None)
    return im.convert("L")


def shrink(im: Image.Image) -> Image.Image:
    """The decoded picture reduced to at most WORK_SIDE px on its longest side (box filter, any
    mode, 16-bit included), with its EXIF orientation applied. Only this small copy is worked on."""
    if im.mode in ("P", "1"):
        im = _palette_to_grey(im)
    if max(im.size) > WORK_SIDE:
        scale = WORK_SIDE / max(im.size)
        size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
        im = im.resize(size, Image.Resampling.BOX)
    try:
        im = ImageOps.exif_transpose(im)
    except Exception:  # broken EXIF on good pixels: use the pixels as stored
        pass
    return im


def to_grey(im: Image.Image) -> np.ndarray:
    """Any PIL mode -> (H, W) float32 in [0, 1], 0 black, transparent parts as white paper."""
    if im.mode in ("P", "1"):
        im = _palette_to_grey(im)
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        im = im.convert("RGBA")
        paper = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(paper, im)
    if im.mode.startswith("I;16") or im.mode == "I":
        a = np.asarray(im, dtype=np.float32) / 65535.0  # 16-bit grey
    elif im.mode == "F":
        a = np.asarray(im, dtype=np.float32)
        lo, hi = np.nanmin(a), np.nanmax(a)
        a = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
    else:
        a = np.asarray(im.convert("L"), dtype=np.float32) / 255.0  # CMYK, RGB, YCbCr, L
    return np.nan_to_num(np.clip(a, 0.0, 1.0)).astype(np.float32)


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
    """Raw upload bytes -> (1, 28, 28) float32 in [0, 1], light ink on black, MNIST-style.
    At most ``DECODE_SLOTS`` run at once; the rest wait."""
    with DECODE_SLOTS:
        im = shrink(open_image(content))
        try:
            grey = to_grey(im)
        except Exception:  # e.g. a mode PIL decodes but cannot convert
            raise UploadError("the image's colour format cannot be converted to grey") from None
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
    # Which exact model made the codes the store keeps for it: its family and checkpoint hash.
    model_key: str = ""
    uploads: dict[int, Upload] = field(default_factory=dict)
    # Who saved a row, for the store's per-session rate limit.
    session_id: str = field(default_factory=lambda: uuid.uuid4().hex)

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

    @torch.no_grad()
    def join_store(self, store, dataset: str) -> int:
        """Add the shared store's saved exemplars to this session (marked shared); their count.
        Their codes are read from the store; rows it holds no code of this model for are encoded
        once, in one batch, and their codes stored for the next session."""
        saved = store.load(dataset, model=self.model_key or None)
        if not len(saved["ids"]):
            return 0
        codes = saved["codes"]
        missing = [i for i, c in enumerate(codes) if c is None or c.shape != (self.base.dim,)]
        if missing:
            fresh = self.model.encode(torch.from_numpy(saved["images"][missing])[:, None]).numpy()
            for i, code in zip(missing, fresh):
                codes[i] = code
            if self.model_key:
                store.put_codes(self.model_key, saved["ids"][missing], fresh)
        codes = torch.from_numpy(np.stack(codes).astype(np.float32))
        uids = self.own.add(codes, saved["labels"])
        for uid, image, code, label, name in zip(uids, saved["images"], codes, saved["labels"], saved["names"]):
            self.uploads[int(uid)] = Upload(int(uid), str(name), torch.from_numpy(image)[None], code,
                                            int(label), shared=True)
        return len(uids)

    def save_to_store(self, store, dataset: str) -> list[str]:
        """Save this session's unshared uploads to the shared store, with their codes; the
        store's ids of them. A refusal (a limit, an unreadable store) raises its plain error."""
        mine = [u for u in self.uploads.values() if not u.shared]
        if not mine:
            return []
        uids = store.add(dataset, torch.stack([u.image[0] for u in mine]).numpy(), [u.label for u in mine],
                         [u.name for u in mine], session=self.session_id, model=self.model_key or None,
                         codes=torch.stack([u.code for u in mine]).numpy())
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
