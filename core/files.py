"""Reading a file a user names: regular files only, with the size cap applied while reading.

A size checked with ``stat`` before reading is not enough: ``/dev/zero`` and a FIFO are not
regular files, report no size, and either never end or block forever. The file is opened without
blocking and checked on the opened descriptor, so it cannot be swapped between check and read.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

MAX_UPLOAD_BYTES = 5 * 1024 * 1024  # one upload, in the app and the CLI (streamlit_config.toml too)


class FileRefused(ValueError):
    """A path that cannot be read as an upload; the message says why, in plain words."""


def _open_regular(path: Path) -> int:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO opens without waiting for a writer
    except FileNotFoundError:
        raise FileRefused("no such file") from None
    except IsADirectoryError:
        raise FileRefused("this is a folder, not a file") from None
    except PermissionError:
        raise FileRefused("permission denied") from None
    except OSError as exc:
        raise FileRefused(f"cannot open it ({exc.strerror or exc})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise FileRefused("not a regular file (a folder, device, FIFO or socket): pass an image file")
    return fd


def check(path: str | Path, limit: int = MAX_UPLOAD_BYTES) -> None:
    """Refuse a path that is no regular file, or is over ``limit`` bytes, without reading it."""
    fd = _open_regular(Path(path))
    try:
        size = os.fstat(fd).st_size
    finally:
        os.close(fd)
    if size > limit:
        raise FileRefused(f"the file is {size / 2**20:.1f} MB; the limit is {limit / 2**20:.0f} MB")


def read_capped(path: str | Path, limit: int = MAX_UPLOAD_BYTES) -> bytes:
    """The file's bytes, refusing it as soon as more than ``limit`` have been read (a file that
    grows after it was checked is still cut off)."""
    fd = _open_regular(Path(path))
    with os.fdopen(fd, "rb") as f:
        content = f.read(limit + 1)
    if len(content) > limit:
        raise FileRefused(f"the file is over the {limit / 2**20:.0f} MB limit")
    return content
