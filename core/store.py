"""The shared store of uploads that users chose to share, in SQLite (the standard library's sqlite3).

One database file, ``$LATENT_LAB_STORE/store.sqlite3``, in WAL mode: readers never wait for a
writer, and a save is one appended row per image inside one transaction, so a committed save
survives a crash and nothing else is rewritten. Each row keeps the 28x28 image, the label (-1: none
given), the file name, the time, the session that saved it and, in a table beside it, each model's
latent code of it, so that a new session reads codes instead of encoding every row again.

Limits, each refused with a plain ``StoreError``: rows per dataset, rows per session per hour, and
the length of a name. Only a maintainer removes rows (``python -m core store remove ID``); the app
never offers it.

A damaged database degrades to reading what can still be read. ``problem`` then holds a plain
sentence for users, without paths; the details go to the log for the maintainer.

The same schema would work on PostgreSQL for several app replicas (docs/public-demo.md).
"""

from __future__ import annotations

import logging
import sqlite3
import time
import uuid
from contextlib import closing, contextmanager
from pathlib import Path

import numpy as np

from core.names import DATASETS

log = logging.getLogger(__name__)

FILE_NAME = "store.sqlite3"
SIDE = 28
MAX_ROWS_PER_DATASET = 10_000
MAX_ROWS_PER_SESSION_HOUR = 100
MAX_NAME_CHARS = 120
READ_CHUNK = 1_000  # rows read per query; a damaged stretch costs only its own chunk
BUSY_TIMEOUT_S = 10.0  # a writer waits this long for another writer before giving up
MAINTAINER = "maintainer"  # the session of rows added outside the app
UNAVAILABLE = "The shared store cannot be read right now; your own uploads still work."

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS exemplars (
    id       INTEGER PRIMARY KEY,      -- what a maintainer removes by
    uid      TEXT NOT NULL UNIQUE,     -- stable across export and import
    dataset  TEXT NOT NULL,
    image    BLOB NOT NULL,            -- {SIDE}x{SIDE} float32, little-endian
    label    INTEGER NOT NULL,
    name     TEXT NOT NULL CHECK (length(name) <= {MAX_NAME_CHARS}),
    created  REAL NOT NULL,            -- Unix time
    session  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS exemplars_by_dataset ON exemplars (dataset, id);
CREATE INDEX IF NOT EXISTS exemplars_by_session ON exemplars (session, created);
CREATE TABLE IF NOT EXISTS codes (
    exemplar INTEGER NOT NULL REFERENCES exemplars (id) ON DELETE CASCADE,
    model    TEXT NOT NULL,            -- family and checkpoint hash: codes of one exact model
    code     BLOB NOT NULL,            -- float32
    PRIMARY KEY (exemplar, model)
);
"""
IMAGE_BYTES = SIDE * SIDE * 4


class StoreError(ValueError):
    """A save the store refuses (a limit, an unreadable store); the message is for the user."""


def _empty() -> dict[str, np.ndarray]:
    return {"ids": np.zeros(0, np.int64), "uids": np.zeros(0, "<U32"),
            "images": np.zeros((0, SIDE, SIDE), np.float32), "labels": np.zeros(0, np.int64),
            "names": np.zeros(0, "<U1"), "created": np.zeros(0), "codes": []}


class ExemplarStore:
    """Shared uploads of every dataset in one SQLite file under ``root``."""

    def __init__(self, root: Path | str | None = None):
        from core.paths import STORE_DIR

        self.root = Path(root if root is not None else STORE_DIR)
        self.path = self.root / FILE_NAME
        self.problem: str | None = None  # what the last read could not do, for users

    # -- connections ----------------------------------------------------------------------------

    @contextmanager
    def _connect(self):
        self.root.mkdir(parents=True, exist_ok=True)
        fresh = not self.path.exists()
        with closing(sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)) as db:
            db.execute("PRAGMA foreign_keys = ON")
            if fresh or db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = FULL")  # a returned save is on disk
            db.executescript(SCHEMA)
            if fresh:
                self._migrate(db)
            yield db

    @contextmanager
    def _writing(self):
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")  # one writer at a time, limits checked inside it
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def _migrate(self, db: sqlite3.Connection) -> None:
        """Rows of the store's earlier form (one ``DATASET.npz`` per dataset), imported once when
        the database is created; each file is then renamed ``.npz.migrated``."""
        for dataset in DATASETS:
            old = self.root / f"{dataset}.npz"
            if not old.exists():
                continue
            try:
                db.execute("BEGIN IMMEDIATE")
                count = self._import_npz(db, old, dataset_default=dataset, session="migrated")
                db.execute("COMMIT")
                old.rename(old.with_name(old.name + ".migrated"))
                log.info("store: migrated %d rows of %s into %s", count, old, self.path)
            except (ValueError, OSError, KeyError, sqlite3.Error) as exc:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                log.error("store: could not migrate %s (%s); it is left in place", old, exc)

    # -- reading --------------------------------------------------------------------------------

    def load(self, dataset: str, model: str | None = None) -> dict:
        """The dataset's saved exemplars, oldest first: ``ids``, ``uids``, ``images`` (M, 28, 28)
        float32, ``labels``, ``names``, ``created``, and with ``model`` its stored ``codes`` (one
        float32 array or None per row). Never raises for a damaged store: what cannot be read is
        left out, ``problem`` says so plainly and the log has the details."""
        if dataset not in DATASETS:
            _unknown(dataset)
        self.problem = None
        rows: list[tuple] = []
        try:
            with self._connect() as db:
                last = -1
                while True:
                    chunk = self._read_chunk(db, dataset, model, last)
                    if chunk is None:
                        break
                    rows += chunk[0]
                    last = chunk[1]
        except (sqlite3.Error, OSError) as exc:
            self._damaged(exc)
        return self._arrays(rows)

    def _read_chunk(self, db, dataset: str, model: str | None, after: int):
        """Rows with id > ``after``, up to READ_CHUNK of them, and the last id looked at; None
        when none are left. A chunk that cannot be read is read row by row, skipping the bad."""
        query = ("SELECT e.id, e.uid, e.image, e.label, e.name, e.created, c.code FROM exemplars e "
                 "LEFT JOIN codes c ON c.exemplar = e.id AND c.model = ? "
                 "WHERE e.dataset = ? AND e.id > ? ORDER BY e.id LIMIT ?")
        try:
            chunk = db.execute(query, (model or "", dataset, after, READ_CHUNK)).fetchall()
            return (chunk, chunk[-1][0]) if chunk else None
        except sqlite3.DatabaseError as exc:
            self._damaged(exc)
        try:
            ids = [r[0] for r in db.execute("SELECT id FROM exemplars WHERE dataset = ? AND id > ? "
                                            "ORDER BY id LIMIT ?", (dataset, after, READ_CHUNK))]
        except sqlite3.DatabaseError:
            return None  # not even the ids of what is left can be read
        if not ids:
            return None
        good = []
        for row_id in ids:
            try:
                good += db.execute(query.replace("e.id > ?", "e.id = ?").replace(" LIMIT ?", ""),
                                   (model or "", dataset, row_id)).fetchall()
            except sqlite3.DatabaseError:
                pass
        return good, ids[-1]

    def _arrays(self, rows: list[tuple]) -> dict:
        out = _empty()
        rows = [r for r in rows if isinstance(r[2], bytes) and len(r[2]) == IMAGE_BYTES]
        if not rows:
            return out
        out["ids"] = np.array([r[0] for r in rows], np.int64)
        out["uids"] = np.array([r[1] for r in rows], dtype=str)
        out["images"] = np.frombuffer(b"".join(r[2] for r in rows), "<f4").reshape(-1, SIDE, SIDE).copy()
        out["labels"] = np.array([r[3] for r in rows], np.int64)
        out["names"] = np.array([str(r[4]) for r in rows], dtype=str)
        out["created"] = np.array([r[5] for r in rows], np.float64)
        out["codes"] = [np.frombuffer(r[6], "<f4").copy() if isinstance(r[6], bytes) else None for r in rows]
        return out

    def _damaged(self, exc: Exception) -> None:
        self.problem = UNAVAILABLE
        log.error("store: %s is damaged or unreadable (%s: %s); users see what could be read",
                  self.path, type(exc).__name__, exc)

    def rows(self, dataset: str | None = None) -> list[dict]:
        """Every row's metadata, for a maintainer (no images)."""
        with self._connect() as db:
            query = "SELECT id, uid, dataset, label, name, created, session FROM exemplars"
            args = ()
            if dataset:
                query, args = query + " WHERE dataset = ?", (dataset,)
            keys = ("id", "uid", "dataset", "label", "name", "created", "session")
            return [dict(zip(keys, r)) for r in db.execute(query + " ORDER BY id", args)]

    # -- writing --------------------------------------------------------------------------------

    def add(self, dataset: str, images, labels, names, *, session: str | None = None,
            model: str | None = None, codes=None) -> list[str]:
        """Append exemplars in one transaction, after checking every limit; their uids. A user's
        ``session`` is held to the hourly limit; without one (a maintainer's script) it is not.
        With ``model`` and ``codes`` (one row per image), the codes are stored beside them."""
        if dataset not in DATASETS:
            _unknown(dataset)
        images = np.ascontiguousarray(np.asarray(images, "<f4").reshape(-1, SIDE, SIDE))
        labels = [int(v) for v in np.asarray(labels).reshape(-1)]
        names = [str(n) for n in names]
        if not (len(images) == len(labels) == len(names)):
            raise ValueError("one label and one name per image")
        too_long = [n for n in names if len(n) > MAX_NAME_CHARS]
        if too_long:
            raise StoreError(f"{len(too_long)} file name(s) are over {MAX_NAME_CHARS} characters: "
                             "rename the file and upload it again")
        if codes is not None:
            codes = np.asarray(codes, "<f4").reshape(len(images), -1)
        now = time.time()
        uids = [uuid.uuid4().hex for _ in range(len(images))]
        try:
            with self._writing() as db:
                held = db.execute("SELECT COUNT(*) FROM exemplars WHERE dataset = ?", (dataset,)).fetchone()[0]
                if held + len(images) > MAX_ROWS_PER_DATASET:
                    raise StoreError(f"the shared store is full ({held:,} of {MAX_ROWS_PER_DATASET:,} "
                                     f"exemplars for {dataset}); your uploads stay in your session")
                recent = db.execute("SELECT COUNT(*) FROM exemplars WHERE session = ? AND created > ?",
                                    (session, now - 3600)).fetchone()[0] if session else 0
                if session and recent + len(images) > MAX_ROWS_PER_SESSION_HOUR:
                    raise StoreError(f"a session may save {MAX_ROWS_PER_SESSION_HOUR} exemplars an hour "
                                     f"({recent} saved in the last hour); try again later")
                for i, uid in enumerate(uids):
                    cursor = db.execute(
                        "INSERT INTO exemplars (uid, dataset, image, label, name, created, session) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (uid, dataset, images[i].tobytes(), labels[i], names[i], now, session or MAINTAINER))
                    if codes is not None and model:
                        db.execute("INSERT INTO codes (exemplar, model, code) VALUES (?, ?, ?)",
                                   (cursor.lastrowid, model, codes[i].tobytes()))
        except (sqlite3.DatabaseError, OSError) as exc:
            self._damaged(exc)
            raise StoreError("the shared store cannot take new exemplars right now; "
                             "your uploads stay in your session") from None
        return uids

    def put_codes(self, model: str, ids, codes) -> None:
        """Cache a model's codes of stored rows (rows saved under another model, or before codes
        were kept). Best effort: a store that cannot be written is only logged."""
        codes = np.asarray(codes, "<f4").reshape(len(ids), -1)
        try:
            with self._writing() as db:
                db.executemany("INSERT OR REPLACE INTO codes (exemplar, model, code) "
                               "SELECT id, ?, ? FROM exemplars WHERE id = ?",
                               [(model, c.tobytes(), int(i)) for i, c in zip(ids, codes)])
        except (sqlite3.Error, OSError) as exc:
            self._damaged(exc)

    def remove(self, ids) -> int:
        """Delete rows by id (a maintainer's action); how many there were."""
        ids = [int(i) for i in ids]
        with self._writing() as db:
            return sum(db.execute("DELETE FROM exemplars WHERE id = ?", (i,)).rowcount for i in ids)

    # -- moving rows between stores -------------------------------------------------------------

    def export(self, path: Path, dataset: str | None = None) -> int:
        """Write rows (every dataset, or one) to an ``.npz`` that ``import_file`` reads back."""
        datasets = [dataset] if dataset else list(DATASETS)
        parts = [(d, self.load(d)) for d in datasets]
        if self.problem:
            raise StoreError(f"the store could not be read in full ({self.problem}); see the log")
        arrays = {
            "dataset": np.concatenate([np.full(len(p["uids"]), d) for d, p in parts]).astype(str),
            **{k: np.concatenate([p[k] for _, p in parts]) for k in ("uids", "images", "labels", "names", "created")}}
        arrays["names"] = arrays["names"].astype(str)
        arrays["uids"] = arrays["uids"].astype(str)
        with open(path, "wb") as f:
            np.savez(f, **arrays)
        return len(arrays["uids"])

    def import_file(self, path: Path) -> int:
        """Add the rows of an exported ``.npz`` (or of the store's earlier per-dataset form) that
        are not here yet, by uid; how many were added."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                count = self._import_npz(db, Path(path), dataset_default=None, session="import")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        return count

    @staticmethod
    def _import_npz(db, path: Path, dataset_default: str | None, session: str) -> int:
        with np.load(path, allow_pickle=False) as f:
            uids, images, labels, names = (f[k] for k in ("uids", "images", "labels", "names"))
            datasets = f["dataset"] if "dataset" in f.files else None
            created = f["created"] if "created" in f.files else None
        if datasets is None and dataset_default is None:
            raise ValueError(f"{path.name} does not say which dataset its rows belong to")
        if images.shape != (len(uids), SIDE, SIDE) or len(labels) != len(uids) or len(names) != len(uids):
            raise ValueError(f"{path.name} is not a store export: its arrays do not agree")
        stamp = path.stat().st_mtime
        before = db.total_changes
        for i in range(len(uids)):
            dataset = str(datasets[i]) if datasets is not None else dataset_default
            if dataset not in DATASETS:
                raise ValueError(f"{path.name} has rows of an unknown dataset {dataset!r}")
            db.execute("INSERT OR IGNORE INTO exemplars (uid, dataset, image, label, name, created, session) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (str(uids[i]), dataset, np.asarray(images[i], "<f4").tobytes(), int(labels[i]),
                        str(names[i])[:MAX_NAME_CHARS], float(created[i]) if created is not None else stamp,
                        session))
        return db.total_changes - before


def _unknown(dataset: str):
    raise ValueError(f"unknown dataset {dataset!r}; choose one of: {', '.join(DATASETS)}")
