"""Images the upload tests make themselves: printed and drawn digits, photograph-like pictures in
every mode and container an upload can come in, and broken or hostile files."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image, ImageDraw, ImageFont


def encode(im: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buffer = io.BytesIO()
    im.save(buffer, fmt, **kw)
    return buffer.getvalue()


def printed_digit(d: int, side: int = 300, stroke: int = 4) -> Image.Image:
    """A digit in PIL's default (scalable) font, black on white."""
    im = Image.new("L", (side, side), 255)
    font = ImageFont.load_default(size=side * 2 // 3)
    ImageDraw.Draw(im).text((side / 2, side / 2), str(d), fill=0, font=font, anchor="mm",
                            stroke_width=stroke * side // 300, stroke_fill=0)
    return im


# Thick pen strokes, as a person draws them (in a 100x100 box).
STROKES = {
    0: [("ellipse", (30, 10, 70, 90))],
    1: [("line", [(50, 10), (50, 90)])],
    4: [("line", [(60, 10), (20, 65), (80, 65)]), ("line", [(60, 10), (60, 90)])],
    7: [("line", [(20, 12), (80, 12), (40, 90)])],
}


def drawn_digit(d: int, side: int = 400, width: int = 10) -> Image.Image:
    im = Image.new("L", (side, side), 255)
    draw = ImageDraw.Draw(im)
    s = side / 100
    for shape, points in STROKES[d]:
        if shape == "ellipse":
            draw.ellipse([p * s for p in points], outline=0, width=int(width * s))
        else:
            draw.line([(x * s, y * s) for x, y in points], fill=0, width=int(width * s), joint="curve")
    return im


def photographed(im: Image.Image, seed: int = 0) -> Image.Image:
    """Dark ink on light, unevenly lit, grainy paper, in colour: what a phone camera gives."""
    rng = np.random.default_rng(seed)
    a = np.asarray(im.convert("L"), np.float32) * 0.65 + 60  # ink ~60, paper ~225
    h, w = a.shape
    a = a + np.linspace(-15, 15, w)[None, :] + np.linspace(-10, 10, h)[:, None] + rng.normal(0, 6, a.shape)
    rgb = np.stack([a + 8, a + 4, a - 6], axis=-1)  # a warm paper tint
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB")


def exif_rotated_jpeg(im: Image.Image) -> bytes:
    """The pixels stored rotated, with EXIF orientation 6 ('rotate 90 CW to view'), as phones do."""
    stored = im.transpose(Image.Transpose.ROTATE_90)  # counter-clockwise; viewing turns it back
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(stored, "JPEG", quality=92, exif=exif.tobytes())


def rgba_ink(im: Image.Image) -> bytes:
    """Black ink on a fully transparent background (as drawing apps export): white once composited."""
    ink = 255 - np.asarray(im.convert("L"))
    rgba = np.zeros((*ink.shape, 4), np.uint8)
    rgba[..., 3] = ink
    return encode(Image.fromarray(rgba, "RGBA"))


def cmyk_jpeg(im: Image.Image) -> bytes:
    return encode(im.convert("RGB").convert("CMYK"), "JPEG", quality=92)


def sixteen_bit_png(im: Image.Image) -> bytes:
    a = np.asarray(im.convert("L"), np.uint16) * 257  # 0..65535
    im16 = Image.fromarray(a.astype(np.uint16))  # mode I;16
    assert im16.mode.startswith("I;16"), im16.mode
    return encode(im16)


def animated_gif(im: Image.Image) -> bytes:
    blank = Image.new("L", im.size, 255)
    return encode(im.convert("L"), "GIF", save_all=True, append_images=[blank], duration=100, loop=0)


def png_with_size(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` (a decompression bomb's header)."""
    data = bytearray(encode(Image.new("L", (1, 1), 255)))
    ihdr = 8 + 8  # signature, then the IHDR chunk's length and type
    data[ihdr : ihdr + 8] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr - 4 : ihdr + 13]))
    data[ihdr + 13 : ihdr + 17] = struct.pack(">I", crc)
    return bytes(data)


def real_png_bomb(side: int = 7000) -> bytes:
    """A genuine 49-megapixel white PNG: a few kB on disk, 49 MB once decoded."""
    raw = b"".join(b"\x00" + b"\xff" * side for _ in range(side))  # filter byte + one row
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9))
            + chunk(b"IEND", b""))


SVG = b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="28" height="28"><text>7</text></svg>'
HTML = b"<!DOCTYPE html>\n<html><body><img src=x onerror=alert(1)></body></html>"
