"""Image files made for tests: EXIF-rotated JPEGs, 16-bit PNGs, truncated JPEGs, huge-header PNGs."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

EXIF_ORIENTATION = 0x0112
ROTATED_90_CLOCKWISE = 6  # EXIF: the stored pixels must be turned 90 degrees clockwise to display


def exif_rotated_jpeg(path: Path, pixels: np.ndarray) -> Path:
    """Store ``pixels`` (H x W x 3 uint8) as a JPEG whose EXIF says: rotate 90 degrees clockwise to view."""
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = ROTATED_90_CLOCKWISE
    Image.fromarray(pixels).save(path, quality=95, exif=exif)
    return path


def sixteen_bit_png(path: Path, values: np.ndarray) -> Path:
    """Store ``values`` (H x W uint16) as a 16-bit grayscale PNG."""
    Image.fromarray(values.astype(np.uint16)).save(path)
    return path


def truncated_jpeg(path: Path, size: int = 64, keep: float = 0.6) -> Path:
    """A JPEG cut after ``keep`` of its bytes: its header is whole (``Image.verify`` passes), its data is not."""
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buffer, "JPEG")
    data = buffer.getvalue()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def png_header(path: Path, width: int, height: int) -> Path:
    """A PNG of a few hundred bytes whose header declares ``width`` x ``height`` 8-bit grayscale pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\0" * (width + 1) * 4)  # four rows; the rest is missing
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b""))
    return path
