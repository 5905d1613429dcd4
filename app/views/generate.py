import streamlit as st
import torch

from app import state
from core import images
from core.train import binarize_fixed

name = state.dataset()
st.title("Generate")
vaes = [e["model"] for e in state.manifest() if e["dataset"] == name and e["model"].endswith("vae")]
if not vaes:
    st.info(f"No VAE is shipped for {name} yet: see the Home page for how to train one.")
    st.stop()

model_name = st.segmented_control("Model", vaes, default=vaes[0]) or vaes[0]
model, entry = state.model_or_stop(model_name, name)
seed = st.number_input("Seed", min_value=0, max_value=2**31 - 1, value=0, step=1,
                       help="The same seed gives the same samples, so a view can be shared.")

left, right = st.columns(2)
with left:
    st.subheader("Samples from the prior")
    samples = model.sample(64, generator=torch.Generator().manual_seed(int(seed)))
    st.image(images.grid(samples, nrow=8), caption="Bernoulli means of decoded prior samples")
with right:
    st.subheader("Test images and reconstructions")
    test = state.dataset_or_stop(name, "test")
    g = torch.Generator().manual_seed(int(seed))
    x = test.images[torch.randperm(len(test), generator=g)[:32]]
    recon = model.reconstruct(binarize_fixed(x))
    pairs = torch.stack([x, recon], dim=1).flatten(0, 1)  # original, reconstruction, ...
    st.image(images.grid(pairs, nrow=8), caption="Each original beside its reconstruction")
