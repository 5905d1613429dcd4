"""The shared store in SQLite (issue 22, item 4): appended rows with their codes, limits refused in
plain words, a damaged database read as far as it can be, a one-time migration of the old npz
store, and the maintainer's `python -m core store` commands."""

from __future__ import annotations

import json
import logging
import sqlite3

import numpy as np
import pytest
import torch

from conftest import run_cli
from core import store as store_module
from core import uploads
from core.store import ExemplarStore, StoreError


@pytest.fixture(scope="module")
def shared_mnist():
    """A small exemplar VAE and a shared index, standing in for the app's cached ones."""
    from core import models
    from core.latent_index import LatentIndex

    torch.manual_seed(0)
    model = models.build("exemplar_vae", {"latent_dim": 8, "hidden_dim": 32}).eval()
    model.set_exemplars(torch.rand(64, 1, 28, 28))
    return model, LatentIndex.from_codes(model.encode(torch.rand(200, 1, 28, 28)), np.arange(200) % 10)


def images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 28, 28), dtype=np.float32)


def test_rows_round_trip_exactly_and_only_a_maintainer_removes_them(tmp_path):
    store = ExemplarStore(tmp_path)
    assert len(store.load("mnist")["uids"]) == 0 and store.problem is None
    pictures = images(3)
    uids = store.add("mnist", pictures, [1, -1, 3], ["a.png", "b.png", "c.png"], session="s1")
    saved = store.load("mnist")
    np.testing.assert_array_equal(saved["images"], pictures)
    assert saved["uids"].tolist() == uids and saved["labels"].tolist() == [1, -1, 3]
    assert saved["names"].tolist() == ["a.png", "b.png", "c.png"]
    assert len(store.load("fashion-mnist")["uids"]) == 0  # datasets apart
    assert store.remove([int(saved["ids"][1])]) == 1
    assert store.load("mnist")["uids"].tolist() == [uids[0], uids[2]]
    with pytest.raises(ValueError, match="unknown dataset"):
        store.load("../etc")
    with sqlite3.connect(store.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_save_appends_and_never_rewrites_earlier_rows(tmp_path):
    """Earlier rows keep their place in the file: a save adds pages, it does not rewrite them."""
    store = ExemplarStore(tmp_path)
    store.add("mnist", images(50), [0] * 50, [f"n{i}" for i in range(50)])
    with sqlite3.connect(store.path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    before = store.path.read_bytes()
    store.add("mnist", images(1, seed=1), [1], ["new"])
    with sqlite3.connect(store.path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    after = store.path.read_bytes()
    page = 4096
    unchanged = sum(before[i : i + page] == after[i : i + page] for i in range(0, len(before), page))
    # The header, the table's last leaf and root, and one page per index change; the rest stay.
    assert len(before) // page >= 50 and len(before) // page - unchanged <= 8


@pytest.mark.parametrize("limit", ["name", "session", "dataset"])
def test_each_limit_is_refused_in_plain_words_and_nothing_is_saved(tmp_path, monkeypatch, limit):
    store = ExemplarStore(tmp_path)
    monkeypatch.setattr(store_module, "MAX_ROWS_PER_DATASET", 5)
    monkeypatch.setattr(store_module, "MAX_ROWS_PER_SESSION_HOUR", 3)
    if limit == "name":
        call, words = ("mnist", images(1), [0], ["x" * 121 + ".png"]), "over 120 characters"
    elif limit == "session":
        store.add("mnist", images(2), [0, 0], ["a", "b"], session="busy")
        call, words = ("mnist", images(2), [0, 0], ["c", "d"]), "3 exemplars an hour"
    else:
        store.add("mnist", images(4), [0] * 4, list("abcd"))
        call, words = ("mnist", images(2), [0, 0], ["e", "f"]), "the shared store is full"
    held = len(store.load("mnist")["uids"])
    with pytest.raises(StoreError, match=words) as refused:
        store.add(*call, session="busy")
    assert str(tmp_path) not in str(refused.value)
    assert len(store.load("mnist")["uids"]) == held
    assert len(store.add("fashion-mnist", images(1), [0], ["ok"], session="other")) == 1  # others go on


def test_a_new_session_reads_codes_instead_of_encoding_every_row(tmp_path, shared_mnist):
    model, base = shared_mnist
    store = ExemplarStore(tmp_path)
    first = uploads.UploadSession(model, base, model_key="exemplar_vae@abc")
    for i in range(3):
        first.add(torch.from_numpy(images(1, seed=i)), f"u{i}.png", label=i)
    first.save_to_store(store, "mnist")
    store.add("mnist", images(2, seed=9), [5, 6], ["old-1", "old-2"])  # saved without codes
    encoded = []
    real_encode = model.encode

    def counting(x):
        encoded.append(len(x))
        return real_encode(x)

    model.encode = counting
    try:
        second = uploads.UploadSession(model, base, model_key="exemplar_vae@abc")
        assert second.join_store(store, "mnist") == 5
        assert encoded == [2]  # only the rows without a stored code, in one batch
        third = uploads.UploadSession(model, base, model_key="exemplar_vae@abc")
        assert third.join_store(store, "mnist") == 5
        assert encoded == [2]  # their codes were stored by the second session
    finally:
        model.encode = real_encode
    mine = {u.name: u.code for u in first.uploads.values()}
    theirs = {u.name: u.code for u in third.uploads.values()}
    for name, code in mine.items():
        torch.testing.assert_close(theirs[name], code)
    other_model = uploads.UploadSession(model, base, model_key="exemplar_vae@def")
    assert other_model.join_store(store, "mnist") == 5  # another model's codes are never reused


def test_a_file_that_is_not_a_database_reads_as_empty_with_a_plain_problem(tmp_path, caplog):
    (tmp_path / "store.sqlite3").write_bytes(b"this is not a database" * 100)
    store = ExemplarStore(tmp_path)
    with caplog.at_level(logging.ERROR, logger="core.store"):
        saved = store.load("mnist")
    assert len(saved["uids"]) == 0
    assert store.problem == store_module.UNAVAILABLE and str(tmp_path) not in store.problem
    assert str(tmp_path) in caplog.text  # the maintainer learns where, from the log
    with pytest.raises(StoreError, match="cannot take new exemplars") as refused:
        store.add("mnist", images(1), [0], ["a"], session="s")
    assert str(tmp_path) not in str(refused.value)


def test_damaged_rows_and_pages_cost_only_themselves(tmp_path):
    store = ExemplarStore(tmp_path)
    store.add("mnist", images(300), [1] * 300, [f"n{i}" for i in range(300)])
    with sqlite3.connect(store.path) as db:
        db.execute("UPDATE exemplars SET image = x'00' WHERE id = 7")  # a row of the wrong size
        db.commit()
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    saved = store.load("mnist")
    assert len(saved["uids"]) == 299 and 7 not in saved["ids"].tolist()
    raw = bytearray(store.path.read_bytes())
    middle = len(raw) // 2 // 4096 * 4096
    raw[middle : middle + 4096 * 3] = b"\xff" * (4096 * 3)  # three pages of the table overwritten
    store.path.write_bytes(bytes(raw))
    saved = store.load("mnist")  # never raises
    assert store.problem == store_module.UNAVAILABLE
    assert 0 < len(saved["uids"]) < 299
    assert all(len(n) and n.startswith("n") for n in saved["names"].tolist())


def test_the_old_npz_store_is_migrated_once(tmp_path):
    old = {"header": np.array(json.dumps({"format": 1})), "images": images(4), "labels": np.arange(4),
           "names": np.array(["a", "b", "c", "d"]), "uids": np.array([f"{i:032x}" for i in range(4)])}
    np.savez(tmp_path / "mnist.npz", **old)
    store = ExemplarStore(tmp_path)
    saved = store.load("mnist")
    assert saved["uids"].tolist() == old["uids"].tolist() and saved["names"].tolist() == list("abcd")
    np.testing.assert_array_equal(saved["images"], old["images"])
    assert not (tmp_path / "mnist.npz").exists() and (tmp_path / "mnist.npz.migrated").exists()
    assert len(ExemplarStore(tmp_path).load("mnist")["uids"]) == 4  # once


def test_the_maintainers_commands_list_remove_export_and_import(tmp_path):
    env = {"LATENT_LAB_STORE": str(tmp_path / "store")}
    store = ExemplarStore(tmp_path / "store")
    names = ["![t](http://HOST/pixel.png).png", "plain.png", "tab\there.png"]
    store.add("mnist", images(3), [1, 2, 3], names, session="s1")
    listed = run_cli("store", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    assert [line.split()[-1] for line in listed.stdout.splitlines()] == [ascii(n) for n in names[:2]] + ["'tab\\there.png'"]
    rows = [json.loads(line) for line in run_cli("store", "list", "--json", env=env).stdout.splitlines()]
    assert [r["name"] for r in rows] == names
    assert run_cli("store", "remove", str(rows[0]["id"]), env=env).stdout.strip() == "removed 1 rows"
    exported = tmp_path / "rows.npz"
    assert run_cli("store", "export", str(exported), env=env).returncode == 0
    other = {"LATENT_LAB_STORE": str(tmp_path / "other")}
    assert "imported 2 new rows" in run_cli("store", "import", str(exported), env=other).stdout
    assert "imported 0 new rows" in run_cli("store", "import", str(exported), env=other).stdout
    assert ExemplarStore(tmp_path / "other").load("mnist")["names"].tolist() == names[1:]
    mistake = run_cli("store", "remove", "seven", env=env)
    assert mistake.returncode == 2 and "Traceback" not in mistake.stderr
