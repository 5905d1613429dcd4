"""What pages share: the chosen dataset, and models and data loaded once per process."""

from __future__ import annotations

import numpy as np
import streamlit as st

from core import data, figures, images, neighbors, pretrained, projection


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


def map_figure(model: str, name: str, colour: str, highlight: tuple[int, ...] = ()):
    """Built every run, not cached: 70k points take ~15 ms, and each selection rings others."""
    arrays, ds = load_map(model, name), load_dataset(name, "train")
    labels = projection.all_labels(name).numpy()
    values = {"recon_error": arrays["recon_error"],
              "split": np.arange(len(labels)) >= len(ds)}.get(colour)
    return figures.latent_map(arrays["coords"], labels, ds.classes, colour, values, list(highlight))


def maps_or_stop(name: str) -> list[str]:
    """Models with a shipped map for this dataset, or a plain message and the end of the run."""
    shipped = [e["model"] for e in manifest() if e["kind"] == "map" and e["dataset"] == name]
    if not shipped:
        st.info(f"No map is shipped for {name} yet. Make one with "
                f"`python -m core map vae --dataset {name}`.")
        st.stop()
    return shipped
