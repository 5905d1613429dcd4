"""A public demo in a real browser (issue 22): names that people choose stay text for every later
visitor, and eight people uploading at once each get their own result on a server whose memory
stays bounded."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import upload_images as ui
from app import bench_load
from app.text import WORD_JOINER

ARTIFACTS = Path(__file__).parent / "artifacts"
UPLOADER = "[data-testid='stFileUploader'] input[type='file']"
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"
# Markdown and HTML that would fetch or link to a host if rendered. The host does not exist, and
# every request to it is caught and counted.
HOSTILE_NAMES = ["![t](http://trap.invalid/pixel.png).png", "[click me](http://trap.invalid/phish).png",
                 "<img src=http://trap.invalid/tag.png>.png", "www.trap.invalid mail@trap.invalid.png"]
SERVER_RSS_BOUND_MB = 2500  # the whole server, every model loaded, during eight uploads at once
LOAD_GROWTH_BOUND_MB = 400  # what eight sessions' uploads may add to it


def trapped_context(browser, hits: list[str]):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.route(re.compile(r"^https?://trap\.invalid/.*"), lambda route: (hits.append(route.request.url), route.abort()))
    return context


def test_stored_names_with_markup_stay_text_for_every_later_visitor(browser, app_url):
    hits: list[str] = []
    first = trapped_context(browser, hits)
    page = first.new_page()
    page.goto(f"{app_url}/upload?dataset=mnist")
    files = [{"name": name, "mimeType": "image/png", "buffer": ui.encode(ui.printed_digit(i + 1))}
             for i, name in enumerate(HOSTILE_NAMES)]
    page.locator(UPLOADER).set_input_files(files=files)
    page.get_by_role("button", name=f"Add {len(files)} as exemplars").click(timeout=120_000)
    save = page.get_by_role("button", name=re.compile(rf"Save {len(files)} to the shared store"))
    save.click(timeout=120_000)
    page.get_by_text(f"Saved {len(files)} exemplars to the shared store.").wait_for(timeout=60_000)
    first.close()

    later = trapped_context(browser, hits)  # a fresh visitor: the names come from the store
    page = later.new_page()
    page.goto(f"{app_url}/upload?dataset=mnist")
    page.locator("h3", has_text=re.compile(r"from the shared store")).wait_for(timeout=120_000)
    page.wait_for_selector(IDLE, timeout=60_000)
    body = page.inner_text("body").replace(WORD_JOINER, "")  # invisible: it only breaks autolinks
    for name in HOSTILE_NAMES:
        assert name in body, f"{name!r} is not shown literally"
    assert page.locator("a[href*='trap.invalid']").count() == 0  # no link, bare URLs included
    assert page.locator("img[src*='trap.invalid']").count() == 0
    assert hits == []  # no browser fetched anything from the names
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "upload-hostile-names.png"), full_page=True)
    later.close()


@pytest.mark.slow  # eight Chromium sessions beside the server on 2 cores: about 2 minutes
def test_eight_people_uploading_at_once_each_see_only_their_own(app_server):
    url, pid = app_server
    result = bench_load.run(url, pid, sessions=8)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "load-8-sessions.json").write_text(json.dumps(result, indent=2))
    assert result["failed"] == [], result["failed"]
    assert result["leaks"] == [], result["leaks"]  # nobody saw another's unsaved upload
    assert result["server_rss_peak_mb"] <= SERVER_RSS_BOUND_MB, result
    assert result["server_rss_peak_mb"] - result["server_rss_before_mb"] <= LOAD_GROWTH_BOUND_MB, result
    for step in bench_load.STEPS:
        assert result[f"{step}_p95_s"] > 0
