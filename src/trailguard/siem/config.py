"""Sink configuration: a sink is a URL (``--sink URL`` on ``serve``) or a ``[[sinks]]`` table of
a TOML file, parsed here into a ``SinkConfig`` with every problem named.

Secrets (a HEC token, a webhook's HMAC key) are never part of a URL or a config file: they are
read from the files the URL names (``token_file=``, ``secret_file=``), held in ``Secret`` objects
whose ``repr`` hides them, and never logged, stored in ``sinks.sqlite3`` or the ledger.
"""

from __future__ import annotations

import difflib
import os
import stat
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import parse_qsl, unquote, urlsplit

from trailguard.errors import InvalidInputError
from trailguard.events import EventType

SinkKind = Literal["syslog", "splunk-hec", "webhook"]
MessageFormat = Literal["json", "cef", "ocsf"]
RISKS: Final = ("low", "medium", "high", "critical")

SCHEMES: Final[dict[str, tuple[SinkKind, str]]] = {
    "syslog+tls": ("syslog", "tls"),
    "syslog+tcp": ("syslog", "tcp"),
    "syslog+udp": ("syslog", "udp"),
    "splunk-hec+https": ("splunk-hec", "https"),
    "splunk-hec+http": ("splunk-hec", "http"),
    "webhook+https": ("webhook", "https"),
    "webhook+http": ("webhook", "http"),
}
_LAB_TRANSPORTS: Final = {"tcp", "udp", "http"}
_SECURE_SCHEMES: Final = {
    "syslog": "syslog+tls",
    "tls": "syslog+tls",
    "splunk-hec": "splunk-hec+https",
    "splunk": "splunk-hec+https",
    "hec": "splunk-hec+https",
    "webhook": "webhook+https",
    "https": "webhook+https",
}

_COMMON_PARAMETERS: Final = (
    "name",
    "format",
    "types",
    "min_risk",
    "batch_size",
    "start",
    "lag_alert_seconds",
    "lag_alert_events",
    "max_backoff",
    "timeout",
)
_TLS_PARAMETERS: Final = ("ca", "cert", "key")
PARAMETERS: Final[dict[SinkKind, tuple[str, ...]]] = {
    "syslog": (*_COMMON_PARAMETERS, *_TLS_PARAMETERS, "facility", "app_name"),
    "splunk-hec": (
        *_COMMON_PARAMETERS,
        *_TLS_PARAMETERS,
        "token_file",
        "ack",
        "ack_timeout",
        "ack_window",
        "index",
        "sourcetype",
        "source",
    ),
    "webhook": (*_COMMON_PARAMETERS, *_TLS_PARAMETERS, "secret_file"),
}
FORMATS: Final[dict[SinkKind, tuple[MessageFormat, ...]]] = {
    "syslog": ("json", "cef", "ocsf"),
    "splunk-hec": ("json", "ocsf"),
    "webhook": ("json", "ocsf"),
}
_SECRET_PARAMETERS: Final = ("token", "secret", "password", "hmac", "key_value", "auth")
DEFAULT_PORTS: Final = {"tls": 6514, "tcp": 514, "udp": 514, "https": 443, "http": 80}
SYSLOG_FACILITIES: Final = {
    "kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7,
    "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11, "ntp": 12, "audit": 13, "alert": 14,
    "clock": 15, "local0": 16, "local1": 17, "local2": 18, "local3": 19, "local4": 20,
    "local5": 21, "local6": 22, "local7": 23,
}  # fmt: skip


class SinkConfigError(InvalidInputError):
    """A sink URL or configuration file that cannot be used; the message names the sink, the
    parameter, what was wrong and what to do."""


class Secret:
    """A secret read from a file: its value is never shown by ``repr``/``str``."""

    def __init__(self, path: Path, value: bytes) -> None:
        self.path = path
        self._value = value

    def reveal(self) -> bytes:
        return self._value

    def __repr__(self) -> str:
        return f"Secret(from {self.path}, {len(self._value)} bytes, not shown)"

    __str__ = __repr__


