"""HTTP clients on the command line (curl, wget, HTTPie, xh) and Claude Code's WebFetch tool.

Every request becomes one ``http:<Method>`` operation per URL. Credentials (``user:pass@`` in a
URL, ``-u user:pass``, ``Authorization`` and other secret headers, token query parameters) set the
``credentials`` flag; the resource and ``url`` are the URL without them (``trailguard.urls``), and
``raw`` is the command as written: the redaction stage replaces its secrets before storage.

The module also holds the shell-level rule for downloads piped into an interpreter
(``curl ... | sh``).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from trailguard.classify._tool_common import add_flag, classifier_error, max_risk
from trailguard.classify.files import resolve_path, sensitive_class
from trailguard.classify.model import ClassifyContext, SimpleCommand
from trailguard.classify.options import POSITIONAL, iter_options
from trailguard.events import Access, Operation, Risk
from trailguard.urls import strip_url_credentials

__all__ = [
    "PROGRAMS",
    "classify",
    "classify_pipeline_to_shell",
    "classify_webfetch",
    "url_has_credentials",
]

PROGRAMS: frozenset[str] = frozenset({"curl", "wget", "http", "https", "xh"})

# ---------------------------------------------------------------------------------------------
# Credentials in URLs, headers and form data (detected here, redacted by the redaction stage)
# ---------------------------------------------------------------------------------------------

_CREDENTIAL_HEADERS = (
    r"x-api-key|api-key|apikey|x-auth-token|x-access-token|private-token|x-vault-token|"
    r"x-goog-api-key|x-amz-security-token|cookie|x-csrf-token|x-github-token|"
    r"x-gitlab-token|x-figma-token|ocp-apim-subscription-key"
)
_CREDENTIAL_PARAMS = (
    r"access_token|refresh_token|id_token|api_key|apikey|api-key|token|auth|auth_token|key|"
    r"password|passwd|pwd|secret|client_secret|sig|signature|x-amz-signature|"
    r"x-amz-security-token|x-amz-credential|private_token|session|sessionid"
)
_SECRET_PARAM_RE = re.compile(
    rf"(?i)(?P<name>(?:^|(?<=[?&\s'\"]))(?:{_CREDENTIAL_PARAMS})=)(?P<value>[^&\s'\"#]+)"
)


def url_has_credentials(url: str) -> bool:
    """Whether a URL carries credentials: a password, a token as an http(s) user name, or a
    secret query parameter (``?token=``)."""
    match = re.match(r"^(?P<prefix>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^@/?#]*)@", url)
    if match:
        user, sep, _password = match["userinfo"].partition(":")
        if sep or (match["prefix"][:-3].lower() in ("http", "https") and _looks_like_token(user)):
            return True
    return _SECRET_PARAM_RE.search(url) is not None


def _looks_like_token(user: str) -> bool:
    return bool(
        re.match(r"^(gh[pousr]_|github_pat_|glpat-|xox[bpas]-|sk-|AKIA)", user) or len(user) >= 32
    )


# ---------------------------------------------------------------------------------------------
# Shared shapes
# ---------------------------------------------------------------------------------------------

_METHOD_ACTIONS = {
    "GET": "http:Get",
    "HEAD": "http:Head",
    "OPTIONS": "http:Options",
    "POST": "http:Post",
    "PUT": "http:Put",
    "PATCH": "http:Patch",
    "DELETE": "http:Delete",
}
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_METHOD_RISK: dict[str, Risk] = {
    "GET": "low",
    "HEAD": "low",
    "OPTIONS": "low",
    "TRACE": "low",
    "DELETE": "high",
}


@dataclass
class _Request:
    """What one command line asks for, before it becomes operations."""

    method: str | None = None
    """Explicit method (-X, --method, HTTPie METHOD); None means the client's default."""
    implied_method: str = "GET"
    urls: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    remote_name: bool = False
    """curl -O / wget default / httpie --download: the output file is named after the URL."""
    output_dir: str | None = None
    uploads: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    user: str | None = None
    default_scheme: str = "http"


