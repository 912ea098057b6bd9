"""The audience of a signed request: the member node it is meant for, so that a request signed
for one member's node cannot be replayed at another's. The audience is the node's public base
URL (as published in the registry's node directory), compared after normalising: scheme and
host lower-case, default port dropped, no trailing slash.

One rule for every signed request a node accepts (API requests in api/auth.py, document and
EPCIS read requests in node/documents/signing.py): the signed data carries `audience`, and the
receiving node calls `check_audience(signed_audience, its_public_url)` before anything else.
It lives in node.protocol so that every layer that signs or checks requests may import it.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from node.errors import WaymarkError

_DEFAULT_PORTS = {"http": 80, "https": 443}


class WrongAudience(WaymarkError):
    code = "wrong_audience"
    status = 401

    def __init__(self, audience: str, own: str) -> None:
        self.audience = audience
        super().__init__(f"this request was signed for {audience!r}, not for this node ({own}); sign it for this node")


def normalise_audience(url: str) -> str:
    """The canonical form of a node URL used as an audience."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    port = parts.port
    netloc = host if port is None or port == _DEFAULT_PORTS.get(scheme) else f"{host}:{port}"
    return f"{scheme}://{netloc}{parts.path.rstrip('/')}"


def check_audience(audience: str, own_url: str) -> None:
    """Raise WrongAudience unless `audience` names the node whose public URL is `own_url`."""
    if not audience or normalise_audience(audience) != normalise_audience(own_url):
        raise WrongAudience(audience, own_url)
