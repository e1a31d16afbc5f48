"""URLs without their credentials: the one stripper every stage uses (standard library only, so
the hook client can import it).

This is normalisation, not redaction: it makes a git remote or a URL fit to be an identifier
(``projectId``, an operation's resource, an error message). Secrets anywhere else in stored text
are the redaction stage's job.
"""

from __future__ import annotations

import re

__all__ = ["strip_url_credentials"]

_SCHEME_USERINFO = re.compile(r"^(?P<prefix>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^@/?#]*)@")
_SCP_USER_PASSWORD = re.compile(r"^[^@/:]*:[^@/]*@(?=[^/]*:)")
_CREDENTIAL_PARAM = re.compile(
    r"(?i)(?:^|(?<=[&;]))(?:access_token|refresh_token|id_token|auth_token|private_token|api_?key|"
    r"api-key|apikey|key|token|auth|password|passwd|pwd|secret|client_secret|sig|signature|"
    r"x-amz-signature|x-amz-security-token|x-amz-credential|session|sessionid)=[^&;#]*"
)


def strip_url_credentials(url: str) -> str:
    """``url`` without the credentials it carries.

    - ``scheme://user:password@host/…``: the whole userinfo goes. A user name alone goes too for
      http(s), where it is usually a token (``https://ghp_…@github.com``); for ssh-like schemes
      (``ssh://git@host``) a bare user name is kept: it is not a secret.
    - scp-like ``user:password@host:path`` loses ``user:password@``; ``git@host:path`` is kept.
    - Query parameters that carry credentials (``?token=…``, ``&X-Amz-Signature=…``) lose their
      value: ``?token=`` stays, so a reader sees that one was there.
    """
    match = _SCHEME_USERINFO.match(url)
    if match is not None:
        scheme = match["prefix"][:-3].lower().rsplit("+", 1)[-1]  # git+https is https
        if ":" in match["userinfo"] or scheme in ("http", "https"):
            url = match["prefix"] + url[match.end() :]
    elif _SCP_USER_PASSWORD.match(url):
        url = url.partition("@")[2]
    if "?" in url:
        base, _, rest = url.partition("?")
        url = base + "?" + _CREDENTIAL_PARAM.sub(lambda m: m[0].split("=", 1)[0] + "=", rest)
    return url
