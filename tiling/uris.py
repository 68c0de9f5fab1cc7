"""Inputs given as URIs (``s3://bucket/survey/``, ``gs://...``, ``hdfs://...``, ``file:///...``): listed and
read through pyarrow's filesystems, which Ray Data installs with itself, so that a cluster's workers read
a bucket directly instead of needing the images on a shared disk. Photos only: a raster given by URI is
decoded whole, within the pixel limit, like any other image."""
from __future__ import annotations

import io
import re
from typing import Sequence
from urllib.parse import quote, unquote

import numpy as np

from .imageio import ImageError, read_image
from .names import display_name
from .optional import MissingExtra, require

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
MAX_BYTES = 1 << 30  # an image file read whole through a filesystem; larger ones are refused unread


def is_uri(source) -> bool:
    """True for text such as ``s3://bucket/key`` (a scheme and ``://``); paths are never URIs."""
    return isinstance(source, str) and bool(_SCHEME.match(source))


def _shown(uri: str) -> str:
    return display_name(uri.split("?", 1)[0])


def _filesystem(uri: str):
    """(pyarrow filesystem, path in it) for ``uri``, or a one-line ``ValueError``."""
    try:
        pafs = require("pyarrow.fs", "ray")
    except MissingExtra as exc:
        raise ValueError(f"{_shown(uri)}: {exc}") from None
    try:
        return pafs.FileSystem.from_uri(uri)
    except Exception as exc:  # unknown scheme, no credentials, a malformed URI...
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"{_shown(uri)}: cannot be opened ({text[:200]})") from None


def _join(base: str, rel: str) -> str:
    """``base`` (a folder's URI, perhaps with a ``?query``) with the file path ``rel`` appended, quoted:
    a name with a space, ``#``, ``?`` or ``%`` in it stays one path."""
    head, sep, query = base.partition("?")
    return f"{head.rstrip('/')}/{quote(rel)}{sep}{query}"


def list_uri(source: str, suffixes: Sequence[str]) -> tuple[str, list[str]]:
    """(root, images) for a folder's URI (searched recursively for ``suffixes``) or one file's, as
    ``tiling.inputs.list_images`` gives them for paths; a one-line ``ValueError`` otherwise."""
    fs, path = _filesystem(source)  # first: without pyarrow, this is the one-line error
    import pyarrow.fs as pafs

    try:
        info = fs.get_file_info(path)
        if info.type == pafs.FileType.Directory:
            found = fs.get_file_info(pafs.FileSelector(path, recursive=True))
            rels = sorted(f.path[len(path.rstrip("/")):].lstrip("/") for f in found
                          if f.type == pafs.FileType.File and f.path.lower().endswith(tuple(suffixes)))
            if not rels:
                raise ValueError(f"{_shown(source)} holds no images ({', '.join(suffixes)})")
            return source, [_join(source, rel) for rel in rels]
    except OSError as exc:
        raise ValueError(f"{_shown(source)}: cannot be listed ({str(exc).splitlines()[0][:200]})") from None
    if info.type == pafs.FileType.File:
        return uri_parent(source), [source]
    raise ValueError(f"{_shown(source)}: no such file or folder")


def uri_parent(uri: str) -> str:
    head, sep, query = uri.partition("?")
    return head.rstrip("/").rsplit("/", 1)[0] + sep + query


def common_root(uris: Sequence[str]) -> str:
    """The longest folder URI that every one of ``uris`` lies in; for different buckets or hosts, the
    scheme's root (``s3:/``), below which their names then start with the bucket."""
    heads = [u.partition("?")[0] for u in uris]
    scheme = heads[0].split("://", 1)[0] + "://"
    if any(not head.startswith(scheme) for head in heads):
        raise ValueError(f"the URIs of one run use one scheme ({scheme}...), not several")
    prefix = heads[0].rsplit("/", 1)[0]
    for head in heads[1:]:
        while not head.startswith(prefix + "/"):  # ends by "s3:/" at the latest, which every head extends
            prefix = prefix.rsplit("/", 1)[0]
    return prefix


def relative(uri: str, root: str) -> str:
    """``uri``'s path below ``root`` (both without their queries), unquoted, as an output name."""
    return unquote(uri.partition("?")[0][len(root.partition("?")[0].rstrip("/")):].lstrip("/"))


def read_bytes(uri: str) -> bytes:
    """The whole file at ``uri`` (at most :data:`MAX_BYTES`), or an ``ImageError`` naming it."""
    try:
        fs, path = _filesystem(uri)
        size = fs.get_file_info(path).size
        if size is None:
            raise ImageError(f"{_shown(uri)}: no such file")
        if size > MAX_BYTES:
            raise ImageError(f"{_shown(uri)} is {size / 2**20:.0f} MB; image files above "
                             f"{MAX_BYTES / 2**20:.0f} MB are not read")
        with fs.open_input_stream(path) as stream:
            data = stream.read(MAX_BYTES + 1)  # never more, whatever size the listing gave
        if len(data) > MAX_BYTES:
            raise ImageError(f"{_shown(uri)} is larger than {MAX_BYTES / 2**20:.0f} MB; it is not read")
        return data
    except ValueError as exc:  # ImageError is a ValueError too
        raise ImageError(str(exc)) from None
    except OSError as exc:
        raise ImageError(f"{_shown(uri)}: cannot be read ({str(exc).splitlines()[0][:200]})") from None


def read_input(source, max_pixels: int | None = None) -> np.ndarray:
    """``tiling.read_image`` for a path or a URI (fetched whole first, then decoded with the same checks)."""
    if not is_uri(source):
        return read_image(source, max_pixels=max_pixels)
    data = io.BytesIO(read_bytes(source))
    data.name = unquote(source.partition("?")[0].rsplit("/", 1)[-1])
    return read_image(data, max_pixels=max_pixels)
