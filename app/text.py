"""User-supplied strings (file names, labels, URL values) shown as text, never as markup."""

import re

# CommonMark lets a backslash escape any ASCII punctuation; Streamlit's Markdown adds $ (maths)
# and :name: (icons and colours). Escaping all of them leaves only literal characters.
_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")


def plain(text: str) -> str:
    """``text`` escaped for Streamlit's Markdown, so it renders exactly as written, on one line."""
    return _PUNCTUATION.sub(r"\\\1", " ".join(str(text).split()))
