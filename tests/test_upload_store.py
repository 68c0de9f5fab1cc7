"""Streamlit's upload store under the page's caps (issue #36 item 6): a session keeps a bounded number of
files and bytes, and the files of a session that ended without being shut down are freed."""
from __future__ import annotations

import pytest
from starlette.exceptions import HTTPException
from streamlit.runtime.memory_uploaded_file_manager import MemoryUploadedFileManager
from streamlit.runtime.uploaded_file_manager import UploadedFileRec

from ui import upload_names


@pytest.fixture
def store(monkeypatch):
    upload_names.install()
    live = {"alice", "bob"}
    monkeypatch.setattr(upload_names, "_live_sessions", lambda: set(live))
    manager = MemoryUploadedFileManager("/upload")
    manager.live = live  # the sessions the server knows, as the test changes them
    return manager


def put(store, session: str, file_id: str, size: int) -> None:
    store.add_file(session, UploadedFileRec(file_id, f"{file_id}.png", "image/png", b"\0" * size))


def held(store, session: str) -> tuple[int, int]:
    files = store.file_storage.get(session, {})
    return len(files), sum(len(f.data) for f in files.values())


def test_a_session_keeps_a_bounded_number_of_files(store, monkeypatch):
    monkeypatch.setattr(upload_names, "MAX_SESSION_FILES", 3)
    for i in range(3):
        put(store, "alice", f"f{i}", 10)
    with pytest.raises(HTTPException) as info:
        put(store, "alice", "f3", 10)
    assert info.value.status_code == 413 and "at most 3 uploaded files" in info.value.detail
    assert held(store, "alice") == (3, 30)
    put(store, "alice", "f2", 20)  # the same file sent again replaces itself
    put(store, "bob", "g0", 10)  # another visitor has their own room
    store.remove_file("alice", "f0")  # removed in the browser: room again
    put(store, "alice", "f3", 10)
    assert held(store, "alice") == (3, 40)


def test_a_session_keeps_a_bounded_number_of_bytes(store, monkeypatch):
    monkeypatch.setattr(upload_names, "MAX_SESSION_BYTES", 1000)
    put(store, "alice", "a", 600)
    with pytest.raises(HTTPException, match="over the 0 MB this page keeps per visitor"):
        put(store, "alice", "b", 500)
    assert held(store, "alice") == (1, 600)
    put(store, "alice", "a", 900)  # a replacement counts once
    assert store._total_bytes == 900


def test_files_of_sessions_that_ended_are_freed(store):
    put(store, "alice", "a", 100)
    put(store, "bob", "b", 100)
    store.live.discard("alice")  # her browser left and the server dropped her session without shutting it down
    put(store, "bob", "c", 100)  # the next upload, from anyone, frees her files
    assert "alice" not in store.file_storage and held(store, "bob") == (2, 200)
    store.live.discard("bob")
    assert upload_names.release_ended_sessions(store) == 1 and store._total_bytes == 0
