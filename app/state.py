"""What pages share: the chosen dataset, and models and data loaded once per process."""

from __future__ import annotations

import logging
import threading

import numpy as np
import streamlit as st

from core import data, figures, images, interpolation, neighbors, pretrained, projection


def dataset() -> str:
    """The dataset picked in the sidebar (kept in the URL, so a link reopens the same view)."""
    return st.session_state.get("dataset", data.DEFAULT_DATASET)


@st.cache_resource(show_spinner="Loading the dataset…")
def load_dataset(name: str, split: str) -> data.ImageDataset:
    return data.load(name, split)


@st.cache_resource(show_spinner="Loading the model…")
def load_model(model: str, name: str):
    """The shipped model (sha256-verified) and its manifest entry, loaded once per process."""
    return pretrained.load(model, name)


@st.cache_data(max_entries=64, show_spinner=False)
def super_resolution(name: str, image: np.ndarray) -> dict[int, dict[str, np.ndarray]]:
    """The implicit GON's renders of one image (28, 28) in [0, 1] at every size. At the paper's width
    that is about a second of CPU, so it is kept for the reruns that leave the image as it was
    (a slider moved, another endpoint picked)."""
    model, _ = load_model("implicit_gon", name)
    return interpolation.super_resolution(model, image)


@st.cache_data
def class_grid(name: str, per_class: int = 10) -> np.ndarray:
    ds = load_dataset(name, "train")
    return images.grid(images.class_examples(ds, per_class), nrow=per_class)


def manifest() -> list[dict]:
    try:
        return pretrained.read_manifest()
    except pretrained.ArtifactError as exc:
        st.error(str(exc))
        return []


def dataset_or_stop(name: str, split: str = "train") -> data.ImageDataset:
    """The dataset, or a plain message and the end of this page's run."""
    try:
        return load_dataset(name, split)
    except (data.DatasetNotFoundError, ValueError) as exc:
        st.error(str(exc))
        st.stop()


def model_or_stop(model: str, name: str):
    try:
        return load_model(model, name)
    except (pretrained.ArtifactError, ValueError, OSError) as exc:
        st.error(str(exc))
        st.stop()


@st.cache_resource(show_spinner="Loading the map…")
def load_map(model: str, name: str) -> dict:
    return pretrained.load_map(model, name)


@st.cache_resource(show_spinner="Encoding every image once, for neighbours…")
def latents(model: str, name: str) -> dict:
    """Latent codes of every image (the map's order) and a faiss index over them."""
    net, _ = load_model(model, name)
    codes = projection.encode_all(net, name)  # only codes: the map already holds the errors
    return {"codes": codes, "index": neighbors.flat_index(codes)}


def shipped(kind: str, model: str, name: str) -> bool:
    return any(e["kind"] == kind and e["model"] == model and e["dataset"] == name for e in manifest())


@st.cache_resource(show_spinner=False)
def neighbour_table(model: str, name: str) -> dict | None:
    """Every image's nearest others under ``model`` (``python -m core neighbour-table``), or None
    where none is shipped."""
    return pretrained.load_arrays("knn", model, name)[0] if shipped("knn", model, name) else None


def nearest(model: str, name: str, point: int, k: int) -> list[tuple[int, float]]:
    """Image ``point``'s k nearest other images in ``model``'s latent space: (index, distance).
    A lookup in the shipped table; without one, every image is encoded once per process."""
    table = neighbour_table(model, name)
    if table is not None and table["index"].shape[1] >= k:
        return [(int(i), float(d)) for i, d in zip(table["index"][point, :k], table["distance"][point, :k])]
    codes = latents(model, name)
    return projection.nearest_exemplars(codes["codes"], point, k, index=codes["index"])


@st.cache_resource(show_spinner="Preparing the map for the browser…")
def map_assets(name: str) -> dict:
    """URLs of what every map of ``name`` shares in the browser: plotly.js, the pixels, labels."""
    from app import map_assets as assets

    return {"plotly": assets.plotly_js(), "images": assets.images(name), "labels": assets.labels(name),
            "clusters": assets.clusters(name, load_map("swav", name)) if shipped("map", "swav", name) else None}


@st.cache_resource(show_spinner="Preparing the map for the browser…")
def map_coordinates(model: str, name: str) -> dict:
    from app import map_assets as assets

    url, has_recon = assets.map_coordinates(model, name, load_map(model, name))
    return {"name": model, "url": url, "has_recon": has_recon}


@st.cache_resource(show_spinner="Indexing every image's latent code…")
def latent_index(model: str, name: str):
    """The shared exemplar index of a model on a dataset (ids are map indices). Shared by every
    session, so nothing may change it: a session's uploads go into an index of its own."""
    from core.latent_index import LatentIndex

    return LatentIndex.from_codes(latents(model, name)["codes"], projection.all_labels(name))


