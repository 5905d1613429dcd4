"""The latent map driven as a person drives it: real mouse gestures in headless Chromium through
playwright, against a running app. The browser tests assert what these gestures show; the
benchmark times them: ``python -m app.bench_browser [DATASET]`` prints one JSON object, and
``python -m core bench`` runs it in a subprocess, so that core never drives the app.

Every wait here ends on what a person would see (a heading, a thumbnail, drawn images), never on
a fixed sleep, and every figure is a median over repeats.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from app.navigation import PAGES
from core import pretrained

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# As root, chromium needs --no-sandbox; the closed network refuses its background connections.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
                 "--no-first-run", "--disable-component-update", "--disable-sync"]
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"
# What a visitor sees as a finished page: the script done, every chart drawn, every image decoded
# (a chart is drawn in the browser after the script has finished).
DRAWN = f"""() => document.querySelector("{IDLE}")
  && [...document.querySelectorAll("[data-testid='stPlotlyChart']")].every(c => c.querySelector('.main-svg'))
  && [...document.querySelectorAll('.ll-root')].every(r => r.querySelector('.ll-plot[data-drawn]'))
  && [...document.querySelectorAll('img')].every(i => i.complete)"""
MAP_READY = ".ll-root[data-ready='true'] .ll-plot .main-svg"
THUMB_TEXT = re.compile(r"^#(\d+) (.+) \((train|test)\)$")

# Counts the script runs the page starts (a full run or a fragment's), from the app's own
# running/not-running attribute, so a test can tell one rerun from a loop.
COUNT_RUNS = """
window.__scriptRuns = 0;
// Count runs that ended (a record whose old value is "running"): reading the attribute when the
// observer fires would miss a fast run, already over by then. The whole document is watched, so
// an app element that React replaces is still counted.
new MutationObserver((records) => {
  for (const r of records) if (r.oldValue === "running") window.__scriptRuns++;
}).observe(document, {subtree: true, attributes: true, attributeOldValue: true,
                      attributeFilter: ["data-test-script-state"]});
