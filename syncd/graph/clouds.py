"""Microsoft national clouds: where to get tokens and where Graph lives.

Tokens are not interchangeable between clouds, so the authority, the Graph root and the
``.default`` scope always travel together (microsoft-graph.md §1.2).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Cloud:
    """One national cloud deployment."""

    name: str
    authority_host: str
    """Token authority root, e.g. ``https://login.microsoftonline.com`` (no tenant)."""
    graph_base_url: str
    """Graph root without version, e.g. ``https://graph.microsoft.com``."""

    @property
    def default_scope(self) -> str:
        """The client-credentials scope: every admin-consented application permission."""
        return default_scope(self.graph_base_url)


CLOUDS: dict[str, Cloud] = {  # `[graph] cloud` names these
    "global": Cloud("global", "https://login.microsoftonline.com", "https://graph.microsoft.com"),
    "usgov": Cloud("usgov", "https://login.microsoftonline.us", "https://graph.microsoft.us"),
    "usgov-dod": Cloud("usgov-dod", "https://login.microsoftonline.us", "https://dod-graph.microsoft.us"),
    "china": Cloud("china", "https://login.chinacloudapi.cn", "https://microsoftgraph.chinacloudapi.cn"),
}

KNOWN_AUTHORITY_HOSTS: frozenset[str] = frozenset(
    {
        "login.microsoftonline.com",
        "login.microsoft.com",
        "login.windows.net",
        "sts.windows.net",
        "login-us.microsoftonline.com",
        "login.microsoftonline.us",
        "login.usgovcloudapi.net",
        "login.chinacloudapi.cn",
        "login.partner.microsoftonline.cn",
        "login.microsoftonline.de",
    }
)
"""Hosts MSAL already trusts; any other host (a simulator, a proxy) needs ``instance_discovery=False``."""


def normalize_root(url: str) -> str:
    """``https://host[:port]`` with no trailing slash; a bare host gets ``https://``."""
    url = url.strip().rstrip("/")
    if "://" not in url:
        url = "https://" + url
    return url


def graph_root(base_url: str) -> str:
    """The Graph root of ``base_url``, dropping a trailing ``/v1.0`` or ``/beta``."""
    root = normalize_root(base_url)
    for suffix in ("/v1.0", "/beta"):
        if root.endswith(suffix):
            root = root[: -len(suffix)]
    return root


def default_scope(graph_base_url: str) -> str:
    """``{graph root}/.default``."""
    return f"{graph_root(graph_base_url)}/.default"


def is_known_authority_host(authority_host: str) -> bool:
    """Whether MSAL can validate this authority without our help."""
    host = urlsplit(normalize_root(authority_host)).hostname or ""
    return host.lower() in KNOWN_AUTHORITY_HOSTS
