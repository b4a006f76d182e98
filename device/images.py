"""Safe image loading: any image file becomes a BGR uint8 frame or one clear ImageError.

OpenCV alone is too forgiving for a tool that reads numbers: it decodes the top part of a
truncated JPEG without complaint, happily allocates gigabytes for a hostile header, and returns
16-bit or 4-channel arrays that the segmenter does not expect. ``load_image`` checks the header
first, decodes second and converts every accepted image to the one format the reader uses.
"""

from __future__ import annotations

import logging
import struct
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from device.errors import ImageError

logger = logging.getLogger(__name__)

# A camera frame or photo larger than this is refused before decoding: 40 MP covers every
# phone camera, and decoding more would cost over 120 MB of RAM on a Pi for one image.
MAX_PIXELS = 40_000_000
# Smaller than this on either side cannot hold a legible digit (MNIST's digit box is 20 px).
MIN_SIDE_PX = 8
# File name suffixes treated as images when scanning a folder of recorded frames.
IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pbm"}
)
# Paper colour that transparent pixels are composited onto (digits are written on white).
_BACKGROUND = 255.0
# 65535 / 257 == 255 exactly, so this maps the full 16-bit range onto the full 8-bit range.
_U16_TO_U8 = 257.0

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_SOI = b"\xff\xd8"
_JPEG_EOI = b"\xff\xd9"
_JPEG_SOS = 0xDA
# Start-of-frame markers carry the image size (baseline, progressive, lossless, arithmetic).
_JPEG_SOF = frozenset(
    {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
)
# Markers without a length field: TEM and the restart markers RST0..RST7.
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})

BgrImage = npt.NDArray[np.uint8]


