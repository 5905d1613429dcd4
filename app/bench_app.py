"""Cold start (``streamlit run`` until the Home page has rendered in headless Chromium) and the
server's peak memory after every page has been opened once. ``python -m app.bench_app`` prints
one JSON object; ``python -m core bench`` runs it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.request

from app.bench_browser import ROOT, free_port
from app.navigation import PAGES


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise OSError("no VmHWM in /proc")


def bench_app(timeout: float = 120.0) -> dict:
    """Cold start (``streamlit run`` to the Home page rendered in Chromium) and the server's peak
    memory after every page has been opened once."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        return {"cold_start_s": None, "peak_rss_mb": None, "app_note": "chromium not installed"}
    from playwright.sync_api import sync_playwright

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    began = time.perf_counter()
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app/main.py", "--server.port",
                               str(port), "--server.address", "127.0.0.1"], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                    break
            except OSError:
                if server.poll() is not None or time.perf_counter() - began > timeout:
                    raise OSError("streamlit did not start") from None
                time.sleep(0.1)
        done = "[data-testid='stApp'][data-test-script-state='notRunning']"
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            page = browser.new_page()
            page.goto(url)
            page.wait_for_selector("h1", timeout=timeout * 1000)
            page.wait_for_selector(done, timeout=timeout * 1000)
            cold_start = time.perf_counter() - began
            for spec in PAGES[1:]:
                page.goto(f"{url}/{spec.path.split('/')[-1].removesuffix('.py')}")
                page.wait_for_selector(done, timeout=timeout * 1000)
            browser.close()
        return {"cold_start_s": cold_start, "peak_rss_mb": peak_rss_mb(server.pid)}
    finally:
        server.terminate()
        server.wait(timeout=20)



if __name__ == "__main__":
    print(json.dumps(bench_app()))
