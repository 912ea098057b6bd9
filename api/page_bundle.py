"""The scanner page built for one consortium.

The page's trust anchors (chain id, ConsortiumRegistry and ProvenanceRegistry addresses, the
read-only RPC browsers use, confirmations required) are compiled into its verifier bundle
(`scanner_web/build.mjs --anchors`), so the sha-256 that the ConsortiumRegistry approves by vote
(`verifierBundleHash()`, proposal kind SetVerifierBundle) covers them. The build is
deterministic: every member that builds the page for the same anchors gets the same bytes and
may host it; the loader refuses any other bundle. The API serves a folder holding `index.html`
and `dist/` (`WAYMARK_API_STATIC_DIR`).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from node.chain.deploy import Deployment
from node.errors import WaymarkError
from node.paths import PROJECT_ROOT

SOURCE = PROJECT_ROOT / "scanner_web"
BUNDLE = "app.js"


class PageBuildFailed(WaymarkError):
    code = "page_build_failed"

    def __init__(self, detail: str) -> None:
        super().__init__(f"scanner page build failed: {detail}")


@dataclass(frozen=True)
class PageAnchors:
    chain_id: int
    rpc_url: str
    consortium_registry: str
    provenance_registry: str
    confirmations_required: int = 0

    @classmethod
    def of(cls, deployment: Deployment, rpc_url: str, confirmations_required: int = 0) -> PageAnchors:
        """The anchors of a deployed consortium, with the read-only RPC browsers will use."""
        return cls(
            deployment.chain_id,
            rpc_url,
            deployment.address("ConsortiumRegistry"),
            deployment.address("ProvenanceRegistry"),
            confirmations_required,
        )

    def to_json(self) -> str:
        return json.dumps({
            "chainId": self.chain_id,
            "rpcUrl": self.rpc_url,
            "consortiumRegistry": self.consortium_registry,
            "provenanceRegistry": self.provenance_registry,
            "confirmationsRequired": self.confirmations_required,
        })


def build_page(anchors: PageAnchors, static_dir: Path) -> bytes:
    """Build the page for `anchors` into `static_dir` (index.html, dist/); returns the bundle's
    sha-256, the value the consortium votes into `verifierBundleHash()`."""
    static_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        anchors_file = Path(folder) / "anchors.json"
        anchors_file.write_text(anchors.to_json())
        done = subprocess.run(
            ["node", str(SOURCE / "build.mjs"), "--anchors", str(anchors_file), "--outdir", str(static_dir / "dist")],
            capture_output=True, text=True, cwd=PROJECT_ROOT, check=False,
        )
    if done.returncode != 0:
        raise PageBuildFailed(done.stderr.strip() or f"exit code {done.returncode}")
    shutil.copyfile(SOURCE / "index.html", static_dir / "index.html")
    return bundle_hash(static_dir)


def bundle_hash(static_dir: Path) -> bytes:
    """The sha-256 of the verifier bundle a static folder serves."""
    return hashlib.sha256((static_dir / "dist" / BUNDLE).read_bytes()).digest()
