"""The latent map as a Streamlit v2 component (``latent_map.js``): hover thumbnails, zoom, pan,
box and lasso selection and their rings all happen in the browser. Python hears of a click or a
finished selection once, as a trigger, and answers with the image, neighbours or gallery."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

HERE = Path(__file__).resolve().parent

_component = st.components.v2.component(
    "latent_lab_map",
    html='<div class="ll-root"></div>',
    css=(HERE / "latent_map.css").read_text(),
    js=(HERE / "latent_map.js").read_text(),
    isolate_styles=False,  # plotly.js styles its toolbar and legend from the page's <head>
)


def latent_map(key: str, data: dict, on_event) -> dict:
    """Mount the map. ``data`` is what ``latent_map.js`` documents; ``on_event`` runs (before the
    rerun) when the browser sends a click or a selection. Returns the triggers of this run:
    ``{"click": index or None, "selection": [indices] or None}``."""
    result = _component(key=key, data=data, on_click_change=on_event, on_selection_change=on_event)
    return {"click": result.get("click"), "selection": result.get("selection")}
