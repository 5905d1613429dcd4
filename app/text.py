"""User-supplied strings (file names, labels, URL values) shown as text, never as markup."""

import re

# CommonMark lets a backslash escape any ASCII punctuation; Streamlit's Markdown adds $ (maths)
# and :name: (icons and colours). Escaping all of them leaves only literal characters.
_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")
# GitHub-flavoured Markdown also turns bare URLs and e-mail addresses into links, after escapes
# are undone, so no escape stops it. A word joiner (U+2060, invisible, zero width) inside each
# such pattern does: the text reads the same, and nothing in it is a link.
WORD_JOINER = "\u2060"
_AUTOLINK = re.compile(r"(://|(?<![\w])www(?=\.)|@)", re.IGNORECASE)


def plain(text: str) -> str:
    """``text`` escaped for Streamlit's Markdown, so it renders exactly as written, on one line."""
    one_line = " ".join(str(text).split())
    unlinked = _AUTOLINK.sub(lambda m: m.group(0)[0] + WORD_JOINER + m.group(0)[1:], one_line)
    return _PUNCTUATION.sub(r"\\\1", unlinked)