"""
# Where image `index` is drawn on map `plot`, in page pixels, from the plot's own axes.
PIXEL_OF = """([index, plot]) => {
  const div = document.querySelectorAll(".ll-plot")[plot];
  const arrays = document.querySelector(".ll-root").__latentMap.plots[plot].arrays;
  const layout = div._fullLayout, box = div.getBoundingClientRect();
  return [box.left + layout._size.l + layout.xaxis.l2p(arrays.x[index]),
          box.top + layout._size.t + layout.yaxis.l2p(arrays.y[index])];
}"""
# How many images lie inside a page-pixel rectangle of map `plot`: what a box there must select.
COUNT_INSIDE = """([x0, y0, x1, y1, plot]) => {
  const div = document.querySelectorAll(".ll-plot")[plot];
  const arrays = document.querySelector(".ll-root").__latentMap.plots[plot].arrays;
  const layout = div._fullLayout, box = div.getBoundingClientRect();
  let n = 0;
  for (let i = 0; i < arrays.x.length; i++) {
    const px = box.left + layout._size.l + layout.xaxis.l2p(arrays.x[i]);
    const py = box.top + layout._size.t + layout.yaxis.l2p(arrays.y[i]);
    if (px > x0 && px < x1 && py > y0 && py < y1) n++;
  }
  return n;
}"""
# A dense spot: the image with the most others within `radius` pixels, among a sample.
DENSE_SPOT = """([radius, plot]) => {
  const div = document.querySelectorAll(".ll-plot")[plot];
  const arrays = document.querySelector(".ll-root").__latentMap.plots[plot].arrays;
  const layout = div._fullLayout;
  const px = (i) => layout.xaxis.l2p(arrays.x[i]), py = (i) => layout.yaxis.l2p(arrays.y[i]);
  const n = arrays.x.length, step = Math.max(1, Math.floor(n / 300));
  let best = 0, bestCount = -1;
  for (let i = 0; i < n; i += step) {
    let count = 0;
    for (let j = 0; j < n; j += step) if (Math.abs(px(j) - px(i)) < radius && Math.abs(py(j) - py(i)) < radius) count++;
    if (count > bestCount) { best = i; bestCount = count; }
  }
  return best;
}"""


def launch(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def served_app(timeout_s: float = 90.0, env: dict | None = None):
    """``streamlit run app/main.py`` on a free local port; yields its URL."""
    with serving(timeout_s, env) as (url, _):
        yield url


@contextmanager
def serving(timeout_s: float = 90.0, env: dict | None = None):
    """``streamlit run app/main.py`` on a free local port, ``env`` added to its environment;
    yields its URL and process id (to read its memory). Its log goes to a file, not a pipe that
    nobody reads and that would stall the server once full."""
    import tempfile

    port = free_port()
    log = tempfile.TemporaryFile(mode="w+")
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app/main.py", "--server.port", str(port),
         "--server.address", "127.0.0.1"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "LATENT_LAB_WARM_UP": "1", **(env or {})})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError(f"streamlit did not start: {log.read()[-2000:]}") from None
                time.sleep(0.5)
        yield url, server.pid
    finally:
        server.terminate()
        server.wait(timeout=20)
        log.close()


class MapPage:
    """One browser tab on the Latent map page, with the gestures a person makes on it."""

    def __init__(self, browser, url: str, width: int = 1400, height: int = 1000):
        self.page = browser.new_page(viewport={"width": width, "height": height})
        self.page.add_init_script(COUNT_RUNS)
        self.bytes_received = 0  # over the websocket and over HTTP (images, map files), bodies only
        self.page.on("websocket", lambda ws: ws.on("framereceived", self._count))
        self.page.on("response", self._count_response)
        self.page.goto(url)
        self.wait_ready()

    def _count(self, payload) -> None:
        self.bytes_received += len(payload) if isinstance(payload, (bytes, str)) else 0

    def _count_response(self, response) -> None:
        self.bytes_received += int(response.headers.get("content-length") or 0)

    def wait_ready(self, timeout_ms: int = 120_000) -> None:
        self.page.wait_for_selector(IDLE, timeout=timeout_ms)
        self.page.wait_for_selector(MAP_READY, timeout=timeout_ms)
        self.page.wait_for_selector(".ll-root[data-images='ready']", timeout=timeout_ms)

    def wait_idle(self) -> None:
        self.page.wait_for_selector(IDLE, timeout=60_000)

    @property
    def runs(self) -> int:
        return self.page.evaluate("window.__scriptRuns")

    def wait_rerun(self, start: int) -> None:
        """Wait until a script run has ended since ``start`` (see ``runs``) and the app is idle. A
        run short enough to start and end within one paint never shows as running, so after ten
        seconds with none counted, an idle app is taken as done: the caller then checks what the
        run should have shown."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        try:
            self.page.wait_for_function("(n) => window.__scriptRuns > n", arg=start, timeout=10_000)
        except PlaywrightTimeout:
            pass
        self.wait_idle()

    def runs_after(self, start: int, settle_ms: int = 2500) -> int:
        """Script runs since ``start``, counted after the page has been left alone a while."""
        self.page.wait_for_timeout(settle_ms)
        self.wait_idle()
        return self.runs - start

    def pixel_of(self, index: int, plot: int = 0) -> tuple[float, float]:
        x, y = self.page.evaluate(PIXEL_OF, [index, plot])
        return float(x), float(y)

    def dense_spot(self, radius: float = 25, plot: int = 0) -> int:
        return int(self.page.evaluate(DENSE_SPOT, [radius, plot]))

    def count_inside(self, x0, y0, x1, y1, plot: int = 0) -> int:
        return int(self.page.evaluate(COUNT_INSIDE, [x0, y0, x1, y1, plot]))

    def view(self, plot: int = 0) -> tuple[float, float, float, float]:
        """What the map shows: its x range and the centre of its y range, rounded. (The y range
        itself follows the plot's height at equal aspect: a page that grows a scrollbar narrows
        the plot, and Plotly widens the y range about its centre to keep the aspect.)"""
        (x0, x1), (y0, y1) = self.page.evaluate("""(plot) => { const l = document.querySelectorAll(".ll-plot")[plot]._fullLayout;
                                                   return [l.xaxis.range.slice(), l.yaxis.range.slice()]; }""", plot)
        return round(x0, 4), round(x1, 4), round((y0 + y1) / 2, 4), round(x1 - x0, 4)

    def hover(self, index: int, plot: int = 0) -> tuple[int, str, str, float]:
        """Move the mouse onto image ``index``; returns the thumbnail's (index, class, split) and
        the milliseconds from the move to the thumbnail on screen."""
        x, y = self.pixel_of(index, plot)
        self.page.mouse.move(x - 40, y - 40)  # off the point first, so the move onto it is a new hover
        self.page.wait_for_timeout(150)
        # Start the clock with the thumbnail put away, as it is after the cursor leaves a point.
        self.page.evaluate("""() => { window.__thumbShown = null; const thumb = document.querySelector(".ll-thumb");
            thumb.hidden = true; delete thumb.dataset.index; const t0 = performance.now();
            const tick = () => { if (!thumb.hidden && thumb.dataset.index) window.__thumbShown = performance.now() - t0;
                                 else requestAnimationFrame(tick); }; tick(); }""")
        self.page.mouse.move(x, y)
        self.page.wait_for_function("window.__thumbShown !== null", timeout=10_000)
        ms = float(self.page.evaluate("window.__thumbShown"))
        match = THUMB_TEXT.match(self.page.locator(".ll-thumb-text").inner_text().strip())
        assert match, self.page.locator(".ll-thumb-text").inner_text()
        return int(match[1]), match[2], match[3], ms

    def heading(self, prefix: str):
        return self.page.locator("h3", has_text=prefix)

    def click(self, index: int, plot: int = 0) -> tuple[int, float]:
        """Hover image ``index``, then click it. Returns the index the page shows and the seconds
        from the click until its heading, its images and its neighbours are on screen."""
        shown, _, _, _ = self.hover(index, plot)
        x, y = self.pixel_of(index, plot)
        began = time.perf_counter()
        self.page.mouse.click(x, y)
        self.page.wait_for_function(
            """(n) => { const h = [...document.querySelectorAll("h3")].find(e => e.innerText.startsWith(`Image #${n} `));
                        const images = [...document.querySelectorAll("[data-testid='stImage'] img")];
                        return h && images.length >= 9 && images.every(i => i.complete && i.naturalWidth > 0); }""",
            arg=shown, timeout=60_000)
        return shown, time.perf_counter() - began

    def tool(self, name: str, plot: int = 0) -> None:
        """Pick a tool in the map's toolbar: "select" (box), "lasso", "pan", "zoom"."""
        self.page.locator(".ll-plot").nth(plot).hover()
        self.page.locator(".ll-plot").nth(plot).locator(f".modebar-btn[data-val='{name}'][data-attr='dragmode']").click()

    def drag(self, points: list[tuple[float, float]]) -> float:
        """Press at the first point, move through the rest, release. Returns perf_counter at the release."""
        self.page.mouse.move(*points[0])
        self.page.mouse.down()
        for p in points[1:]:
            self.page.mouse.move(*p, steps=2)
        released = time.perf_counter()
        self.page.mouse.up()
        return released

    def wait_selection(self, previous: str | None = None) -> tuple[int, str]:
        """Wait for a new "Selection: N images" heading with its gallery; returns N and the text."""
        self.page.wait_for_function(
            """(previous) => { const h = [...document.querySelectorAll("h3")].find(e => e.innerText.startsWith("Selection:"));
                               const gallery = [...document.querySelectorAll("[data-testid='stImage'] img")];
                               return h && h.innerText !== previous && gallery.length && gallery.every(i => i.complete); }""",
            arg=previous, timeout=60_000)
        text = self.heading("Selection:").first.inner_text()
        return int(re.search(r"Selection: ([\d,]+) images", text)[1].replace(",", "")), text

    def box_select(self, index: int, half: float = 30, plot: int = 0) -> tuple[int, tuple[int, int], float]:
        """Drag a box of ±``half`` pixels around image ``index`` with the Box Select tool.
        Returns (N the page shows, (images surely inside the box, images within a pixel of it),
        seconds from release to gallery)."""
        self.tool("select", plot)
        x, y = self.pixel_of(index, plot)
        # Points on the box's edge may fall either way of Plotly's rounding: count both ways.
        inside = (self.count_inside(x - half + 1, y - half + 1, x + half - 1, y + half - 1, plot),
                  self.count_inside(x - half - 1, y - half - 1, x + half + 1, y + half + 1, plot))
        previous = self.heading("Selection:").all_inner_texts()
        released = self.drag([(x - half, y - half), (x, y), (x + half, y + half)])
        shown, _ = self.wait_selection(previous[0] if previous else None)
        return shown, inside, time.perf_counter() - released

    def lasso_select(self, index: int, radius: float = 30, plot: int = 0) -> tuple[int, float]:
        """Draw a lasso (an octagon of ``radius`` pixels) around image ``index``."""
        import math

        self.tool("lasso", plot)
        x, y = self.pixel_of(index, plot)
        ring = [(x + radius * math.cos(a * math.pi / 4), y + radius * math.sin(a * math.pi / 4)) for a in range(9)]
        previous = self.heading("Selection:").all_inner_texts()
        released = self.drag(ring)
        shown, _ = self.wait_selection(previous[0] if previous else None)
        return shown, time.perf_counter() - released

    def ringed(self, plot: int = 0) -> int:
        """Images ringed as selected on map ``plot``."""
        return int(self.page.locator(".ll-plot").nth(plot).get_attribute("data-ringed") or 0)

    def zoom_in(self, plot: int = 0, clicks: int = 3) -> None:
        box = self.page.locator(".ll-plot").nth(plot).bounding_box()
        self.page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        for _ in range(clicks):
            self.page.mouse.wheel(0, -200)
            self.page.wait_for_timeout(150)

    def close(self) -> None:
        self.page.close()


