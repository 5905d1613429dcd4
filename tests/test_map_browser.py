"""The latent map as a person uses it: real mouse gestures in headless Chromium (playwright).

Each test asserts what a person would see (the thumbnail under the cursor, the heading with its
count, the control's shown value, the zoom kept) and that a gesture costs one script run, not a
loop. Timings are the benchmark's business (``python -m core bench``), not these tests'.
"""

import csv
import io
import re

import pytest

from app.bench_browser import MapPage
from conftest import CHROMIUM, ROOT
from core import pretrained, projection

ARTIFACTS = ROOT / "tests" / "artifacts"
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (make setup installs it as root)")


def shipped_maps(dataset: str) -> list[str]:
    return [e["model"] for e in pretrained.read_manifest() if e["kind"] == "map" and e["dataset"] == dataset]


def open_map(browser, app_url, dataset="mnist", model="vae", extra="", **size) -> MapPage:
    if model not in shipped_maps(dataset):
        pytest.skip(f"no {model} map shipped for {dataset}")
    return MapPage(browser, f"{app_url}/latent_map?dataset={dataset}&model={model}{extra}", **size)


def shot(m: MapPage, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    m.page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def class_of(dataset: str, index: int) -> str:
    from core import data

    return data.load(dataset, "train").classes[int(projection.all_labels(dataset)[index])]


def test_hover_shows_the_image_with_its_label_and_index(browser, app_url):
    m = open_map(browser, app_url)
    spot = m.dense_spot()
    index, label, split, _ = m.hover(spot)
    thumb = m.page.locator(".ll-thumb")
    assert thumb.is_visible()
    assert label == class_of("mnist", index) and split == ("train" if index < 4000 else "test")
    box = thumb.bounding_box()
    x, y = m.pixel_of(spot)
    assert abs(box["x"] - x) < 60 and abs(box["y"] - y) < 60  # beside the cursor
    assert m.page.locator(".ll-thumb canvas").bounding_box()["width"] >= 100  # 28 px drawn 4× larger
    shot(m, "map-hover.png")
    m.page.mouse.move(5, 5)
    thumb.wait_for(state="hidden")
    m.close()


def test_a_click_shows_the_image_and_neighbours_and_keeps_the_zoom(browser, app_url):
    m = open_map(browser, app_url)
    m.zoom_in()
    zoomed = m.view()
    start = m.runs
    index, _ = m.click(m.dense_spot())
    heading = m.heading(f"Image #{index} ").first.inner_text()
    assert class_of("mnist", index) in heading
    captions = m.page.locator("[data-testid='stImageCaption']").all_inner_texts()
    neighbours = [c for c in captions if re.fullmatch(r"#\d+ .+ · \d+\.\d\d", c.strip())]
    assert len(neighbours) == 8, captions  # one caption per neighbour image
    assert m.runs_after(start) == 1  # the click's one rerun, and no loop after it
    assert m.view() == zoomed  # zoom and pan kept across the click
    assert m.ringed() == 1
    assert f"point={index}" in m.page.url  # a copied link opens the same image
    shot(m, "map-click.png")
    m.close()


@pytest.mark.parametrize("dataset", ["mnist", "fashion-mnist"])
def test_a_box_selection_shows_its_gallery_and_settles(browser, app_url, dataset):
    m = open_map(browser, app_url, dataset)
    m.zoom_in(clicks=1)
    zoomed = m.view()
    start = m.runs
    shown, inside, _ = m.box_select(m.dense_spot(), half=30)
    assert 1 < inside[0] <= shown <= inside[1]  # the heading counts the images inside the box
    assert m.runs_after(start) <= 1  # at most the one rerun the gesture asks for: no loop
    assert m.ringed() == min(shown, 2000)
    assert m.view() == zoomed
    assert m.page.locator("[data-testid='stPlotlyChart']").count() == 1  # the label histogram
    shot(m, f"map-box-{dataset}.png")
    # Pan tool, a click, Box Select and the same box again: the new gesture is heard (neither the
    # old outline nor Plotly's redraws swallow it).
    m.tool("pan")
    m.click(m.dense_spot())
    again, inside, _ = m.box_select(m.dense_spot(), half=30)
    assert inside[0] <= again <= inside[1]
    # Cleared: the gallery goes, and so do the rings.
    m.page.get_by_role("button", name="Clear the selection").click()
    m.heading("Selection:").first.wait_for(state="detached")
    m.page.wait_for_function("() => document.querySelector('.ll-plot').dataset.ringed === '0'")
    m.close()


def every_shipped_map() -> list:
    return [pytest.param(d, model, id=f"{d}-{model}") for d in ("mnist", "fashion-mnist") for model in shipped_maps(d)]


@pytest.mark.slow  # the default suite's gestures cover every mnist map and the fashion-mnist vae map
@pytest.mark.parametrize(("dataset", "model"), every_shipped_map())
def test_a_click_and_a_box_answer_on_every_shipped_map(browser, app_url, dataset, model):
    m = open_map(browser, app_url, dataset, model)
    start = m.runs
    index, _ = m.click(m.dense_spot())
    assert class_of(dataset, index) in m.heading(f"Image #{index} ").first.inner_text()
    assert m.runs_after(start) == 1
    start = m.runs
    shown, inside, _ = m.box_select(m.dense_spot(), half=30)
    assert 1 < inside[0] <= shown <= inside[1]
    assert m.runs_after(start) <= 1
    assert m.ringed() == min(shown, 2000)
    shot(m, f"map-every-{dataset}-{model}.png")
    m.close()


def test_a_lasso_selection_shows_its_gallery_settles_and_exports_as_csv(browser, app_url):
    m = open_map(browser, app_url)
    start = m.runs
    shown, _ = m.lasso_select(m.dense_spot(), radius=35)
    assert shown > 1
    assert m.runs_after(start) <= 1  # at most the one rerun the gesture asks for: no loop
    assert m.ringed() == shown
    shot(m, "map-lasso.png")
    with m.page.expect_download() as download:
        m.page.get_by_role("button", name="Download indices and labels (CSV)").click()
    rows = list(csv.DictReader(io.StringIO(download.value.path().read_text())))
    assert len(rows) == shown
    assert all(r["class"] == class_of("mnist", int(r["index"])) for r in rows)
    m.close()


def test_compare_mode_rings_a_selection_on_both_maps(browser, app_url):
    models = shipped_maps("mnist")
    if len(models) < 2:
        pytest.skip("needs two mnist maps")
    m = open_map(browser, app_url, model=models[0], extra=f"&compare={models[1]}")
    assert m.page.locator(".ll-plot").count() == 2
    start = m.runs
    shown, inside, _ = m.box_select(m.dense_spot(), half=30)
    assert 1 < inside[0] <= shown <= inside[1]
    assert m.runs_after(start) <= 1  # at most the one rerun the gesture asks for: no loop
    assert m.ringed(0) == m.ringed(1) == shown  # the same images, ringed where each map puts them
    shot(m, "map-compare.png")
    m.close()


def test_each_control_keeps_every_value_picked_in_a_row(browser, app_url):
    m = open_map(browser, app_url)
    for label, picks in [("Colour by", ["reconstruction error (nats)", "train / test", "class"]),
                         ("Compare with", ["gon", "—"])]:
        for pick in picks:
            start = m.runs
            m.page.get_by_label(label).click()
            m.page.get_by_role("option", name=pick, exact=True).click()
            m.wait_rerun(start)
            assert m.page.get_by_label(label).input_value() == pick  # what the box shows
    assert "colour=label" in m.page.url and "compare=" not in m.page.url
    for model in ["gon", "swav", "vae"]:
        m.page.get_by_role("radio", name=model, exact=True).click()
        m.page.wait_for_function("(n) => document.querySelector('.ll-plot')?.dataset.model === n", arg=model)
        m.wait_idle()
        assert m.page.get_by_role("radio", name=model, exact=True).get_attribute("aria-checked") == "true"
    # Clicking the chosen model again does not leave the control empty.
    start = m.runs
    m.page.get_by_role("radio", name="vae", exact=True).click()
    m.wait_rerun(start)
    assert m.page.get_by_role("radio", name="vae", exact=True).get_attribute("aria-checked") == "true"
    m.close()


def test_go_to_an_index_and_highlight_a_class(browser, app_url):
    m = open_map(browser, app_url)
    m.page.get_by_text("Find and display").click()
    field = m.page.get_by_label("Go to image #")
    field.fill("1234")
    field.press("Enter")
    m.heading("Image #1234 ").first.wait_for(timeout=60_000)
    assert m.ringed() == 1
    m.page.get_by_label("Highlight a class").click()
    m.page.get_by_role("option", name="7", exact=True).click()
    m.page.wait_for_function("() => [...document.querySelector('.ll-plot').data].some(t => t.name === '7 (highlighted)')")
    shot(m, "map-highlight.png")
    m.close()


def test_presentation_mode_is_stage_ready(browser, app_url):
    m = open_map(browser, app_url, extra="&present=1", width=1920, height=1080)
    page = m.page
    for hidden in ["stAppDeployButton", "stMainMenu", "stSidebar", "stExpandSidebarButton"]:
        assert not page.locator(f"[data-testid='{hidden}']").is_visible(), hidden
    assert page.locator("[data-testid='stTopNavLink']").count() >= 6  # every page, along the top
    plot = page.locator(".ll-plot").bounding_box()
    assert plot["width"] >= 0.85 * 1920
    legend_font = page.evaluate("() => parseFloat(getComputedStyle(document.querySelector('.ll-plot .legendtext')).fontSize)")
    assert legend_font >= 24
    shot(m, "map-present.png")
    page.locator("[data-testid='stTopNavLink']", has_text="Interpolate").click()
    page.wait_for_url(re.compile(r"/interpolate"))
    assert "present=1" in page.url
    m.close()


def test_an_uploads_nearest_images_are_selected_on_the_map(browser, app_url, tmp_path):
    """Issue 21, item 4: upload a digit, then find its nearest images on the latent map."""
    from PIL import Image

    from core import data

    if "exemplar_vae" not in shipped_maps("mnist"):
        pytest.skip("no exemplar_vae map shipped for mnist")
    digit = data.load("mnist", "test").images[3, 0].numpy()
    path = tmp_path / "my digit [draft](x).png"  # markup in the name stays text
    Image.fromarray((255 * (1 - digit)).astype("uint8")).resize((112, 112)).save(path)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{app_url}/upload?dataset=mnist")
    page.locator("[data-testid='stFileUploader'] input[type='file']").set_input_files(str(path))
    page.get_by_role("button", name="Add 1 as exemplars").click(timeout=90_000)
    page.get_by_text("my digit [draft](x).png").first.wait_for(timeout=90_000)  # the name, literally
    page.get_by_role("button", name="Show its 20 nearest images on the map").click(timeout=90_000)
    page.wait_for_url(re.compile(r"/latent_map\?.*dataset=mnist"), timeout=60_000)  # the same dataset
    page.locator("h3", has_text="Selection: 20 images").wait_for(timeout=90_000)
    page.wait_for_selector(".ll-plot[data-ringed='20']", timeout=60_000)
    assert page.get_by_role("radio", name="exemplar_vae", exact=True).get_attribute("aria-checked") == "true"
    assert page.get_by_label("Dataset").input_value() == "mnist"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "map-upload-nearest.png"))
    page.close()