def _normalise_url(url: str, default_scheme: str) -> str:
    """A URL with a scheme: ``example.com/x`` → ``http://example.com/x``; HTTPie's
    ``:3000/x`` → ``http://localhost:3000/x``."""
    if re.match(r"^[A-Za-z][A-Za-z0-9+.\-]*://", url):
        return url
    if url.startswith(":"):
        rest = url[1:]
        if rest.startswith("/") or not rest:
            return f"{default_scheme}://localhost{rest}"
        return f"{default_scheme}://localhost:{rest}"
    return f"{default_scheme}://{url}"


def _host_of(url: str) -> str | None:
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return None
    return host or None


def _build_operations(
    request: _Request, command: SimpleCommand, context: ClassifyContext
) -> list[Operation]:
    method = (request.method or request.implied_method).upper()
    action = _METHOD_ACTIONS.get(method, "http:Request")
    access: Access = "read" if method in _READ_METHODS else "write"
    if method == "DELETE":
        access = "delete"
    base_risk: Risk = _METHOD_RISK.get(method, "medium")

    operations: list[Operation] = []
    for index, url in enumerate(request.urls):
        full = _normalise_url(url, request.default_scheme)
        url_without_credentials = strip_url_credentials(full)
        flags = list(request.flags)
        if url_has_credentials(full):
            add_flag(flags, "credentials")
        risk = base_risk
        attributes: dict[str, str] = {"method": method, "url": url_without_credentials}
        host = _host_of(full)
        if host:
            attributes["host"] = host
        scheme = full.split("://", 1)[0].lower()
        attributes["scheme"] = scheme
        if request.user is not None:
            attributes["user"] = request.user
        output = _output_for(request, index, full, context)
        if output is not None:
            attributes["output"] = output
        if request.uploads:
            attributes["upload"] = ",".join(request.uploads)
            for upload in request.uploads:
                kind = sensitive_class(upload, context)
                if kind is not None:
                    add_flag(flags, "sensitive")
                    attributes["sensitive"] = kind
                    risk = max_risk(risk, "high")
        if "credentials" in flags and scheme == "http" and not _is_local(host):
            add_flag(flags, "plaintext-credentials")
            risk = max_risk(risk, "medium")
        if "offline" in flags:
            risk = "low"
        operations.append(
            Operation(
                kind="http",
                action=action,
                resource=url_without_credentials,
                access=access,
                risk=risk,
                flags=flags,
                attributes=attributes,
                raw=command.text,
            )
        )
    return operations


def _is_local(host: str | None) -> bool:
    return host in (None, "localhost", "127.0.0.1", "::1", "0.0.0.0")  # noqa: S104


def _output_for(request: _Request, index: int, url: str, context: ClassifyContext) -> str | None:
    name: str | None = None
    if index < len(request.outputs):
        name = request.outputs[index]
    elif request.remote_name:
        path = urlsplit(url).path if "://" in url else url
        name = posixpath.basename(path.rstrip("/")) if path.strip("/") else "index.html"
        name = name or "index.html"
    if name is None or name == "-":
        return None
    if request.output_dir and not name.startswith(("/", "~")):
        name = posixpath.join(request.output_dir, name)
    resolved, _flags = resolve_path(name, context)
    return resolved


# ---------------------------------------------------------------------------------------------
# curl
# ---------------------------------------------------------------------------------------------

