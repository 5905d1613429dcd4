"""``python -m core bench``: where a person waits, measured on the machine it runs on.

Each figure comes with its budget from the issues and the ratio to it, and where a budget is a
claim about a method (faiss against brute force), the baseline runs beside it in the same
process. Times are medians over repeats. The app-level figures (cold start, peak memory) serve
the real app with ``streamlit run`` and open it in headless Chromium; they are left out, with
the reason, where Chromium is missing.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from typing import Callable

import numpy as np
import torch

from core.paths import ROOT

BUDGETS_MS = {  # from the issues: 4 (map), 5 (uploads, kNN), 7 (interpolation), 21 (in a browser)
    "browser_hover_ms": 100.0,
    "browser_click_ms": 1000.0,
    "browser_box_select_ms": 1500.0,
    "browser_model_switch_ms": 2000.0,
    "map_figure_ms": 500.0,
    "selection_gallery_ms": 300.0,
    "upload_pipeline_ms": 300.0,
    "upload_worst_case_ms": 2000.0,
    "store_join_ms": 1000.0,
    "browser_store_join_ms": 1000.0,
    "knn_query_ms": 2.0,
    "interpolation_ms": 300.0,
}
TRAINING_FAMILIES = ("vae", "exemplar_vae", "classifier", "gan", "gon", "implicit_gon", "swav")


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up: first calls allocate and fill caches
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        times.append(1000 * (time.perf_counter() - began))
    return statistics.median(times)


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_implementation()} {platform.python_version()}, torch {torch.__version__}"


# --- the latent map (issue 4) ------------------------------------------------------------------

def bench_map(dataset: str = "fashion-mnist", model: str = "exemplar_vae", repeats: int = 10) -> dict:
    """The 70k-point figure as the page builds it, and a selection of 100 points turned into the
    page's gallery and label histogram."""
    from core import data, figures, images, pretrained, projection

    arrays = pretrained.load_map(model, dataset)
    classes = data.load(dataset, "train").classes
    labels = projection.all_labels(dataset).numpy()
    every_image = projection.all_images(dataset)
    chosen = np.random.default_rng(0).choice(len(labels), 100, replace=False)

    def figure():
        figures.latent_map(arrays["coords"], labels, classes, "label", None, [int(chosen[0])])

    def gallery():
        picked = sorted(int(i) for i in chosen)
        images.grid(every_image[picked], nrow=10)
        figures.label_histogram(labels[picked], classes)

    return {"map_points": len(labels), "map_figure_ms": median_ms(figure, repeats),
            "selection_gallery_ms": median_ms(gallery, repeats)}


# --- DRS scoring and training throughput ---------------------------------------------------------

def bench_drs(dataset: str = "fashion-mnist", n: int = 5000) -> dict:
    from core import drs, pretrained

    gan, _ = pretrained.load("gan", dataset)
    rng = torch.Generator().manual_seed(0)
    ms = median_ms(lambda: drs.draw(gan, n, 0.0, rng), 3)
    return {"drs_samples_per_s": n / (ms / 1000)}


def bench_training(dataset: str = "fashion-mnist", batches: int = 5) -> dict:
    """Images per second through one family's own training step (batch as in its config)."""
    from core import data, models, train

    images = data.load(dataset, "train").images
    labels = data.load(dataset, "train").labels
    result = {}
    for family in TRAINING_FAMILIES:
        if family not in models.MODELS:
            continue
        torch.manual_seed(0)
        model = models.build(family).train()
        if hasattr(model, "train_step"):
            optimizers = model.configure_optimizers()
            batch = model.config.batch_size
            if hasattr(model, "on_epoch_start"):
                model.on_epoch_start(images[:2000])

            def step(i):
                idx = torch.arange(i * batch, (i + 1) * batch)
                model.train_step(images[idx], labels[idx], optimizers, epoch=1)
        else:  # the VAE family trains in core.train's own loop: the same forward/backward/step
            optimizer = torch.optim.Adam(model.parameters(), lr=train.TrainConfig.lr)
            batch = train.TrainConfig.batch_size
            if hasattr(model, "on_epoch_start"):
                model.on_epoch_start(images)

            def step(i):
                idx = torch.arange(i * batch, (i + 1) * batch)
                out = model(torch.bernoulli(images[idx]), beta=1.0, index=idx)
                optimizer.zero_grad(set_to_none=True)
                out.loss.backward()
                optimizer.step()
        step(0)  # warm-up
        began = time.perf_counter()
        for i in range(1, batches + 1):
            step(i)
        result[f"train_{family}_images_per_s"] = batch * batches / (time.perf_counter() - began)
    return result


