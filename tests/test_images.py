"""Tests for device.images: every awkward file becomes a clean BGR frame or a clear ImageError."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from device.errors import ImageError
from device.images import MAX_PIXELS, MIN_SIDE_PX, decode_image, header_size, load_image


def _encode(ext: str, image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(ext, image)
    assert ok
    return bytes(buf.tobytes())


def _write(path: Path, image: np.ndarray, ext: str = ".png") -> Path:
    path.write_bytes(_encode(ext, image))
    return path


def _digit_like(h: int = 40, w: int = 60) -> np.ndarray:
    img = np.full((h, w, 3), 255, np.uint8)
    cv2.line(img, (w // 2, 5), (w // 2, h - 5), (0, 0, 0), 3)
    return img


def test_png_loads_as_bgr_uint8_unchanged(tmp_path: Path) -> None:
    img = _digit_like()
    img[0, 0] = (10, 20, 30)
    out = load_image(_write(tmp_path / "a.png", img))
    assert out.dtype == np.uint8 and out.shape == img.shape
    np.testing.assert_array_equal(out, img)


def test_grayscale_png_becomes_three_channels(tmp_path: Path) -> None:
    gray = cv2.cvtColor(_digit_like(), cv2.COLOR_BGR2GRAY)
    out = load_image(_write(tmp_path / "g.png", gray))
    assert out.shape == (*gray.shape, 3)
    np.testing.assert_array_equal(out[:, :, 0], gray)
    np.testing.assert_array_equal(out[:, :, 2], gray)


def test_16bit_png_is_scaled_to_8bit(tmp_path: Path) -> None:
    img16 = np.zeros((20, 30, 3), np.uint16)
    img16[:, :10] = 65535
    img16[:, 10:20] = 257 * 100
    out = load_image(_write(tmp_path / "d.png", img16))
    assert out.dtype == np.uint8
    assert out[0, 0, 0] == 255 and out[0, 15, 0] == 100 and out[0, 25, 0] == 0


def test_rgba_png_is_composited_on_white(tmp_path: Path) -> None:
    bgra = np.zeros((20, 30, 4), np.uint8)  # black, fully transparent...
    bgra[5:15, 5:10] = (0, 0, 0, 255)  # ...except an opaque black stroke
    bgra[5:15, 20:25] = (0, 0, 0, 128)  # and a half-transparent one
    out = load_image(_write(tmp_path / "t.png", bgra))
    assert out.shape == (20, 30, 3)
    assert (out[0, 0] == 255).all(), "transparent background must become white paper"
    assert (out[10, 7] == 0).all()
    assert 120 <= int(out[10, 22, 0]) <= 135


def test_jpeg_loads(tmp_path: Path) -> None:
    out = load_image(_write(tmp_path / "a.jpg", _digit_like(), ".jpg"))
    assert out.shape == (40, 60, 3) and out.dtype == np.uint8


def test_not_an_image_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("hello, this is text\n" * 10)
    with pytest.raises(ImageError, match="not an image"):
        load_image(path)


def test_empty_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(ImageError, match="empty"):
        load_image(path)


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "nope.png")


def test_truncated_jpeg_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    noisy = rng.integers(0, 255, (200, 200, 3), dtype=np.uint8)
    buf = _encode(".jpg", noisy)
    cut = buf[: len(buf) * 2 // 3]
    # Some OpenCV builds (older libjpeg) decode such bytes into a partly grey image; the
    # marker check refuses it whatever the build does.
    path = tmp_path / "cut.jpg"
    path.write_bytes(cut)
    with pytest.raises(ImageError, match="truncated JPEG"):
        load_image(path)


def test_truncated_png_is_refused(tmp_path: Path) -> None:
    buf = _encode(".png", _digit_like(100, 100))
    path = tmp_path / "cut.png"
    path.write_bytes(buf[:-30])
    with pytest.raises(ImageError, match="truncated PNG"):
        load_image(path)


def test_one_pixel_image_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "dot.png", np.zeros((1, 1, 3), np.uint8))
    with pytest.raises(ImageError, match="too small"):
        load_image(path)


def test_image_just_big_enough_is_accepted(tmp_path: Path) -> None:
    img = np.zeros((MIN_SIDE_PX, MIN_SIDE_PX, 3), np.uint8)
    assert load_image(_write(tmp_path / "s.png", img)).shape == img.shape


def _png_with_header(width: int, height: int) -> bytes:
    """A tiny, valid-looking PNG whose IHDR claims a huge size (a decompression bomb header)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def test_huge_dimensions_are_refused_from_the_header(tmp_path: Path) -> None:
    data = _png_with_header(100_000, 100_000)
    assert header_size(data) == (100_000, 100_000)
    path = tmp_path / "bomb.png"
    path.write_bytes(data)
    with pytest.raises(ImageError, match="larger than"):
        load_image(path)


def test_jpeg_header_size_is_read_without_decoding() -> None:
    buf = _encode(".jpg", _digit_like(37, 91))
    assert header_size(buf) == (91, 37)


def test_size_limit_applies_to_decoded_formats_without_header_parsing() -> None:
    side = int(MAX_PIXELS**0.5) + 10
    buf = _encode(".pgm", np.zeros((side, side), np.uint8))
    with pytest.raises(ImageError, match="larger than"):
        decode_image(buf, "big.pgm")


def test_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="directory"):
        load_image(tmp_path)


def test_grey_decoding_gives_the_luma_of_every_format(tmp_path: Path) -> None:
    """load_image(grey=True): what the reader needs, from JPEG luma, grey or colour PNG."""
    colour = _digit_like()
    colour[..., 0] = 200  # some blue, so colour and grey differ
    expected = cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY)
    for name, ext in (("c.png", ".png"), ("c.jpg", ".jpg")):
        out = load_image(_write(tmp_path / name, colour, ext), grey=True)
        assert out.dtype == np.uint8 and out.shape == colour.shape[:2]
        tolerance = 0 if ext == ".png" else 6  # JPEG: lossy, same luma within a few levels
        assert np.abs(out.astype(int) - expected).max() <= tolerance
    # A 16-bit PNG is scaled to 8 bits as in colour decoding; a transparent one onto paper.
    img16 = np.concatenate([_digit_like(), _digit_like()[..., :1]], axis=2).astype(np.uint16) * 257
    assert load_image(_write(tmp_path / "d.png", img16), grey=True).dtype == np.uint8