_CURL_SHORT_VALUE = frozenset("AbcCdDeEFHKmoPQrtTuUwxXyYz")
_CURL_LONG_VALUE = frozenset(
    {
        "--abstract-unix-socket", "--alt-svc", "--aws-sigv4", "--cacert", "--capath", "--cert",
        "--cert-type", "--ciphers", "--config", "--connect-timeout", "--connect-to",
        "--continue-at", "--cookie", "--cookie-jar", "--create-file-mode", "--crlfile",
        "--curves", "--data", "--data-ascii", "--data-binary", "--data-raw", "--data-urlencode",
        "--delegation", "--dns-interface", "--dns-ipv4-addr", "--dns-ipv6-addr", "--dns-servers",
        "--doh-url", "--dump-header", "--egd-file", "--engine", "--etag-compare", "--etag-save",
        "--expect100-timeout", "--form", "--form-string", "--ftp-account",
        "--ftp-alternative-to-user", "--ftp-method", "--ftp-port", "--ftp-ssl-ccc-mode",
        "--happy-eyeballs-timeout-ms", "--haproxy-clientip", "--header", "--hostpubmd5",
        "--hostpubsha256", "--hsts", "--interface", "--ip-tos", "--json", "--keepalive-time",
        "--key", "--key-type", "--krb", "--libcurl", "--limit-rate", "--local-port",
        "--login-options", "--mail-auth", "--mail-from", "--mail-rcpt", "--max-filesize",
        "--max-redirs", "--max-time", "--netrc-file", "--noproxy", "--oauth2-bearer", "--output",
        "--output-dir", "--parallel-max", "--pass", "--pinnedpubkey", "--preproxy", "--proto",
        "--proto-default", "--proto-redir", "--proxy", "--proxy-cacert", "--proxy-capath",
        "--proxy-cert", "--proxy-cert-type", "--proxy-ciphers", "--proxy-crlfile",
        "--proxy-header", "--proxy-key", "--proxy-key-type", "--proxy-pass",
        "--proxy-pinnedpubkey", "--proxy-service-name", "--proxy-tls13-ciphers",
        "--proxy-tlsauthtype", "--proxy-tlspassword", "--proxy-tlsuser", "--proxy-user",
        "--proxy1.0", "--pubkey", "--quote", "--random-file", "--range", "--rate", "--referer",
        "--request", "--request-target", "--resolve", "--retry", "--retry-delay",
        "--retry-max-time", "--sasl-authzid", "--service-name", "--socks4", "--socks4a",
        "--socks5", "--socks5-gssapi-service", "--socks5-hostname", "--speed-limit",
        "--speed-time", "--stderr", "--telnet-option", "--tftp-blksize", "--time-cond",
        "--tls-max", "--tls13-ciphers", "--tlsauthtype", "--tlspassword", "--tlsuser",
        "--trace", "--trace-ascii", "--trace-config", "--unix-socket", "--upload-file", "--url",
        "--url-query", "--user", "--user-agent", "--variable", "--vlan-priority", "--write-out",
        "--ech", "--ipfs-gateway", "--sigalgs",
    }
)  # fmt: skip
_CURL_SHORT_LONG = {
    "A": "--user-agent", "b": "--cookie", "c": "--cookie-jar", "C": "--continue-at",
    "d": "--data", "D": "--dump-header", "e": "--referer", "E": "--cert", "F": "--form",
    "H": "--header", "K": "--config", "m": "--max-time", "o": "--output", "P": "--ftp-port",
    "Q": "--quote", "r": "--range", "t": "--telnet-option", "T": "--upload-file", "u": "--user",
    "U": "--proxy-user", "w": "--write-out", "x": "--proxy", "X": "--request",
    "y": "--speed-time", "Y": "--speed-limit", "z": "--time-cond",
    "G": "--get", "I": "--head", "O": "--remote-name", "k": "--insecure", "n": "--netrc",
    "L": "--location", "J": "--remote-header-name",
}  # fmt: skip
_CURL_DATA = frozenset(
    {"--data", "--data-ascii", "--data-binary", "--data-raw", "--data-urlencode", "--json"}
)


def _curl_options(argv: tuple[str, ...]) -> Iterable[tuple[str, str | None]]:
    """(long option name, value) pairs and ("", positional) for arguments."""
    return iter_options(
        argv[1:],
        short_value=_CURL_SHORT_VALUE,
        long_value=_CURL_LONG_VALUE,
        short_names=_CURL_SHORT_LONG,
        long_flag_values=False,
    )


