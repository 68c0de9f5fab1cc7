"""The worker's wall inside Python: one process-wide audit hook, installed before the model's bytes are read.

It acts in every thread (a thread the model's code starts included) and refuses: the network (sockets
of any kind), new processes (subprocess, os.system, fork, exec, posix_spawn, ``_posixsubprocess``),
loading or looking up native code through ctypes once sealed (``ctypes.CDLL(None).system`` would run a
shell), signals to other processes (pidfds too), links of any kind, changing directory, sqlite3 databases,
and writing, creating, moving or removing any file outside the worker's private folder. The OS limits (:mod:`.limits`)
bound what native code can use; this hook bounds what Python code can reach.
"""
from __future__ import annotations

import _posixsubprocess
import os
import signal
import sys

NETWORK = ("socket.", "urllib.Request", "http.client.", "ftplib.", "smtplib.", "imaplib.", "poplib.", "nntplib.",
           "telnetlib.", "webbrowser.open")
PROCESSES = frozenset({"subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
                       "os.forkpty", "pty.spawn", "os.startfile", "_posixsubprocess.fork_exec", "os.popen"})
REFUSED = frozenset({"os.kill", "os.killpg", "signal.pthread_kill", "os.link", "os.symlink", "os.chdir", "os.fchdir", "os.chroot",
                     "sqlite3.connect", "sqlite3.connect/handle", "sqlite3.enable_load_extension",
                     "sqlite3.load_extension", "os.setuid", "os.setgid", "sys.setprofile", "sys.settrace",
                     "sys.monitoring.register_callback"})
NATIVE = frozenset({"ctypes.dlopen", "ctypes.dlsym", "ctypes.dlsym/handle", "ctypes.addressof", "ctypes.cdata",
                    "ctypes.call_function", "ctypes.seh_exception", "resource.setrlimit", "resource.prlimit"})
# Events that change files: the arguments that are paths it changes, each with its dir_fd argument (or None).
FILE_CHANGES = {"os.remove": ((0, 1),), "os.rmdir": ((0, 1),), "os.mkdir": ((0, 2),), "os.chmod": ((0, 2),),
                "os.chown": ((0, 3),), "os.utime": ((0, 3),), "os.rename": ((0, 2), (1, 3)), "os.link": ((1, 3),),
                "os.symlink": ((1, 2),), "os.truncate": ((0, None),), "os.mkfifo": ((0, 2),), "os.mknod": ((0, 3),),
                "shutil.copyfile": ((1, None),), "shutil.copytree": ((1, None),), "shutil.move": ((0, None), (1, None)),
                "shutil.rmtree": ((0, 1),), "shutil.unpack_archive": ((1, None),), "shutil.make_archive": ((0, None),)}
SEALED_MODULES = frozenset({"_posixsubprocess", "_signal"})  # a fresh copy would bring back what seal() removed
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

refused: list[str] = []  # the first 100 refusals, for the worker's log
_folder = ""
_sealed = False


class Refused(PermissionError):
    """Something the worker may not do, raised inside the model's code."""


def _writes(args: tuple) -> bool:
    mode = args[1] if len(args) > 1 else None
    flags = args[2] if len(args) > 2 else 0
    return bool((isinstance(flags, int) and flags & WRITE_FLAGS) or any(c in str(mode or "") for c in "wax+"))


def _inside(path, dir_fd=None) -> bool:
    """Whether ``path`` (relative to ``dir_fd`` when given, else to the working folder) lies in the folder."""
    if isinstance(path, int) or path is None:  # an already open descriptor
        return True
    try:
        path = os.fsdecode(path)
        if not os.path.isabs(path):
            base = os.readlink(f"/proc/self/fd/{dir_fd}") if type(dir_fd) is int and dir_fd >= 0 else os.getcwd()
            path = os.path.join(base, path)
        real = os.path.realpath(path)
    except (TypeError, ValueError, OSError):
        return False
    return real == _folder or real.startswith(_folder + os.sep)


def refusal(event: str, args: tuple) -> str | None:
    """What ``event`` would do that the worker may not, or None."""
    if event.startswith(NETWORK):
        return f"network access ({event})"
    if event in PROCESSES:
        return f"starting a process ({event})"
    if event in REFUSED:
        return event
    if event == "import" and _sealed and args and args[0] in SEALED_MODULES:
        return f"a second copy of {args[0]}"
    if event in NATIVE and _sealed:
        return f"native code or limits ({event})"
    if event == "open" and _writes(args) and args[0] != os.devnull:
        if isinstance(args[0], (str, bytes)) and not os.path.isabs(args[0]):  # os.open's dir_fd is not shown
            return f"writing {args[0]!r} by a relative path"
        if not _inside(args[0]):
            return f"writing {args[0]!r} outside the worker's folder"
    if event in FILE_CHANGES:
        if not all(_inside(_arg(args, p), _arg(args, fd)) for p, fd in FILE_CHANGES[event]):
            return f"changing files outside the worker's folder ({event})"
    return None


def _arg(args: tuple, index: int | None):
    return args[index] if index is not None and index < len(args) else None


def _hook(event: str, args: tuple) -> None:
    what = refusal(event, args)
    if what is not None:
        if len(refused) < 100:
            refused.append(f"{what} from {_caller()}")
        raise Refused(f"refused in the model's worker: {what}")


def _caller() -> str:
    """file:line of the code that asked, outside this module."""
    frame = sys._getframe(2)
    while frame is not None and frame.f_code.co_filename == __file__:
        frame = frame.f_back
    return f"{frame.f_code.co_filename}:{frame.f_lineno}" if frame is not None else "?"


def install(folder: str) -> None:
    """Install the hook for the life of the process (once); file writes are allowed only under ``folder``.
    Imports nothing: the worker loads this file by its path and installs the hook before anything else."""
    global _folder
    if _folder:
        return
    _folder = os.path.realpath(folder)
    sys.dont_write_bytecode = True  # an import after this point caches nothing outside the folder
    sys.addaudithook(_hook)


def _no_fork_exec(*args, **kwargs):
    raise Refused("refused in the model's worker: starting a process (_posixsubprocess.fork_exec)")


def _no_signal(*args, **kwargs):
    raise Refused("refused in the model's worker: signals to other processes (pidfd)")


def seal() -> None:
    """From now on ctypes may load and look up nothing more (the libraries the worker needs are loaded),
    the OS limits, set by now, may not be changed (root could raise them), and ``_posixsubprocess.fork_exec``,
    which Python 3.11 does not audit, refuses."""
    global _sealed
    _posixsubprocess.fork_exec = _no_fork_exec
    for name in ("pidfd_send_signal",):  # unaudited in 3.11: a signal to the server's pid by a pidfd
        if hasattr(signal, name):
            setattr(signal, name, _no_signal)
    if hasattr(os, "pidfd_open"):
        os.pidfd_open = _no_signal
    _sealed = True
