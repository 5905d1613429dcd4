import streamlit as st

from app import state
from app.navigation import PAGES
from core import figures, pretrained

name = state.dataset()
st.title("Latent Lab")
st.write("Browse the latent spaces of small generative and representation models on 28×28 "
         "images: Exemplar VAE, Discriminator Rejection Sampling, Gradient Origin Networks and SwAV.")

# Three cards a row: at six a row, page links cut their titles short ("Rejection sa…").
CARDS_PER_ROW = 3
cards = PAGES[1:]
for start in range(0, len(cards), CARDS_PER_ROW):
    for col, spec in zip(st.columns(CARDS_PER_ROW), cards[start:start + CARDS_PER_ROW]):
        with col.container(border=True):
            st.page_link(spec.path, label=spec.title, icon=spec.icon)
            st.caption(spec.blurb)

st.header(f"Dataset: {name}")
train, test = state.dataset_or_stop(name, "train"), state.dataset_or_stop(name, "test")
left, right = st.columns([1, 2])
left.metric("Training images", f"{len(train):,}")
left.metric("Test images", f"{len(test):,}")
left.write("**Classes:** " + ", ".join(train.classes))
right.image(state.class_grid(name), caption="Ten training images of each class, one class a row")

st.header("Shipped models")
entries = [e for e in state.manifest() if e["dataset"] == name and e["kind"] == "checkpoint"]
if not entries:
    st.info(f"Nothing is shipped for {name} yet. Train a model with "
            f"`python -m core train vae --dataset {name}`, then `python -m core ship vae --dataset {name}`.")
else:
    for rows in pretrained.table_groups(entries):
        st.dataframe(rows, hide_index=True)
    st.caption("Every number comes from `python -m core evaluate` on the shipped checkpoint; "
               "`pretrained/manifest.json` holds the command that rebuilt each file.")
    for key, heading in (("test_elbo", "Learning curves: the VAEs"),
                         ("test_recon_mse", "Learning curves: the GONs beside their autoencoders")):
        curves = [e for e in entries if e.get("curve") and key in e["curve"][0]]
        if curves:
            st.subheader(heading)
            st.plotly_chart(figures.learning_curves(curves, key))