def _classify_curl(command: SimpleCommand, context: ClassifyContext) -> _Request:
    request = _Request()
    has_data = False
    force_get = False
    for name, value in _curl_options(command.argv):
        if name == "":
            request.urls.append(value or "")
        elif name == "--url" and value is not None:
            request.urls.append(value)
        elif name == "--request" and value:
            request.method = value.upper()
        elif name in _CURL_DATA and value is not None:
            has_data = True
            _data_secrets(value, request)
            if value.startswith("@") and value != "@-":
                request.uploads.append(_resolved(value[1:], context))
        elif name in ("--form", "--form-string") and value is not None:
            has_data = True
            _, _, field_value = value.partition("=")
            if name == "--form" and field_value.startswith(("@", "<")):
                path = field_value[1:].split(";", 1)[0]
                if path and path != "-":
                    request.uploads.append(_resolved(path, context))
            _data_secrets(value, request)
        elif name == "--upload-file" and value is not None:
            request.implied_method = "PUT"
            if value not in ("-", "."):
                request.uploads.append(_resolved(value, context))
        elif name == "--get":
            force_get = True
        elif name == "--head":
            request.implied_method = "HEAD"
        elif name == "--output" and value is not None:
            request.outputs.append(value)
        elif name == "--output-dir" and value is not None:
            request.output_dir = value
        elif name in ("--remote-name", "--remote-name-all"):
            request.remote_name = True
        elif name in ("--user", "--proxy-user") and value is not None:
            add_flag(request.flags, "credentials")
            if name == "--user":
                request.user = value.partition(":")[0]
        elif name in ("--header", "--proxy-header") and value is not None:
            _header_secret(value, request)
        elif name in ("--insecure", "-k"):
            add_flag(request.flags, "insecure")
        elif _gives_credentials(name, value):
            add_flag(request.flags, "credentials")
    if has_data and request.implied_method == "GET" and not force_get:
        request.implied_method = "POST"
    if request.uploads:
        add_flag(request.flags, "upload")
    return request


def _resolved(path: str, context: ClassifyContext) -> str:
    resolved, _flags = resolve_path(path, context)
    return resolved


_PASSWORD_OPTIONS = frozenset({"--pass", "--proxy-pass", "--tlspassword", "--proxy-tlspassword"})


def _gives_credentials(name: str, value: str | None) -> bool:
    """curl options that carry credentials or make curl send stored ones (``--netrc``)."""
    if name in ("--netrc", "--netrc-file", "--netrc-optional"):
        return True
    if name == "--cookie":
        return value is not None and "=" in value  # not a cookie-jar file
    if name == "--oauth2-bearer":
        return value is not None
    return bool(value) and name in _PASSWORD_OPTIONS


_JSON_SECRET_RE = re.compile(
    r"(?i)\"(?:password|passwd|secret|token|api_key|apikey|client_secret|access_token)\"\s*:"
    r"\s*\"([^\"]+)\""
)


def _data_secrets(data: str, request: _Request) -> None:
    """Secret-looking fields in form data (``password=...&token=...``) are credentials."""
    if _SECRET_PARAM_RE.search(data) or _JSON_SECRET_RE.search(data):
        add_flag(request.flags, "credentials")


def _header_secret(header: str, request: _Request) -> None:
    name, sep, value = header.partition(":")
    if not sep:
        return
    name = name.strip().lower()
    value = value.strip()
    if not value:
        return
    if (
        name in ("authorization", "proxy-authorization")
        or re.fullmatch(_CREDENTIAL_HEADERS, name)
        or re.search(r"token|secret|api-?key", name)
    ):
        add_flag(request.flags, "credentials")


# ---------------------------------------------------------------------------------------------
# wget
# ---------------------------------------------------------------------------------------------

_WGET_SHORT_VALUE = frozenset("oaiBtOTwQPlADRIXUe")
_WGET_SHORT_LONG = {
    "O": "--output-document", "P": "--directory-prefix", "i": "--input-file",
    "r": "--recursive", "m": "--mirror", "U": "--user-agent", "e": "--execute",
}  # fmt: skip
_WGET_LONG_VALUE = frozenset(
    {
        "--output-document", "--output-file", "--append-output", "--input-file", "--base",
        "--tries", "--timeout", "--wait", "--quota", "--directory-prefix", "--level", "--accept",
        "--reject", "--domains", "--include-directories", "--exclude-directories",
        "--user-agent", "--execute", "--header", "--user", "--password", "--http-user",
        "--http-password", "--ftp-user", "--ftp-password", "--proxy-user", "--proxy-password",
        "--post-data", "--post-file", "--method", "--body-data", "--body-file", "--referer",
        "--load-cookies", "--save-cookies", "--certificate", "--private-key", "--ca-certificate",
        "--ca-directory", "--bind-address", "--limit-rate", "--read-timeout", "--connect-timeout",
        "--dns-timeout", "--waitretry", "--restrict-file-names", "--local-encoding",
        "--remote-encoding", "--default-page", "--cut-dirs", "--exclude-domains",
        "--follow-tags", "--ignore-tags", "--config", "--rejected-log", "--progress",
        "--secure-protocol", "--ciphers", "--accept-regex", "--reject-regex", "--regex-type",
        "--certificate-type", "--private-key-type", "--crl-file", "--pinnedpubkey",
        "--random-file", "--egd-file", "--hsts-file", "--warc-file", "--use-askpass",
    }
)  # fmt: skip


