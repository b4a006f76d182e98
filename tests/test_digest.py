"""Tests for device.digest: hashlib's digests without loading OpenSSL into the daemon."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

from device.digest import blake2b, sha256

ROOT = Path(__file__).resolve().parent.parent


def test_digests_equal_hashlibs() -> None:
    data = bytes(range(256)) * 300
    assert sha256(data).hexdigest() == hashlib.sha256(data).hexdigest()
    h = sha256()
    h.update(data[:1000])
    h.update(data[1000:])
    assert h.hexdigest() == hashlib.sha256(data).hexdigest()
    assert blake2b(data, digest_size=16).digest() == hashlib.blake2b(data, digest_size=16).digest()


def test_the_daemon_and_reader_do_not_load_openssl() -> None:
    """OpenSSL's libcrypto costs the daemon 3.4 MB of resident memory. Our modules do not load
    it; NumPy 1.x (the Pi's venv) imports hashlib itself, NumPy 2 does not; the web page (hmac)
    and MQTT over TLS load it when they are used."""
    code = (
        "import sys, numpy, cv2; before = '_hashlib' in sys.modules; "
        "import device.daemon, device.reader, device.classifier, device.contract, "
        "device.sources, device.record, device.read; "
        "print(before, '_hashlib' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    before, after = out.stdout.split()
    assert after == before, "a device module imported hashlib (OpenSSL); use device.digest"
