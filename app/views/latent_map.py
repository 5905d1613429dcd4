import csv
import io

import numpy as np
import streamlit as st
import torch
from PIL import Image

from app import state, url_params
from app.components.latent_map import latent_map
from core import figures, images, projection

MAX_GALLERY = 100  # images shown for a box or lasso selection
MAX_RINGED = 2000  # selected points ringed on the maps: enough to see, small enough to draw
K_NEIGHBOURS = 8
NO_COMPARE = "—"
NO_HIGHLIGHT = "—"

name = state.dataset()
presenting = state.presenting()
st.title("Latent map")
models = state.maps_or_stop(name)
ds = state.load_dataset(name, "train")
labels = projection.all_labels(name)
classes = list(ds.classes)

# The URL seeds the controls once per session; afterwards the controls own their values (each
# has a key) and write them back, so a copied link reopens the same view.
if st.session_state.get("map_model_request") in models:  # another page asked for this model's map
    st.session_state.map_model = st.session_state.pop("map_model_request")
url_params.seed("map_model", "model", models, models[0])
url_params.seed("map_compare", "compare", [NO_COMPARE, *models], NO_COMPARE)
url_params.seed("map_colour", "colour", list(figures.COLOURINGS), "label")
url_params.seed_index("map_point", "point", len(labels))
if st.session_state.map_model not in models:  # another dataset ships other maps
    st.session_state.map_model = models[0]
st.session_state.setdefault("map_selection", [])
st.session_state.setdefault("map_focus", None)
url_params.show_notes()


def keep_a_model() -> None:
    """A segmented control can be clicked off; the map always shows one model."""
    if st.session_state.map_model is None:
        st.session_state.map_model = st.session_state.get("map_model_shown", models[0])


def go_to() -> None:
    index = st.session_state.map_goto
    if index is not None:
        choose_point(int(index))
        st.session_state.map_focus = {"index": int(index), "token": st.session_state.get("map_focus_token", 0) + 1}
        st.session_state.map_focus_token = st.session_state.map_focus["token"]


def choose_point(index: int) -> None:
    st.session_state.map_point = index
    st.session_state.map_selection = []


def on_map_event() -> None:
    """A click or a finished box/lasso in the browser: the one rerun it costs starts here."""
    event = st.session_state.get("map_canvas") or {}
    click, selection = image_index(event.get("click")), event.get("selection")
    if click is not None:
        choose_point(click)
    elif isinstance(selection, list):  # what the browser sent is checked like any other input
        chosen = [i for i in map(image_index, selection[: len(labels)]) if i is not None]
        if len(chosen) == 1:
            choose_point(chosen[0])
        else:  # a selection replaces the clicked image: clearing it leaves nothing chosen
            st.session_state.map_selection, st.session_state.map_point = chosen, None


def image_index(value) -> int | None:
    """``value`` as an image number of this dataset, or None."""
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(labels) else None


def clear_selection() -> None:
    st.session_state.map_selection = []


@st.fragment
def explorer() -> None:
    """Controls, map and what a click or selection shows: a click reruns only this."""
    pick_model, pick_other, pick_colour, pick_class = st.columns([3, 2, 2, 2])
    model = pick_model.segmented_control("Model", models, key="map_model", on_change=keep_a_model)
    st.session_state.map_model_shown = model
    other = pick_other.selectbox("Compare with", [NO_COMPARE, *[m for m in models if m != model]], key="map_compare")
    colour = pick_colour.selectbox("Colour by", list(figures.COLOURINGS), format_func=figures.COLOURINGS.get,
                                   key="map_colour")
    highlight = pick_class.selectbox("Highlight a class", [NO_HIGHLIGHT, *classes], key="map_highlight")
    with st.expander("Find and display", expanded=False):
        find, size, opacity = st.columns(3)
        find.number_input("Go to image #", min_value=0, max_value=len(labels) - 1, value=None, step=1,
                          key="map_goto", on_change=go_to, placeholder=f"0 to {len(labels) - 1:,}")
        size.slider("Point size", 1, 12, 6 if presenting else 3, key="map_size")
        opacity.slider("Point opacity", 0.1, 1.0, 0.7, 0.05, key="map_opacity")

    shown = [model] + ([other] if other not in (NO_COMPARE, model) else [])
    query = st.query_params
    query["model"], query["colour"] = model, colour
    if len(shown) > 1:
        query["compare"] = other
    else:
        query.pop("compare", None)
    if colour == "recon_error" and not all(state.map_coordinates(m, name)["has_recon"] for m in shown):
        st.info("SwAV has no decoder, so its map has no reconstruction errors; it is coloured by class.")
    if colour == "swav_cluster" and not state.shipped("map", "swav", name):
        st.info(f"No SwAV map is shipped for {name}; the map is coloured by class.")
        colour = "label"

    point, selection = st.session_state.map_point, st.session_state.map_selection
    if point is not None:
        query["point"] = str(point)
    else:
        query.pop("point", None)
    ringed = selection[:MAX_RINGED] if selection else ([point] if point is not None else [])
    latent_map("map_canvas", on_event=on_map_event, data={
        **state.map_assets(name), "classes": classes, "n_train": len(ds),
        "maps": [state.map_coordinates(m, name) for m in shown], "colour": colour, "ringed": ringed,
        "focus": st.session_state.map_focus, "highlight": classes.index(highlight) if highlight in classes else None,
        "size": st.session_state.map_size, "opacity": st.session_state.map_opacity,
        "height": 800 if presenting else 640, "present": presenting, "max_ringed": MAX_RINGED,
        "palette": figures.CLASS_PALETTE, "cluster_palette": figures.CLUSTER_PALETTE})

    entry = next(e for e in state.manifest() if e["kind"] == "map" and e["model"] == model and e["dataset"] == name)
    m = entry["metrics"]
    st.caption(f"{m['points']:,} images, train and test. Trustworthiness {m['trustworthiness']:.3f} "
               f"(k={projection.QUALITY_NEIGHBORS}, {m['trustworthiness_sample']:,}-point sample); 5-NN "
               f"accuracy on the map {m['knn_accuracy_2d']:.3f}, in the latent space "
               f"{m['knn_accuracy_latent']:.3f}. Hover to see an image, click it for its neighbours, "
               "or pick Box or Lasso Select in the map's toolbar and draw.")
    if selection:
        show_selection(selection)
    elif point is not None:
        show_point(model, point)


