"""Splits without leakage: every tile inherits its source image's split, so overlapping tiles of one image
never land in two splits. Where the source names no split, one is drawn over source images, or over
groups of them (frames of one scene sequence are near-duplicates: a sequence split between train and val
leaks as surely as one image would), reproducibly from the seed."""
from __future__ import annotations

import hashlib
from pathlib import PurePosixPath

import numpy as np

from .objects import SourceImage


def group_key(image: SourceImage) -> str:
    """The group of an image: its file name before the first ``_`` (VisDrone's ``0000001_02999_d_0000005``
    is sequence ``0000001``), within its folder; a name without ``_`` is a group of its own."""
    key = PurePosixPath(image.key)
    return str(key.parent / key.name.split("_", 1)[0]) if "_" in key.name else image.key


def _draw(keys: list[str], val_fraction: float, seed: int) -> set[str]:
    """The keys that go to val: a seeded shuffle of the sorted keys, the first ``val_fraction`` of them
    (at least one when there are two or more keys and the fraction is above 0)."""
    unique = sorted(set(keys))
    order = np.random.default_rng(seed).permutation(len(unique))
    n_val = int(round(val_fraction * len(unique)))
    if val_fraction > 0 and len(unique) >= 2:
        n_val = min(max(n_val, 1), len(unique) - 1)
    return {unique[i] for i in order[:n_val]}


def assign_splits(images: list[SourceImage], split_by: str, val_fraction: float, seed: int) -> dict[str, str]:
    """Each image key's split: the source's own where it has one, else drawn by image or by group."""
    named = {im.key: im.split for im in images if im.split is not None}
    free = [im for im in images if im.split is None]
    key_of = group_key if split_by == "group" else (lambda im: im.key)
    val = _draw([key_of(im) for im in free], val_fraction, seed)
    named.update({im.key: "val" if key_of(im) in val else "train" for im in free})
    return named


def tile_seed(seed: int, key: str) -> int:
    """A seed for one image's random choices that depends on the image alone, not on the order images
    are read in: the same run chooses the same tiles however it is listed."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:8], "little")
