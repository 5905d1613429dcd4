"""People uploading at once: N browser sessions (8 by default) open the upload page of one server,
each uploads its own photograph of a digit and adds it, all at the same moment. Each session must
see its own upload and never another's; the server's memory is sampled throughout.

``python -m app.bench_load [SESSIONS]`` serves the app with an empty shared store of its own and
prints one JSON object: seconds per step (median and p95 over sessions) and the server's resident
memory before, at its peak and after. ``tests/test_public_demo_browser.py`` asserts on the same run.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import statistics
import sys
import tempfile
import threading
import time

from app.bench_browser import CHROMIUM, CHROMIUM_ARGS, IDLE, cpu_s, serving, wait_quiet

STEPS = ("open", "preprocessed", "added")
UPLOADER = "[data-testid='stFileUploader'] input[type='file']"
DATASET = "mnist"


def rss_mb(pid: int, key: str = "VmRSS:") -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) / 1024
    raise OSError(f"no {key} for process {pid}")


class MemorySampler(threading.Thread):
    """The largest resident size a process reaches while this runs (sampled every 50 ms)."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak, self.done = pid, 0.0, threading.Event()

    def run(self):
        while not self.done.is_set():
            self.peak = max(self.peak, rss_mb(self.pid))
            self.done.wait(0.05)

    def stop(self) -> float:
        self.done.set()
        self.join()
        return self.peak


def photo(k: int) -> tuple[str, bytes]:
    from core.bench_uploads import photo_of_digit

    digit = k % 10
    return f"session-{k}-digit-{digit}.jpg", photo_of_digit(digit, side=1200, seed=k)


async def one_person(browser, url: str, k: int, everyone: list[str]) -> dict:
    """Open the upload page, upload one photo, add it; seconds per step and what leaked in."""
    name, content = photo(k)
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    try:
        began = time.perf_counter()
        await page.goto(f"{url}/upload?dataset={DATASET}")
        await page.locator(UPLOADER).wait_for(state="attached", timeout=180_000)
        await page.wait_for_selector(IDLE, timeout=180_000)
        opened = time.perf_counter()
        await page.locator(UPLOADER).set_input_files(files=[{"name": name, "mimeType": "image/jpeg", "buffer": content}])
        add = page.get_by_role("button", name="Add 1 as exemplars")
        await add.wait_for(timeout=180_000)
        preprocessed = time.perf_counter()
        await add.click()
        # "1 exemplar: 1 yours, 0 from the shared store", or "N exemplars: 1 yours, ..."
        await page.locator("h3", has_text=re.compile(r"exemplars?: 1 yours,")).wait_for(timeout=180_000)
        added = time.perf_counter()
        await page.wait_for_selector(IDLE, timeout=180_000)
        text = await page.inner_text("body")
        return {"session": k, "open": opened - began, "preprocessed": preprocessed - opened,
                "added": added - preprocessed, "own_shown": name in text,
                "others_shown": [n for n in everyone if n != name and n in text]}
    except Exception as exc:  # noqa: BLE001: a failed session is a result, reported with the rest
        return {"session": k, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}
    finally:
        await context.close()


def p95(values: list[float]) -> float:
    """Nearest-rank 95th percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


async def _drive(url: str, pid: int, sessions: int) -> dict:
    from playwright.async_api import async_playwright

    everyone = [photo(k)[0] for k in range(sessions)]
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        await one_person(browser, url, sessions, [])  # warm-up: models and index loaded once
        await asyncio.to_thread(wait_quiet, pid)  # and the server's own warm-up has finished
        before, cpu_before = rss_mb(pid), cpu_s(pid)
        sampler = MemorySampler(pid)
        sampler.start()
        began = time.perf_counter()
        people = await asyncio.gather(*(one_person(browser, url, k, everyone) for k in range(sessions)))
        wall = time.perf_counter() - began
        peak = sampler.stop()
        await browser.close()
    done = [r for r in people if "error" not in r]
    result = {"sessions": sessions, "failed": [r for r in people if "error" in r],
              "leaks": [r for r in done if r["others_shown"] or not r["own_shown"]],
              "wall_s": round(wall, 2), "server_cpu_s": round(cpu_s(pid) - cpu_before, 1),
              "server_rss_before_mb": round(before),
              "server_rss_peak_mb": round(peak), "server_rss_after_mb": round(rss_mb(pid))}
    for step in STEPS:
        times = [r[step] for r in done]
        if times:
            result[f"{step}_median_s"] = round(statistics.median(times), 2)
            result[f"{step}_p95_s"] = round(p95(times), 2)
    return result


def run(url: str, pid: int, sessions: int = 8) -> dict:
    """In a thread of its own: its event loop must not meet one already running in the caller's
    (playwright's sync API keeps one, as in the browser tests)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, _drive(url, pid, sessions)).result()


def main() -> None:
    sessions = int(sys.argv[1]) if len(sys.argv) > 1 else 8
    with tempfile.TemporaryDirectory() as store, serving(env={"LATENT_LAB_STORE": store}) as (url, pid):
        print(json.dumps(run(url, pid, sessions)))


if __name__ == "__main__":
    main()
