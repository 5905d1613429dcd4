"""Issue 9, item 6: a thousand uploads in one session keep the process's memory growth bounded.

The bound (stated in the README) is 100 MB over the 1,000 uploads, after a warm-up of 20: an
upload keeps its 28×28 image, its code and one row of the session's index (a few KB), so growth
far beyond that would mean something holds what it should not.
"""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from core import latent_index, pretrained, uploads

GROWTH_BOUND_MB = 100.0


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise OSError("no VmRSS")


def photo(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    a = np.full((200, 160), 235, np.uint8)
    x0, y0 = rng.integers(20, 60, 2)
    a[y0 : y0 + 120, x0 : x0 + 18] = 30  # a dark stroke on light paper: a "1"
    buffer = io.BytesIO()
    Image.fromarray(a).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.slow
def test_thousand_uploads_in_one_session_stay_under_the_memory_bound():
    model, _ = pretrained.load("exemplar_vae", "mnist")
    session = uploads.UploadSession(model, latent_index.for_dataset(model, "mnist"))
    generator = torch.Generator().manual_seed(0)

    def one(i: int):
        upload = session.add_file(photo(i), f"photo-{i}.png")
        session.neighbors(upload.code, 10, exclude=upload.id)
        session.around(upload.id, 16, generator=generator)

    for i in range(20):
        one(i)
    before = rss_mb()
    for i in range(20, 1020):
        one(i)
    growth = rss_mb() - before
    print(f"memory growth over 1,000 uploads: {growth:.1f} MB")
    assert len(session.uploads) == 1020
    assert growth < GROWTH_BOUND_MB
