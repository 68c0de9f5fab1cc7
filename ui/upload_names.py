"""Upload names Streamlit itself cannot hold: a NUL byte is taken out as the file is stored.

Streamlit refuses a file name holding NUL when it reads the upload widget's state, before any line of
the app runs, and it does so on every rerun while the file stays uploaded: the visitor's page shows
an error it cannot get past. Browsers never send such names; a forged request can. Every other name
problem (paths, control characters, duplicates) is the app's to handle (``tiling.names``).
"""
from __future__ import annotations


def install() -> None:
    """Wrap the upload store's ``add_file`` (once per process) so stored names carry no NUL."""
    from streamlit.runtime.memory_uploaded_file_manager import MemoryUploadedFileManager

    original = MemoryUploadedFileManager.add_file
    if getattr(original, "strips_nul", False):
        return

    def add_file(self, session_id, file):
        if "\0" in file.name:
            file = file._replace(name=file.name.replace("\0", ""))
        return original(self, session_id, file)

    add_file.strips_nul = True  # type: ignore[attr-defined]
    MemoryUploadedFileManager.add_file = add_file
