"""Streamlit's upload store, held to what one visitor may keep in it: names it can hold, a cap per session,
and files released once their session is gone.

Streamlit keeps every uploaded file in memory (``MemoryUploadedFileManager``) until the browser deletes
it or the session shuts down. A forged client can send files the page never shows, without limit; and a
session whose browser left is kept for ``server.disconnectedSessionTTL`` seconds and then dropped
without being shut down, so its files were never freed. Hence, at each upload:

- a NUL byte is taken out of the name: Streamlit refuses such a name when it reads the widget's state,
  before any line of the app runs, on every rerun while the file stays (browsers never send one);
- the session's files, the new one included, must stay within ``PATCHWISE_MAX_SESSION_UPLOADS`` files
  and ``PATCHWISE_MAX_SESSION_UPLOAD_MB``; past either the upload is answered 413 and nothing is kept;
- files of sessions the server no longer knows (neither connected nor kept for reconnection) are freed.

:func:`install` runs on every page run; after the first it only releases ended sessions' files, so a
server with no new uploads frees them too.
"""
from __future__ import annotations

import os
import threading

MB = 1 << 20
MAX_SESSION_FILES = int(os.environ.get("PATCHWISE_MAX_SESSION_UPLOADS", 40))
MAX_SESSION_BYTES = int(os.environ.get("PATCHWISE_MAX_SESSION_UPLOAD_MB", 400)) * MB
_lock = threading.Lock()  # one upload checked and stored at a time: two cannot both fit the last room


def _live_sessions() -> set[str] | None:
    """Ids of the sessions the server still knows, or None when no server runs (nothing is released)."""
    from streamlit import runtime

    if not runtime.exists():
        return None
    manager = getattr(runtime.get_instance(), "_session_mgr", None)
    if manager is None:
        return None
    return {info.session.id for info in manager.list_sessions()}


def release_ended_sessions(store=None) -> int:
    """Free the uploads of sessions that ended without being shut down; returns how many sessions."""
    from streamlit import runtime

    if store is None:
        if not runtime.exists():
            return 0
        store = runtime.get_instance().uploaded_file_mgr
    live = _live_sessions()
    storage = getattr(store, "file_storage", None)
    if live is None or storage is None:
        return 0
    ended = [sid for sid in list(storage) if sid not in live]
    for sid in ended:
        store.remove_session_files(sid)
    return len(ended)


def _refusal(session_files: dict, file) -> str | None:
    """Why ``file`` does not fit beside the session's other files, or None."""
    others = [f for fid, f in session_files.items() if fid != file.file_id]
    if len(others) + 1 > MAX_SESSION_FILES:
        return (f"this page keeps at most {MAX_SESSION_FILES} uploaded files per visitor; remove some first "
                "(PATCHWISE_MAX_SESSION_UPLOADS)")
    held = sum(len(f.data) for f in others)
    if held + len(file.data) > MAX_SESSION_BYTES:
        return (f"your uploads would take {(held + len(file.data)) / MB:.0f} MB, over the "
                f"{MAX_SESSION_BYTES // MB} MB this page keeps per visitor; remove some first "
                "(PATCHWISE_MAX_SESSION_UPLOAD_MB)")
    return None


def install() -> None:
    """Wrap the upload store's ``add_file`` (once per process): names without NUL, the session cap, and
    ended sessions' files released; on later calls (each page run), only the release."""
    from starlette.exceptions import HTTPException
    from streamlit.runtime.memory_uploaded_file_manager import MemoryUploadedFileManager

    original = MemoryUploadedFileManager.add_file
    if getattr(original, "patchwise_store", False):
        with _lock:
            release_ended_sessions()
        return

    def add_file(self, session_id, file):
        if "\0" in file.name:
            file = file._replace(name=file.name.replace("\0", ""))
        with _lock:
            release_ended_sessions(self)
            why = _refusal(self.file_storage.get(session_id, {}), file)
            if why is not None:
                raise HTTPException(status_code=413, detail=f"{file.name[:80]} was not kept: {why}")
            return original(self, session_id, file)

    add_file.patchwise_store = True  # type: ignore[attr-defined]
    MemoryUploadedFileManager.add_file = add_file
