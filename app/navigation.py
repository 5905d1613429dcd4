"""The app's pages, in one place, so the entry script and the Home page's links agree."""

from dataclasses import dataclass


@dataclass(frozen=True)
class PageSpec:
    path: str  # relative to app/, as st.Page and st.page_link take it
    title: str
    icon: str
    blurb: str


HOME = PageSpec("views/home.py", "Home", ":material/home:", "Datasets, shipped models and their metrics.")
PAGES = [
    HOME,
    PageSpec("views/latent_map.py", "Latent map", ":material/scatter_plot:",
             "Every image on one UMAP per model: click for neighbours, select for galleries."),
    PageSpec("views/clusters.py", "Clusters", ":material/bubble_chart:",
             "SwAV's label-free clusters: their map, members, sizes and purity."),
    PageSpec("views/generate.py", "Generate", ":material/auto_awesome:",
             "Samples from each VAE's prior, and reconstructions of test images."),
    PageSpec("views/drs.py", "Rejection sampling", ":material/filter_alt:",
             "GAN samples sorted by the calibrated discriminator's acceptance; the γ trade-off; the 25-Gaussians toy."),
    PageSpec("views/interpolate.py", "Interpolate", ":material/linear_scale:",
             "GON interpolations between any two images, beside the VAEs'; four-corner grids; super-resolution."),
    PageSpec("views/upload.py", "Your exemplars", ":material/upload:",
             "Upload your own images: neighbours, samples around them, their place on the map."),
]
