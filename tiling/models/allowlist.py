"""What a checkpoint's pickle may name, and why each entry is there.

Derived from what ``torch.save`` writes for Ultralytics models (YOLOv8/9/10/11/26 detect and segment,
RT-DETR, FastSAM), plus the few data types older official checkpoints hold, mirroring the aliases of
Ultralytics' own loader. Model classes may only be restored (``cls.__new__`` plus saved attributes),
never called; CALLABLES are the only functions a REDUCE may call, each with arguments checked by
:mod:`.pickle_scan`.
"""
from __future__ import annotations

import functools
import importlib

STORAGE_SIZES = {f"torch.{k}Storage": v for k, v in (("Half", 2), ("BFloat16", 2), ("Float", 4), ("Double", 8),
                 ("Long", 8), ("Int", 4), ("Short", 2), ("Char", 1), ("Byte", 1), ("Bool", 1))}
# Model classes are restored by __new__ + saved state, never constructed; only these modules may name one.
MODULE_PACKAGES = ("torch.nn.modules.", "ultralytics.nn.modules.")
PLAIN_CLASS_MODULES = ("ultralytics.utils.loss", "ultralytics.utils.tal")  # training losses kept in old checkpoints
ALIASES = {  # names in older official checkpoints, mapped as Ultralytics' own loader maps them
    "ultralytics.nn.tasks.YOLOv10DetectionModel": "ultralytics.nn.tasks.DetectionModel",
    "ultralytics.nn.modules.block.Silence": "torch.nn.modules.linear.Identity",
    "ultralytics.utils.loss.v10DetectLoss": "ultralytics.utils.loss.E2EDetectLoss",
}
# __setstate__ overrides reviewed: each only fills in defaults for attributes old checkpoints lack.
REVIEWED_SETSTATE = {"torch.nn.modules.module.Module", "torch.nn.modules.activation.MultiheadAttention",
                     "torch.nn.modules.activation.Softmax", "torch.nn.modules.activation.Softmin",
                     "torch.nn.modules.activation.LogSoftmax", "torch.nn.modules.conv._ConvNd",
                     "torch.nn.modules.pooling.AvgPool3d", "torch.nn.modules.upsampling.Upsample",
                     "torch.nn.modules.transformer.TransformerEncoderLayer",
                     "torch.nn.modules.transformer.TransformerDecoderLayer", "ultralytics.nn.modules.block.AAttn"}
PATHS = {f"{m}.{c}" for m in ("pathlib", "pathlib._local") for c in ("PosixPath", "WindowsPath")}
NAMESPACES = {"ultralytics.utils.IterableSimpleNamespace", "ultralytics.yolo.utils.IterableSimpleNamespace"}
SCALARS = {"numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar"}
RESULTS = {"collections.OrderedDict": "od", "builtins.set": "set", "builtins.frozenset": "set", "torch.Size": "size",
           "torch.device": "device", "_codecs.encode": "bytes", "numpy.dtype": "dtype",
           **dict.fromkeys(PATHS, "path"), **dict.fromkeys(NAMESPACES, "namespace"), **dict.fromkeys(SCALARS, "scalar")}
CALLABLES = {"torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter", "builtins.getattr", *RESULTS}


@functools.lru_cache(maxsize=1024)
def class_for(name: str):
    """The allowed model class a GLOBAL names, or None. Only the allowed packages are ever imported."""
    name = ALIASES.get(name, name)
    module, _, attr = name.rpartition(".")
    family = module.startswith(MODULE_PACKAGES) and module.count(".") == 3
    if not (attr.isidentifier() and (family or module == "ultralytics.nn.tasks" or module in PLAIN_CLASS_MODULES)):
        return None
    from torch import nn

    try:
        obj = getattr(importlib.import_module(module), attr, None)
    except ImportError:
        return None
    if not isinstance(obj, type) or obj.__module__ != module:
        return None
    if module not in PLAIN_CLASS_MODULES and not issubclass(obj, nn.Module):
        return None
    owner = next((f"{k.__module__}.{k.__qualname__}" for k in obj.__mro__ if "__setstate__" in vars(k)), None)
    if obj.__new__ is not object.__new__ or (owner is not None and owner not in REVIEWED_SETSTATE):
        return None  # a custom __new__ or __setstate__ would run code while the object is restored
    return obj
