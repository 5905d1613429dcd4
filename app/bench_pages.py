"""Server render time of every page, warm (the second run of each), printed as one JSON object:
``python -m app.bench_pages [DATASET]``. ``python -m core bench`` runs this in a subprocess, so
that core never imports Streamlit."""

import json
import os
import sys
import time
from pathlib import Path

# The server's background warm-up would load every model beside the timed renders, and a process
# that exits while it runs torch is aborted: each page loads what it needs when it is rendered.
os.environ["LATENT_LAB_WARM_UP"] = "0"

from streamlit.testing.v1 import AppTest

from app.navigation import PAGES

MAIN = str(Path(__file__).resolve().parent / "main.py")


def render_times(dataset: str) -> dict[str, float]:
    result = {}
    for page in PAGES:
        at = AppTest.from_file(MAIN, default_timeout=300)
        at.query_params["dataset"] = dataset
        at.run()
        if page is not PAGES[0]:
            at.switch_page(page.path)
            at.run()  # cold: loads models and data into the caches
        began = time.perf_counter()
        at.run()
        if at.exception:
            raise RuntimeError(f"{page.path} raised: {at.exception[0].value}")
        result[f"page_{page.path.split('/')[-1].removesuffix('.py')}_ms"] = 1000 * (time.perf_counter() - began)
    return result


if __name__ == "__main__":
    print(json.dumps(render_times(sys.argv[1] if len(sys.argv) > 1 else "fashion-mnist")))
