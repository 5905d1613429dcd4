"""Every page runs headless (AppTest) without an exception, on the shipped artifacts."""

import json

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from app.navigation import PAGES
from conftest import ROOT
from core import pretrained

MAIN = str(ROOT / "app" / "main.py")


def run_page(path: str, query: dict | None = None) -> AppTest:
    at = AppTest.from_file(MAIN, default_timeout=120)
    for key, value in (query or {}).items():
        at.query_params[key] = value
    if path != PAGES[0].path:
        at.switch_page(path)  # straight there: the first run is the page's own
    at.run()
    return at


@pytest.mark.parametrize("dataset", ["fashion-mnist", "mnist"])
@pytest.mark.parametrize("page", [p.path for p in PAGES])
def test_page_runs_without_exception(page, dataset):
    at = run_page(page, {"dataset": dataset})
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert at.session_state.dataset == dataset


def test_home_shows_dataset_and_links_every_page():
    at = run_page(PAGES[0].path)
    assert at.title[0].value == "Latent Lab"
    assert any("Dataset: fashion-mnist" in h.value for h in at.header)
    assert [m.value for m in at.metric] == ["60,000", "10,000"]
    # st.page_link has no AppTest element type yet; its proto is kept under "page_link".
    links = [el.proto.page for el in at.main.get("page_link")]
    assert len(links) == len(PAGES) - 1 and all(links)
    # Learning curves: the VAEs', and the GONs' beside their autoencoders.
    headings = [h.value for h in at.subheader]
    assert "Learning curves: the GONs beside their autoencoders" in headings
    gon_chart = json.loads(at.get("plotly_chart")[-1].proto.spec)
    assert {"gon", "gon_ae"} <= {trace["name"] for trace in gon_chart["data"]}


def test_a_bad_dataset_in_the_url_falls_back_to_the_default():
    at = run_page(PAGES[0].path, {"dataset": "../../etc/passwd"})
    assert not at.exception
    assert at.session_state.dataset == "fashion-mnist"
    assert any("dataset" in w.value and "was ignored" in w.value for w in at.warning)


def test_map_point_in_the_url_opens_its_image_panel():
    maps = [e for e in pretrained.read_manifest() if e["kind"] == "map"]
    if not maps:
        pytest.skip("no map shipped")
    entry = maps[0]
    at = run_page("views/latent_map.py", {"dataset": entry["dataset"], "model": entry["model"], "point": "12"})
    assert not at.exception, at.exception
    assert at.subheader[0].value.startswith("Image #12 (train)")
    assert entry["model"] in at.query_params["model"]  # the view is in the URL, to share
    assert map_data(at)["ringed"] == [12]


@pytest.mark.parametrize("point", ["99999999", "²", "-1", "1e3", "0x10", " 7", "7" * 5000, "１２"])
def test_a_bad_point_in_the_url_is_ignored_with_a_note(point):
    at = run_page("views/latent_map.py", {"dataset": "mnist", "point": point})
    assert not at.exception and not at.error
    assert not [s for s in at.subheader if s.value.startswith("Image #")]
    assert any("was ignored" in w.value for w in at.warning)
    assert "point" not in at.query_params


def map_data(at: AppTest) -> dict:
    """What the page sends the latent map component (it has no AppTest element type)."""
    [component] = at.main.get("bidi_component")
    return json.loads(component.proto.json)


def test_two_maps_side_by_side_ring_the_same_point():
    maps = {(e["model"], e["dataset"]) for e in pretrained.read_manifest() if e["kind"] == "map"}
    if {("vae", "mnist"), ("exemplar_vae", "mnist")} - maps:
        pytest.skip("needs both mnist maps")
    at = run_page("views/latent_map.py",
                  {"dataset": "mnist", "model": "exemplar_vae", "compare": "vae", "point": "7"})
    assert not at.exception, at.exception
    data = map_data(at)
    assert [m["name"] for m in data["maps"]] == ["exemplar_vae", "vae"]
    assert data["ringed"] == [7]  # the browser rings these on both maps


def test_the_map_sends_small_data_and_serves_its_arrays_as_files():
    """Each rerun sends the component a few kB; the 70k coordinates and pixels are static files
    that the browser fetches once, and their bytes are the shipped map's."""
    at = run_page("views/latent_map.py", {"dataset": "fashion-mnist", "model": "vae"})
    data = map_data(at)
    assert len(json.dumps(data)) < 5_000
    coords = np.fromfile(ROOT / "app" / data["maps"][0]["url"].removeprefix("app/"), dtype="<f4")
    shipped = pretrained.load_map("vae", "fashion-mnist")
    n = len(shipped["coords"])
    assert np.array_equal(coords[:n], shipped["coords"][:, 0]) and np.array_equal(coords[n : 2 * n], shipped["coords"][:, 1])
    assert np.array_equal(coords[2 * n :], shipped["recon_error"])


JUNK_QUERIES = [
    {"dataset": "²", "point": "7" * 5000, "model": "<b>x</b>", "colour": "[x](http://h/)", "compare": "../..",
     "present": "maybe"},
    {"dataset": "mnist", "point": "-3", "model": "", "colour": "label\n", "compare": "vae", "present": "1"},
    {"dataset": "![i](http://h/p.png)", "point": "１２", "model": "vae" * 1000},
]


@pytest.mark.parametrize("query", JUNK_QUERIES, ids=["symbols", "near-misses", "markup"])
@pytest.mark.parametrize("page", [p.path for p in PAGES])
def test_no_page_raises_on_a_junk_query_string(page, query):
    """Issue 22, item 3: whatever the URL holds, every page renders, ignoring what it cannot use."""
    at = run_page(page, query)
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert at.session_state.dataset in ("fashion-mnist", "mnist")