def _median(values: list[float], digits: int = 1) -> float:
    return round(statistics.median(values), digits)


def measure(url: str, browser, dataset: str = "fashion-mnist", repeats: int = 3) -> dict:
    """Browser figures for the benchmark, as medians over ``repeats``, warm (each page visited once
    before timing). Milliseconds unless the name says otherwise."""
    models = [e["model"] for e in pretrained.read_manifest() if e["kind"] == "map" and e["dataset"] == dataset]
    result: dict = {"browser_dataset": dataset}
    m = MapPage(browser, f"{url}/latent_map?dataset={dataset}&model={models[0]}")
    hovers, clicks, boxes, click_bytes, box_bytes = [], [], [], [], []
    spot = m.dense_spot()
    for r in range(repeats):
        index = spot + 7 * r + 1
        hovers.append(m.hover(index)[3])
        sent = m.bytes_received
        clicks.append(m.click(index)[1] * 1000)
        m.wait_idle()
        click_bytes.append(m.bytes_received - sent)
        sent = m.bytes_received
        boxes.append(m.box_select(spot, half=30 + 5 * r)[2] * 1000)
        m.wait_idle()
        box_bytes.append(m.bytes_received - sent)
        m.tool("pan")
    switches, switch_bytes = [], []
    for r in range(repeats):
        target = models[(r + 1) % len(models)]
        sent = m.bytes_received
        began = time.perf_counter()
        m.page.get_by_role("radio", name=target, exact=True).click()
        m.page.wait_for_function("(name) => { const d = document.querySelector('.ll-plot'); return d && d.dataset.model === name && d.data; }",
                                 arg=target, timeout=60_000)
        m.wait_idle()
        switches.append((time.perf_counter() - began) * 1000)
        switch_bytes.append(m.bytes_received - sent)
    m.close()
    result.update(browser_hover_ms=_median(hovers), browser_click_ms=_median(clicks),
                  browser_box_select_ms=_median(boxes), browser_model_switch_ms=_median(switches),
                  map_bytes_per_click=int(statistics.median(click_bytes)),
                  map_bytes_per_box=int(statistics.median(box_bytes)),
                  map_bytes_per_switch=int(statistics.median(switch_bytes)))
    return result


