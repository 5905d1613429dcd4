"""Latent Lab: `streamlit run app/main.py` from the repository root."""

import sys
from pathlib import Path

import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # make `core` and `app` importable

import torch  # noqa: E402

from app.navigation import PAGES  # noqa: E402
from core import data  # noqa: E402
from core.paths import APP_TORCH_THREADS  # noqa: E402

torch.set_num_threads(APP_TORCH_THREADS)

# ?present=1 is for talks: no sidebar, large type. It stays in the URL, so a shared link keeps it.
presenting = st.query_params.get("present") in ("1", "true", "yes")
st.set_page_config(page_title="Latent Lab", page_icon=":material/scatter_plot:", layout="wide",
                   initial_sidebar_state="collapsed" if presenting else "auto")
if presenting:
    st.html("""<style>
      [data-testid="stSidebar"], [data-testid="stSidebarCollapsedControl"], header { display: none; }
      html { font-size: 22px; }  /* Streamlit sizes in rem: this scales all type by ~1.4 */
    </style>""")

# The dataset lives in the URL (?dataset=mnist) so that a copied link opens the same view.
if "dataset" not in st.session_state:
    wanted = st.query_params.get("dataset", data.DEFAULT_DATASET)
    st.session_state.dataset = wanted if wanted in data.DATASETS else data.DEFAULT_DATASET
st.sidebar.selectbox("Dataset", data.DATASETS, key="dataset")
st.query_params["dataset"] = st.session_state.dataset

page = st.navigation([st.Page(p.path, title=p.title, icon=p.icon, default=(i == 0))
                      for i, p in enumerate(PAGES)], position="hidden" if presenting else "sidebar")
page.run()
