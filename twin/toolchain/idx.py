"""IDX files (MNIST's format), read and checked without torch, so that a scenario can be checked
at validate time (twin.scenario.schema) with the same reader the data loader uses."""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

__all__ = ["DatasetError", "read_idx"]

_GZIP_MAGIC = b"\x1f\x8b"
_IDX_DTYPES: dict[int, str] = {
    0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8",
}


class DatasetError(ValueError):
    """A data set could not be found, read or validated."""


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (raw or gzip, detected by magic bytes) into a native-endian array."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: IDX file does not exist")
    if not path.is_file():
        raise DatasetError(f"{path}: not a regular file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read file: {exc}") from exc
    was_gzip = raw[:2] == _GZIP_MAGIC
    if was_gzip:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DatasetError(f"{path}: corrupt or truncated gzip data: {exc}") from exc
    gz_note = " (named .gz but not gzip-compressed)" if path.suffix == ".gz" and not was_gzip else ""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DatasetError(
            f"{path}: bad IDX magic number {raw[:4].hex() or '<empty>'}, "
            f"expected 0000<dtype><ndim>{gz_note}"
        )
    code, ndim = raw[2], raw[3]
    if code not in _IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in _IDX_DTYPES)
        raise DatasetError(f"{path}: unknown IDX dtype code 0x{code:02X} (known: {known})")
    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise DatasetError(
            f"{path}: truncated header: {ndim} dimensions need {header_len} bytes, file has {len(raw)}"
        )
    shape = struct.unpack(f">{ndim}I", raw[4:header_len])
    dtype = np.dtype(_IDX_DTYPES[code])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    actual = len(raw) - header_len
    if actual != expected:
        kind = "truncated" if actual < expected else "trailing bytes"
        raise DatasetError(
            f"{path}: size mismatch ({kind}): header shape {shape} of {dtype.name} "
            f"needs {expected} data bytes, file has {actual}"
        )
    arr = np.frombuffer(raw, dtype=dtype, offset=header_len, count=expected // dtype.itemsize)
    return arr.reshape(shape).astype(dtype.newbyteorder("="))