@dataclass(frozen=True)
class SinkConfig:
    """One sink, fully validated. ``url`` is the URL as given, which by construction holds no
    secret (secrets live in the files it names)."""

    name: str
    kind: SinkKind
    transport: str
    """``tls`` / ``tcp`` / ``udp`` for syslog, ``https`` / ``http`` for HEC and webhooks."""
    host: str
    port: int
    path: str
    url: str
    format: MessageFormat = "json"
    types: frozenset[str] | None = None
    min_risk: str | None = None
    batch_size: int = 200
    start: Literal["beginning", "end"] = "beginning"
    lag_alert_seconds: float = 300.0
    lag_alert_events: int = 10_000
    max_backoff: float = 60.0
    timeout: float = 10.0
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    secret: Secret | None = field(default=None, repr=False, compare=False)
    """The HEC token or the webhook HMAC key, read from ``token_file`` / ``secret_file``."""
    ack: bool = False
    ack_timeout: float = 120.0
    ack_window: int = 8
    index: str | None = None
    sourcetype: str | None = None
    source: str = "trailguard"
    facility: int = SYSLOG_FACILITIES["audit"]
    app_name: str = "trailguard"
    warnings: tuple[str, ...] = ()
    overrides: tuple[tuple[str, str], ...] = ()
    """The config-file table's keys besides ``url``: with ``url``, what re-creates this sink
    (the sink worker process parses both again, reading the secret files itself)."""

    @property
    def destination(self) -> str:
        """Where messages go, without parameters: what identifies the receiver."""
        return f"{self.kind}+{self.transport}://{_host_port(self.host, self.port)}{self.path}"


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _near(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _read_secret(where: str, parameter: str, value: str) -> Secret:
    path = Path(value).expanduser()
    try:
        info = path.stat()
        data = path.read_bytes()
    except FileNotFoundError:
        raise SinkConfigError(f"{where}: {parameter}={value}: no such file") from None
    except OSError as exc:
        raise SinkConfigError(
            f"{where}: {parameter}={value}: cannot read it ({exc.strerror})"
        ) from None
    secret = data.strip()
    if not secret:
        raise SinkConfigError(f"{where}: {parameter}={value}: the file is empty")
    if b"\n" in secret:
        raise SinkConfigError(
            f"{where}: {parameter}={value}: the file must hold one line (the secret alone)"
        )
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SinkConfigError(
            f"{where}: {parameter}={value} is readable by other users (mode "
            f"{info.st_mode & 0o777:04o}): run `chmod 600 {value}`"
        )
    return Secret(path, secret)


def _existing_file(where: str, parameter: str, value: str) -> Path:
    path = Path(value).expanduser()
    if not path.is_file() or not os.access(path, os.R_OK):
        raise SinkConfigError(f"{where}: {parameter}={value}: no readable file there")
    return path.absolute()


def _number(where: str, parameter: str, value: str, *, minimum: float, integer: bool) -> float:
    try:
        number = int(value) if integer else float(value)
    except ValueError:
        kind = "a whole number" if integer else "a number"
        raise SinkConfigError(f"{where}: {parameter} must be {kind}, got {value!r}") from None
    if not number >= minimum:  # NaN too
        raise SinkConfigError(f"{where}: {parameter} must be at least {minimum:g}, got {value}")
    return number


def _boolean(where: str, parameter: str, value: str) -> bool:
    lowered = value.lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise SinkConfigError(f"{where}: {parameter} must be true or false, got {value!r}")


def _types(where: str, value: str) -> frozenset[str]:
    known = {t.value for t in EventType}
    names = [part.strip() for part in value.split(",") if part.strip()]
    if not names:
        raise SinkConfigError(f"{where}: types= is empty; leave it out to send every event")
    for name in names:
        if name not in known:
            raise SinkConfigError(
                f"{where}: types: unknown event type {name!r}{_near(name, known)} (known: "
                f"{', '.join(sorted(known))})"
            )
    return frozenset(names)


def parse_sink_url(url: str, *, overrides: Mapping[str, str] | None = None) -> SinkConfig:
    """Parse and validate one sink URL (plus ``overrides`` from a config-file table, which may
    not repeat a URL parameter). Reads the secret and certificate files it names.

    Raises SinkConfigError naming the problem.
    """
    shown = url if len(url) <= 200 else url[:200] + "..."
    where = f"sink {shown}"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise SinkConfigError(f"{where}: not a URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        secure = _SECURE_SCHEMES.get(scheme)
        hint = f"; did you mean {secure!r}?" if secure else _near(scheme, SCHEMES)
        raise SinkConfigError(
            f"{where}: unknown scheme {scheme + '://' if scheme else '(none)'}{hint}; use one "
            f"of {', '.join(s + '://' for s in SCHEMES)}"
        )
    kind, transport = SCHEMES[scheme]
    if parts.username is not None or parts.password is not None:
        raise SinkConfigError(
            f"{where}: credentials in the URL are refused (they would be shown and logged); "
            "put a HEC token in token_file= or a webhook key in secret_file="
        )
    host = parts.hostname
    if not host:
        raise SinkConfigError(f"{where}: no host (e.g. {scheme}://127.0.0.1:6514)")
    port = parts.port or DEFAULT_PORTS[transport]
    if parts.fragment:
        raise SinkConfigError(f"{where}: a #fragment means nothing here; remove it")
    params: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False):
        if key in params:
            raise SinkConfigError(f"{where}: parameter {key} is given twice")
        params[key] = value
    for key, value in (overrides or {}).items():
        if key in params:
            raise SinkConfigError(f"{where}: {key} is given both in the URL and in the table")
        params[key] = value

    allowed = PARAMETERS[kind]
    for key in params:
        if key in allowed:
            continue
        if key.lower() in _SECRET_PARAMETERS:
            file_parameter = "token_file" if kind == "splunk-hec" else "secret_file"
            raise SinkConfigError(
                f"{where}: {key}= would put a secret in the URL, where it is shown and logged; "
                f"write it to a file (mode 0600) and name the file with {file_parameter}="
            )
        raise SinkConfigError(
            f"{where}: unknown parameter {key!r}{_near(key, allowed)} ({kind} sinks take: "
            f"{', '.join(allowed)})"
        )

    values: dict[str, Any] = {}
    warnings: list[str] = []
    if "format" in params:
        if params["format"] not in FORMATS[kind]:
            raise SinkConfigError(
                f"{where}: format must be one of {', '.join(FORMATS[kind])} for {kind} sinks, "
                f"got {params['format']!r}"
            )
        values["format"] = params["format"]
    if "types" in params:
        values["types"] = _types(where, params["types"])
    if "min_risk" in params:
        if params["min_risk"] not in RISKS:
            raise SinkConfigError(
                f"{where}: min_risk must be one of {', '.join(RISKS)}, got {params['min_risk']!r}"
            )
        values["min_risk"] = params["min_risk"]
    if "start" in params:
        if params["start"] not in ("beginning", "end"):
            raise SinkConfigError(
                f"{where}: start must be 'beginning' (send the whole ledger first, the default) "
                f"or 'end' (only events from now on), got {params['start']!r}"
            )
        values["start"] = params["start"]
    for key, minimum, integer in (
        ("batch_size", 1, True),
        ("lag_alert_seconds", 1, False),
        ("lag_alert_events", 1, True),
        ("max_backoff", 0.1, False),
        ("timeout", 0.1, False),
        ("ack_timeout", 1, False),
        ("ack_window", 1, True),
    ):
        if key in params:
            number = _number(where, key, params[key], minimum=minimum, integer=integer)
            values[key] = int(number) if integer else number
    if values.get("batch_size", 0) > 10_000:
        raise SinkConfigError(f"{where}: batch_size is at most 10000")
    if "ack" in params:
        values["ack"] = _boolean(where, "ack", params["ack"])
    for key in ("index", "sourcetype", "source", "app_name"):
        if key in params:
            if not params[key] or not params[key].isprintable() or " " in params[key]:
                raise SinkConfigError(
                    f"{where}: {key} must be a non-empty word, got {params[key]!r}"
                )
            values[key] = params[key]
    if len(values.get("app_name", "")) > 48:
        raise SinkConfigError(f"{where}: app_name is at most 48 characters (RFC 5424)")
    if "facility" in params:
        facility = params["facility"]
        if facility in SYSLOG_FACILITIES:
            values["facility"] = SYSLOG_FACILITIES[facility]
        elif facility.isdigit() and int(facility) <= 23:
            values["facility"] = int(facility)
        else:
            raise SinkConfigError(
                f"{where}: facility must be 0..23 or a name ({', '.join(SYSLOG_FACILITIES)}), "
                f"got {facility!r}"
            )

    for key, attribute in (("ca", "ca_file"), ("cert", "cert_file"), ("key", "key_file")):
        if key in params:
            values[attribute] = _existing_file(where, key, params[key])
    if transport in _LAB_TRANSPORTS:
        if any(k in params for k in _TLS_PARAMETERS):
            raise SinkConfigError(f"{where}: ca/cert/key need a TLS scheme, not {scheme}://")
        warnings.append(
            f"{scheme}:// sends the audit stream unencrypted and unauthenticated: for labs "
            "only; use "
            + {"syslog": "syslog+tls", "splunk-hec": "splunk-hec+https"}.get(kind, "webhook+https")
            + "://"
        )
    if ("cert" in params) != ("key" in params):
        raise SinkConfigError(f"{where}: a client certificate needs both cert= and key=")
    if kind == "syslog" and transport == "tls" and "ca" not in params:
        raise SinkConfigError(
            f"{where}: ca= is required: the file of the CA certificate(s) that signed the "
            "receiver's certificate (the server is always verified; there is no plaintext "
            "fallback)"
        )

    if kind == "splunk-hec":
        if "token_file" not in params:
            raise SinkConfigError(
                f"{where}: token_file= is required (a file holding the HEC token, mode 0600)"
            )
        values["secret"] = _read_secret(where, "token_file", params["token_file"])
        path = parts.path.rstrip("/")
        if path not in ("", "/services/collector/event", "/services/collector"):
            raise SinkConfigError(
                f"{where}: the path must be empty or /services/collector/event, got {parts.path}"
            )
        path = ""
    elif kind == "webhook":
        if "secret_file" not in params:
            raise SinkConfigError(
                f"{where}: secret_file= is required (a file holding the HMAC key that signs "
                "each request, mode 0600)"
            )
        values["secret"] = _read_secret(where, "secret_file", params["secret_file"])
        path = parts.path or "/"
    else:
        if parts.path not in ("", "/"):
            raise SinkConfigError(f"{where}: syslog sinks take no path, got {parts.path}")
        path = ""
        if transport == "udp":
            warnings.append(
                "syslog+udp:// cannot know whether a message arrived: its cursor moves as soon "
                "as a datagram is sent, and messages over 64 KiB are cut"
            )

    name = params.get("name") or f"{kind}-{_host_port(host, port)}{path.rstrip('/')}"
    if not name.isprintable() or len(name) > 100 or any(c in name for c in " \"'\\"):
        raise SinkConfigError(
            f"{where}: name must be at most 100 printable characters without spaces or quotes"
        )
    return SinkConfig(
        name=name,
        kind=kind,
        transport=transport,
        host=host,
        port=port,
        path=unquote(path),
        url=url,
        warnings=tuple(warnings),
        overrides=tuple(sorted((overrides or {}).items())),
        **values,
    )


_TABLE_KEYS: Final = ("url",)


def load_sinks_file(path: Path) -> list[SinkConfig]:
    """Sinks from a TOML file of ``[[sinks]]`` tables, each with ``url`` and optionally any of
    the URL's parameters as keys (``types`` may be a list). Raises SinkConfigError naming the
    file, the table and the problem."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SinkConfigError(f"sinks file {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SinkConfigError(f"sinks file {path}: cannot read it ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise SinkConfigError(f"sinks file {path} is not valid TOML: {exc}") from None
    unknown = [key for key in document if key != "sinks"]
    if unknown:
        raise SinkConfigError(
            f"sinks file {path}: unknown top-level key {unknown[0]!r}; the file holds "
            "[[sinks]] tables only"
        )
    tables = document.get("sinks")
    if not isinstance(tables, list) or not tables:
        raise SinkConfigError(f"sinks file {path}: no [[sinks]] table")
    configs: list[SinkConfig] = []
    for number, table in enumerate(tables, start=1):
        where = f"sinks file {path}, [[sinks]] #{number}"
        if not isinstance(table, dict):
            raise SinkConfigError(f"{where}: must be a table")
        url = table.get("url")
        if not isinstance(url, str):
            raise SinkConfigError(f'{where}: url = "..." is required (a string)')
        overrides: dict[str, str] = {}
        for key, value in table.items():
            if key in _TABLE_KEYS:
                continue
            if isinstance(value, list) and key == "types":
                if not all(isinstance(v, str) for v in value):
                    raise SinkConfigError(f"{where}: types must be a list of strings")
                overrides[key] = ",".join(value)
            elif isinstance(value, bool):
                overrides[key] = "true" if value else "false"
            elif isinstance(value, str | int | float):
                overrides[key] = str(value)
            else:
                raise SinkConfigError(f"{where}: {key} must be a string, number or boolean")
        try:
            configs.append(parse_sink_url(url, overrides=overrides))
        except SinkConfigError as exc:
            raise SinkConfigError(f"{where}: {exc}") from None
    return configs


def check_unique(configs: Sequence[SinkConfig]) -> None:
    """Each sink has its own cursor, keyed by name: two sinks may not share one."""
    seen: dict[str, SinkConfig] = {}
    for config in configs:
        if config.name in seen:
            raise SinkConfigError(
                f"two sinks are named {config.name!r} ({seen[config.name].url} and "
                f"{config.url}); give each its own name= (it keys the sink's cursor)"
            )
        seen[config.name] = config


def load_sinks(urls: Sequence[str], files: Sequence[Path] = ()) -> list[SinkConfig]:
    """Every sink given on the command line and in files, validated together."""
    configs = [parse_sink_url(url) for url in urls]
    for path in files:
        configs.extend(load_sinks_file(path))
    check_unique(configs)
    return configs
