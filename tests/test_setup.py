"""The environment the README's set-up makes: matching torch/torchvision, pinned requirements,
and the Streamlit config that `streamlit run app/main.py` reads from the repository root."""

import re
import subprocess
import sys

import torch

from conftest import ROOT


def test_torchvision_imports_and_make_grid_works():
    import torchvision
    from torchvision.utils import make_grid

    assert torchvision.__version__.startswith("0.29.2")
    assert torch.__version__.startswith("2.15.0")
    grid = make_grid(torch.ones(6, 1, 28, 28), nrow=3, padding=2)
    assert grid.shape == (3, 2 * 28 + 3 * 2, 3 * 28 + 4 * 2)


def test_requirements_pin_exact_versions():
    lines = [l.strip() for l in (ROOT / "requirements.txt").read_text().splitlines()]
    reqs = [l for l in lines if l and not l.startswith("#")]
    assert reqs, "requirements.txt is empty"
    for req in reqs:
        assert re.fullmatch(r"[A-Za-z0-9_.\-]+==[0-9][A-Za-z0-9_.+\-]*", req), f"not pinned: {req}"
    names = {r.split("==")[0].lower() for r in reqs}
    assert {"torch", "torchvision", "streamlit", "plotly", "umap-learn", "faiss-cpu", "pytest"} <= names


def test_streamlit_reads_the_top_level_config_from_the_repo_root():
    # Streamlit reads only .streamlit/config.toml in the working directory; it links to
    # streamlit_config.toml, so a value set there must be what Streamlit sees.
    link = ROOT / ".streamlit" / "config.toml"
    assert link.resolve() == (ROOT / "streamlit_config.toml").resolve()
    wanted = re.search(r"^maxUploadSize\s*=\s*(\d+)", (ROOT / "streamlit_config.toml").read_text(), re.M)
    assert wanted, "streamlit_config.toml sets no server.maxUploadSize"
    probe = ("from streamlit import config; "
             "print(config.get_option('server.maxUploadSize'), config.get_option('client.showErrorDetails'))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == [wanted.group(1), "none"]