def load_image(path: str | Path, grey: bool = False) -> BgrImage:
    """Read an image file into a BGR uint8 (H, W, 3) array (grey: an (H, W) array); raise
    ImageError naming the problem."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError as e:
        raise ImageError(f"{path}: no such file; check the path") from e
    except IsADirectoryError as e:
        raise ImageError(f"{path}: is a directory, not an image file") from e
    except OSError as e:
        raise ImageError(f"{path}: cannot be read ({e.strerror}); check its permissions") from e
    return decode_image(data, str(path), grey)


def decode_image(data: bytes, name: str = "image", grey: bool = False) -> BgrImage:
    """Decode encoded image bytes (PNG, JPEG, BMP, TIFF, WebP, PNM) into a BGR uint8 array.

    ``grey``: return the (H, W) grey image instead, all the reader needs. A JPEG is then
    decoded from its luma alone (no chroma upsampling or colour conversion: about half the
    time of a colour decode at 640x480).
    """
    if not data:
        raise ImageError(f"{name}: the file is empty (0 bytes); copy or capture it again")
    flags = cv2.IMREAD_UNCHANGED
    size = header_size(data, name)
    if data.startswith(_JPEG_SOI):
        # JPEG is always 8-bit without alpha; IMREAD_COLOR also applies the EXIF orientation,
        # so a phone photo comes out the right way up.
        flags = cv2.IMREAD_GRAYSCALE if grey else cv2.IMREAD_COLOR
    if size is not None:
        _check_size(size[0], size[1], name)
    try:
        decoded = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags)
    except cv2.error as e:
        raise ImageError(f"{name}: OpenCV cannot decode it ({e}); save it as PNG or JPEG") from e
    if decoded is None:
        raise ImageError(
            f"{name}: not an image OpenCV can decode (or a corrupt one); use PNG or JPEG"
        )
    image = np.asarray(decoded)
    _check_size(image.shape[1], image.shape[0], name)
    if grey and image.ndim == 2 and image.dtype == np.uint8:
        return image
    bgr = to_bgr_uint8(image, name)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY) if grey else bgr


def header_size(data: bytes, name: str = "image") -> tuple[int, int] | None:
    """(width, height) read from a PNG, JPEG or BMP header without decoding; None if unknown.

    Also rejects truncated PNG and JPEG files, which OpenCV would partly decode.
    """
    if data.startswith(_PNG_SIGNATURE):
        return _png_size(data, name)
    if data.startswith(_JPEG_SOI):
        return _jpeg_size(data, name)
    if data.startswith(b"BM") and len(data) >= 26:
        width, height = struct.unpack_from("<ii", data, 18)
        return abs(width), abs(height)  # a negative height means rows stored top-down
    return None


def _png_size(data: bytes, name: str) -> tuple[int, int]:
    # Signature (8), then the IHDR chunk: length (4), b"IHDR", width (4), height (4), ...
    if len(data) < 24 or data[12:16] != b"IHDR":
        raise ImageError(f"{name}: PNG header is damaged; save the image again")
    width, height = struct.unpack_from(">II", data, 16)
    # IEND closes every complete PNG; without it the pixel data was cut off.
    if data.rfind(b"IEND") == -1:
        raise ImageError(f"{name}: truncated PNG (no IEND chunk); copy or save it again")
    return int(width), int(height)


def _jpeg_size(data: bytes, name: str) -> tuple[int, int]:
    """Walk the marker segments up to the first scan; the EOI marker must follow it."""
    size: tuple[int, int] | None = None
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise ImageError(f"{name}: corrupt JPEG (bad marker at byte {pos}); save it again")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker in _JPEG_STANDALONE:
            pos += 2
            continue
        (length,) = struct.unpack_from(">H", data, pos + 2)
        if marker in _JPEG_SOF and pos + 9 <= len(data):
            height, width = struct.unpack_from(">HH", data, pos + 5)
            size = (int(width), int(height))
        if marker == _JPEG_SOS:
            # Entropy-coded data escapes 0xFF bytes, so the first EOI after the scan header
            # really is the end of this image; a cut-off file has none.
            if data.find(_JPEG_EOI, pos) == -1:
                raise ImageError(
                    f"{name}: truncated JPEG (no end-of-image marker); copy or capture it again"
                )
            if size is None:
                raise ImageError(f"{name}: corrupt JPEG (no frame header); save it again")
            return size
        pos += 2 + length
    raise ImageError(f"{name}: truncated JPEG (ends before the image data); copy it again")


def _check_size(width: int, height: int, name: str) -> None:
    if width * height > MAX_PIXELS:
        raise ImageError(
            f"{name}: {width}x{height} is larger than the {MAX_PIXELS // 1_000_000} MP limit; "
            "resize it first"
        )
    if width < MIN_SIDE_PX or height < MIN_SIDE_PX:
        raise ImageError(
            f"{name}: {width}x{height} is too small to hold a digit "
            f"(at least {MIN_SIDE_PX}x{MIN_SIDE_PX} pixels needed)"
        )


def to_bgr_uint8(image: npt.NDArray[np.generic], name: str = "image") -> BgrImage:
    """Convert a decoded image (gray, BGR or BGRA; 8 or 16 bit) to BGR uint8.

    Transparent pixels are composited onto white paper, because a transparent background
    would otherwise decode as black and invert the digit's polarity.
    """
    img = np.asarray(image)
    if img.dtype == np.uint16:
        img = np.round(img.astype(np.float32) / _U16_TO_U8).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise ImageError(
            f"{name}: unsupported pixel type {img.dtype}; save it as an 8-bit PNG or JPEG"
        )
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 2:
        return np.ascontiguousarray(cv2.cvtColor(img, cv2.COLOR_GRAY2BGR), dtype=np.uint8)
    if img.ndim != 3 or img.shape[2] not in (3, 4):
        raise ImageError(f"{name}: unsupported image layout {img.shape}; use gray, RGB or RGBA")
    if img.shape[2] == 4:
        alpha = img[:, :, 3:4].astype(np.float32) / 255.0
        bgr = img[:, :, :3].astype(np.float32)
        img = np.round(bgr * alpha + _BACKGROUND * (1.0 - alpha)).astype(np.uint8)
    return np.ascontiguousarray(img, dtype=np.uint8)
