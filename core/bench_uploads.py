"""Benchmarks of the upload feature (issue 5), for ``python -m core bench``:

- the upload pipeline a person waits for: bytes -> preprocess -> encode -> add -> 10 neighbours
  + 16 samples around the upload (budget 300 ms);
- one exact kNN query (k=10) over 70k exemplars with faiss (budget 2 ms), against a brute-force
  ``torch.cdist`` + ``topk`` over the same codes in the same run.

Times are medians over repeats, in milliseconds, on whatever machine runs them.
"""

from __future__ import annotations

import io
import statistics
import time

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

UPLOAD_BUDGET_MS = 300.0
KNN_BUDGET_MS = 2.0
KNN_EXEMPLARS = 70_000


def _median_ms(fn, repeats: int) -> float:
    fn()  # warm-up: first calls allocate
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


def photo_of_digit(digit: int = 3, side: int = 1200, seed: int = 0) -> bytes:
    """A photograph-like JPEG of a printed digit: dark ink on light, noisy, unevenly lit paper."""
    rng = np.random.default_rng(seed)
    im = Image.new("L", (side, side), 255)
    font = ImageFont.load_default(size=side * 2 // 3)
    ImageDraw.Draw(im).text((side / 2, side / 2), str(digit), fill=0, font=font, anchor="mm",
                            stroke_width=side // 75, stroke_fill=0)
    a = np.asarray(im, np.float32) * 0.7 + 50  # ink ~50, paper ~230
    a += np.linspace(-20, 20, side)[None, :] + rng.normal(0, 8, a.shape)  # light gradient, grain
    buffer = io.BytesIO()
    Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).convert("RGB").save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def bench_uploads(dataset: str = "mnist", knn_dataset: str = "fashion-mnist", repeats: int = 20,
                  seed: int = 0) -> dict:
    """Upload pipeline and kNN timings (ms) on this machine, with their budgets and ratios."""
    from core import latent_index, pretrained, uploads

    torch.manual_seed(seed)
    model, _ = pretrained.load("exemplar_vae", dataset)
    base = latent_index.for_dataset(model, dataset)
    content = photo_of_digit(side=1200, seed=seed)
    generator = torch.Generator().manual_seed(seed)

    def pipeline():
        session = uploads.UploadSession(model, base)
        upload = session.add_file(content, "photo.jpg")
        session.neighbors(upload.code, 10, exclude=upload.id)
        session.around(upload.id, 16, generator=generator)

    base_t = torch.from_numpy(base.codes)

    def pipeline_bruteforce():  # the same, with the 10 neighbours from torch.cdist instead of faiss
        image = uploads.preprocess(content)
        code = model.encode(image[None])
        torch.cdist(code, base_t).topk(10, largest=False)
        model.generate_from(image[None], 16, generator=generator)

    upload_ms = _median_ms(pipeline, repeats)
    upload_brute_ms = _median_ms(pipeline_bruteforce, repeats)
    preprocess_ms = _median_ms(lambda: uploads.preprocess(content), repeats)

    # kNN over 70k exemplars: fashion-mnist's 70,000 codes (mnist here is a 5,000-image sample);
    # a dataset with fewer is repeated with a little noise up to 70k.
    if knn_dataset != dataset:
        knn_model, _ = pretrained.load("exemplar_vae", knn_dataset)
        codes = latent_index.for_dataset(knn_model, knn_dataset).codes
    else:
        codes = base.codes
    rng = np.random.default_rng(seed)
    reps = -(-KNN_EXEMPLARS // len(codes))
    big = np.concatenate([codes + (rng.normal(0, 0.05, codes.shape).astype(np.float32) if r else 0)
                          for r in range(reps)])[:KNN_EXEMPLARS]
    index = latent_index.LatentIndex.from_codes(big, np.zeros(len(big), np.int64), kind="flat")
    queries = big[rng.choice(len(big), size=repeats + 1, replace=False)]
    it = iter(range(10**9))
    knn_ms = _median_ms(lambda: index.search(queries[next(it) % len(queries)][None], 10), repeats * 5)
    big_t = torch.from_numpy(big)

    def brute():
        q = torch.from_numpy(queries[next(it) % len(queries)][None])
        torch.cdist(q, big_t).topk(10, largest=False)

    brute_ms = _median_ms(brute, repeats * 5)
    # The two must agree, or the comparison means nothing.
    q = queries[:4]
    _, ids, _ = index.search(q, 10)
    exact = torch.cdist(torch.from_numpy(q), big_t).topk(10, largest=False).indices.numpy()
    agreement = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, exact)]))
    return {
        "dataset": dataset,
        "threads": torch.get_num_threads(),
        "upload_pipeline_ms": round(upload_ms, 2),
        "upload_preprocess_ms": round(preprocess_ms, 2),
        "upload_pipeline_bruteforce_ms": round(upload_brute_ms, 2),
        "upload_speedup_vs_bruteforce": round(upload_brute_ms / upload_ms, 2),
        "upload_budget_ms": UPLOAD_BUDGET_MS,
        "upload_budget_ratio": round(upload_ms / UPLOAD_BUDGET_MS, 3),
        "knn_dataset": knn_dataset,
        "knn_exemplars": len(big),
        "knn_query_ms": round(knn_ms, 3),
        "knn_bruteforce_ms": round(brute_ms, 3),
        "knn_speedup_vs_bruteforce": round(brute_ms / knn_ms, 2),
        "knn_budget_ms": KNN_BUDGET_MS,
        "knn_budget_ratio": round(knn_ms / KNN_BUDGET_MS, 3),
        "knn_agreement_with_bruteforce": agreement,
    }


