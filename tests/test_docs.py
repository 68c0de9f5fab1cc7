"""Docs that must follow the code: the models package's module map, the model kinds, the benchmark notes."""
from __future__ import annotations

import ast
import re

from conftest import ROOT

MODELS = ROOT / "tiling" / "models"


def test_the_models_package_describes_every_module_it_holds():
    doc = ast.get_docstring(ast.parse((MODELS / "__init__.py").read_text()))
    named = set(re.findall(r":mod:`\.(\w+)`", doc))
    modules = {p.stem for p in MODELS.glob("*.py") if p.stem != "__init__"}
    assert named == modules, f"undescribed: {sorted(modules - named)}; gone: {sorted(named - modules)}"


def test_no_doc_says_only_detection_and_segmentation_load():
    """Oriented-box and pose models load too (``vetting.SUPPORTED_TASKS``)."""
    from tiling.models.vetting import SUPPORTED_TASKS

    assert {"obb", "pose"} <= set(SUPPORTED_TASKS)
    texts = [ROOT / "pyproject.toml", ROOT / "tiling" / "__init__.py", MODELS / "loading.py", ROOT / "ui" / "sidebar.py"]
    for path in texts:
        text = " ".join(path.read_text().split())
        assert not re.search(r"detection (and|or) segmentation model", text), path.name


def test_the_benchmark_notes_stay_short():
    assert len((ROOT / "bench" / "README.md").read_text().splitlines()) <= 250