# --- the app as people get it -------------------------------------------------------------------

def bench_pages(dataset: str = "fashion-mnist") -> dict:
    """Server render time of every page (AppTest, warm), measured by ``app/bench_pages.py`` in a
    subprocess: core stays free of Streamlit."""
    import json

    done = subprocess.run([sys.executable, "-m", "app.bench_pages", dataset], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise OSError(f"page render benchmark failed: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_app() -> dict:
    """Cold start and the server's peak memory (``app/bench_app.py``, in a subprocess: core does
    not drive the app)."""
    import json

    done = subprocess.run([sys.executable, "-m", "app.bench_app"], cwd=ROOT, capture_output=True,
                          text=True, timeout=900)
    if done.returncode != 0:
        raise OSError(f"app.bench_app failed: {done.stderr.strip().splitlines()[-1:] or done.returncode}")
    return json.loads(done.stdout.strip().splitlines()[-1])


FIRST_VISIT_BUDGET_S = 3.0
CLI_ERROR_BUDGET_S = 1.0


def bench_browser(dataset: str = "fashion-mnist") -> dict:
    """Hover, click, box select, model switch and every page's first visit, in Chromium with real
    gestures (``app/bench_browser.py``, in a subprocess: core does not drive the app)."""
    import json

    done = subprocess.run([sys.executable, "-m", "app.bench_browser", dataset], cwd=ROOT,
                          capture_output=True, text=True, timeout=1200)
    if done.returncode != 0:
        raise OSError(f"browser benchmark failed: {done.stderr.strip().splitlines()[-1:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    visits = result.pop("browser_first_visit_s")
    result.update({f"browser_first_visit_{page}_s": seconds for page, seconds in visits.items()})
    result["browser_first_visit_slowest_s"] = max(visits.values())
    return result


def run(progress: bool = True) -> dict:
    from tqdm.auto import tqdm

    from core import bench_uploads, interpolation

    from core.paths import APP_TORCH_THREADS

    began = time.perf_counter()
    training_threads = torch.get_num_threads()
    torch.set_num_threads(APP_TORCH_THREADS)  # what the app runs with (app/main.py)
    result: dict = {"machine": machine(), "app_torch_threads": APP_TORCH_THREADS,
                    "training_torch_threads": training_threads}

    def training():
        torch.set_num_threads(training_threads)  # as `python -m core train` runs
        try:
            return bench_training()
        finally:
            torch.set_num_threads(APP_TORCH_THREADS)

    steps = [
        ("latent map", lambda: bench_map()),
        ("uploads and kNN", lambda: bench_uploads.bench_uploads()),
        ("shared store and limits", lambda: bench_uploads.bench_store_and_limits()),
        ("interpolation", lambda: interpolation.benchmark()),
        ("DRS scoring", lambda: bench_drs()),
        ("training throughput", training),
        ("page renders", lambda: bench_pages()),
        ("cold start and memory", lambda: bench_app()),
        ("browser gestures", lambda: bench_browser()),
    ]
    for name, step in tqdm(steps, desc="bench", disable=not progress):
        try:
            result.update(step())
        except (ValueError, OSError) as exc:  # e.g. an artifact not shipped yet: say so, go on
            result[f"error_{name.replace(' ', '_')}"] = str(exc)
    gon = [v for k, v in result.items() if k.endswith("_interpolation_16_steps_ms")]
    if gon:
        result["interpolation_ms"] = max(gon)  # the slower GON family: the budget is per model
    for key, budget in BUDGETS_MS.items():
        if result.get(key) is not None:
            result[f"{key.removesuffix('_ms')}_budget_ratio"] = result[key] / budget
    if result.get("browser_first_visit_slowest_s") is not None:
        result["browser_first_visit_budget_ratio"] = result["browser_first_visit_slowest_s"] / FIRST_VISIT_BUDGET_S
    result["bench_seconds"] = time.perf_counter() - began
    return result


def table(result: dict) -> str:
    """The figures people compare with their budgets, as a markdown table."""
    rows = [  # (label, key, budget key, baseline key: the same work done the plain way, same run)
        ("cold start (s)", "cold_start_s", None, None),
        ("browser: hover → thumbnail (ms)", "browser_hover_ms", "browser_hover_ms", None),
        ("browser: click → image and neighbours (ms)", "browser_click_ms", "browser_click_ms", None),
        ("browser: box select → gallery (ms)", "browser_box_select_ms", "browser_box_select_ms", None),
        ("browser: model switch → map drawn (ms)", "browser_model_switch_ms", "browser_model_switch_ms", None),
        ("browser: slowest first page visit (s)", "browser_first_visit_slowest_s", "first_visit_s", None),
        ("bytes to the browser per click", "map_bytes_per_click", None, None),
        ("bytes to the browser per box selection", "map_bytes_per_box", None, None),
        ("bytes to the browser per model switch", "map_bytes_per_switch", None, None),
        ("map figure, 70k points (ms)", "map_figure_ms", "map_figure_ms", None),
        ("selection → gallery (ms)", "selection_gallery_ms", "selection_gallery_ms", None),
        ("upload pipeline (ms)", "upload_pipeline_ms", "upload_pipeline_ms", "upload_pipeline_bruteforce_ms"),
        ("worst-case upload decode, 40 Mpx 16-bit PNG (ms)", "upload_worst_case_ms", "upload_worst_case_ms", None),
        ("new session joins 10,000 stored rows (ms)", "store_join_ms", "store_join_ms", "store_join_encoding_ms"),
        ("browser: Upload page, 10,000 stored rows against 100 (added ms)", "browser_store_join_ms",
         "browser_store_join_ms", None),
        ("CLI answers a mistyped argument (s)", "cli_argument_error_s", "cli_error_s", None),
        ("kNN query, faiss, 70k (ms)", "knn_query_ms", "knn_query_ms", "knn_bruteforce_ms"),
        ("16-step interpolation, slower GON (ms)", "interpolation_ms", "interpolation_ms", None),
        ("DRS scoring (samples/s)", "drs_samples_per_s", None, None),
        ("app peak memory (MB)", "peak_rss_mb", None, None)]

    def shown(value):
        return "n/a" if value is None else f"{value:,.3g}" if value < 10 else f"{value:,.0f}"

    lines = ["| figure | measured | budget | ratio to budget | baseline (the same work done the plain way) | ratio to baseline |",
             "|---|---|---|---|---|---|"]
    for label, key, budget_key, baseline_key in rows:
        value = result.get(key)
        budget = {"first_visit_s": FIRST_VISIT_BUDGET_S, "cli_error_s": CLI_ERROR_BUDGET_S}.get(
            budget_key, BUDGETS_MS.get(budget_key)) if budget_key else None
        baseline = result.get(baseline_key) if baseline_key else None
        ratio = f"{value / budget:.2f}" if budget and value is not None else ""
        versus = f"{value / baseline:.2f}" if baseline and value is not None else ""
        lines.append(f"| {label} | {shown(value)} | {budget or ''} | {ratio} | "
                     f"{shown(baseline) if baseline else ''} | {versus} |")
    extra = sorted(k for k in result if k.startswith(("page_", "train_", "browser_first_visit_", "browser_upload_page_")))
    lines += ["", "| figure | measured |", "|---|---|"]
    lines += [f"| {k} | {shown(result[k])} |" for k in extra]
    return "\n".join(lines)
