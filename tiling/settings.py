"""A run's three settings objects, built from keywords and checked together before any engine starts.

Every engine (in memory, streamed raster, Ray, video) calls :func:`check_run`, so a setting is refused
with the same words wherever it is given.
"""
from __future__ import annotations

from dataclasses import replace

from . import checks
from .grid import TileSpec
from .merge import MergeSpec
from .models import InferSpec

SPECS = (TileSpec, InferSpec, MergeSpec)


def known_settings(*extra: type) -> set[str]:
    """Every field name of the three specs (and of ``extra`` settings classes)."""
    return set().union(*(checks.field_names(cls) for cls in (*SPECS, *extra)))


def split_settings(tiles: TileSpec | None = None, infer: InferSpec | None = None, merge: MergeSpec | None = None,
                   **changes) -> tuple[TileSpec, InferSpec, MergeSpec]:
    """The three specs, each with the keyword settings that name one of its fields changed.

    A name several specs share (``conf``, ``classes``) changes each of them: ``conf=0.25`` runs the
    model at 0.25 and keeps what it finds at 0.25.
    """
    checks.refuse_unknown(changes, known_settings())
    out = []
    for spec, cls in zip((tiles, infer, merge), SPECS):
        mine = {k: v for k, v in changes.items() if k in checks.field_names(cls)}
        out.append(checks.with_changes(spec, cls, mine))
    return out[0], out[1], out[2]


def check_merge_conf(infer: InferSpec, merge: MergeSpec) -> None:
    """Refuse a merge conf below the conf the model runs at: detections under it were never made, so the
    run would quietly keep fewer than it says."""
    if merge.conf < infer.conf - 1e-9:
        raise ValueError(f"the merge conf {merge.conf} is below the {infer.conf} the model runs at; "
                         "run again with a lower infer conf")


def check_run(tiles: TileSpec | None = None, infer: InferSpec | None = None, merge: MergeSpec | None = None, *,
              streamed: bool = False, engine: str = "", **changes) -> tuple[TileSpec, InferSpec, MergeSpec]:
    """The specs of one run, refused as a whole when they cannot run together.

    ``streamed``: the image is read window by window (a raster): it has no full-image pass (that would
    decode it whole), and a tile pyramid is refused (its coarse grids would not follow the row bands).
    ``engine``: the run is not :func:`~tiling.pipeline.predict_tiled`'s (a raster, a Ray run, a clip),
    which alone chooses ``tile_size="auto"`` per image; named in the refusal.
    """
    tiles, infer, merge = split_settings(tiles, infer, merge, **changes)
    check_merge_conf(infer, merge)
    if tiles.auto and (engine or streamed):
        raise ValueError(f"tile_size 'auto' is chosen per photo; {engine or 'a streamed raster'} needs a tile size "
                         "in pixels")
    if streamed:
        if tiles.levels:
            raise ValueError("levels (a tile pyramid) is not available for a streamed raster; run one tile size")
        infer = replace(infer, include_full=False)
    return tiles, infer, merge
