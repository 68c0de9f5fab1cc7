"""OpenVINO's telemetry off by its own switch, before anything here imports OpenVINO or NNCF.

``openvino_telemetry`` (installed with OpenVINO, used by its model converter and by NNCF) posts usage
events to an analytics host, from forked processes, on every conversion, unless its consent file
(``~/intel/openvino_telemetry`` on Linux and macOS) holds "0". It reads no environment variable but
CI markers. That file is its opt-out: ``opt_in_out --opt_out`` writes it, and also sends an event
saying so, so the package's own writer is called here instead. An explicit "1" (the machine's owner
opted in) is left as it is.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

CONSENT_FILE = Path("intel") / "openvino_telemetry"  # under the home folder, on Linux and macOS


def opt_out() -> bool:
    """Write the declined consent unless one is recorded; whether telemetry is off (or not installed)."""
    try:
        if (Path.home() / CONSENT_FILE).is_file():  # the common case, without importing the package
            return (Path.home() / CONSENT_FILE).read_text().strip() != "1"
        if importlib.util.find_spec("openvino_telemetry") is None:
            return True
    except (OSError, RuntimeError, ValueError):  # no home folder: the package cannot find one either
        return True
    from openvino_telemetry.utils.opt_in_checker import ConsentCheckResult, OptInChecker

    checker = OptInChecker()
    if checker.check(enable_opt_in_dialog=False) is ConsentCheckResult.NO_FILE:
        return checker.update_result(ConsentCheckResult.DECLINED)
    return checker.check(enable_opt_in_dialog=False) is not ConsentCheckResult.ACCEPTED