def _classify_wget(command: SimpleCommand, context: ClassifyContext) -> _Request:
    request = _Request(remote_name=True)
    options = iter_options(
        command.argv[1:],
        short_value=_WGET_SHORT_VALUE,
        long_value=_WGET_LONG_VALUE,
        short_names=_WGET_SHORT_LONG,
    )
    for option, argument in options:
        if option == "":
            request.urls.append(argument or "")
        elif option == "--method" and argument:
            request.method = argument.upper()
        elif option in ("--post-data", "--body-data") and argument is not None:
            request.implied_method = "POST"
            _data_secrets(argument, request)
        elif option in ("--post-file", "--body-file") and argument is not None:
            request.implied_method = "POST"
            request.uploads.append(_resolved(argument, context))
        elif option == "--output-document" and argument is not None:
            request.remote_name = False
            request.outputs = [argument]
        elif option == "--directory-prefix" and argument is not None:
            request.output_dir = argument
        elif option in ("--spider",):
            request.remote_name = False
            request.outputs = []
        elif option in ("--recursive", "--mirror"):
            add_flag(request.flags, "recursive")
        elif option in ("--user", "--http-user", "--ftp-user", "--proxy-user") and argument:
            request.user = argument if option in ("--user", "--http-user") else request.user
            add_flag(request.flags, "credentials")
        elif option in ("--password", "--http-password", "--ftp-password", "--proxy-password"):
            if argument:
                add_flag(request.flags, "credentials")
        elif option in ("--ask-password", "--use-askpass"):
            add_flag(request.flags, "credentials")
        elif option == "--header" and argument is not None:
            _header_secret(argument, request)
        elif option == "--no-check-certificate":
            add_flag(request.flags, "insecure")
        elif option == "--input-file":
            add_flag(request.flags, "url-list")
    if request.outputs and len(request.outputs) < len(request.urls):
        # -O FILE concatenates every download into FILE
        request.outputs = [request.outputs[0]] * len(request.urls)
    if request.uploads:
        add_flag(request.flags, "upload")
    return request


# ---------------------------------------------------------------------------------------------
# HTTPie (http, https) and xh
# ---------------------------------------------------------------------------------------------

