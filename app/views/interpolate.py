"""GON interpolations: two endpoints encoded by their gradient at the origin, the path between
them decoded, beside the Exemplar VAE's and the VAE's paths for the same endpoints; a grid
spanned by four corners; an implicit GON's super-resolution beside bicubic upscaling."""

import numpy as np
import streamlit as st
import torch

from app import state
from app.text import plain
from core import interpolation

GONS = ("gon", "implicit_gon")  # the conv GON first: the better trained of the two here
VAES = ("exemplar_vae", "vae")
TEST_IMAGE = "a test image"

name = state.dataset()
st.title("Interpolate")
shipped = {e["model"] for e in state.manifest() if e["kind"] == "checkpoint" and e["dataset"] == name}
gons = [m for m in GONS if m in shipped]
if not gons:
    st.info(f"No Gradient Origin Network is shipped for {name} yet. Make one with "
            f"`python -m core train gon --dataset {name}` then `python -m core ship gon --dataset {name}`.")
    st.stop()
test = state.dataset_or_stop(name, "test")
last = len(test) - 1

# Endpoints handed over by the map or the upload page (newest last) arrive preselected.
handed = [e for e in st.session_state.get("interpolation_endpoints", [])
          if np.asarray(e.get("image")).shape == (28, 28)]


def pick_endpoint(column, label: str, preselect: int | None, default_index: int):
    """One endpoint's picker: a handed-over image, or a test image by its index."""
    options = [e["caption"] for e in handed] + [TEST_IMAGE]
    choice = column.selectbox(f"Endpoint {label}", range(len(options)), format_func=options.__getitem__,
                              index=preselect if preselect is not None else len(options) - 1,
                              key=f"interp-{label}-{len(handed)}")
    if choice < len(handed):
        return np.asarray(handed[choice]["image"], dtype=np.float32), handed[choice]["caption"]
    index = column.number_input(f"{label}: test image (0–{last})", 0, last, default_index,
                                key=f"interp-{label}-index")
    return test.images[int(index), 0].numpy(), f"test #{index} ({test.classes[int(test.labels[int(index)])]})"


top = st.columns([1, 1, 1, 1, 2])
a, a_caption = pick_endpoint(top[0], "A", 0 if handed else None, 0)
b, b_caption = pick_endpoint(top[1], "B", 1 if len(handed) > 1 else None, 1)
method = top[2].segmented_control("Path", interpolation.METHODS, default="slerp", key="interp-method") or "slerp"
gon_name = top[3].selectbox("GON", gons, key="interp-gon")
steps = top[4].slider("Steps", 3, 24, 10, key="interp-steps")

model, _ = state.model_or_stop(gon_name, name)
gon_images = interpolation.interpolate(model, a, b, steps, method)
st.subheader(f"{gon_name}: {plain(a_caption)} → {plain(b_caption)}")  # captions hold file names
st.image(interpolation.strip(gon_images), caption="Each endpoint encoded by z = −∇L(F(z₀), x) at z₀ = 0 "
         f"(no encoder), {method} path in latent space, decoded")
png, gif = st.columns(2)
png.download_button("PNG strip", interpolation.png_bytes(interpolation.strip(gon_images)),
                    file_name=f"{gon_name}-{name}-{method}.png", mime="image/png")
gif.download_button("Animated GIF", interpolation.gif_bytes(gon_images),
                    file_name=f"{gon_name}-{name}-{method}.gif", mime="image/gif")

for vae_name in (m for m in VAES if m in shipped):
    vae, _ = state.model_or_stop(vae_name, name)
    st.image(interpolation.strip(interpolation.interpolate(vae, a, b, steps, method)),
             caption=f"{vae_name}: the same endpoints, encoded by the posterior mean")

st.subheader("A grid spanned by four corners")
corners = st.columns(4)
c_index = corners[2].number_input(f"Bottom left: test image (0–{last})", 0, last, 2, key="interp-c")
d_index = corners[3].number_input(f"Bottom right: test image (0–{last})", 0, last, 3, key="interp-d")
corners[0].caption(f"Top left: {plain(a_caption)}")
corners[1].caption(f"Top right: {plain(b_caption)}")
four = torch.stack([torch.from_numpy(a)[None], torch.from_numpy(b)[None],
                    test.images[int(c_index)], test.images[int(d_index)]])  # (4, 1, 28, 28)
grid = interpolation.strip(interpolation.corner_grid(model, four, 8, method), nrow=8, scale=2)
st.image(grid, caption=f"8×8, {method} along the top and bottom edges, then down every column")
st.download_button("Grid PNG", interpolation.png_bytes(grid), file_name=f"{gon_name}-{name}-grid.png",
                   mime="image/png")

with st.expander(f"Samples from {gon_name}"):
    seed = st.number_input("Seed", 0, 2**31 - 1, 0, key="interp-seed")
    st.image(interpolation.strip(model.sample(32, torch.Generator().manual_seed(int(seed))), nrow=16, scale=2),
             caption="z ~ N(mean, covariance) of training latents (a full-covariance Gaussian, as the "
                     "paper samples), decoded")

st.subheader("Super-resolution")
if "implicit_gon" not in shipped:
    st.info("Super-resolution needs an implicit GON, and none is shipped for this dataset.")
    st.stop()
_, implicit_entry = state.model_or_stop("implicit_gon", name)
renders = state.super_resolution(name, a)
shown = max(renders)  # every picture drawn at the largest size, each pixel an exact square
st.caption(f"Endpoint A ({plain(a_caption)}): the implicit GON sampled on finer coordinate grids (top), and "
           f"its 28 px render upscaled bicubically (bottom). Each is drawn {shown} px wide with its "
           "pixels repeated, so what differs is what each method made, not how the page scaled it.")
for column, (size, pair) in zip(st.columns(len(renders)), renders.items()):
    for method, label in (("implicit", "implicit GON"), ("bicubic", "bicubic")):
        column.image(np.kron(pair[method], np.ones((shown // size, shown // size), dtype=np.uint8)),
                     caption=f"{label}, {size} px", width=shown)
measured = implicit_entry["metrics"]
if f"sr_energy_ratio_{shown}" in measured:
    st.caption(f"How sharp, over {measured['sr_images']} test images: at {shown} px the implicit GON's renders "
               f"have {measured[f'sr_energy_ratio_{shown}']:.2f}× the gradient energy of bicubic upscaling "
               f"({measured[f'sr_energy_implicit_{shown}']:.3f} against {measured[f'sr_energy_bicubic_{shown}']:.3f}; "
               f"real images upscaled bicubically have {measured[f'sr_energy_real_bicubic_{shown}']:.3f}). "
               "Sharper edges have more; the manifest has every size.")
