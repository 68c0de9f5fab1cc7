"""Text from outside (file names, class names, error messages) shown as itself, never as markdown."""
from __future__ import annotations

import re

_MARKDOWN = re.compile(r"([\\`*_\[\]<>#~$|])")  # emphasis, links, HTML, headings, LaTeX, tables


def plain(text: str) -> str:
    """``text`` with every markdown and HTML-significant character escaped, and no line breaks."""
    return _MARKDOWN.sub(r"\\\1", " ".join(str(text).split()))
