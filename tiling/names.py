"""Names of inputs as outputs use them: safe to use as keys, file names and zip entries, shown as text,
and never colliding.

An upload's name is text chosen by a stranger: it may hold a path (``../x.png``, ``/etc/x.png``),
NUL, newlines or tabs, or repeat another upload's name. Everywhere a name becomes a key, a path or an
archive entry, it goes through :func:`unique_names` first. A folder run's files are named by
:func:`unique_stems` of the images' relative paths: the page's zip and the CLI's and Ray's folders
follow the one rule, so the same inputs get the same output names.
"""
from __future__ import annotations

import re
import unicodedata
from pathlib import PurePosixPath, PureWindowsPath
from typing import Iterable

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


def display_name(name: str) -> str:
    """A file name as text that any output can hold: bytes that are not UTF-8 become U+FFFD."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def stem_of(name: str) -> str:
    """``name`` without its suffix (``sub/a.png`` -> ``sub/a``); a name without one is its own stem."""
    suffix = PurePosixPath(name).suffix
    return name[: -len(suffix)] if suffix else name


def unique_stems(names: Iterable[str]) -> list[str]:
    """The stems of ``names``, made all different regardless of case: a stem met again gets ``-2``, ``-3``...
    (``a.png``, ``a.jpg``, ``A.tif`` -> ``a``, ``a-2``, ``A-3``); the first keeps it. The one rule for output
    names, so that outputs derived from a stem (``a.txt``, ``a_patches.png``) never overwrite each other."""
    out: list[str] = []
    taken: set[str] = set()
    for name in names:
        stem = candidate = stem_of(name)
        k = 2
        while candidate.casefold() in taken:
            candidate, k = f"{stem}-{k}", k + 1
        taken.add(candidate.casefold())
        out.append(candidate)
    return out


def unique_names(names: list[str], fallback: str = "file") -> list[str]:
    """Safe names (:func:`safe_name`), one per input, with :func:`unique_stems` and their own suffixes
    (``a.png``, ``a.jpg`` -> ``a.png``, ``a-2.jpg``)."""
    safe = [safe_name(raw, fallback) for raw in names]
    return [stem + name[len(stem_of(name)):] for name, stem in zip(safe, unique_stems(safe))]
