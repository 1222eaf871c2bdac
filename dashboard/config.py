"""Settings: the one place that reads the environment.

`Settings.from_env()` builds a frozen object from environment variables; keyword overrides and the
command line's flags win over them. Every value is checked here, so a bad value fails at start with
a message that names where it came from (the variable, or the flag), never later in a request.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import os
import re
from collections.abc import Callable, Mapping
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
    library_scan: bool = True
    civitai_lookup: bool = False
    extra_model_paths: Path | None = None
    hf_token: str | None = field(default=None, repr=False)
    hf_endpoint: str | None = None
    civitai_token: str | None = field(default=None, repr=False)
    civitai_endpoint: str | None = None
    download_hosts: tuple[str, ...] = ()
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
        given = {k: v for k, v in (flags or {}).items() if v is not None}
        raw = _layered(env, defaults or {}, overrides, given)
        unknown = set(raw) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ConfigError(f"unknown settings: {', '.join(sorted(unknown))}")
        found = _Found(env, default_port)
        for setting in _SETTINGS:
            value = setting.parse(raw[setting.name], setting.flag if setting.name in given else setting.var)
            found.values[setting.name] = setting.default_for(found) if value is None else value
        return cls(**found.values)

    def replace(self, **changes) -> Settings:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)


def _layered(env: Mapping[str, str], defaults: Mapping[str, object], overrides: Mapping[str, object],
             flags: Mapping[str, object]) -> dict[str, object]:
    """Setting name -> its raw value: defaults, then the environment, overrides and flags, each winning."""
    raw: dict[str, object] = dict.fromkeys(ENV_VARS)
    raw.update({k: v for k, v in defaults.items() if v is not None})
    raw.update({name: env[var] for name, var in ENV_VARS.items() if env.get(var) not in (None, "")})
    raw.update({k: v for k, v in overrides.items() if v is not None})
    raw.update(flags)
    return raw


@dataclass
class _Found:
    """What a default may depend on: the environment, the caller's default port, the values read so far."""

    env: Mapping[str, str]
    default_port: int | None
    values: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class _Setting:
    """How one setting is read: its variable, a parser of (raw value, where it came from) that gives
    None when unset, and the default then: a value, or a function of the `_Found` so far."""

    name: str
    var: str
    parse: Callable[[object, str], object]
    default: object = None

    @property
    def flag(self) -> str:
        """The command line's flag: `--models-dir` for models_dir."""
        return "--" + self.name.replace("_", "-")

    def default_for(self, found: _Found) -> object:
        """The default, given what was found so far."""
        return self.default(found) if callable(self.default) else self.default


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


def _plain(value, _var: str) -> str | None:
    return _text(value)


def _port(value, var: str) -> int | None:
    text = _text(value)
    if text is None:
        return None
    try:
        port = int(text)
    except ValueError:
        raise ConfigError(f"{var}: expected a port number, got {text!r}") from None
    if not 0 <= port <= 65535:
        raise ConfigError(f"{var}: port {port} is out of range 0-65535")
    return port


def _number(value, var: str, low: float, high: float, integer: bool = False) -> float | None:
    text = _text(value)
    if text is None:
        return None
    try:
        number = int(text) if integer else float(text)
    except ValueError:
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"{var}: expected {kind}, got {text!r}") from None
    if not low <= number <= high:
        raise ConfigError(f"{var}: {number} is out of range {low:g}-{high:g}")
    return number


def _integer(low: int, high: int) -> Callable[[object, str], float | None]:
    """A parser of whole numbers from `low` to `high`."""
    return functools.partial(_number, low=low, high=high, integer=True)


def _real(low: float, high: float) -> Callable[[object, str], float | None]:
    """A parser of numbers from `low` to `high`."""
    return functools.partial(_number, low=low, high=high)


def _flag(value, var: str) -> bool | None:
    text = _text(value)
    if text is None:
        return None
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


def _id_list(value, _var: str = "") -> tuple[str, ...]:
    if isinstance(value, (list, tuple)):
        return tuple(value)
    text = _text(value)
    if text is None:
        return ()
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _hosts(value, var: str) -> tuple[str, ...]:
    items = tuple(item.lower().rstrip("/") for item in _id_list(value))
    for item in items:
        if not re.fullmatch(r"(https?://)?[a-z0-9.-]+(:\d+)?", item):
            raise ConfigError(f"{var}: {item!r} is not a host such as example.com, example.com:8443 "
                              "or http://example.com")
    return items


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


