"""One upload's decode costs a bounded amount of memory, whatever its format (issue 22, item 1).

Each format is tried at the largest size ``core.uploads`` accepts for it: real files, full size,
cheap to send (a 16-bit PNG of 40 megapixels is under 100 KB). A child process measures the peak
resident memory that ``preprocess`` adds for each file. Files past a format's budget are refused
from their header, before any pixel is decoded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core import uploads

PEAK_BOUND_MB = 100  # the "about 100 MB" per upload


def drawing(side: int) -> np.ndarray:
    """A dark bar on white paper: a "1" that survives any reduction."""
    a = np.full((side, side), 255, np.uint8)
    a[side // 4 : 3 * side // 4, side // 2 - side // 20 : side // 2 + side // 20] = 0
    return a


def write(path: Path, side: int, mode: str, fmt: str, **options) -> Path:
    grey = drawing(side)
    if mode == "I;16":
        im = Image.fromarray(grey.astype(np.uint16) * 257)
    else:
        im = Image.fromarray(grey).convert(mode)
    im.save(path, fmt, **options)
    return path


# (file name, side, PIL mode, format, save options): each at, or just under, its format's cap.
AT_THE_CAP = [
    ("grey-8bit.png", 6300, "L", "PNG", {}),
    ("grey-16bit.png", 6300, "I;16", "PNG", {}),
    ("colour.png", 4470, "RGB", "PNG", {}),
    ("alpha.png", 3160, "RGBA", "PNG", {}),
    ("palette.gif", 6300, "P", "GIF", {}),
    ("lossless.webp", 2230, "RGB", "WEBP", {"lossless": True}),
    ("lossy.webp", 2230, "RGB", "WEBP", {"quality": 50}),
    ("baseline.jpg", 6300, "RGB", "JPEG", {"quality": 50}),
    ("progressive.jpg", 3600, "RGB", "JPEG", {"quality": 50, "progressive": True}),
    ("one-bit.bmp", 6300, "1", "BMP", {}),
]
PAST_THE_BUDGET = [
    ("grey-16bit-over.png", 6400, "I;16", "PNG", {}),  # 41 Mpx: the pixel cap
    ("colour-over.png", 6300, "RGB", "PNG", {}),
    ("lossless-over.webp", 6300, "RGB", "WEBP", {"lossless": True}),
    ("progressive-over.jpg", 6300, "RGB", "JPEG", {"quality": 50, "progressive": True}),
]

# Peak RSS of one call, in a fresh process. A fixed mmap threshold makes glibc hand every large
# buffer back when it is freed, so one file's memory cannot hide the next file's.
MEASURE = """
import json, sys, time
from core import uploads
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) / 1024
for path in sys.argv[1:]:
    content = open(path, "rb").read()
    open("/proc/self/clear_refs", "w").write("5")  # resets VmHWM, the peak, to now
    before, start = status("VmRSS:"), time.perf_counter()
    try:
        uploads.preprocess(content)
        error = None
    except uploads.UploadError as exc:
        error = str(exc)
    print(json.dumps({"file": path, "error": error, "peak_mb": status("VmHWM:") - before,
                      "seconds": time.perf_counter() - start}), flush=True)
"""


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    folder = tmp_path_factory.mktemp("decode-cost")
    paths = [write(folder / name, side, mode, fmt, **options)
             for name, side, mode, fmt, options in AT_THE_CAP + PAST_THE_BUDGET]
    for path in paths:
        assert path.stat().st_size <= uploads.MAX_BYTES, path.name  # each is a legal upload
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(128 * 1024)}
    done = subprocess.run([sys.executable, "-c", MEASURE, *map(str, paths)], capture_output=True,
                          text=True, timeout=300, env=env, cwd=Path(__file__).parent.parent)
    assert done.returncode == 0, done.stderr[-2000:]
    return {Path(r["file"]).name: r for r in map(json.loads, done.stdout.splitlines())}


@pytest.mark.parametrize("name", [case[0] for case in AT_THE_CAP])
def test_every_format_at_its_cap_decodes_within_the_memory_bound(measured, name):
    result = measured[name]
    assert result["error"] is None, result["error"]
    assert result["peak_mb"] <= PEAK_BOUND_MB, f"{name}: +{result['peak_mb']:.0f} MB"


@pytest.mark.parametrize("name", [case[0] for case in PAST_THE_BUDGET])
def test_files_past_the_budget_are_refused_from_the_header(measured, name):
    result = measured[name]
    assert result["error"] and ("megapixels" in result["error"])
    assert result["peak_mb"] < 10  # refused before decoding: no full-size buffer was made


def test_the_caps_are_near_the_budget_not_far_below_it():
    """The accepted sizes above sit within 20% of the decode budget, so the bound is tested where
    it binds, not on files that are small anyway."""
    for name, side, mode, fmt, _ in AT_THE_CAP:
        im = Image.new(mode, (side, side))
        im.format = fmt
        if fmt == "JPEG":  # the header's mode and progressiveness, as PIL reads them from a file
            continue
        need = uploads.decoded_bytes(im, im.size)
        assert need <= uploads.DECODE_BUDGET
        assert need >= 0.8 * uploads.DECODE_BUDGET or side * side >= 0.99 * uploads.MAX_PIXELS, name