def first_visits(url: str, browser, dataset: str = "fashion-mnist") -> dict[str, float]:
    """Seconds from opening each page in a fresh tab to its script finishing and every chart and
    image drawn, on a server whose caches were warmed by one earlier visit of every page (what a
    new visitor waits)."""
    seconds = {}
    for spec in PAGES:
        slug = spec.path.split("/")[-1].removesuffix(".py")
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        began = time.perf_counter()
        page.goto(f"{url}/{'' if spec is PAGES[0] else slug}?dataset={dataset}")
        page.wait_for_selector("h1", timeout=120_000)
        page.wait_for_selector(IDLE, timeout=120_000)
        page.wait_for_function(DRAWN, timeout=120_000, polling=50)
        seconds[slug] = round(time.perf_counter() - began, 2)
        page.close()
    return seconds


def store_page_visits(dataset: str = "mnist", repeats: int = 3, baseline_rows: int = 100) -> dict:
    """Seconds for a new visitor's Upload page (a fresh tab on a warm server) to be drawn, with a
    shared store of 10,000 rows and, as the baseline, of ``baseline_rows`` (enough that the page
    shows every section and as many uploads in detail): what the store's size adds to opening the
    page. Medians over ``repeats`` visits."""
    import tempfile

    from playwright.sync_api import sync_playwright

    from core.bench_uploads import STORE_ROWS, filled_store

    result = {}
    with tempfile.TemporaryDirectory() as full, tempfile.TemporaryDirectory() as small:
        filled_store(full, dataset)
        filled_store(small, dataset, rows=baseline_rows)
        for name, folder in (("store", full), ("store_baseline", small)):
            with serving(env={"LATENT_LAB_STORE": folder}) as (url, pid), sync_playwright() as p:
                browser = launch(p)
                try:
                    visits = []
                    for visit in range(repeats + 1):  # the first warms the server's caches
                        page = browser.new_page(viewport={"width": 1400, "height": 1000})
                        began = time.perf_counter()
                        page.goto(f"{url}/upload?dataset={dataset}")
                        page.wait_for_selector("h1", timeout=120_000)
                        page.wait_for_function(DRAWN, timeout=120_000, polling=50)
                        visits.append(time.perf_counter() - began)
                        page.close()
                        if visit == 0:
                            wait_quiet(pid)
                finally:
                    browser.close()
            result[f"browser_upload_page_{name}_s"] = _median(visits[1:], 2)
    result.update(browser_store_rows=STORE_ROWS, browser_store_baseline_rows=baseline_rows)
    result["browser_store_join_ms"] = round(
        1000 * (result["browser_upload_page_store_s"] - result["browser_upload_page_store_baseline_s"]))
    return result


