"""Query-string values, parsed strictly. A shared link seeds a page's controls once per session;
a value that is not one the page offers is ignored, and the page says so in plain text."""

from __future__ import annotations

import re

import streamlit as st

from app.text import plain

MAX_SHOWN = 40  # characters of an ignored value quoted back to the user
INDEX = re.compile(r"[0-9]{1,9}")  # ASCII digits only: "²".isdigit() is True, int("²") fails


def _note(param: str, value: str, why: str) -> None:
    shown = value if len(value) <= MAX_SHOWN else value[:MAX_SHOWN] + "…"
    st.session_state.setdefault("url_notes", []).append(f"The link's {param}={shown!r} was ignored: {why}.")


def seed(key: str, param: str, allowed: list[str], default: str) -> None:
    """Set widget ``key`` from ``?param=`` the first time this session sees it."""
    if key in st.session_state:
        return
    wanted = st.query_params.get(param)
    if wanted is not None and wanted not in allowed:
        _note(param, wanted, "choose one of " + ", ".join(allowed))
    st.session_state[key] = wanted if wanted in allowed else default


def parse_index(value: str | None, size: int) -> int | None:
    """``value`` as an index below ``size``, or None unless it is plain ASCII digits in range."""
    if value is None or not INDEX.fullmatch(value):
        return None
    index = int(value)
    return index if index < size else None


def seed_index(key: str, param: str, size: int) -> None:
    """Set ``key`` to the image index in ``?param=`` (or None) the first time this session sees it."""
    if key in st.session_state:
        return
    wanted = st.query_params.get(param)
    index = parse_index(wanted, size)
    if wanted is not None and index is None:
        _note(param, wanted, f"it must be an image number from 0 to {size - 1:,}")
        st.query_params.pop(param, None)
    st.session_state[key] = index


def show_notes() -> None:
    """Each ignored value once, as a visible note, never rendered as markup."""
    for note in st.session_state.pop("url_notes", []):
        st.warning(plain(note), icon=":material/link_off:")
