import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `app` and `core` importable from every test
from app.bench_browser import CHROMIUM  # noqa: E402,F401  (browser tests skip without it)

# AppTest runs pages in this process: loading every model behind them would only slow the tests.
# The browser tests' server is a process of its own and warms up as a real one does.
os.environ["LATENT_LAB_WARM_UP"] = "0"


def run_cli(*args: str, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """``python -m core ARGS`` from the repository root, as a user would type it."""
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


@pytest.fixture
def isolated_dirs(tmp_path, monkeypatch):
    """Send runs/ and pretrained/ to a temporary folder, for this process and its children."""
    from core import pretrained, train

    runs, shipped = tmp_path / "runs", tmp_path / "pretrained"
    monkeypatch.setattr(train, "RUNS_DIR", runs)
    monkeypatch.setattr(pretrained, "PRETRAINED_DIR", shipped)
    monkeypatch.setenv("LATENT_LAB_RUNS", str(runs))
    monkeypatch.setenv("LATENT_LAB_PRETRAINED", str(shipped))
    return runs, shipped



@pytest.fixture(scope="session")
def app_server(tmp_path_factory):
    """`streamlit run app/main.py` on a free local port, shared by every browser test, with a
    shared store of its own (never the user's): its URL and process id."""
    from app.bench_browser import serving

    store = tmp_path_factory.mktemp("app-store")
    with serving(env={"LATENT_LAB_STORE": str(store)}) as (url, pid):
        yield url, pid


@pytest.fixture(scope="session")
def app_url(app_server):
    return app_server[0]


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    from app.bench_browser import launch

    with sync_playwright() as p:
        b = launch(p)
        yield b
        b.close()
