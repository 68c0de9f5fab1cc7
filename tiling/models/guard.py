"""A second wall behind the pickle scan: while a checkpoint is opened, built and tried, its thread may
not reach the network, write files or start processes.

Should a constructor still be reached (a future allow-list mistake, an Ultralytics change), it cannot
download (Ultralytics' downloader ignores ``YOLO_OFFLINE``), write into the weights folder or run a
command. An audit hook (``sys.addaudithook``: installed once, for the life of the process) does the
blocking; it acts only in threads inside :func:`sealed`, so the app's own threads are untouched.
Ultralytics' download functions are also wrapped to refuse outright inside :func:`sealed`.
"""
from __future__ import annotations

import contextlib
import functools
import os
import sys
import threading

from .base import ModelError

NETWORK = frozenset({"socket.connect", "socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyname_ex",
                     "socket.gethostbyaddr", "socket.sendto", "socket.sendmsg", "urllib.Request",
                     "http.client.connect"})
PROCESSES = frozenset({"subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
                       "os.forkpty", "pty.spawn", "os.startfile"})
FILE_CHANGES = frozenset({"os.mkdir", "os.remove", "os.rename", "os.rmdir", "os.truncate", "os.link", "os.symlink",
                          "os.chmod", "os.chown", "os.utime", "shutil.copyfile", "shutil.copytree", "shutil.move",
                          "shutil.rmtree", "shutil.unpack_archive"})
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
DOWNLOADERS = ("safe_download", "download", "get_github_assets", "get_google_drive_file_info")

_state = threading.local()
_install_lock = threading.Lock()
_installed = False


def _forbidden(event: str, args: tuple) -> str | None:
    """What ``event`` would do that a checkpoint being opened may not, or None."""
    if event in NETWORK:
        return f"network access ({event} {args[-1] if args else ''})".strip()
    if event in PROCESSES:
        return f"starting a process ({event})"
    if event == "open":
        mode, flags = (args[1], args[2]) if len(args) > 2 else (None, 0)
        writes = (isinstance(flags, int) and flags & WRITE_FLAGS) or any(c in str(mode or "") for c in "wax+")
        path = args[0] if writes else None
    elif event in FILE_CHANGES:
        path = args[0] if args else "?"
    else:
        return None
    if path is None or _importing():  # a library's first import caching its bytecode or making its cache dir
        return None
    return f"writing a file ({event} {path})"


def _importing() -> bool:
    """Whether this thread is inside an import (a checkpoint cannot choose what gets imported here)."""
    frame = sys._getframe()
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def _audit(event: str, args: tuple) -> None:
    if not getattr(_state, "active", False):
        return
    what = _forbidden(event, args)
    if what:
        _state.blocked.append(what)
        if event in NETWORK:
            raise ModelError(f"{what} blocked while a checkpoint is opened")
        raise PermissionError(f"{what} blocked while a checkpoint is opened")


def _refusing(func):
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        if getattr(_state, "active", False):
            _state.blocked.append(f"an Ultralytics download ({func.__name__})")
            raise ModelError(f"{func.__name__} blocked while a checkpoint is opened")
        return func(*args, **kwargs)

    wrapper.patchwise_guarded = True
    return wrapper


def _install() -> None:
    """The audit hook, and Ultralytics' downloaders wrapped wherever a loaded module holds them."""
    global _installed
    with _install_lock:
        if _installed:
            return
        from ultralytics.utils import downloads

        for name in DOWNLOADERS:
            original = getattr(downloads, name, None)
            if original is None or getattr(original, "patchwise_guarded", False):
                continue
            wrapper = _refusing(original)
            for module in [m for n, m in sys.modules.items() if n.startswith("ultralytics") and m is not None]:
                if getattr(module, name, None) is original:
                    setattr(module, name, wrapper)
        sys.addaudithook(_audit)
        _installed = True


@contextlib.contextmanager
def sealed(label: str):
    """Run the body with no network, file writes or processes in this thread; any attempt refuses the file."""
    _install()
    if getattr(_state, "active", False):  # already sealed further up this thread
        yield
        return
    _state.active, _state.blocked = True, []
    try:
        yield
    except Exception:
        if _state.blocked:
            raise ModelError(f"{label} was refused: opening it attempted {_state.blocked[0]}") from None
        raise
    finally:
        _state.active = False
    if _state.blocked:
        raise ModelError(f"{label} was refused: opening it attempted {_state.blocked[0]}")
