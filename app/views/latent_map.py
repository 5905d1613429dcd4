import streamlit as st
import torch

from app import state
from core import figures, images, projection

MAX_GALLERY = 100  # images shown for a box or lasso selection
MAX_RINGED = 2000  # selected points ringed on the maps: enough to see, small enough to draw
K_NEIGHBOURS = 8

name = state.dataset()
st.title("Latent map")
models = state.maps_or_stop(name)
query = st.query_params

pick_model, pick_other, pick_colour = st.columns([2, 1, 1])
wanted = query.get("model")
model_name = pick_model.segmented_control(
    "Model", models, default=wanted if wanted in models else models[0], key="map_model") or models[0]
others = [m for m in models if m != model_name]
wanted = query.get("compare")
other = pick_other.selectbox("Compare with", [None, *others], format_func=lambda m: m or "—",
                             index=others.index(wanted) + 1 if wanted in others else 0)
wanted = query.get("colour")
colour = pick_colour.selectbox(
    "Colour by", list(figures.COLOURINGS), format_func=figures.COLOURINGS.get,
    index=list(figures.COLOURINGS).index(wanted) if wanted in figures.COLOURINGS else 0)
query["model"], query["colour"] = model_name, colour
if other:
    query["compare"] = other
else:
    query.pop("compare", None)

ds = state.load_dataset(name, "train")
labels = projection.all_labels(name)
point = query.get("point")
point = int(point) if point is not None and point.isdigit() and int(point) < len(labels) else None

# The selection made on either map is ringed on both (a click is kept in the URL).
selection = st.session_state.get("map_selection", [])
ringed = tuple(selection[:MAX_RINGED]) if len(selection) > 1 else ((point,) if point is not None else ())
chosen = []
for column, shown in zip(st.columns(2) if other else [st.container()], [model_name, other]):
    event = column.plotly_chart(
        state.map_figure(shown, name, colour, ringed), on_select="rerun",
        selection_mode=("points", "box", "lasso"), key=f"map-{shown}-{colour}")
    if other:
        column.caption(shown)
    if event and event.selection and event.selection.points:
        chosen = figures.selected_indices(event.selection.points)
if len(chosen) == 1 and chosen[0] != point:  # a click: the point goes into the URL
    st.session_state.map_selection = []
    query["point"] = str(chosen[0])
    st.rerun()  # redraw with the clicked point ringed
if len(chosen) != 1 and chosen != selection:  # a box or lasso, or a cleared selection
    st.session_state.map_selection = chosen
    st.rerun()  # ring it on both maps

entry = next(e for e in state.manifest() if e["kind"] == "map" and e["model"] == model_name
             and e["dataset"] == name)
m = entry["metrics"]
st.caption(f"{m['points']:,} images, train and test. Trustworthiness {m['trustworthiness']:.3f} "
           f"(k={projection.QUALITY_NEIGHBORS}, {m['trustworthiness_sample']:,}-point sample); 5-NN "
           f"accuracy on the map {m['knn_accuracy_2d']:.3f}, in the latent space "
           f"{m['knn_accuracy_latent']:.3f}. Click a point, or draw a box or lasso.")

if len(chosen) > 1:
    st.subheader(f"Selection: {len(chosen):,} images")
    shown = chosen[:MAX_GALLERY]
    gallery, histogram = st.columns([3, 2])
    gallery.image(images.grid(projection.all_images(name)[shown], nrow=10),
                  caption=f"the first {len(shown)} of {len(chosen):,}")
    histogram.plotly_chart(figures.label_histogram(labels[chosen].numpy(), ds.classes))
elif point is not None:
    latents = state.latents(model_name, name)
    model, _ = state.load_model(model_name, name)
    x = projection.all_images(name)[point : point + 1]
    split = "test" if point >= len(ds) else "train"
    st.subheader(f"Image #{point} ({split}): {ds.classes[int(labels[point])]}")
    near = projection.nearest_exemplars(latents["codes"], point, K_NEIGHBOURS, index=latents["index"])
    left, right = st.columns([1, 3])
    if hasattr(model, "reconstruct"):
        left.image(images.grid(torch.cat([x, model.reconstruct(x)]), nrow=2, scale=4),
                   caption="the image and its reconstruction")
    else:  # SwAV has no decoder
        left.image(images.grid(x, nrow=1, scale=4), caption="the image")
    right.image(images.grid(projection.all_images(name)[[i for i, _ in near]], nrow=K_NEIGHBOURS, scale=3),
                caption="nearest in latent space: " + ", ".join(
                    f"#{i} {ds.classes[int(labels[i])]} ({d:.2f})" for i, d in near))
    keep, go = st.columns([1, 3])
    if keep.button("Use as interpolation endpoint", key=f"endpoint-{name}-{point}"):
        ends = list(st.session_state.get("interpolation_endpoints", []))
        ends.append({"image": x[0, 0].numpy().astype("float32"),
                     "caption": f"map #{point} {ds.classes[int(labels[point])]}"})
        st.session_state["interpolation_endpoints"] = ends[-2:]  # the convention: 2 kept, newest last
        go.page_link("views/interpolate.py", label="Interpolate between the last two kept",
                     icon=":material/linear_scale:")
    if model_name == "exemplar_vae" and st.button("Generate around this"):
        around = model.generate_from(x, per_image=16, generator=torch.Generator().manual_seed(point))
        st.image(images.grid(around[0], nrow=16, scale=3),
                 caption="z ~ N(μ(image), σ²I), decoded: the exemplar prior's own kernel")