_HTTPIE_SHORT_VALUE = frozenset("aAopPs")
_HTTPIE_LONG_VALUE = frozenset(
    {
        "--auth", "--auth-type", "--output", "--session", "--session-read-only", "--print",
        "--history-print", "--pretty", "--style", "--verify", "--cert", "--cert-key",
        "--cert-key-pass", "--timeout", "--max-redirects", "--proxy", "--boundary",
        "--format-options", "--default-scheme", "--raw", "--ssl", "--ciphers",
        "--response-charset", "--response-mime", "--max-headers", "--bearer", "--method",
        "--unix-socket", "--resolve", "--interface", "--http-version",
    }
)  # fmt: skip
_HTTPIE_SHORT_LONG = {
    "a": "--auth", "A": "--auth-type", "o": "--output", "p": "--print", "P": "--history-print",
    "s": "--style", "d": "--download", "f": "--form", "j": "--json", "b": "--body",
    "h": "--headers", "v": "--verbose", "F": "--follow", "I": "--ignore-stdin", "q": "--quiet",
    "x": "--compress", "c": "--continue", "S": "--stream", "m": "--multipart",
}  # fmt: skip
_HTTP_METHODS = frozenset(
    {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE", "CONNECT"}
)
_HTTPIE_ITEM_RE = re.compile(r"^(?P<key>(?:\\.|[^:=@\\])*)(?P<sep>:=@|=@|==|:=|=|@|:)(?P<val>.*)$")


def _classify_httpie(command: SimpleCommand, context: ClassifyContext) -> _Request:
    request = _Request(default_scheme="https" if command.program == "https" else "http")
    positionals: list[str] = []
    auth_type = "basic"
    auth: str | None = None
    for option, argument in iter_options(
        command.argv[1:],
        short_value=_HTTPIE_SHORT_VALUE,
        long_value=_HTTPIE_LONG_VALUE,
        short_names=_HTTPIE_SHORT_LONG,
    ):
        if option == POSITIONAL:
            positionals.append(argument or "")
        elif option == "--auth" and argument is not None:
            auth = argument
        elif option == "--auth-type" and argument:
            auth_type = argument.lower()
        elif option == "--bearer" and argument:
            add_flag(request.flags, "credentials")
        elif option == "--output" and argument is not None:
            request.outputs.append(argument)
        elif option == "--download":
            request.remote_name = True
        elif option == "--verify" and argument is not None and argument.lower() in ("no", "false"):
            add_flag(request.flags, "insecure")
        elif option == "--offline":
            add_flag(request.flags, "offline")
        elif option == "--raw":
            request.implied_method = "POST"
        elif option == "--method" and argument:
            request.method = argument.upper()
    if auth is not None:
        add_flag(request.flags, "credentials")
        if auth_type != "bearer":
            request.user = auth.partition(":")[0]
    if positionals and positionals[0].upper() in _HTTP_METHODS and len(positionals) > 1:
        request.method = positionals.pop(0).upper()
    if not positionals:
        return request
    request.urls.append(positionals[0])
    for item in positionals[1:]:
        match = _HTTPIE_ITEM_RE.match(item)
        if not match:
            continue
        key, sep, value = match["key"], match["sep"], match["val"]
        if sep == ":":
            _header_secret(f"{key}:{value}", request)
        elif sep == "==":
            if re.fullmatch(_CREDENTIAL_PARAMS, key, flags=re.IGNORECASE):
                add_flag(request.flags, "credentials")
        else:
            if request.implied_method == "GET":
                request.implied_method = "POST"
            if sep in ("@", "=@", ":=@") and value:
                request.uploads.append(_resolved(value, context))
            elif re.fullmatch(r"(?i)password|passwd|secret|token|api_?key|client_secret", key):
                add_flag(request.flags, "credentials")
    if request.uploads:
        add_flag(request.flags, "upload")
    return request


# ---------------------------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------------------------


def classify(command: SimpleCommand, context: ClassifyContext) -> list[Operation]:
    """One operation per URL the HTTP client would request; [] when it would request none."""
    try:
        program = command.program
        if program == "curl":
            request = _classify_curl(command, context)
        elif program == "wget":
            request = _classify_wget(command, context)
        elif program in ("http", "https", "xh"):
            request = _classify_httpie(command, context)
        else:
            return []
        request.urls = [url for url in request.urls if url and not url.startswith("-")]
        return _build_operations(request, command, context)
    except Exception:  # a classifier must never break the hook
        return [_fallback(command)]


def _fallback(command: SimpleCommand) -> Operation:
    return classifier_error("http:Request", raw=command.text)


def classify_webfetch(tool_input: Mapping[str, Any], context: ClassifyContext) -> list[Operation]:
    """Claude Code's WebFetch tool: ``{"url": ..., "prompt": ...}`` → one ``http:Get``."""
    try:
        url = tool_input.get("url")
        if not isinstance(url, str) or not url:
            return []
        full = _normalise_url(url, "https")
        stripped, had_credentials = strip_url_credentials(full), url_has_credentials(full)
        attributes = {"method": "GET", "url": stripped, "scheme": full.split("://", 1)[0]}
        host = _host_of(full)
        if host:
            attributes["host"] = host
        flags = ["credentials"] if had_credentials else []
        return [
            Operation(
                kind="http",
                action="http:Get",
                resource=stripped,
                access="read",
                risk="medium" if had_credentials else "low",
                flags=flags,
                attributes=attributes,
                raw=url,
            )
        ]
    except Exception:
        return [classifier_error("http:Get", access="read")]


# ---------------------------------------------------------------------------------------------
# curl ... | sh
# ---------------------------------------------------------------------------------------------

_SHELLS = frozenset({"sh", "bash", "zsh", "dash", "ksh", "mksh", "fish", "ash", "busybox"})
_INTERPRETERS = frozenset({"python", "python2", "python3", "perl", "ruby", "node", "php", "pwsh"})
_DOWNLOADERS = frozenset({"curl", "wget", "http", "https", "xh", "fetch", "aria2c"})
_DECODERS = frozenset(
    {
        "base64", "base32", "basenc", "xxd", "uudecode", "openssl", "gunzip", "zcat", "gzip",
        "bzcat", "bunzip2", "xzcat", "unxz", "zstdcat", "rev",
    }
)  # fmt: skip
# short options whose argument is the program itself (so stdin is data, not code)
_INLINE_LETTERS = {
    "shell": frozenset("c"),
    "python": frozenset("cm"),
    "perl": frozenset("eE"),
    "ruby": frozenset("e"),
    "node": frozenset("ep"),
    "php": frozenset("rf"),
    "pwsh": frozenset(),
}
_INLINE_WORDS = frozenset({"--eval", "--print", "-command", "-Command", "-file", "-File"})
# options that take a separate value (so the value is not a script path)
_VALUE_OPTIONS = {
    "shell": frozenset({"-o", "-O", "+o", "+O", "--rcfile", "--init-file"}),
    "python": frozenset({"-W", "-X"}),
    "ruby": frozenset({"-r", "-I"}),
    "node": frozenset({"-r", "--require", "--import", "--loader"}),
}


def _interpreter_family(program: str) -> str | None:
    if program in _SHELLS:
        return "shell"
    if re.fullmatch(r"python[0-9.]*", program):
        return "python"
    if program in _INTERPRETERS:
        return program
    return None


def _runs_stdin_as_program(argv: tuple[str, ...], family: str) -> bool:
    """Whether the interpreter reads its program from stdin (``sh``, ``sh -s``, ``python -``)
    rather than from ``-c CODE``, ``-m MODULE`` or a script file."""
    inline = _INLINE_LETTERS.get(family, frozenset())
    i = 1
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "-":
            return True
        if arg == "--":
            return i >= len(argv) or argv[i] == "-"
        if family == "shell" and arg.startswith("+") and len(arg) > 1:
            if arg in _VALUE_OPTIONS["shell"]:
                i += 1
            continue
        if not arg.startswith("-"):
            return False  # a script file
        if arg in _INLINE_WORDS:
            return False
        if not arg.startswith("--"):
            letters = set(arg[1:])
            if letters & inline:
                return False
            if family == "shell" and "s" in letters:
                return True
        if arg in _VALUE_OPTIONS.get(family, frozenset()):
            i += 1
    return True


def classify_pipeline_to_shell(
    command: SimpleCommand, context: ClassifyContext | None = None
) -> list[Operation]:
    """``curl URL | sh`` and its variants: a shell or interpreter running code it reads from a
    pipeline fed by a download (→ ``shell:ExecuteDownloaded``, critical) or by a decoder alone
    (``base64 -d | sh`` → ``shell:ExecuteEncoded``, high)."""
    try:
        family = _interpreter_family(command.program)
        if family is None or not command.piped_from:
            return []
        if not _runs_stdin_as_program(command.argv, family):
            return []
        upstream = [p.rsplit("/", 1)[-1] for p in command.piped_from]
        downloaded = [p for p in upstream if p in _DOWNLOADERS]
        decoded = [p for p in upstream if p in _DECODERS]
        attributes = {"interpreter": command.program, "pipeline": ",".join(upstream)}
        if downloaded:
            flags = ["download-to-shell"]
            if decoded:
                flags.append("encoded")
            return [
                Operation(
                    kind="shell",
                    action="shell:ExecuteDownloaded",
                    resource=command.program,
                    access="admin",
                    risk="critical",
                    flags=flags,
                    attributes=attributes,
                    raw=command.text,
                )
            ]
        if decoded:
            return [
                Operation(
                    kind="shell",
                    action="shell:ExecuteEncoded",
                    resource=command.program,
                    access="admin",
                    risk="high",
                    flags=["encoded-to-shell"],
                    attributes=attributes,
                    raw=command.text,
                )
            ]
        return []
    except Exception:
        return [classifier_error("shell:ExecuteDownloaded", access="admin", risk="high")]
