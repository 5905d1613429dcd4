"""The real thing: `streamlit run app/main.py` served locally and opened in headless Chromium."""

import pytest

from app.navigation import PAGES as PAGES_TO_SMOKE
from conftest import CHROMIUM, ROOT

ARTIFACTS = ROOT / "tests" / "artifacts"
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (make setup installs it as root)")


def rendered(browser, url: str, shot: str, ready: str = "h1"):
    """Open ``url``, wait until the script has finished and ``ready`` is drawn, screenshot it."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(url, wait_until="domcontentloaded")
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=90_000)
    page.wait_for_selector(ready, timeout=60_000)
    page.wait_for_timeout(500)  # let the last elements replace their loading skeletons
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / shot), full_page=True)
    return page


def test_home_renders_in_chromium(app_url, browser):
    # Ready once the class grid is drawn: the script can finish while the image's file is still
    # on its way, and on a cold start a person sees its placeholder for a moment first.
    page = rendered(browser, app_url, "home.png", ready="[data-testid='stImage'] img")
    assert page.locator("h1").first.inner_text().strip() == "Latent Lab"
    assert page.locator("[data-testid='stException']").count() == 0
    assert page.locator("[data-testid='stAlertContentError']").count() == 0
    assert page.locator("[data-testid='stMetric']").count() >= 1  # the dataset's counts
    assert "?dataset=fashion-mnist" in page.url
    # Every page's card shows its whole title, not one cut short with an ellipsis.
    links = page.locator("[data-testid='stMainBlockContainer'] [data-testid='stPageLink'] a")
    assert links.count() == len(PAGES_TO_SMOKE) - 1
    for i in range(links.count()):
        link = links.nth(i)
        clipped = link.evaluate("a => [a, ...a.querySelectorAll('*')].filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.tagName + ': ' + e.textContent)")
        assert not clipped, clipped
    # A card is a link: clicking one opens its page, for the same dataset.
    links.filter(has_text="Rejection sampling").click()
    page.wait_for_selector("h1:has-text('Discriminator Rejection Sampling')", timeout=90_000)
    assert "?dataset=fashion-mnist" in page.url
    page.close()


def test_a_shared_url_opens_the_same_dataset(app_url, browser):
    page = rendered(browser, f"{app_url}/?dataset=mnist", "home-mnist.png")
    assert page.get_by_text("Dataset: mnist").count() == 1
    assert page.locator("[data-testid='stException']").count() == 0
    page.close()


def test_map_page_opens_a_shared_point(app_url, browser):
    from core import pretrained

    maps = [e for e in pretrained.read_manifest() if e["kind"] == "map"]
    if not maps:
        pytest.skip("no map shipped")
    entry = maps[0]
    page = rendered(browser, f"{app_url}/latent_map?dataset={entry['dataset']}&model={entry['model']}&point=3",
                    "latent-map.png", ready=".ll-root[data-ready='true']")
    assert page.get_by_text("Image #3 (train)").count() == 1
    assert page.locator("[data-testid='stException']").count() == 0
    page.close()


def test_interpolate_page_with_dataset_and_map_endpoints(app_url, browser):
    from core import pretrained

    shipped = {(e["model"], e["dataset"]) for e in pretrained.read_manifest()}
    if ("gon", "mnist") not in shipped or ("vae", "mnist") not in shipped:
        pytest.skip("gon or vae not shipped for mnist")
    page = rendered(browser, f"{app_url}/interpolate?dataset=mnist", "interpolate.png",
                    ready="[data-testid='stDownloadButton']")
    assert page.locator("[data-testid='stException']").count() == 0
    assert page.locator("[data-testid='stImage'] img").count() >= 3  # GON strip, VAE strip(s), grid
    if ("implicit_gon", "mnist") in shipped:  # under the renders, how much sharper they measured
        ratio = pretrained.find("implicit_gon", "mnist")["metrics"]["sr_energy_ratio_224"]
        page.get_by_text("How sharp, over 500 test images").scroll_into_view_if_needed()
        assert f"have {ratio:.2f}× the gradient energy of bicubic upscaling" in page.get_by_text(
            "How sharp, over 500 test images").inner_text()
        page.screenshot(path=str(ARTIFACTS / "interpolate-super-resolution.png"))
    page.close()
    if ("vae", "mnist") not in {(e["model"], e["dataset"]) for e in pretrained.read_manifest() if e["kind"] == "map"}:
        pytest.skip("no vae map shipped for mnist")
    # A point kept on the map arrives on the Interpolate page preselected (a page link keeps the
    # session; loading a new URL would start a fresh one).
    page = rendered(browser, f"{app_url}/latent_map?dataset=mnist&model=vae&point=3", "map-endpoint.png",
                    ready=".ll-root[data-ready='true']")
    page.get_by_role("button", name="Use as interpolation endpoint").click()
    follow_to_interpolate(page, "map #3", "interpolate-map-endpoint.png")


def test_super_resolution_follows_endpoint_a_and_stays_when_a_slider_moves(app_url, browser):
    """A person steps endpoint A's test image up twice: the implicit GON's renders follow it each
    time. Moving the steps slider leaves them as they were (the same picture, kept, not redrawn)."""
    from core import pretrained

    if ("implicit_gon", "mnist") not in {(e["model"], e["dataset"]) for e in pretrained.read_manifest()}:
        pytest.skip("no implicit_gon shipped for mnist")
    page = rendered(browser, f"{app_url}/interpolate?dataset=mnist", "sr-before.png",
                    ready="[data-testid='stDownloadButton']")
    largest = page.locator("[data-testid='stImage']").filter(has_text="implicit GON, 224 px").locator("img")
    step_up = page.locator("[data-testid='stNumberInput']").filter(has_text="A: test image").get_by_test_id(
        "stNumberInputStepUp")

    def settled() -> str:
        page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=90_000)
        page.wait_for_timeout(300)
        return largest.get_attribute("src")

    shown = [settled()]
    for index in (1, 2):
        step_up.click()
        page.get_by_text(f"Endpoint A (test #{index} ").wait_for(timeout=60_000)
        shown.append(settled())
    assert len(set(shown)) == 3, shown  # a new picture for each image
    slider = page.get_by_role("slider").first
    slider.focus()
    slider.press("ArrowRight")
    assert settled() == shown[-1]
    largest.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "sr-after-two-steps.png"))
    assert page.locator("[data-testid='stException']").count() == 0
    page.close()


def follow_to_interpolate(page, endpoint: str, shot: str) -> None:
    """Follow the "Interpolate between the last two kept" link; the kept ``endpoint`` must arrive
    preselected, the page must finish with its downloads and no error."""
    page.get_by_text("Interpolate between the last two kept").click(timeout=60_000)
    page.get_by_text(endpoint).first.wait_for(timeout=90_000)
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=90_000)
    page.wait_for_selector("[data-testid='stDownloadButton']", timeout=90_000)
    page.screenshot(path=str(ARTIFACTS / shot), full_page=True)
    assert "/interpolate" in page.url
    assert page.locator("[data-testid='stException']").count() == 0
    assert page.locator("[data-testid='stAlertContentError']").count() == 0
    page.close()


def test_an_uploaded_image_arrives_on_the_interpolate_page(app_url, browser, tmp_path):
    """Issue 7: an uploaded endpoint. Upload a digit, add it, keep it, follow the link."""
    from PIL import Image

    from core import data, pretrained

    shipped = {(e["model"], e["dataset"]) for e in pretrained.read_manifest()}
    if not {("gon", "mnist"), ("exemplar_vae", "mnist")} <= shipped:
        pytest.skip("gon or exemplar_vae not shipped for mnist")
    digit = data.load("mnist", "test").images[7, 0].numpy()
    path = tmp_path / "my-digit.png"
    Image.fromarray((255 * (1 - digit)).astype("uint8")).resize((112, 112)).save(path)  # ink on paper
    page = rendered(browser, f"{app_url}/upload?dataset=mnist", "upload-endpoint.png",
                    ready="[data-testid='stFileUploader']")
    page.locator("[data-testid='stFileUploader'] input[type='file']").set_input_files(str(path))
    page.get_by_role("button", name="Add 1 as exemplars").click(timeout=60_000)
    page.get_by_role("button", name="Use as interpolation endpoint").click(timeout=90_000)
    follow_to_interpolate(page, "upload my-digit.png", "interpolate-upload-endpoint.png")


@pytest.mark.slow  # every page is opened in the default suite too, in presentation mode (below)
@pytest.mark.parametrize("spec", PAGES_TO_SMOKE, ids=lambda s: s.title)
def test_every_page_renders_without_an_error_box(app_url, browser, spec):
    """Issue 9, item 7: each page in Chromium, a screenshot each (tests/artifacts/page-*.png)."""
    slug = spec.path.split("/")[-1].removesuffix(".py")
    url = app_url if spec is PAGES_TO_SMOKE[0] else f"{app_url}/{slug}"
    page = rendered(browser, url, f"page-{slug}.png")
    assert page.locator("[data-testid='stException']").count() == 0
    assert page.locator("[data-testid='stAlertContentError']").count() == 0
    page.close()


def shipped_maps(dataset: str) -> list[str]:
    from core import pretrained

    return [e["model"] for e in pretrained.read_manifest() if e["kind"] == "map" and e["dataset"] == dataset]


@pytest.mark.slow  # the default suite draws one 70k map (tests/test_map_browser.py)
@pytest.mark.parametrize("model", shipped_maps("fashion-mnist"))
def test_every_shipped_70k_map_renders(app_url, browser, model):
    """Issue 4: each model's map with all 70,000 points, drawn by WebGL in a real browser."""
    page = rendered(browser, f"{app_url}/latent_map?dataset=fashion-mnist&model={model}",
                    f"map-{model}-fashion-mnist.png", ready=".ll-root[data-ready='true'] .ll-plot canvas")
    assert page.locator("[data-testid='stException']").count() == 0
    assert page.get_by_text("70,000").count() >= 1  # the caption counts the points drawn
    page.close()


