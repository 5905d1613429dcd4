"""Issue 9, items 2, 4 and 5: upload fuzzing, concurrent sessions, and crash safety of the shared
store. Every input is generated here, from fixed seeds."""

import io
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

import upload_images as ui
from conftest import ROOT
from core import models, uploads
from core.latent_index import IndexFileError, LatentIndex
from core.store import ExemplarStore


@pytest.fixture(scope="module")
def shared():
    """A small exemplar VAE and a shared index, standing in for the cached ones of the app."""
    torch.manual_seed(0)
    model = models.build("exemplar_vae", {"latent_dim": 8, "hidden_dim": 32})
    model.eval()
    model.set_exemplars(torch.rand(64, 1, 28, 28))
    return model, LatentIndex.from_codes(model.encode(torch.rand(200, 1, 28, 28)), np.arange(200) % 10)


# -- item 2: fuzzing --------------------------------------------------------------------------------


def scribble(rng: random.Random, side: int) -> Image.Image:
    im = Image.new("L", (side, side), 255)
    draw = ImageDraw.Draw(im)
    for _ in range(rng.randint(1, 4)):
        pts = [(rng.uniform(0, side), rng.uniform(0, side)) for _ in range(rng.randint(2, 5))]
        draw.line(pts, fill=rng.randint(0, 90), width=max(1, side // rng.randint(8, 40)))
    return im


def hostile_uploads(seed: int = 0) -> list[tuple[str, bytes]]:
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    valid = [ui.encode(scribble(rng, 120), fmt) for fmt in ("PNG", "JPEG", "GIF", "WEBP", "BMP")]
    cases = [("zero bytes", b"")]
    for i in range(40):  # truncated at random points, every format
        v = valid[i % len(valid)]
        cases.append((f"truncated {i}", v[: rng.randint(1, len(v) - 1)]))
    for i in range(25):  # random bytes, some behind a real signature
        junk = nrng.bytes(rng.randint(1, 4000))
        prefix = rng.choice([b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a", b"BM", b"RIFF"])
        cases.append((f"random bytes {i}", prefix + junk))
    for i in range(30):  # valid files with bytes flipped
        v = bytearray(valid[i % len(valid)])
        for _ in range(rng.randint(1, 20)):
            v[rng.randrange(len(v))] = rng.randrange(256)
        cases.append((f"bit flips {i}", bytes(v)))
    for i in range(15):  # headers that claim huge sizes (decompression bombs)
        w, h = rng.choice([(8000, 6000), (40_001, 1000), (65_535, 65_535), (1, 50_000_000), (100_000, 100_000)])
        cases.append((f"huge header {i}", ui.png_with_size(w, h)))
    cases.append(("real 49 Mpx bomb", ui.real_png_bomb(7000)))
    for i in range(15):  # animated GIFs: the first frame counts
        frames = [scribble(rng, 80) for _ in range(rng.randint(2, 5))]
        cases.append((f"animated gif {i}", ui.encode(frames[0], "GIF", save_all=True, append_images=frames[1:])))
    for i in range(10):
        cases.append((f"cmyk {i}", ui.cmyk_jpeg(scribble(rng, 100))))
        cases.append((f"16-bit {i}", ui.sixteen_bit_png(scribble(rng, 100))))
    for i in range(16):  # every EXIF orientation, and nonsense ones
        exif = Image.Exif()
        exif[0x0112] = [1, 2, 3, 4, 5, 6, 7, 8, 0, 9, 65535][i % 11]
        cases.append((f"exif {i}", ui.encode(scribble(rng, 90).convert("RGB"), "JPEG", exif=exif.tobytes())))
    for i in range(20):  # markup passed off as an image
        body = rng.choice([ui.SVG, ui.HTML, b"<svg/>", b"<html></html>", b'<?xml version="1.0"?><svg></svg>'])
        cases.append((f"markup {i}", rng.choice([b"", b"\xef\xbb\xbf", b"  \n\t"]) + body))
    for i in range(25):  # nearly blank: specks, faint marks, grain
        a = np.full((150, 150), 255.0) + nrng.normal(0, rng.choice([0, 2, 6]), (150, 150))
        for _ in range(rng.randint(0, 3)):
            y, x = nrng.integers(0, 150, 2)
            a[y, x] -= rng.choice([20, 60, 200])
        if i % 5 == 0:
            a[60:90, 70:73] -= 10  # a very faint stroke
        cases.append((f"nearly blank {i}", ui.encode(Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)))))
    for i in range(5):
        side = rng.choice([1, 2, 3])
        cases.append((f"tiny {i}", ui.encode(Image.new("L", (side, rng.choice([1, 5])), rng.choice([0, 128, 255])))))
    return cases


def snapshot(session):
    return (len(session.own), session.own.next_id, tuple(session.uploads), session.own.codes.tobytes(),
            len(session.base), len(session.model.exemplar_means))


def test_fuzzed_uploads_end_as_clean_errors_or_valid_exemplars(shared):
    cases = hostile_uploads()
    assert len(cases) >= 200
    session = uploads.UploadSession(*shared)
    outcomes = {"error": 0, "added": 0}
    for name, content in cases:
        before = snapshot(session)
        try:
            upload = session.add_file(content, name)
        except uploads.UploadError as exc:  # anything else escaping fails the test
            assert str(exc) and "Traceback" not in str(exc)
            assert snapshot(session) == before, name  # nothing changed
            outcomes["error"] += 1
            continue
        x = upload.image
        assert x.shape == (1, 28, 28) and torch.isfinite(x).all() and 0 <= x.min() and x.max() <= 1, name
        assert x.sum() > 0 and torch.isfinite(upload.code).all(), name
        nearest = session.neighbors(upload.code, 1)[0]  # itself (or an identical earlier upload)
        assert nearest["upload"] and nearest["distance"] < 1e-3 and upload.id in session.own.ids, name
        outcomes["added"] += 1
    assert outcomes["error"] >= 150 and outcomes["added"] >= 30, outcomes


# -- item 4: concurrent sessions -------------------------------------------------------------------


def test_concurrent_sessions_do_not_leak_and_the_store_ends_exact(shared, tmp_path, monkeypatch):
    from core import store as store_module

    monkeypatch.setattr(store_module, "MAX_ROWS_PER_SESSION_HOUR", 10**6)  # a stress test, not a user
    model, base = shared
    store = ExemplarStore(tmp_path)
    means, base_len = model.exemplar_means, len(base)
    saved: list[str] = []
    failures: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + 4.0
    files = [ui.encode(scribble(random.Random(i), 100)) for i in range(8)]

    def user(k: int):
        try:
            rng = random.Random(k)
            session = uploads.UploadSession(model, base)
            g = torch.Generator().manual_seed(k)
            while time.monotonic() < deadline:
                op = rng.random()
                if op < 0.45:
                    if rng.random() < 0.3:
                        session.add_file(files[rng.randrange(len(files))], f"user{k}.png")
                    else:
                        session.add(torch.rand(1, 28, 28, generator=g), f"user{k}", label=k)
                elif op < 0.6 and session.uploads:
                    session.remove(rng.choice([u for u in session.uploads if not session.uploads[u].shared]
                                              or [None]) or next(iter(session.uploads)))
                elif op < 0.7:
                    uids = session.save_to_store(store, "mnist")
                    with lock:
                        saved.extend(uids)
                else:
                    assert session.sample_prior(16, generator=g).shape == (16, 1, 28, 28)
                for u in list(session.uploads.values())[-3:]:  # each sees itself, and only its own
                    found = session.neighbors(u.code, 5)
                    assert all(f["index"] in session.uploads for f in found if f["upload"]), "leak"
                    assert found[0]["upload"] and found[0]["distance"] < 1e-3
                assert set(session.own.ids.tolist()) == set(session.uploads)
        except Exception as exc:  # noqa: BLE001: every failure is reported by the main thread
            failures.append(f"user {k}: {exc!r}")

    threads = [threading.Thread(target=user, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures
    final = store.load("mnist")
    assert len(saved) > 0 and sorted(final["uids"].tolist()) == sorted(saved)  # exactly what was saved
    assert model.exemplar_means is means and len(base) == base_len  # shared state untouched


@pytest.mark.slow  # 8 Python processes importing torch: ~30 s on 2 cores
def test_concurrent_processes_saving_to_the_store_lose_nothing(tmp_path):
    """Eight processes append to one store at once: every acknowledged save is in it, exactly once."""
    script = (
        "import sys, torch\n"
        "from core.store import ExemplarStore\n"
        "store = ExemplarStore(sys.argv[1]); k = int(sys.argv[2])\n"
        "for i in range(10):\n"
        "    [uid] = store.add('mnist', torch.full((1, 28, 28), k / 10), [k], [f'p{k}-{i}'])\n"
        "    print(uid, flush=True)\n")
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path), str(k)], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True) for k in range(8)]
    acked = set()
    for p in procs:
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0
        acked |= set(out.split())
    final = ExemplarStore(tmp_path).load("mnist")
    store_uids = final["uids"].tolist()
    assert len(acked) == 80 and sorted(store_uids) == sorted(acked)
    assert sorted(final["names"].tolist()) == sorted(f"p{k}-{i}" for k in range(8) for i in range(10))


