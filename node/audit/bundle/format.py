"""The evidence bundle's format: its name and version, its files, and the errors of a bundle
that cannot be read or written."""

from __future__ import annotations

import hashlib
from pathlib import Path

from node.errors import WaymarkError

BUNDLE_FORMAT = "waymark-evidence-bundle"
BUNDLE_FORMAT_VERSION = 1
MANIFEST = "manifest.json"
FILES = ("chain.json", "events.json", "roots.json", "escrow.json")


class BundleError(WaymarkError):
    code = "bundle_error"


class MalformedEvidenceBundle(BundleError):
    code = "malformed_bundle"

    def __init__(self, path: Path | str, problem: str) -> None:
        super().__init__(f"{path} is not a Waymark evidence bundle: {problem}")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


