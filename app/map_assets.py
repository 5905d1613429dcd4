"""The files the latent map's browser component fetches once and keeps: plotly.js, every image's
pixels (for hover thumbnails), every map's coordinates, the labels and the SwAV clusters.

Streamlit serves ``app/static/`` at ``/app/static/`` (``server.enableStaticServing``). The files
are written there on first use, atomically, under names that change when their content does, so
a browser's copy is never stale. They are derived from ``pretrained/`` and the datasets: nothing
here is shipped, and ``app/static/generated/`` is not in git.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from core import pretrained, projection

GENERATED = Path(__file__).resolve().parent / "static" / "generated"
URL_PREFIX = "app/static/generated"  # below the app's root URL


def _write_once(name: str, make_bytes) -> str:
    """The URL of ``GENERATED / name``, writing it first if it is not there yet."""
    path = GENERATED / name
    if not path.exists():
        GENERATED.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=GENERATED)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(make_bytes())
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)  # concurrent sessions write the same bytes; either rename wins
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return f"{URL_PREFIX}/{name}"


def plotly_js() -> str:
    """plotly.js as the pinned plotly package ships it (the same build `st.plotly_chart` uses
    offline), so the map never asks a CDN for it."""
    import plotly
    from plotly.offline import get_plotlyjs

    return _write_once(f"plotly-{plotly.__version__}.min.js", lambda: get_plotlyjs().encode())


def images(dataset: str) -> str:
    """Every image of ``dataset`` in the maps' order, (N, 28·28) uint8, gzipped: 28 MB for
    Fashion-MNIST's 70k, fetched once per browser so that hover never asks the server."""
    pixels = (projection.all_images(dataset) * 255).round().to(torch.uint8)
    raw = pixels.reshape(len(pixels), -1).numpy()
    digest = hashlib.sha256(raw.tobytes()).hexdigest()[:12]
    return _write_once(f"images-{dataset}-{digest}.u8.gz", lambda: gzip.compress(raw.tobytes(), compresslevel=1))


def labels(dataset: str) -> str:
    raw = projection.all_labels(dataset).numpy().astype(np.uint8)
    return _write_once(f"labels-{dataset}-{hashlib.sha256(raw.tobytes()).hexdigest()[:12]}.u8", raw.tobytes)


def map_coordinates(model: str, dataset: str, arrays: dict[str, np.ndarray]) -> tuple[str, bool]:
    """A shipped map as float32: every x, then every y, then (where the model has a decoder)
    every reconstruction error. Named by the map's sha256. Returns the URL and whether the
    errors are there."""
    sha = pretrained.find(model, dataset, kind="map")["sha256"][:12]
    has_recon = "recon_error" in arrays

    def pack() -> bytes:
        columns = [arrays["coords"][:, 0], arrays["coords"][:, 1]]
        if has_recon:
            columns.append(arrays["recon_error"])
        return np.concatenate([np.asarray(c, dtype="<f4") for c in columns]).tobytes()

    return _write_once(f"map-{model}-{dataset}-{sha}.f32", pack), has_recon


def clusters(dataset: str, arrays: dict[str, np.ndarray]) -> str:
    """Every image's SwAV cluster (uint8: at most 256 prototypes), from the shipped swav map."""
    sha = pretrained.find("swav", dataset, kind="map")["sha256"][:12]
    raw = arrays["cluster"].astype(np.uint8)
    return _write_once(f"clusters-{dataset}-{sha}.u8", raw.tobytes)
