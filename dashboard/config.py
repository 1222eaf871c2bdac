"""Settings: the one place that reads the environment.

`Settings.from_env()` builds a frozen object from environment variables; keyword overrides and the
command line's flags win over them. Every value is checked here, so a bad value fails at start with
a message that names where it came from (the variable, or the flag), never later in a request.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

#: Upper bounds of the connection settings.
MAX_CONNECTIONS_PER_FILE = 32
MAX_CONNECTIONS = 256
_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3,
          "kib": 1024, "mib": 1024**2, "gib": 1024**3}
_BANDWIDTH = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]*)(?:/s)?")


def parse_bandwidth(text: str) -> int:
    """Bytes a second from `50MB/s`, `500KB/s`, `1.5GB/s`, `100MiB/s` or a plain number; ValueError if malformed."""
    match = _BANDWIDTH.fullmatch(text.strip().lower())
    if not match or match.group(2) not in _UNITS:
        raise ValueError(f"expected a rate such as 50MB/s, got {text!r}")
    rate = int(float(match.group(1)) * _UNITS[match.group(2)])
    if rate < 1:
        raise ValueError(f"a rate must be at least 1 byte a second, got {text!r}")
    return rate


class ConfigError(ValueError):
    """A configuration value is missing or malformed; the message names the variable or flag."""


@dataclass(frozen=True)
class Settings:
    """Everything the dashboard can be configured with. Paths are absolute."""

    workspace: Path
    models_dir: Path
    data_dir: Path
    host: str = "127.0.0.1"
    port: int | None = 8080
    comfyui_url: str | None = None
    status_interval: float = 2.0
    max_downloads: int = 2
    read_timeout: float = 60.0
    connections_per_file: int = 8
    max_connections: int = 16
    max_bandwidth: int | None = None
    yield_to_generation: bool = True
    yield_share: float = 0.25
    max_queue: int = 100
    official_templates: bool = True
    extra_model_paths: Path | None = None
    hf_token: str | None = field(default=None, repr=False)
    hf_endpoint: str | None = None
    civitai_token: str | None = field(default=None, repr=False)
    preset_download: tuple[str, ...] = ()
    cuda_visible_devices: str | None = None
    enable_auth: bool = False
    secret: str | None = field(default=None, repr=False)
    admin_password: str | None = field(default=None, repr=False)
    token_ttl: int = 3600
    rate_limit: int = 100
    rate_limit_authenticated: int = 1000
    trusted_proxies: tuple[str, ...] = ()
    cors_origins: tuple[str, ...] = ()
    dev: bool = False

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, default_port: int | None = 8080,
        defaults: Mapping[str, object] | None = None, flags: Mapping[str, object] | None = None, **overrides,
    ) -> Settings:
        """Build settings from `environ` (default: the process environment), overrides and flags.

        `flags` are the command line's values by field name (`models_dir` is `--models-dir`); they and
        the overrides win over the environment, and values that are None are ignored, so a flag that
        was not given falls back to the environment. `default_port` is None inside ComfyUI, where the
        dashboard opens a port of its own only when DASHBOARD_PORT is set. `defaults` are used where
        nothing else gives a value. Raises ConfigError on a malformed value, naming the variable, or
        the flag when the value came from one.
        """
        env = os.environ if environ is None else environ
        raw = dict.fromkeys(ENV_VARS)
        raw.update({k: v for k, v in (defaults or {}).items() if v is not None})
        raw.update({name: env[var] for name, var in ENV_VARS.items() if env.get(var) not in (None, "")})
        raw.update({k: v for k, v in overrides.items() if v is not None})
        given = {k: v for k, v in (flags or {}).items() if v is not None}
        raw.update(given)
        src = {**ENV_VARS, **{name: "--" + name.replace("_", "-") for name in given}}
        unknown = set(raw) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ConfigError(f"unknown settings: {', '.join(sorted(unknown))}")

        workspace = _path(raw["workspace"], src["workspace"]) or Path("workspace").absolute()
        values = {
            "host": _text(raw["host"]) or "127.0.0.1",
            "port": _port(raw["port"], src["port"], default_port),
            "workspace": workspace,
            "models_dir": _path(raw["models_dir"], src["models_dir"]) or workspace / "models",
            "data_dir": _path(raw["data_dir"], src["data_dir"]) or workspace / ".dashboard",
            "comfyui_url": _url(raw["comfyui_url"], src["comfyui_url"]),
            "status_interval": _number(raw["status_interval"], src["status_interval"], 2.0, 0.1, 3600),
            "max_downloads": int(_number(raw["max_downloads"], src["max_downloads"], 2, 1, 64, True)),
            "read_timeout": _number(raw["read_timeout"], src["read_timeout"], 60.0, 0.1, 3600),
            "connections_per_file": int(_number(raw["connections_per_file"], src["connections_per_file"], 8, 1,
                                                MAX_CONNECTIONS_PER_FILE, True)),
            "max_connections": int(_number(raw["max_connections"], src["max_connections"], 16, 1, MAX_CONNECTIONS,
                                           True)),
            "max_bandwidth": _bandwidth(raw["max_bandwidth"], src["max_bandwidth"]),
            "yield_to_generation": _flag(raw["yield_to_generation"], src["yield_to_generation"], True),
            "yield_share": _number(raw["yield_share"], src["yield_share"], 0.25, 0.01, 1.0),
            "max_queue": int(_number(raw["max_queue"], src["max_queue"], 100, 1, 100_000, True)),
            "official_templates": _flag(raw["official_templates"], src["official_templates"], True),
            "extra_model_paths": _path(raw["extra_model_paths"], src["extra_model_paths"]),
            "hf_token": _text(raw["hf_token"]),
            "hf_endpoint": _url(raw["hf_endpoint"], src["hf_endpoint"]),
            "civitai_token": _text(raw["civitai_token"]),
            "preset_download": _id_list(raw["preset_download"]),
            "cuda_visible_devices": _text(raw["cuda_visible_devices"]),
            "enable_auth": _flag(raw["enable_auth"], src["enable_auth"], False),
            "secret": _secret(raw["secret"], src["secret"]),
            "admin_password": _text(raw["admin_password"]) or _text(env.get("ACCESS_PASSWORD")),
            "token_ttl": int(_number(raw["token_ttl"], src["token_ttl"], 3600, 60, 30 * 86400, True)),
            "rate_limit": int(_number(raw["rate_limit"], src["rate_limit"], 100, 0, 10**7, True)),
            "rate_limit_authenticated": int(_number(raw["rate_limit_authenticated"], src["rate_limit_authenticated"],
                                                    1000, 0, 10**7, True)),
            "trusted_proxies": _networks(raw["trusted_proxies"], src["trusted_proxies"]),
            "cors_origins": _origins(raw["cors_origins"], src["cors_origins"]),
            "dev": _flag(raw["dev"], src["dev"], False),
        }
        return cls(**values)

    def replace(self, **changes) -> Settings:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)


#: Settings field -> environment variable. The README's configuration table lists the same.
ENV_VARS = {
    "host": "DASHBOARD_HOST",
    "port": "DASHBOARD_PORT",
    "workspace": "DASHBOARD_WORKSPACE",
    "models_dir": "DASHBOARD_MODELS_DIR",
    "data_dir": "DASHBOARD_DATA_DIR",
    "comfyui_url": "COMFYUI_URL",
    "status_interval": "DASHBOARD_STATUS_INTERVAL",
    "max_downloads": "DASHBOARD_MAX_DOWNLOADS",
    "read_timeout": "DASHBOARD_READ_TIMEOUT",
    "connections_per_file": "DASHBOARD_CONNECTIONS_PER_FILE",
    "max_connections": "DASHBOARD_MAX_CONNECTIONS",
    "max_bandwidth": "DASHBOARD_MAX_BANDWIDTH",
    "yield_to_generation": "DASHBOARD_YIELD_TO_GENERATION",
    "yield_share": "DASHBOARD_YIELD_SHARE",
    "max_queue": "DASHBOARD_MAX_QUEUE",
    "official_templates": "DASHBOARD_OFFICIAL_TEMPLATES",
    "extra_model_paths": "DASHBOARD_EXTRA_MODEL_PATHS",
    "hf_token": "HF_TOKEN",
    "hf_endpoint": "HF_ENDPOINT",
    "civitai_token": "CIVITAI_TOKEN",
    "preset_download": "PRESET_DOWNLOAD",
    "cuda_visible_devices": "CUDA_VISIBLE_DEVICES",
    "enable_auth": "ENABLE_AUTH",
    "secret": "DASHBOARD_SECRET",
    "admin_password": "DASHBOARD_ADMIN_PASSWORD",
    "token_ttl": "DASHBOARD_TOKEN_TTL",
    "rate_limit": "DASHBOARD_RATE_LIMIT",
    "rate_limit_authenticated": "DASHBOARD_RATE_LIMIT_AUTH",
    "trusted_proxies": "DASHBOARD_TRUSTED_PROXIES",
    "cors_origins": "CORS_ORIGINS",
    "dev": "DASHBOARD_DEV",
}


def _text(value) -> str | None:
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def _path(value, var: str) -> Path | None:
    text = _text(value)
    if text is None:
        return None
    if "\0" in text:
        raise ConfigError(f"{var}: not a valid path")
    return Path(text).expanduser().absolute()


def _port(value, var: str, default: int | None) -> int | None:
    text = _text(value)
    if text is None:
        return default
    try:
        port = int(text)
    except ValueError:
        raise ConfigError(f"{var}: expected a port number, got {text!r}") from None
    if not 0 <= port <= 65535:
        raise ConfigError(f"{var}: port {port} is out of range 0-65535")
    return port


def _number(value, var: str, default: float, low: float, high: float, integer: bool = False) -> float:
    text = _text(value)
    if text is None:
        return default
    try:
        number = int(text) if integer else float(text)
    except ValueError:
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"{var}: expected {kind}, got {text!r}") from None
    if not low <= number <= high:
        raise ConfigError(f"{var}: {number} is out of range {low:g}-{high:g}")
    return number


def _flag(value, var: str, default: bool) -> bool:
    text = _text(value)
    if text is None:
        return default
    if isinstance(value, bool):
        return value
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{var}: expected true or false, got {text!r}")


def _url(value, var: str) -> str | None:
    text = _text(value)
    if text is None:
        return None
    parsed = urlparse(text)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ConfigError(f"{var}: expected an http(s) URL, got {text!r}")
    return text.rstrip("/")


def _id_list(value) -> tuple[str, ...]:
    if isinstance(value, (list, tuple)):
        return tuple(value)
    text = _text(value)
    if text is None:
        return ()
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _networks(value, var: str) -> tuple[str, ...]:
    items = _id_list(value)
    for item in items:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ConfigError(f"{var}: {item!r} is not an IP address or network") from None
    return items


def _origins(value, var: str) -> tuple[str, ...]:
    items = _id_list(value)
    for item in items:
        parsed = urlparse(item)
        origin_like = parsed.scheme in ("http", "https") and parsed.netloc and parsed.path in ("", "/")
        if item != "*" and not origin_like:
            raise ConfigError(f"{var}: {item!r} is not '*' or an origin such as https://example.com")
    return tuple(item.rstrip("/") for item in items)


def _bandwidth(value, var: str) -> int | None:
    text = _text(value)
    if text is None or text.lower() in ("unlimited", "none", "0"):
        return None
    try:
        return parse_bandwidth(text)
    except ValueError as exc:
        raise ConfigError(f"{var}: {exc}") from None


def _secret(value, var: str) -> str | None:
    text = _text(value)
    if text is not None and len(text) < 32:
        raise ConfigError(f"{var}: use at least 32 characters (HS256 needs a 256-bit key)")
    return text