def show_selection(chosen: list[int]) -> None:
    st.subheader(f"Selection: {len(chosen):,} images")
    picked = np.asarray(chosen)
    clear, as_csv, as_png = st.columns([1, 1, 1])
    clear.button("Clear the selection", on_click=clear_selection, icon=":material/close:")
    table = io.StringIO()
    writer = csv.writer(table)
    writer.writerow(["index", "split", "label", "class"])
    for i in picked.tolist():
        label = int(labels[i])
        writer.writerow([i, "test" if i >= len(ds) else "train", label, classes[label]])
    as_csv.download_button("Download indices and labels (CSV)", table.getvalue(), f"selection-{name}.csv",
                           "text/csv", icon=":material/download:")
    gallery_pixels = images.grid(state.all_images(name)[picked[:MAX_GALLERY]], nrow=10)
    png = io.BytesIO()
    Image.fromarray(gallery_pixels).save(png, format="PNG")
    as_png.download_button("Download the gallery (PNG)", png.getvalue(), f"selection-{name}.png", "image/png",
                           icon=":material/image:")
    gallery, histogram = st.columns([3, 2])
    gallery.image(gallery_pixels, caption=f"the first {min(len(chosen), MAX_GALLERY)} of {len(chosen):,}")
    histogram.plotly_chart(figures.label_histogram(labels[picked].numpy(), ds.classes, large=presenting))


def show_point(model_name: str, point: int) -> None:
    model, _ = state.load_model(model_name, name)
    x = state.all_images(name)[point : point + 1]
    split = "test" if point >= len(ds) else "train"
    st.subheader(f"Image #{point} ({split}): {classes[int(labels[point])]}")
    near = state.nearest(model_name, name, point, K_NEIGHBOURS)
    scale = 6 if presenting else 4
    left, right = st.columns([1, 3])
    if hasattr(model, "reconstruct"):
        left.image(images.grid(torch.cat([x, model.reconstruct(x)]), nrow=2, scale=scale),
                   caption="the image and its reconstruction")
    else:  # SwAV has no decoder
        left.image(images.grid(x, nrow=1, scale=scale), caption="the image")
    right.markdown(f"**Nearest in {model_name}'s latent space** (L2 distance)")
    for column, (i, d) in zip(right.columns(K_NEIGHBOURS), near):
        column.image(images.grid(state.all_images(name)[i : i + 1], nrow=1, scale=scale - 1, padding=0),
                     caption=f"#{i} {classes[int(labels[i])]} · {d:.2f}")
    keep, go = st.columns([1, 3])
    if keep.button("Use as interpolation endpoint", key=f"endpoint-{name}-{point}"):
        ends = list(st.session_state.get("interpolation_endpoints", []))
        ends.append({"image": x[0, 0].numpy().astype("float32"),
                     "caption": f"map #{point} {classes[int(labels[point])]}"})
        st.session_state["interpolation_endpoints"] = ends[-2:]  # the convention: 2 kept, newest last
        go.page_link("views/interpolate.py", label="Interpolate between the last two kept",
                     icon=":material/linear_scale:")
    if model_name == "exemplar_vae" and st.button("Generate around this"):
        around = model.generate_from(x, per_image=16, generator=torch.Generator().manual_seed(point))
        st.image(images.grid(around[0], nrow=16, scale=3),
                 caption="z ~ N(μ(image), σ²I), decoded: the exemplar prior's own kernel")


explorer()