def map_figure(model: str, name: str, colour: str, highlight: tuple[int, ...] = ()):
    """Built every run, not cached: 70k points take ~15 ms, and each selection rings others."""
    arrays, ds = load_map(model, name), load_dataset(name, "train")
    labels = projection.all_labels(name).numpy()
    values = {"recon_error": lambda: arrays.get("recon_error"),  # a SwAV map has no decoder errors
              "split": lambda: np.arange(len(labels)) >= len(ds),
              "swav_cluster": lambda: swav_clusters(name)}.get(colour, lambda: None)()
    if values is None and colour in ("recon_error", "swav_cluster"):
        st.info(f"{figures.COLOURINGS[colour]} is not available here "
                + ("(this model has no decoder)" if colour == "recon_error" else
                   f"(no SwAV map is shipped for {name}: `python -m core map swav --dataset {name}`)")
                + "; coloured by class instead.")
        colour = "label"
    return figures.latent_map(arrays["coords"], labels, ds.classes, colour, values, list(highlight))


def swav_clusters(name: str) -> np.ndarray | None:
    """Every image's SwAV cluster (the map's order), shipped with the swav map; None without one."""
    shipped = any(e["kind"] == "map" and e["model"] == "swav" and e["dataset"] == name for e in manifest())
    return load_map("swav", name)["cluster"].astype(np.int64) if shipped else None


def maps_or_stop(name: str) -> list[str]:
    """Models with a shipped map for this dataset, or a plain message and the end of the run."""
    shipped = [e["model"] for e in manifest() if e["kind"] == "map" and e["dataset"] == name]
    if not shipped:
        st.info(f"No map is shipped for {name} yet. Make one with "
                f"`python -m core map vae --dataset {name}`.")
        st.stop()
    return shipped


@st.cache_resource(show_spinner="BurnIn: scoring 10,000 GAN samples…")
def drs_max_logit(name: str) -> float:
    """D̃*_M of the shipped GAN, from the BurnIn draw (seeded, so every session starts alike)."""
    from core import drs
    import torch

    gan, _ = load_model("gan", name)
    return drs.burn_in(gan, drs.BURN_IN_SAMPLES, torch.Generator().manual_seed(0))


@st.cache_resource(show_spinner="Drawing and scoring samples…", max_entries=8)
def drs_draw(name: str, n: int, seed: int):
    """N samples scored once; every γ slider move only re-thresholds these scores. A resource,
    not data: pages only read it, and unpickling 5,000 images on every slider move is waste."""
    from core import drs
    import torch

    gan, _ = load_model("gan", name)
    return drs.draw(gan, n, drs_max_logit(name), torch.Generator().manual_seed(seed))


@st.cache_resource
def all_images(name: str):
    """Every train then test image (the maps' order), concatenated once per process."""
    return projection.all_images(name)


@st.cache_resource(show_spinner="Loading the study…")
def load_study(study: str, name: str):
    return pretrained.load_study(study, name)


def presenting() -> bool:
    """?present=1: the app laid out for a talk (large type, no sidebar, pages along the top).
    Kept for the session, because moving to another page starts a fresh query string;
    ?present=0 leaves it."""
    value = st.query_params.get("present")
    if value is not None:
        st.session_state.presenting = value in ("1", "true", "yes")
    return st.session_state.get("presenting", False)


DRS_FIRST_DRAW = (1000, 1)  # the Rejection sampling page's default draw: (samples, seed)


@st.cache_resource(show_spinner=False)
def warm_up() -> threading.Thread:
    """Started once per server, by its first visit: loads in the background what each page's
    first visit would otherwise wait for (datasets, models, the map's browser files, the GAN's
    BurnIn and first draw), the default dataset first. Every step is one of the caches above, so
    a page that gets there first simply waits for the same result."""
    entries = manifest()

    def load_everything() -> None:
        # These caches are filled outside any page run; Streamlit's note about that is noise here.
        logging.getLogger("streamlit.runtime.scriptrunner_utils.script_run_context").setLevel(logging.ERROR)
        for name in sorted(data.DATASETS, key=lambda d: d != data.DEFAULT_DATASET):
            shipped_here = [e for e in entries if e["dataset"] == name]
            steps = [lambda: load_dataset(name, "train"), lambda: load_dataset(name, "test"),
                     lambda: all_images(name), lambda: class_grid(name), lambda: map_assets(name)]
            for e in shipped_here:
                if e["kind"] == "checkpoint":
                    steps.append(lambda e=e: load_model(e["model"], name))
                elif e["kind"] == "map":
                    steps.append(lambda e=e: map_coordinates(e["model"], name))
                elif e["kind"] == "knn":
                    steps.append(lambda e=e: neighbour_table(e["model"], name))
            if any(e["kind"] == "checkpoint" and e["model"] == "gan" for e in shipped_here):
                steps += [lambda: drs_max_logit(name), lambda: drs_draw(name, *DRS_FIRST_DRAW)]
            for step in steps:
                try:
                    step()
                except Exception:  # a missing artifact: the page that needs it says so itself
                    logging.getLogger(__name__).warning("warm-up step failed", exc_info=True)

    thread = threading.Thread(target=load_everything, name="latent-lab-warm-up", daemon=True)
    thread.start()
    return thread
