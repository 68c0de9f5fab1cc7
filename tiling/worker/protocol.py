"""The worker's wire format: a length-prefixed JSON header, then raw array bytes. No pickle either way.

A message is ``b"PWK1"``, the header's length (4 bytes, little-endian), the header (UTF-8 JSON, an
object) and then the bytes of each array the header lists under ``"arrays"`` as ``[dtype, shape]``.
The receiver checks every dtype against a short list, every shape's rank and the total size against
its own cap before reading a byte of them, so a worker cannot make the server allocate more than the
caller allowed. :mod:`.wire` turns ``Detections`` into arrays and back, checking each field.
"""
from __future__ import annotations

import json
import math
import struct
from typing import Callable, Sequence

import numpy as np

MAGIC = b"PWK1"
PREFIX = struct.Struct("<4sI")
MAX_HEADER = 4 * 1024 * 1024
DTYPES = frozenset({"uint8", "int32", "int64", "float32"})
MAX_RANK = 4
MAX_ARRAYS = 100_000


class ProtocolError(ValueError):
    """A message that is not what the protocol allows (from a broken or hostile worker)."""


def encode(header: dict, arrays: Sequence[np.ndarray] = ()) -> list[bytes | memoryview]:
    """The message's parts, to be written in order (arrays are not copied when already contiguous)."""
    arrays = [np.ascontiguousarray(a) for a in arrays]
    for a in arrays:
        if a.dtype.name not in DTYPES:
            raise ProtocolError(f"arrays of {a.dtype} are not sent (allowed: {', '.join(sorted(DTYPES))})")
    body = json.dumps({**header, "arrays": [[a.dtype.name, list(a.shape)] for a in arrays]},
                      separators=(",", ":"), allow_nan=False).encode()
    if len(body) > MAX_HEADER:
        raise ProtocolError(f"a header of {len(body)} bytes is over the {MAX_HEADER} byte limit")
    return [PREFIX.pack(MAGIC, len(body)) + body, *(memoryview(a).cast("B") for a in arrays if a.size)]


def _specs(raw, max_bytes: int) -> list[tuple[np.dtype, tuple[int, ...], int]]:
    """(dtype, shape, bytes) of each listed array, refused unless every one is allowed and all fit ``max_bytes``."""
    if not isinstance(raw, list) or len(raw) > MAX_ARRAYS:
        raise ProtocolError("the array list is missing or too long")
    out, total = [], 0
    for item in raw:
        if not (isinstance(item, list) and len(item) == 2 and item[0] in DTYPES and isinstance(item[1], list)):
            raise ProtocolError(f"an array is described as {str(item)[:80]}, not [dtype, shape]")
        shape = item[1]
        if len(shape) > MAX_RANK or not all(type(d) is int and 0 <= d < 1 << 40 for d in shape):
            raise ProtocolError(f"an array has the shape {str(shape)[:80]}")
        dtype = np.dtype(item[0])
        size = math.prod(shape) * dtype.itemsize
        total += size
        if total > max_bytes:
            raise ProtocolError(f"the arrays come to more than the {max_bytes} bytes allowed for this reply")
        out.append((dtype, tuple(shape), size))
    return out


def decode(read: Callable[[int], bytes], max_bytes: int) -> tuple[dict, list[np.ndarray]]:
    """One message through ``read(n)`` (exactly n bytes, or an exception); arrays at most ``max_bytes``."""
    magic, length = PREFIX.unpack(read(PREFIX.size))
    if magic != MAGIC or length > MAX_HEADER:
        raise ProtocolError("the message does not start with a valid header")
    try:
        header = json.loads(read(length))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ProtocolError("the message header is not valid JSON") from None
    if not isinstance(header, dict):
        raise ProtocolError("the message header is not an object")
    arrays = [np.frombuffer(read(size), dtype).reshape(shape) if size else np.zeros(shape, dtype)
              for dtype, shape, size in _specs(header.pop("arrays", None), max_bytes)]
    return header, arrays
