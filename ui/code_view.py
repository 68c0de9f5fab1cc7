""""The code for this": the Python call and the ``patchwise predict`` line that reproduce the page's
current result (image, model, speed and every setting), so a student can take the experiment home.

:func:`python_code` and :func:`cli_line` are pure (tested by running them); :func:`show` draws them.
"""
from __future__ import annotations

import enum
import shlex
from dataclasses import dataclass, fields
from typing import Any

import streamlit as st

import tiling
from tiling.cli_common import flag_of
from tiling.models.runtimes import Precision, Runtime

SHARED = ("conf", "classes")  # fields the CLI sets in every spec at once (one --conf); the merge's is the page's


@dataclass(frozen=True)
class Recipe:
    """What the page ran: the image and model as a reader would name them on their machine, the speed
    (runtime and precision) and the three specs."""

    image: str
    model: str
    runtime: Runtime
    precision: Precision
    tiles: tiling.TileSpec
    infer: tiling.InferSpec
    merge: tiling.MergeSpec
    shipped_int8: bool = False  # the model is a bundled one whose 8-bit copy ships beside it


def _changed(spec) -> dict[str, Any]:
    """The fields of a spec that differ from its defaults, in field order."""
    default = type(spec)()
    return {f.name: getattr(spec, f.name) for f in fields(spec) if getattr(spec, f.name) != getattr(default, f.name)}


def _literal(value: Any) -> str:
    """A setting as Python source: an enum member as its value (``"nmm"``), anything else as ``repr``."""
    return repr(value.value if isinstance(value, enum.Enum) else value)


def _call(cls_name: str, spec) -> str:
    args = ", ".join(f"{k}={_literal(v)}" for k, v in _changed(spec).items())
    return f"tiling.{cls_name}({args})"


def _load_args(recipe: Recipe) -> str:
    args = [repr(recipe.model)]
    if recipe.runtime is not Runtime.AUTO:
        args.append(f"runtime={recipe.runtime.value!r}")
    if recipe.precision is not Precision.FP32:
        args.append(f"precision={recipe.precision.value!r}")
    if recipe.precision is Precision.INT8 and recipe.shipped_int8:
        args.append(f"bundled=BundledAssets.beside({recipe.model!r})")
    elif recipe.precision is Precision.INT8:
        args.append(f"calibration=[{recipe.image!r}]")
    return ", ".join(args)


def python_code(recipe: Recipe) -> str:
    """A script that prints the number of objects the page's patch-based side found."""
    head = ["import tiling"]
    if recipe.precision is Precision.INT8 and recipe.shipped_int8:
        head.append("from tiling.models.bundled import BundledAssets  # the 8-bit copy shipped beside the model")
    return "\n".join([
        *head, "",
        f"image = tiling.read_image({recipe.image!r})",
        f"model = tiling.load_model({_load_args(recipe)})",
        f"tiles = {_call('TileSpec', recipe.tiles)}",
        f"infer = {_call('InferSpec', recipe.infer)}  # the model runs at this confidence",
        f"merge = {_call('MergeSpec', recipe.merge)}  # the page's sliders",
        "pred = tiling.predict_tiled(image, model, tiles, infer, merge)",
        'print(len(pred.detections), "objects")',
    ])


def _flag(name: str, value: Any, default: Any) -> list[str]:
    """One spec field as ``patchwise`` options (none when it has the CLI's default)."""
    if value == default:
        return []
    if isinstance(value, bool):
        return [flag_of(name)] if value else [f"--no-{name.replace('_', '-')}"]
    if isinstance(value, tuple):
        return [flag_of(name), ",".join(str(v) for v in value)]
    return [flag_of(name), str(value.value if isinstance(value, enum.Enum) else value)]


def cli_args(recipe: Recipe) -> list[str]:
    """The ``patchwise predict`` arguments, one option per setting that differs from the CLI's default.
    ``--conf`` sets the model's confidence and the merge's at once: the page's slider value."""
    args = ["predict", recipe.image, "--model", recipe.model]
    for spec in (recipe.tiles, recipe.infer, recipe.merge):
        defaults = type(spec)()
        for f in fields(spec):
            if f.name in SHARED and not isinstance(spec, tiling.MergeSpec):
                continue
            args += _flag(f.name, getattr(spec, f.name), getattr(defaults, f.name))
    if recipe.runtime is not Runtime.AUTO:
        args += ["--runtime", recipe.runtime.value]
    if recipe.precision is not Precision.FP32:
        args += ["--precision", recipe.precision.value]
    return args + ["--out", "results/"]


def cli_line(recipe: Recipe) -> str:
    return "patchwise " + shlex.join(cli_args(recipe))


def show(recipe: Recipe, count: int, uploaded: bool) -> None:
    """The expander under the pictures: both ways of getting this result, and what to expect."""
    with st.expander(":material/code: The code for this", key="code_for_this"):
        where = ("Run it beside your own copy of the image and model, named as here" if uploaded else
                 "Run it in the Patchwise folder (after the install in the README)")
        st.caption(f"{where}; it prints {count} objects, the count of the patch-based side. The command line "
                   "runs the model at the confidence slider's value (the page runs it at 0.05 so the slider can "
                   "move without a re-run): the same objects are kept.")
        st.code(python_code(recipe), language="python")
        st.code(cli_line(recipe), language="bash")