STORE_ROWS = 10_000
STORE_JOIN_BUDGET_MS = 1000.0  # opening the upload page with a full shared store
WORST_UPLOAD_BUDGET_MS = 2000.0  # the costliest legal upload to decode
CLI_ERROR_BUDGET_S = 1.0


def worst_case_upload() -> bytes:
    """The costliest upload the decoder accepts: 40 megapixels of 16-bit grey, in under 100 KB."""
    side = 6300
    a = np.full((side, side), 65535, np.uint16)
    a[side // 4 : 3 * side // 4, side // 2 - 300 : side // 2 + 300] = 0
    buffer = io.BytesIO()
    Image.fromarray(a).save(buffer, "PNG")
    return buffer.getvalue()


def filled_store(folder, dataset: str, rows: int = STORE_ROWS):
    """A shared store in ``folder`` holding ``rows`` random pictures with the shipped exemplar
    VAE's codes, as the Upload page saves them. Returns (store, model, the codes' model key)."""
    from core import pretrained
    from core.store import ExemplarStore

    model, entry = pretrained.load("exemplar_vae", dataset)
    key = f"exemplar_vae@{entry['sha256'][:16]}"
    pictures = np.random.default_rng(0).random((rows, 28, 28), dtype=np.float32)
    with torch.no_grad():
        codes = model.encode(torch.from_numpy(pictures)[:, None]).numpy()
    store = ExemplarStore(folder)
    store.add(dataset, pictures, [-1] * rows, [f"row-{i}.png" for i in range(rows)], model=key, codes=codes)
    return store, model, key


def bench_store_and_limits(dataset: str = "mnist", repeats: int = 3) -> dict:
    """A new session joining a shared store of 10,000 rows, with the model's codes stored and,
    as the baseline, without them (every row encoded); the worst-case upload's decode; and how
    long the command line takes to answer a mistyped argument."""
    import subprocess
    import sys
    import tempfile

    from core import latent_index, uploads
    from core.paths import ROOT

    with tempfile.TemporaryDirectory() as folder:
        store, model, key = filled_store(folder, dataset)
        base = latent_index.for_dataset(model, dataset)
        join_ms = _median_ms(lambda: uploads.UploadSession(model, base, model_key=key).join_store(store, dataset), repeats)
        encode_ms = _median_ms(lambda: uploads.UploadSession(model, base).join_store(store, dataset), repeats)
    content = worst_case_upload()
    worst_ms = _median_ms(lambda: uploads.preprocess(content), repeats)
    began = time.perf_counter()
    subprocess.run([sys.executable, "-m", "core", "train", "nosuchmodel"], cwd=ROOT, capture_output=True)
    cli_s = time.perf_counter() - began
    return {
        "store_rows": STORE_ROWS,
        "store_join_ms": round(join_ms, 1),
        "store_join_encoding_ms": round(encode_ms, 1),
        "store_join_budget_ms": STORE_JOIN_BUDGET_MS,
        "upload_worst_case_bytes": len(content),
        "upload_worst_case_ms": round(worst_ms, 1),
        "upload_worst_case_budget_ms": WORST_UPLOAD_BUDGET_MS,
        "cli_argument_error_s": round(cli_s, 3),
        "cli_argument_error_budget_s": CLI_ERROR_BUDGET_S,
    }
