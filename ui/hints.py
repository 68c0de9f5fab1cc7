"""One-sentence hints above the results when the model and the image do not belong together: a demo
model (three classes of generated aerial scenes) on a visitor's photo, or a COCO model on the generated
samples. The texts are pure functions of what is on the page; :func:`show` draws the one that applies."""
from __future__ import annotations

import streamlit as st

from .text import plain

COCO_EXAMPLE = "yolo11n.pt"  # the official COCO detector the Dockerfile fetches for a Space


def _names(names: dict[int, str]) -> str:
    shown = [plain(names[k]) for k in sorted(names)]
    return ", ".join(shown[:-1]) + f" and {shown[-1]}" if len(shown) > 1 else "".join(shown)


def demo_model_hint(names: dict[int, str], ready: list[str]) -> str:
    """For a demo model on a visitor's image: what it knows, and the COCO model to choose instead, or,
    when none is on this host, how to get one (on this host, on a Space, offline)."""
    knows = (f"The demo model knows only {_names(names)} in generated aerial scenes, so on a real photo its "
             "boxes mean little")
    if ready:
        return f"{knows}: for real photos choose **{ready[0]}** (COCO: 80 everyday classes) under 1. Model."
    return (f"{knows}; real photos need a COCO model such as {COCO_EXAMPLE}, which this host does not have: put it in "
            "a folder named by PATCHWISE_WEIGHTS_DIR and restart the page (a Hugging Face Space's Dockerfile fetches "
            "it when the image is built; offline, copy the file from another machine, or upload it under "
            "\"Upload my own model\").")


COCO_ON_SAMPLES = ("The samples are generated aerial scenes made for the demo models: a COCO model finds little "
                   "in them, and no real photo ships with Patchwise (photos carry their owners' licences). Upload "
                   "a photo of your own under 2. Images to see what it finds.")


def _choose(name: str) -> None:
    st.session_state["model_choice"] = name


def show(demo: bool, official: bool, sample: bool, names: dict[int, str], ready: list[str]) -> None:
    """The hint for this model (``demo``: a bundled demo model runs; ``official``: a COCO checkpoint
    chosen by name) on this image (``sample``: a bundled sample), if any."""
    if demo and not sample:
        st.warning(demo_model_hint(names, ready), icon=":material/lightbulb:")
        if ready:
            st.button(f"Use {ready[0]}", key="use_coco", on_click=_choose, args=(ready[0],))
    elif official and sample:
        st.info(COCO_ON_SAMPLES, icon=":material/lightbulb:")
