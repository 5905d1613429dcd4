import numpy as np
import streamlit as st

from app import state
from core import images, projection
from core.models.swav import cluster_table, confident_members

MEMBERS = 10  # most confident images shown per prototype

name = state.dataset()
st.title("Clusters")
st.caption("SwAV (Caron et al., NeurIPS 2020) learns prototypes without labels: each image belongs "
           "to the prototype it scores highest. Where the clusters and the classes disagree, the "
           "model saw a different structure than the labels name.")
if not any(e["kind"] == "checkpoint" and e["model"] == "swav" and e["dataset"] == name
           for e in state.manifest()):
    st.info(f"No SwAV model is shipped for {name} yet. Train one with "
            f"`python -m core train swav --dataset {name}`, then `python -m core ship swav --dataset {name}`.")
    st.stop()
model, entry = state.model_or_stop("swav", name)
ds = state.load_dataset(name, "train")
labels = projection.all_labels(name).numpy()


@st.cache_resource(show_spinner="Assigning every image to a prototype…")
def assignments(dataset: str) -> tuple[np.ndarray, np.ndarray]:
    """Cluster and confidence of all train then test images: from the shipped swav map when there
    is one, else computed once per process."""
    shipped = state.swav_clusters(dataset)
    if shipped is not None:
        arrays = state.load_map("swav", dataset)
        return shipped, arrays["confidence"]
    net, _ = state.load_model("swav", dataset)
    cluster, confidence = net.assign(projection.all_images(dataset))
    return cluster.numpy(), confidence.numpy()


cluster, confidence = assignments(name)
m = entry["metrics"]
k = model.config.prototypes
columns = st.columns(5)
columns[0].metric("prototypes", k)
readout = (f"the encoder's last feature map pooled to {m['knn_readout_grid']}×{m['knn_readout_grid']}, "
           f"the read-out chosen on held-out training images; the same network untrained scores "
           f"{m['knn_accuracy_untrained']:.3f}" if "knn_readout_grid" in m else "the encoder's features")
columns[1].metric(f"{m['knn_k']}-NN accuracy", f"{m['knn_accuracy']:.3f}",
                  f"{m['knn_accuracy'] - m['knn_accuracy_pixels']:+.3f} vs pixels",
                  help=f"Cosine {m['knn_k']}-NN vote of the test images among the training images, on {readout}.")
columns[2].metric("NMI with labels", f"{m['nmi']:.3f}")
columns[3].metric("ARI with labels", f"{m['ari']:.3f}")
columns[4].metric("largest cluster", f"{m['largest_cluster_share']:.1%}", f"uniform {1 / k:.1%}",
                  delta_color="off")

by_label = st.toggle("Colour by label", help="Switch between the SwAV clusters and the dataset's classes.")
if state.swav_clusters(name) is not None:
    st.plotly_chart(state.map_figure("swav", name, "label" if by_label else "swav_cluster"),
                    key=f"clusters-map-{by_label}")
    st.caption("UMAP of the SwAV encoder features of every train and test image.")
else:
    st.info(f"No SwAV map is shipped for {name}; make one with `python -m core map swav --dataset {name}`.")

rows = cluster_table(cluster, labels, ds.classes, k)
table, gallery = st.columns([2, 3])
table.subheader("Clusters")
table.dataframe(rows, hide_index=True, column_config={
    "purity": st.column_config.ProgressColumn("purity", min_value=0.0, max_value=1.0, format="%.2f")})
table.caption(f"{len(rows)} of {k} prototypes hold images; purity is the majority label's share.")
gallery.subheader("Most confident members")
every_image = state.all_images(name)  # one 70k-image tensor for all rows, not one copy per row
for row in rows:
    members = confident_members(cluster, confidence, row["cluster"], MEMBERS)
    gallery.image(images.grid(every_image[members], nrow=MEMBERS, scale=2),
                  caption=f"cluster {row['cluster']}: {row['size']:,} images, "
                          f"{row['purity']:.0%} {row['majority label']}")
