"""Safe opening of an Ultralytics checkpoint: nothing in the file may run code while it is read.

``ULTRALYTICS_SAFE_LOAD`` makes Ultralytics unpickle with ``weights_only`` and its allow-list; a
checkpoint that names anything else is refused before any of it runs.
"""
from __future__ import annotations

import os
from pathlib import Path

from .base import ModelError

os.environ.setdefault("ULTRALYTICS_SAFE_LOAD", "1")  # read by Ultralytics at import
SUPPORTED_TASKS = ("detect", "segment")


def enforce_safe_loading() -> None:
    import ultralytics.nn.tasks as tasks

    tasks.SAFE_LOAD = True  # even if Ultralytics was imported before this module set the variable


def vet_checkpoint(path: Path, label: str) -> dict:
    """Open the checkpoint with ``weights_only`` and the Ultralytics allow-list; nothing in it runs."""
    import pickle
    import zipfile

    from ultralytics.nn.tasks import torch_safe_load

    size = path.stat().st_size
    if size == 0:
        raise ModelError(f"{label} is empty (0 bytes)")
    if not zipfile.is_zipfile(path):
        raise ModelError(
            f"{label} is not a PyTorch checkpoint (a .pt file is a zip archive); it may be truncated or another format"
        )
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
    if not any(n.endswith("data.pkl") for n in names):
        if any(n.endswith("constants.pkl") or "/code/" in n for n in names):
            raise ModelError(f"{label} is a TorchScript archive; upload the original Ultralytics .pt weights")
        raise ModelError(f"{label} is a zip file but not a PyTorch checkpoint")
    if any("/code/" in n for n in names):
        raise ModelError(f"{label} is a TorchScript archive; upload the original Ultralytics .pt weights")
    try:
        ckpt, _ = torch_safe_load(str(path), safe_only=True)
    except (TypeError, pickle.UnpicklingError) as exc:
        text = str(exc)
        if "outside the supported" in text or isinstance(exc, pickle.UnpicklingError) or "Unsupported global" in text:
            raise ModelError(
                f"{label} was refused: it references code or types outside the Ultralytics/PyTorch allow-list "
                "(a checkpoint can hide code that runs when it is opened). Nothing from it was run."
            ) from None
        if "TorchScript" in text:
            raise ModelError(f"{label} is a TorchScript archive; upload the original Ultralytics .pt weights") from None
        raise ModelError(f"{label} is not a loadable checkpoint: the file is truncated or corrupted") from None
    except ModuleNotFoundError as exc:
        raise ModelError(f"{label} needs a Python module that is not available ({exc.name}); refused") from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError) as exc:
        raise ModelError(f"{label} is not a loadable checkpoint: the file is truncated or corrupted ({exc})") from None
    if not isinstance(ckpt, dict) or not (ckpt.get("ema") or ckpt.get("model")):
        keys = list(ckpt)[:3] if isinstance(ckpt, dict) else []
        raise ModelError(
            f"{label} holds only weights (a state_dict with keys like {keys}), not an Ultralytics model; "
            "save it with model.save() or upload the .pt that training wrote"
        )
    model = ckpt.get("ema") or ckpt.get("model")
    task = getattr(model, "task", None) or (ckpt.get("train_args") or {}).get("task")
    if task not in SUPPORTED_TASKS:
        raise ModelError(
            f"{label} is a '{task}' model; Patchwise runs detection and segmentation models only"
        )
    return ckpt
