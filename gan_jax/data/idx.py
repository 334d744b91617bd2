"""Reader for the IDX array format used by MNIST-style data sets (gzip or raw)."""

from __future__ import annotations

import gzip
import os

import numpy as np

from gan_jax.data.errors import DataError

_GZIP_MAGIC = b"\x1f\x8b"

# IDX type code (third magic byte) -> big-endian numpy dtype.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (gzip-compressed or raw, detected by magic bytes) into a native-endian array."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == _GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as e:
            raise DataError(f"corrupt gzip IDX file {path}: {e}; re-download it") from None
    return parse_idx(data, name=str(path))


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parse the bytes of an uncompressed IDX file into a native-endian array."""
    if len(data) < 4 or data[:2] != b"\x00\x00":
        raise DataError(f"{name} is not an IDX file (bad magic {data[:4].hex()!r}); expected 0000<type><ndim>")
    dtype = _IDX_DTYPES.get(data[2])
    if dtype is None:
        raise DataError(f"{name} has unknown IDX type code 0x{data[2]:02x}; expected one of 08 09 0b 0c 0d 0e")
    ndim = data[3]
    header_size = 4 + 4 * ndim
    if ndim == 0 or len(data) < header_size:
        raise DataError(f"{name} has a bad IDX header ({ndim} dims, {len(data)} bytes); re-download it")
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    expected = header_size + int(np.prod(shape)) * dtype.itemsize
    if len(data) != expected:
        raise DataError(f"{name} has {len(data)} bytes but its IDX header {shape} needs {expected}; re-download it")
    array = np.frombuffer(data, dtype, offset=header_size).reshape(shape)
    return array.astype(dtype.newbyteorder("="))