def cpu_s(pid: int) -> float:
    """CPU seconds a process has used (user and system)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_quiet(pid: int, timeout_s: float = 300.0) -> None:
    """Until a process uses under a tenth of a core over two seconds (a server whose background
    warm-up has finished)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        used = cpu_s(pid)
        time.sleep(2.0)
        if cpu_s(pid) - used < 0.2:
            return


def run(dataset: str = "fashion-mnist", repeats: int = 3) -> dict:
    """Every browser figure on a fresh server: each page visited once to warm it, and the server's
    own warm-up finished, then timed."""
    from playwright.sync_api import sync_playwright

    if CHROMIUM is None:
        raise OSError("no chromium on this machine (make setup installs Debian's chromium as root)")
    with serving() as (url, pid), sync_playwright() as p:
        browser = launch(p)
        try:
            first_visits(url, browser, dataset)  # warm: a server is started before its audience arrives
            wait_quiet(pid)
            result = {"browser_first_visit_s": first_visits(url, browser, dataset)}
            result.update(measure(url, browser, dataset, repeats))
        finally:
            browser.close()
    result.update(store_page_visits())
    return result


if __name__ == "__main__":
    import json

    print(json.dumps(run(sys.argv[1] if len(sys.argv) > 1 else "fashion-mnist")))
