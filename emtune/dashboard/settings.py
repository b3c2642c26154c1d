"""The dashboard's settings (the `emtune dashboard` options), checked before anything is served."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from emtune.errors import ConfigError

AuthMode = Literal["token", "proxy", "none"]
LauncherKind = Literal["local", "kfp"]
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")
_NAME = re.compile(r"[A-Za-z0-9._@-]{1,64}")


@dataclass
class DashboardSettings:
    runs_dir: Path = Path("runs/tiny")
    host: str = "127.0.0.1"
    port: int = 8080
    auth: AuthMode = "none"
    token_file: Path | None = None
    proxy_user_header: str = "X-Forwarded-User"
    trusted_proxies: list[str] = field(default_factory=list)  # CIDRs
    launcher: LauncherKind = "local"
    kfp_host: str | None = None
    kfp_namespace: str | None = None
    experiment: str = "emtune"
    pipeline_name: str = "emtune-pipeline"
    store_uri: str | None = None
    # The trust boundary (see emtune.dashboard.policy and auth): names this server answers to besides the bind
    # address and loopback, config keys a dashboard user may set beyond the default policy, and the prefixes
    # that model and data paths must lie under (besides the embedded `builtin:` ones).
    allowed_hosts: list[str] = field(default_factory=list)
    retrain_allow: list[str] = field(default_factory=list)
    path_prefixes: list[str] = field(default_factory=list)
    secure_cookies: bool = False  # behind TLS: cookies carry `Secure`
    session_hours: float = 12.0

    def host_names(self) -> set[str]:
        """Every name a request's Host header may carry (without port), lower-cased."""
        names = {name.lower() for name in (*LOOPBACK_HOSTS, "[::1]", *self.allowed_hosts) if name}
        if self.host not in ("0.0.0.0", "::", ""):
            names.add(self.host.lower())
        return names

    def check(self) -> None:
        """Refuse unsafe or incomplete combinations, naming the value and what is allowed."""
        if self.auth not in ("token", "proxy", "none"):
            raise ConfigError(f"--auth {self.auth!r} is not allowed; use token, proxy or none")
        if self.launcher not in ("local", "kfp"):
            raise ConfigError(f"--launcher {self.launcher!r} is not allowed; use local or kfp")
        if self.auth == "none" and self.host not in LOOPBACK_HOSTS:
            raise ConfigError(
                f"--host {self.host!r} with --auth none would serve anyone who can reach it; "
                f"bind {', '.join(LOOPBACK_HOSTS)} or use --auth token|proxy"
            )
        if self.auth == "token":
            read_tokens(self.token_file)
        if self.auth == "proxy":
            if not self.trusted_proxies:
                raise ConfigError("--auth proxy needs --trusted-proxies CIDR[,CIDR] (the reverse proxy's addresses)")
            trusted_networks(self.trusted_proxies)
            if not self.proxy_user_header.strip():
                raise ConfigError("--proxy-user-header is empty; name the header the proxy sets (X-Forwarded-User)")
        if self.launcher == "kfp" and not self.kfp_host:
            raise ConfigError("--launcher kfp needs --kfp-host URL (e.g. http://ml-pipeline.kubeflow:8888)")
        for name in self.allowed_hosts:
            if not name or any(char in name for char in "/@ *"):
                raise ConfigError(f"--allowed-hosts entry {name!r} is not a host name (e.g. emtune.example.com)")
        if not 0 < self.session_hours <= 24 * 30:
            raise ConfigError(f"--session-hours {self.session_hours} is not allowed; use more than 0, at most 720")
        if not 0 < self.port < 65536:
            raise ConfigError(f"--port {self.port} is not a TCP port (1-65535)")


def read_tokens(path: Path | None) -> dict[str, str]:
    """name -> token from the token file (a mounted Secret): one bare token (named "token"), or one
    `name: token` line per person so the audit shows who acted. Blank lines and `#` comments are skipped."""
    if path is None:
        raise ConfigError("--auth token needs --token-file PATH (a file holding the bearer token)")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(f"--token-file {str(path)!r} cannot be read: {reason}") from None
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    if len(lines) == 1 and ":" not in lines[0]:
        lines = [f"token: {lines[0]}"]
    tokens: dict[str, str] = {}
    for number, line in enumerate(lines, start=1):
        name, sep, token = (part.strip() for part in line.partition(":"))
        if not sep or not _NAME.fullmatch(name):
            raise ConfigError(
                f"--token-file {str(path)!r} line {number} is not 'name: token' (a name of letters, digits, ._@-)"
            )
        if len(token) < 16:
            raise ConfigError(
                f"--token-file {str(path)!r} holds a token of {len(token)} characters for {name!r}; use at least 16"
            )
        if name in tokens or token in tokens.values():
            raise ConfigError(f"--token-file {str(path)!r} repeats the name or token of {name!r}")
        tokens[name] = token
    if not tokens:
        raise ConfigError(f"--token-file {str(path)!r} holds no token")
    return tokens


def trusted_networks(cidrs: list[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    networks = []
    for cidr in cidrs:
        try:
            networks.append(ipaddress.ip_network(cidr.strip(), strict=False))
        except ValueError:
            raise ConfigError(f"--trusted-proxies entry {cidr!r} is not an IP network (e.g. 10.0.0.0/8)") from None
    return networks
