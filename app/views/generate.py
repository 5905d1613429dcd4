import streamlit as st
import torch

from app import state
from core import data, images

name = state.dataset()
st.title("Generate")
vaes = [e["model"] for e in state.manifest()
        if e["kind"] == "checkpoint" and e["dataset"] == name and e["model"] in ("vae", "exemplar_vae")]
if not vaes:
    st.info(f"No VAE is shipped for {name} yet: see the Home page for how to train one.")
    st.stop()

pick_model, pick_seed = st.columns([2, 1])
model_name = pick_model.segmented_control("Model", vaes, default=vaes[-1]) or vaes[-1]
seed = pick_seed.number_input("Seed", min_value=0, max_value=2**31 - 1, value=0, step=1,
                              help="The same seed gives the same pictures.")
model, entry = state.model_or_stop(model_name, name)
test = state.dataset_or_stop(name, "test")

left, right = st.columns(2)
with left:
    st.subheader("Samples from the prior")
    samples = model.sample(64, generator=torch.Generator().manual_seed(int(seed)))
    caption = ("Pick an exemplar at random, draw z ~ N(μ(exemplar), σ²I), decode"
               if model_name == "exemplar_vae" else "Draw z ~ N(0, I), decode")
    st.image(images.grid(samples, nrow=8), caption=f"{caption}: Bernoulli means")
with right:
    st.subheader("Test images and reconstructions")
    pick = torch.randperm(len(test), generator=torch.Generator().manual_seed(int(seed)))[:32]
    x = test.images[pick]
    recon = model.reconstruct(data.binarize_fixed(x))
    pairs = torch.stack([x, recon], dim=1).flatten(0, 1)  # original, reconstruction, ...
    st.image(images.grid(pairs, nrow=8), caption="Each original beside its reconstruction")

if model_name == "exemplar_vae":
    st.subheader("New images around one exemplar")
    index = st.number_input(f"Test image (0–{len(test) - 1})", min_value=0, max_value=len(test) - 1,
                            value=int(pick[0]), step=1)
    reference = test.images[int(index)].unsqueeze(0)
    around = model.generate_from(reference, per_image=15, generator=torch.Generator().manual_seed(int(seed)))
    row = torch.cat([reference, around[0]])
    st.image(images.grid(row, nrow=16, scale=3),
             caption=f"The exemplar ({test.classes[int(test.labels[int(index)])]}), then 15 draws of "
                     "z ~ N(μ(exemplar), σ²I) decoded: the same σ² the prior uses")
