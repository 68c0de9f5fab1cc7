"""Names that came from outside (uploads, archives) made safe to use as keys, file names and zip entries.

An upload's name is text chosen by a stranger: it may hold a path (``../x.png``, ``/etc/x.png``),
NUL, newlines or tabs, or repeat another upload's name. Everywhere a name becomes a key, a path or an
archive entry, it goes through :func:`unique_names` first.
"""
from __future__ import annotations

import re
import unicodedata
from pathlib import PurePosixPath, PureWindowsPath

MAX_NAME_CHARS = 120
_UNSAFE = re.compile(r"[\x00-\x1f\x7f<>:\"|?*\\/]+")


def safe_name(name: object, fallback: str = "file") -> str:
    """The last path component of ``name``, without control or path characters, at most 120 characters."""
    text = unicodedata.normalize("NFC", str(name) if name is not None else "")
    text = PureWindowsPath(PurePosixPath(text.replace("\x00", "")).name).name  # drop folders, either separator
    text = _UNSAFE.sub("_", text).strip(" .")
    if not text:
        return fallback
    if len(text) > MAX_NAME_CHARS:
        stem, dot, suffix = text.rpartition(".")
        suffix = suffix[:10] if dot and len(suffix) <= 10 else ""
        text = (stem if suffix else text)[: MAX_NAME_CHARS - len(suffix) - 1].rstrip(" .") + (f".{suffix}" if suffix else "")
    return text


def stem_of(name: str) -> str:
    stem, dot, _ = name.rpartition(".")
    return stem if dot and stem else name


def unique_names(names: list[str], fallback: str = "file") -> list[str]:
    """Safe names, one per input, whose stems are all different (``a.png``, ``a.jpg`` -> ``a.png``,
    ``a-2.jpg``), so that outputs derived from a stem (``a.txt``, ``a_patches.png``) never collide."""
    out: list[str] = []
    taken: set[str] = set()
    for raw in names:
        name = safe_name(raw, fallback)
        stem = stem_of(name)
        suffix = name[len(stem):]
        candidate, k = name, 2
        while stem_of(candidate).casefold() in taken:
            candidate, k = f"{stem}-{k}{suffix}", k + 1
        taken.add(stem_of(candidate).casefold())
        out.append(candidate)
    return out