@pytest.mark.parametrize("spec", PAGES_TO_SMOKE, ids=lambda s: s.title)
def test_every_page_in_presentation_mode_at_1080p(app_url, browser, spec):
    """Issue 21, item 5: on a 1920×1080 stage, no Deploy, menu or sidebar; every page reachable
    from the bar along the top; large type. Screenshots: tests/artifacts/present-*.png."""
    slug = spec.path.split("/")[-1].removesuffix(".py")
    page = browser.new_page(viewport={"width": 1920, "height": 1080})
    page.goto(f"{app_url}/{'' if spec is PAGES_TO_SMOKE[0] else slug}?present=1", wait_until="domcontentloaded")
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=90_000)
    page.wait_for_selector("h1", timeout=60_000)
    page.wait_for_timeout(1000)  # let images and charts replace their skeletons
    # What the audience sees once the page has settled (the top bar lays its links out after the
    # first paint, and a loaded machine paints late): waits, not instant checks.
    for hidden in ["stAppDeployButton", "stMainMenu", "stSidebar", "stExpandSidebarButton"]:
        page.locator(f"[data-testid='{hidden}']").first.wait_for(state="hidden", timeout=15_000)
    page.wait_for_function("(n) => document.querySelectorAll(\"[data-testid='stTopNavLink']\").length === n",
                           arg=len(PAGES_TO_SMOKE), timeout=15_000)
    page.wait_for_function("() => parseFloat(getComputedStyle(document.querySelector('h1')).fontSize) >= 48",
                           timeout=15_000)
    assert page.locator("[data-testid='stException']").count() == 0
    assert page.locator("[data-testid='stAlertContentError']").count() == 0
    assert "present=1" in page.url  # the mode stays in the URL, to share
    # The page's title sits below the bar of pages, not under it.
    title_top = page.evaluate("document.querySelector('h1').getBoundingClientRect().top")
    bar_bottom = page.evaluate("Math.max(...[...document.querySelectorAll(\"[data-testid='stTopNavLink']\")]"
                               ".map(e => e.getBoundingClientRect().bottom))")
    assert title_top >= bar_bottom, (title_top, bar_bottom)
    if slug == "latent_map":  # the screenshot shows the map, not its loading note
        page.wait_for_selector(".ll-root[data-ready='true'] .ll-plot .main-svg", timeout=90_000)
        page.wait_for_selector(".ll-root[data-images='ready']", timeout=90_000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"present-{slug}.png"))
    page.close()


def test_drs_page_shows_the_figures_in_features_that_chose_nothing(app_url, browser):
    """A person reading the DRS page sees, beside the yardstick's gain, what the same draws do in the
    other feature spaces, and that none of them chose the head or γ."""
    from core import pretrained

    judged = pretrained.find("gan", "mnist")["metrics"]["independent"]
    page = rendered(browser, f"{app_url}/drs?dataset=mnist", "drs-in-features-that-chose-nothing.png",
                    ready="text=In features that chose nothing.")
    paragraph = page.locator("p", has_text="In features that chose nothing.").first
    paragraph.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "drs-in-features-that-chose-nothing.png"))
    text = " ".join(paragraph.inner_text().split())
    assert "chosen by FD in the VAE's features" in text
    assert f"{judged['probe']['fd_change_median']:+.1%} in an MLP probe's features" in text
    assert f"{judged['swav_pooled']['fd_change_median']:+.1%} in SwAV's pooled features" in text
    assert page.locator("[data-testid='stException']").count() == 0
    page.close()
