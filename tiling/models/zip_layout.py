"""A checkpoint's zip layout, checked so that Python's ``zipfile`` (what the scan reads) and torch's own
reader (miniz, what loads) cannot see two different archives in one file.

The readers part ways on a joined file: ``zipfile`` finds the central directory just before the end
record and shifts every offset by the bytes in front of it, miniz takes the recorded offsets as they
are; so ``hostile + genuine`` scans as the genuine archive and loads the hostile one. miniz also looks
names up without regard to case, so ``data.pkl`` and ``DATA.pkl`` side by side may load either. Hence
one layout only, the one ``torch.save`` writes: records back to back from byte 0, the central
directory right after them, the (zip64) end record last, no comment, no trailing byte, no two names
equal but for case, and no second end record: none outside the tensors' bytes, and none inside them
that names a central directory (a tensor's raw bytes may hold the 4-byte signature by chance).
"""
from __future__ import annotations

import bisect
import mmap
import struct
import zipfile
from typing import BinaryIO

from .base import ModelError

EOCD = struct.Struct("<4s4H2LH")  # end of central directory
LOCATOR = struct.Struct("<4sLQL")  # zip64 end-record locator
EOCD64 = struct.Struct("<4sQ2H2L4Q")  # zip64 end of central directory, without extensible data
LOCAL = struct.Struct("<4s5H3L2H")  # local file header
EOCD_SIG, LOCATOR_SIG, EOCD64_SIG = b"PK\x05\x06", b"PK\x06\x07", b"PK\x06\x06"
DESCRIPTOR_SIG = b"PK\x07\x08"
DESCRIPTORS = (struct.Struct("<4s3L"), struct.Struct("<4sL2Q"))  # data descriptors with 32- and 64-bit sizes
CLAIM = "a checkpoint must be one archive, as torch.save writes it"


def _refuse(label: str, why: str) -> ModelError:
    return ModelError(f"{label} was refused: {why}; {CLAIM} (a file read two ways can hide a second "
                      "model). Nothing from it was run.")


def _read_at(f: BinaryIO, offset: int, size: int) -> bytes:
    f.seek(offset)
    return f.read(size)


def directory_bounds(f: BinaryIO, size: int, label: str) -> tuple[int, int, int]:
    """(entries, central directory offset, its end) from the end records, which must close the file."""
    if size < EOCD.size:
        raise _refuse(label, "it is too short to hold an archive")
    sig, disk, cd_disk, n_disk, n_total, cd_size, cd_off, comment = EOCD.unpack(_read_at(f, size - EOCD.size,
                                                                                          EOCD.size))
    if sig != EOCD_SIG or comment or disk or cd_disk or n_disk != n_total:
        raise _refuse(label, "its archive does not end the file (bytes or a comment follow its end record)")
    cd_end = size - EOCD.size
    if size >= EOCD.size + LOCATOR.size + EOCD64.size and _read_at(f, cd_end - LOCATOR.size, 4) == LOCATOR_SIG:
        _, _, z64_off, _ = LOCATOR.unpack(_read_at(f, cd_end - LOCATOR.size, LOCATOR.size))
        cd_end = cd_end - LOCATOR.size - EOCD64.size
        fields = EOCD64.unpack(_read_at(f, cd_end, EOCD64.size))
        if z64_off != cd_end or fields[0] != EOCD64_SIG or fields[1] != EOCD64.size - 12 or fields[6] != fields[7]:
            raise _refuse(label, "its zip64 end record is not where its locator says")
        wide = (fields[7], fields[8], fields[9])
        for narrow, value, sentinel in zip((n_total, cd_size, cd_off), wide, (0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF)):
            if narrow not in (value, sentinel):
                raise _refuse(label, "its two end records disagree")
        n_total, cd_size, cd_off = wide
    if cd_off + cd_size != cd_end:
        raise _refuse(label, "its central directory is not where its end record says (another archive is "
                             "joined to it)")
    return n_total, cd_off, cd_end