#: Every setting, in the order its value is checked (models_dir's default needs workspace's value).
#: The README's configuration table lists the same variables.
_SETTINGS = (
    _Setting("workspace", "DASHBOARD_WORKSPACE", _path, lambda found: Path("workspace").absolute()),
    _Setting("host", "DASHBOARD_HOST", _plain, "127.0.0.1"),
    _Setting("port", "DASHBOARD_PORT", _port, lambda found: found.default_port),
    _Setting("models_dir", "DASHBOARD_MODELS_DIR", _path, lambda found: found.values["workspace"] / "models"),
    _Setting("data_dir", "DASHBOARD_DATA_DIR", _path, lambda found: found.values["workspace"] / ".dashboard"),
    _Setting("comfyui_url", "COMFYUI_URL", _url),
    _Setting("status_interval", "DASHBOARD_STATUS_INTERVAL", _real(0.1, 3600), 2.0),
    _Setting("max_downloads", "DASHBOARD_MAX_DOWNLOADS", _integer(1, 64), 2),
    _Setting("read_timeout", "DASHBOARD_READ_TIMEOUT", _real(0.1, 3600), 60.0),
    _Setting("connections_per_file", "DASHBOARD_CONNECTIONS_PER_FILE", _integer(1, MAX_CONNECTIONS_PER_FILE), 8),
    _Setting("max_connections", "DASHBOARD_MAX_CONNECTIONS", _integer(1, MAX_CONNECTIONS), 16),
    _Setting("max_bandwidth", "DASHBOARD_MAX_BANDWIDTH", _bandwidth),
    _Setting("yield_to_generation", "DASHBOARD_YIELD_TO_GENERATION", _flag, True),
    _Setting("yield_share", "DASHBOARD_YIELD_SHARE", _real(0.01, 1.0), 0.25),
    _Setting("max_queue", "DASHBOARD_MAX_QUEUE", _integer(1, 100_000), 100),
    _Setting("official_templates", "DASHBOARD_OFFICIAL_TEMPLATES", _flag, True),
    _Setting("library_scan", "DASHBOARD_LIBRARY_SCAN", _flag, True),
    _Setting("civitai_lookup", "DASHBOARD_CIVITAI_LOOKUP", _flag, False),
    _Setting("extra_model_paths", "DASHBOARD_EXTRA_MODEL_PATHS", _path),
    _Setting("hf_token", "HF_TOKEN", _plain),
    _Setting("hf_endpoint", "HF_ENDPOINT", _url),
    _Setting("civitai_token", "CIVITAI_TOKEN", _plain),
    _Setting("civitai_endpoint", "CIVITAI_ENDPOINT", _url),
    _Setting("download_hosts", "DASHBOARD_DOWNLOAD_HOSTS", _hosts),
    _Setting("preset_download", "PRESET_DOWNLOAD", _id_list),
    _Setting("cuda_visible_devices", "CUDA_VISIBLE_DEVICES", _plain),
    _Setting("enable_auth", "ENABLE_AUTH", _flag, False),
    _Setting("secret", "DASHBOARD_SECRET", _secret),
    _Setting("admin_password", "DASHBOARD_ADMIN_PASSWORD", _plain,
             lambda found: _text(found.env.get("ACCESS_PASSWORD"))),
    _Setting("token_ttl", "DASHBOARD_TOKEN_TTL", _integer(60, 30 * 86400), 3600),
    _Setting("rate_limit", "DASHBOARD_RATE_LIMIT", _integer(0, 10**7), 100),
    _Setting("rate_limit_authenticated", "DASHBOARD_RATE_LIMIT_AUTH", _integer(0, 10**7), 1000),
    _Setting("trusted_proxies", "DASHBOARD_TRUSTED_PROXIES", _networks),
    _Setting("cors_origins", "CORS_ORIGINS", _origins),
    _Setting("dev", "DASHBOARD_DEV", _flag, False),
)

#: Settings field -> environment variable.
ENV_VARS = {setting.name: setting.var for setting in _SETTINGS}
