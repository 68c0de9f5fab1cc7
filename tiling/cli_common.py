"""What every CLI command shares, below the commands and the parser: the one-line error, the rule from a
settings field to its flag, listing the inputs and loading the model as the options say."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Mapping, Sequence

from .checks import SettingError
from .inputs import list_images
from .models import ModelError, load_model
from .models.archive import check_export_zip
from .models.bundled import BundledAssets
from .models.calibration import run_calibration
from .models.runtimes import Precision, Runtime, requested
from .names import display_name


class CliError(Exception):
    """A problem with the user's paths or options: one line, exit code 2."""

    @classmethod
    def of_setting(cls, err: SettingError, flags: Mapping[str, str] | None = None) -> CliError:
        """The library's refusal of a setting, said of the flag that set it (``flags``: field -> flag where
        the flag is not named after the field)."""
        return cls(f"{(flags or {}).get(err.field) or flag_of(err.field)} {err.message}")


def flag_of(field: str) -> str:
    """The option of a settings field: ``tile_size`` -> ``--tile-size``."""
    return "--" + field.replace("_", "-")


def find_images(source: str) -> tuple[Path, list[Path]]:
    """(root, images) of a run, listed as the library lists them (:func:`tiling.inputs.list_images`)."""
    try:
        return list_images(source)
    except ValueError as exc:
        raise CliError(str(exc)) from None


def runtime_options(runtime: Runtime | str, precision: Precision | str) -> tuple[Runtime, Precision]:
    """``--runtime`` and ``--precision`` as types; argparse took their names, so what is left to refuse
    is a pair the runtime cannot run, in one line naming both flags."""
    try:
        return requested(runtime, precision)
    except ValueError as exc:
        raise CliError(f"--runtime {runtime} with --precision {precision}: {exc}") from None


def load(model_path: str, precision: Precision | str = Precision.FP32, calibration: str | None = None,
         images: Sequence = (), streamed=None, bands=None, runtime: Runtime | str = Runtime.AUTO):
    """The model, loaded as the options say. With ``precision="int8"`` its 8-bit copy is calibrated on the
    ``--calibration`` folder, else on ``images`` (the ones to process; of a raster that ``streamed(path)``
    says is read window by window, a few windows only), unless its 8-bit copy ships beside it (a bundled
    model's ``*_int8_openvino_model`` folder in the checkpoint's own folder, as in ``models/``)."""
    runtime, precision = runtime_options(runtime, precision)
    if precision is Precision.INT8 and calibration is not None and not Path(calibration).is_dir():
        raise CliError(f"--calibration {display_name(calibration)}: no such folder")
    bundled = BundledAssets.beside(model_path)
    if precision is Precision.INT8:
        calibration = run_calibration(model_path, calibration, images, streamed, bands, bundled)

    if not Path(model_path).exists() and Path(model_path).name == model_path and not model_path.endswith(".pt"):
        raise CliError(f"{model_path}: no such model file")
    if Path(model_path).suffix.lower() == ".zip" and Path(model_path).is_file():
        try:  # a zipped export the page would refuse is refused here before "loading" is said
            check_export_zip(Path(model_path), display_name(Path(model_path).name))
        except ModelError as exc:
            raise CliError(str(exc)) from None
    if Path(model_path).exists():  # a bad name gets its one-line error alone
        print(f"loading {display_name(model_path)} (optimized for this CPU the first time it is used here, once)",
              file=sys.stderr)

    def report(done: int, total: int) -> None:  # while an 8-bit copy is made: a step per calibration tile
        print(f"\rmaking the 8-bit copy: {done / max(total, 1):4.0%}", end="", file=sys.stderr, flush=True)

    try:
        model = load_model(model_path, runtime=runtime, precision=precision, calibration=calibration, progress=report,
                           bundled=bundled)
    except ModelError as exc:
        raise CliError(str(exc)) from None
    if precision is Precision.INT8:
        print("\r" + (f"8-bit copy in use: it agrees with full precision at {model.agreement:.1%} on held-out tiles"
                      if model.precision is Precision.INT8 else f"full precision: {model.runtime_note}").ljust(80),
              file=sys.stderr)
    return model

