"""Latent Lab: `streamlit run app/main.py` from the repository root."""

import os
import sys
from pathlib import Path

import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # make `core` and `app` importable

import torch  # noqa: E402

from app import state, url_params  # noqa: E402
from app.navigation import PAGES  # noqa: E402
from core import data  # noqa: E402
from core.paths import APP_TORCH_THREADS  # noqa: E402

FAVICON = Path(__file__).resolve().parent / "static" / "favicon.png"  # local: the app works offline

torch.set_num_threads(APP_TORCH_THREADS)

# ?present=1 is for talks: no sidebar or toolbar, pages in a bar along the top, large type. It
# stays in the URL, so a shared link keeps it.
presenting = state.presenting()
st.set_page_config(page_title="Latent Lab", page_icon=str(FAVICON), layout="wide",
                   initial_sidebar_state="collapsed" if presenting else "auto")
if presenting:
    st.html("""<style>
      [data-testid="stSidebar"], [data-testid="stExpandSidebarButton"], [data-testid="stMainMenu"],
      [data-testid="stAppDeployButton"], [data-testid="stToolbarActions"], [data-testid="stStatusWidget"],
      [data-testid="stDecoration"] { display: none !important; }
      html { font-size: 24px; }  /* Streamlit sizes in rem: this scales all type by 1.5 */
      [data-testid="stMainBlockContainer"] { max-width: 100%; padding: 4rem 2rem 2rem 2rem; }  /* below the top bar */
    </style>""")


def forget_the_point() -> None:
    """Image numbers belong to a dataset: another dataset's #3 is another image."""
    for key in ("map_point", "map_selection", "map_goto", "map_focus"):
        st.session_state.pop(key, None)
    st.query_params.pop("point", None)


# The dataset lives in the URL (?dataset=mnist) so that a copied link opens the same view.
url_params.seed("dataset", "dataset", list(data.DATASETS), data.DEFAULT_DATASET)
if not presenting:  # on stage there is no sidebar at all (the link chose the dataset)
    st.sidebar.selectbox("Dataset", data.DATASETS, key="dataset", on_change=forget_the_point)
st.query_params["dataset"] = st.session_state.dataset
if presenting:
    st.query_params["present"] = "1"  # a link copied from any page opens in presentation mode
url_params.show_notes()

if os.environ.get("LATENT_LAB_WARM_UP", "1") != "0":  # in-process page tests turn it off
    state.warm_up()  # once per server: the other pages' first visits find their data loaded

page = st.navigation([st.Page(p.path, title=p.title, icon=p.icon, default=(i == 0))
                      for i, p in enumerate(PAGES)], position="top" if presenting else "sidebar")
page.run()
