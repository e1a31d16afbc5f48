"""Where ``trailguard hook`` sends events and where it keeps them when that fails.

Settings come from the command line (``--gateway URL``), then the environment, then
``~/.config/trailguard/hook.json``, then defaults; a broken value is a warning, never a crash.
"""

from __future__ import annotations

from trailguard.capture.hook_client import fastjson
from trailguard.capture.hook_client.support import describe_exception, is_header_safe, join

TYPE_CHECKING = False
if TYPE_CHECKING:  # the typing module costs start-up time; annotations are strings anyway
    from collections.abc import Mapping
    from typing import Any

DEFAULT_URL = "http://127.0.0.1:8787"
DEFAULT_TIMEOUT = 10.0


class HookConfig:
    """Where to send events and where to keep them when that fails."""

    __slots__ = ("auth_origin", "config_path", "spool_dir", "timeout", "token", "url", "warnings")

    def __init__(
        self,
        *,
        url: str,
        token: str | None,
        auth_origin: str,
        timeout: float,
        spool_dir: str,
        config_path: str,
        warnings: list[str],
    ) -> None:
        self.url = url
        self.token = token
        self.auth_origin = auth_origin
        """Where the token came from, or why there is none (for 401 messages)."""
        self.timeout = timeout
        self.spool_dir = spool_dir
        self.config_path = config_path
        self.warnings = warnings


def env(environ: Mapping[str, str], name: str) -> str | None:
    """An environment variable; empty counts as unset."""
    value = environ.get(name)
    return value if value else None


def home(environ: Mapping[str, str]) -> str:
    home_dir = env(environ, "HOME")
    if home_dir is not None:
        return home_dir
    import os  # no HOME: the password database (os costs start-up time, see support)

    return os.path.expanduser("~")


def expand_user(path: str, environ: Mapping[str, str]) -> str:
    if path == "~" or path.startswith("~/"):
        return home(environ) + path[1:]
    return path


def load_config(environ: Mapping[str, str], gateway: str | None = None) -> HookConfig:
    """Settings from the command line (``gateway``: ``--gateway URL``, which ``install`` writes
    into every command hook), then the environment, then ``~/.config/trailguard/hook.json``,
    then defaults.

    Never raises: a broken config file or value is reported in ``warnings`` and ignored.
    """
    warnings: list[str] = []
    home_dir = home(environ)
    config_path = expand_user(
        env(environ, "TRAILGUARD_HOOK_CONFIG")
        or join(home_dir, ".config", "trailguard", "hook.json"),
        environ,
    )
    file_config: dict[str, Any] = {}
    try:
        with open(config_path, "rb") as handle:
            loaded = fastjson.loads(handle.read())
        if isinstance(loaded, dict):
            file_config = loaded
        else:
            warnings.append(f"{config_path} is not a JSON object; ignored")
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as exc:
        warnings.append(f"cannot read {config_path} ({describe_exception(exc)}); ignored")

    url = gateway or env(environ, "TRAILGUARD_URL")
    if url is None:
        configured = file_config.get("url")
        if isinstance(configured, str) and configured:
            url = configured
        elif configured is not None:
            warnings.append(f"'url' in {config_path} is not a non-empty string; ignored")
    url = (url or DEFAULT_URL).rstrip("/")

    token = env(environ, "TRAILGUARD_TOKEN")
    auth_origin = "TRAILGUARD_TOKEN"
    if token is None:
        token_file = file_config.get("token_file")
        if isinstance(token_file, str) and token_file:
            token_path = expand_user(token_file, environ)
            if not token_path.startswith("/"):
                import os  # relative to hook.json's directory (os costs start-up time)

                token_path = os.path.join(os.path.dirname(os.path.abspath(config_path)), token_path)
            try:
                with open(token_path, encoding="utf-8") as handle:
                    token = handle.read().strip() or None
                auth_origin = f"the token file {token_path}" + ("" if token else ", which is empty")
            except (OSError, ValueError) as exc:
                auth_origin = (
                    f"the token file {token_path}, which cannot be read ({describe_exception(exc)})"
                )
        else:
            auth_origin = f"none: TRAILGUARD_TOKEN is not set and {config_path} names no token_file"
    if token is not None and not is_header_safe(token):
        auth_origin += " (it contains spaces or control characters, so it was not sent)"
        token = None

    timeout = DEFAULT_TIMEOUT
    raw_timeout = env(environ, "TRAILGUARD_TIMEOUT")
    if raw_timeout is not None:
        try:
            parsed = float(raw_timeout)
        except ValueError:
            parsed = -1.0
        if 0 < parsed < float("inf"):
            timeout = parsed
        else:
            warnings.append(
                f"TRAILGUARD_TIMEOUT={raw_timeout!r} is not a positive number of seconds; "
                f"using {DEFAULT_TIMEOUT:g}"
            )

    spool_dir = expand_user(
        env(environ, "TRAILGUARD_SPOOL_DIR")
        or join(home_dir, ".local", "state", "trailguard", "spool"),
        environ,
    )
    return HookConfig(
        url=url,
        token=token,
        auth_origin=auth_origin,
        timeout=timeout,
        spool_dir=spool_dir,
        config_path=config_path,
        warnings=warnings,
    )
