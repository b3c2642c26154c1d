"""The dashboard's settings (the `emtune dashboard` options), checked before anything is served."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from emtune.errors import ConfigError

AuthMode = Literal["token", "proxy", "none"]
LauncherKind = Literal["local", "kfp"]
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


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
            read_token(self.token_file)
        if self.auth == "proxy":
            if not self.trusted_proxies:
                raise ConfigError("--auth proxy needs --trusted-proxies CIDR[,CIDR] (the reverse proxy's addresses)")
            trusted_networks(self.trusted_proxies)
            if not self.proxy_user_header.strip():
                raise ConfigError("--proxy-user-header is empty; name the header the proxy sets (X-Forwarded-User)")
        if self.launcher == "kfp" and not self.kfp_host:
            raise ConfigError("--launcher kfp needs --kfp-host URL (e.g. http://ml-pipeline.kubeflow:8888)")
        if not 0 < self.port < 65536:
            raise ConfigError(f"--port {self.port} is not a TCP port (1-65535)")


def read_token(path: Path | None) -> str:
    """The bearer token from its file (a mounted Secret); surrounding whitespace is not part of it."""
    if path is None:
        raise ConfigError("--auth token needs --token-file PATH (a file holding the bearer token)")
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"--token-file {str(path)!r} cannot be read: {exc.strerror}") from None
    if len(token) < 16:
        raise ConfigError(f"--token-file {str(path)!r} holds a token of {len(token)} characters; use at least 16")
    return token


def trusted_networks(cidrs: list[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    networks = []
    for cidr in cidrs:
        try:
            networks.append(ipaddress.ip_network(cidr.strip(), strict=False))
        except ValueError:
            raise ConfigError(f"--trusted-proxies entry {cidr!r} is not an IP network (e.g. 10.0.0.0/8)") from None
    return networks
