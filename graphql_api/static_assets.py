"""Fingerprints of the vendored static files the pages reference (GraphiQL, the chart)."""

from __future__ import annotations

import base64
import functools
import hashlib
from pathlib import Path


@functools.cache
def fingerprint(path: Path) -> tuple[str, str]:
    """(content-hash version for the URL, Subresource Integrity value) of a file; read once
    per process."""
    data = path.read_bytes()
    version = hashlib.sha256(data).hexdigest()[:16]
    integrity = "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()
    return version, integrity