def check_layout(f: BinaryIO, zf: zipfile.ZipFile, label: str) -> None:
    """Every byte of ``f`` belongs to one record, the central directory or the end records, in that order."""
    size = f.seek(0, 2)
    n_total, cd_off, cd_end = directory_bounds(f, size, label)
    infos = zf.infolist()
    if len(infos) != n_total or getattr(zf, "start_dir", cd_off) != cd_off:
        raise _refuse(label, "its central directory does not list what its end record says")
    central = _read_at(f, cd_off, cd_end - cd_off)
    if EOCD_SIG in central or EOCD64_SIG in central:
        raise _refuse(label, "a second end record sits in its central directory")
    seen: set[str] = set()
    position = 0
    tensors: list[tuple[int, int]] = []  # (start, end) of each tensor storage's bytes
    for info in sorted(infos, key=lambda i: i.header_offset):
        folded = info.filename.casefold()
        if folded in seen:
            raise _refuse(label, f"it names {info.filename[:80]!r} twice (letter case aside)")
        seen.add(folded)
        if info.header_offset != position:
            raise _refuse(label, f"{info.filename[:80]!r} does not follow the record before it")
        start, position = _record_end(f, info, label)
        parts = info.filename.split("/")
        if len(parts) == 3 and parts[1] == "data":
            tensors.append((start, start + info.compress_size))
    if position != cd_off:
        raise _refuse(label, "bytes lie between its last record and its central directory")
    _no_second_end_record(f, size, tensors, label)


def _no_second_end_record(f: BinaryIO, size: int, tensors: list[tuple[int, int]], label: str) -> None:
    """The end record that closes the file is the only one: anywhere else, or inside a tensor's bytes
    naming a central directory in the file, is a second archive for a reader that looks elsewhere."""
    starts = [start for start, _ in tensors]
    with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as view:
        found = view.find(EOCD_SIG)
        while -1 < found < size - EOCD.size:
            k = bisect.bisect_right(starts, found) - 1
            inside = k >= 0 and found + EOCD.size <= tensors[k][1]
            cd_off = EOCD.unpack(view[found:found + EOCD.size])[6]
            if not inside or view[cd_off:cd_off + 4] == b"PK\x01\x02":
                raise _refuse(label, f"it holds a second end record at byte {found:,}")
            found = view.find(EOCD_SIG, found + 1)


def _record_end(f: BinaryIO, info: zipfile.ZipInfo, label: str) -> tuple[int, int]:
    """Where the data of the record at ``info.header_offset`` starts, and where the record ends (header,
    name, extra, data, data descriptor)."""
    head = _read_at(f, info.header_offset, LOCAL.size)
    if len(head) != LOCAL.size:
        raise _refuse(label, f"{info.filename[:80]!r} lies outside the file")
    sig, _, flags, method, _, _, _, _, _, name_len, extra_len = LOCAL.unpack(head)
    name_extra = f.read(name_len + extra_len)
    if (sig != b"PK\x03\x04" or method != info.compress_type or len(name_extra) != name_len + extra_len
            or name_extra[:name_len] != info.orig_filename.encode("utf-8" if flags & 0x800 else "cp437")):
        raise _refuse(label, f"the local header of {info.filename[:80]!r} differs from its directory entry")
    if EOCD_SIG in name_extra or EOCD64_SIG in name_extra:
        raise _refuse(label, "a second end record sits in a record's header")
    start = info.header_offset + LOCAL.size + name_len + extra_len
    end = start + info.compress_size
    if flags & 0x8:  # sizes follow the data in a descriptor (torch.save writes one per record)
        raw = _read_at(f, end, 28)
        expected = (DESCRIPTOR_SIG, info.CRC, info.compress_size, info.file_size)
        for form in DESCRIPTORS:  # 32- or 64-bit sizes; the next record or the directory follows either
            fits = form.size == 24 or max(info.compress_size, info.file_size) < 1 << 32
            if fits and raw[:form.size] == form.pack(*expected) and raw[form.size:form.size + 2] == b"PK":
                return start, end + form.size
        raise _refuse(label, f"the data descriptor of {info.filename[:80]!r} differs from its directory entry")
    return start, end