# -- item 5: crash safety ---------------------------------------------------------------------------

WRITER = """
import sys, torch
from core.store import ExemplarStore
store = ExemplarStore(sys.argv[1])
i = 0
while True:
    [uid] = store.add('mnist', torch.rand(1, 28, 28), [i % 10], [f'n{i}'])
    print(uid, flush=True)  # acknowledged: add() returned
    i += 1
"""


@pytest.mark.slow  # six writer processes, each importing torch: ~12 s
def test_killing_a_save_loses_nothing_acknowledged_and_never_leaves_a_half_store(tmp_path):
    rng = random.Random(0)
    ExemplarStore(tmp_path).add("mnist", torch.rand(1500, 28, 28), [0] * 1500, ["pad"] * 1500)
    acked: list[str] = []
    for kills in range(1, 7):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], cwd=ROOT,
                                stdout=subprocess.PIPE, text=True)
        got = 0
        want = rng.randint(1, 4)
        while got < want:  # let it acknowledge a few saves, then kill it mid-way through the next
            line = proc.stdout.readline()
            assert line, "the writer died on its own"
            acked.append(line.strip())
            got += 1
        time.sleep(rng.uniform(0, 0.05))
        proc.send_signal(signal.SIGKILL)
        tail = proc.stdout.read()  # lines printed between the last read and the kill count too
        acked += tail.split()
        proc.wait()
        reader = ExemplarStore(tmp_path)
        stored = reader.load("mnist")  # reads in full: a killed transaction is rolled back
        assert reader.problem is None
        uids = set(stored["uids"].tolist())
        assert set(acked) <= uids  # nothing acknowledged was lost
        assert len(uids) <= 1500 + len(acked) + kills  # at most one unacknowledged save per kill
    ExemplarStore(tmp_path).add("mnist", torch.rand(1, 28, 28), [0], ["last"])  # and takes saves
    with sqlite3.connect(tmp_path / "store.sqlite3") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_failed_rename_keeps_the_old_index(tmp_path, monkeypatch):
    index = LatentIndex.from_codes(np.random.rand(10, 4), np.zeros(10))
    index.save(tmp_path / "index.npz")

    def crash(*args):
        raise OSError("simulated crash before the rename")

    monkeypatch.setattr(os, "replace", crash)
    index.add(np.random.rand(1, 4), [1])
    with pytest.raises(OSError):
        index.save(tmp_path / "index.npz")
    monkeypatch.undo()
    assert len(LatentIndex.load(tmp_path / "index.npz")) == 10
    assert not list(tmp_path.glob(".*.tmp"))  # the temporary file was cleaned up