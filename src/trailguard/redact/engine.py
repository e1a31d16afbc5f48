"""The redaction engine: the :class:`Redactor` and trailguard's own rules.

Token formats of the maintained rule set (gitleaks', kept as data) are added by
:mod:`trailguard.redact.rules` where these rules find nothing; :mod:`~trailguard.redact.
placeholders` decides what only stands in for a secret.

Everything an agent sends or sees (tool inputs and outputs, file contents, prompts) is written to
an append-only, tamper-evident ledger: a secret that reaches it can never be taken out again.
This module replaces each secret with a tag before anything is stored::

    [REDACTED:<kind>:<first 8 hex chars of HMAC-SHA256(key, secret)>]

The keyed hash keeps equal secrets correlatable across events ("the same token was used in these
three sessions") without storing them, and without letting a reader of the ledger confirm a
guessed secret unless they also hold the key.

Three families of rules find secrets (``tests/corpus/README.md`` lists every kind):

* **credential formats** with a recognisable shape: AWS key ids, GitHub, GitLab, npm, PyPI,
  Slack, Stripe, Anthropic, OpenAI, Google, Hugging Face, DigitalOcean... tokens, JWTs, PEM and
  PuTTY private keys;
* **structure**: URL userinfo, ``Authorization``/``Cookie`` headers, password and token flags of
  common commands (``--password x``, ``mysql -pX``, ``curl -u user:pass``, ``docker login -p``),
  SQL ``PASSWORD '...'``, ``.netrc`` lines;
* **secret-named assignments**: ``export DB_PASSWORD=...``, ``.env`` lines, YAML/JSON/TOML/INI
  keys, keyword arguments and assignments in code, XML elements - whose *name* says "secret".

Decisions (``tests/corpus/redaction.jsonl`` tests each of them):

* A name is secret-named when one of its words (split on ``_ - .`` and camelCase) is a secret
  word: PASSWORD, PASSWD, PASSPHRASE, PASS, PWD, SECRET, TOKEN, CREDENTIAL(S), CREDS,
  AUTHORIZATION, ``-storepass``... ``KEY`` counts only after a credential word (API, ACCESS,
  SECRET, PRIVATE, SIGNING, ENCRYPTION, CLIENT, SSH...) or a provider name (``STRIPE_KEY``,
  ``AZURE_STORAGE_KEY``), never right after PUBLIC, PUBLISHABLE, SITE, CACHE, SORT...;
  ``AUTH`` and ``COOKIE`` count as the last word only (``BASIC_AUTH``, not ``AUTH_PROVIDER``).
  Words after the secret word must still name the secret (``SECRET_KEY_BASE``,
  ``client-key-data``, ``API_KEY_PROD``); anything else describes it (``TOKEN_TTL``,
  ``PASSWORD_FILE``, ``SECRET_NAME``, ``token_bucket``), and a name such as ``IS_PASSWORD_SET``
  or ``INVALID_CREDENTIAL`` is about a secret. ``TOKENIZER_PATH`` does not match at all
  (TOKENIZER is not TOKEN), nor do counters (``max_tokens``, ``input_tokens``), tokenizer
  symbols (``eos_token``), pagination cursors and idempotency tokens (``NextToken``,
  ``ClientToken``).
* Values that cannot be secrets are kept: empty or shorter than 3 characters, references
  (``$VAR``, ``${VAR}``, ``${{ secrets.X }}``, ``$(cmd)``, ``%VAR%``, ``{{ var }}``, ``{var}``,
  ``%(name)s``), masks (``****``, ``xxx``), ``<angle>``, ``YOUR_...`` and ``...``-shortened
  examples, the bare words ``password``/``secret``/``token``/``test``/``example``/``foo``...
  (documentation placeholders, also as in ``https://user:password@host``), booleans, null,
  file paths, ARNs, and in code: other variables (``password=password``, ``token=self.token``,
  ``api_key=os.environ["API_KEY"]``, ``f(password=pw)``), type annotations (``password: str``),
  prose after a name (``token: the token used to...``) and docstring fields. In code
  (``name = value`` with a lower-case name) a bare identifier without digits is a variable, so
  an INI line ``password = hunter`` keeps its value while ``password = hunter2`` does not.
  Weak literal values such as ``changeme`` *are* redacted: a default that got deployed is a
  password.
* When rules overlap, the union of their spans is redacted and the most specific kind names it
  (a GitHub token in ``GITHUB_TOKEN=...`` is a ``github-token``, not an ``env-secret``).
* Text that already is a redaction tag is never redacted again, and secrets glued to each other
  (no separator in between) are redacted to a fixed point: redacting the output finds nothing.

Not found (see ``tests/corpus/README.md``): secrets in prose without a name or a known format
("my password is hunter2"), random strings of unknown format under names that do not say
"secret", a secret split across events.

Performance: a handful of scans over the text, each started from a literal the regex engine
searches for quickly (one scan for long words, dispatched on their first two characters, one for
secret words in the lower-cased text, one for ``-`` flags, one for ``://``); rare rules run only
when a cheap substring test finds their keyword. 64 KiB of tool output takes a few milliseconds.

Finding offsets are positions in the text as it was *before* redaction. Nothing in a Finding,
an exception or a log line contains secret text.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import hmac
import re
import secrets
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

from trailguard.redact import rules as data_rules
from trailguard.redact.placeholders import is_placeholder

__all__ = ["REDACTION_TAG_RE", "Finding", "Redactor", "secret_name_kind"]


@dataclass(frozen=True, slots=True)
class Finding:
    """One redacted secret: its kind and where it was - never the secret itself.

    ``start``/``end`` index the original string; ``path`` is the RFC 6901 JSON pointer of that
    string inside a value given to :meth:`Redactor.redact_value` (``""`` for plain text).
    """

    kind: str
    start: int
    end: int
    path: str = ""


REDACTION_TAG_RE: Final = re.compile(r"\[REDACTED:[a-z0-9-]{1,64}:[0-9a-f]{8}\]")
"""What a redacted secret looks like in stored text."""


class _Span(NamedTuple):
    start: int
    end: int
    kind: str


_ALNUM: Final = frozenset(string.ascii_letters + string.digits)
_TOKEN_CHARS: Final = _ALNUM | {"_", "-"}
_B64_CHARS: Final = _ALNUM | {"+", "/", "="}
_NAME_CHARS: Final = _ALNUM | {"_", ".", "-"}

# Kind precedence when spans overlap: the most specific description wins.
_PRIORITY: Final = {
    "private-key": 100,
    "jwt": 80,
    "url-credentials": 70,
    "basic-auth": 70,
    "bearer-token": 70,
    "authorization": 70,
    "cookie": 70,
    "password": 70,
    "env-secret": 50,
    "generic-secret": 50,
}
_FORMAT_PRIORITY: Final = 90  # every named credential format (github-token, aws-access-key...)
_DATA_PRIORITY: Final = 85  # formats of the data rule set (gitleaks ids): trailguard's own win


# --------------------------------------------------------------------------------------------
# Secret-named keys
# --------------------------------------------------------------------------------------------

_WORD_RE: Final = re.compile(r"[A-Z]+[0-9]*(?![a-z])|[A-Z]?[a-z]+[0-9]*|[0-9]+")

_PASSWORD_WORDS: Final = frozenset(
    {
        "PASSWORD", "PASSWD", "PASSPHRASE", "PASS", "PWD", "STOREPASS", "KEYPASS", "NEWPASS",
        "SRCSTOREPASS", "DESTSTOREPASS", "SRCKEYPASS", "DESTKEYPASS", "PASSIN", "PASSOUT",
    }
)  # fmt: skip
_SECRET_WORDS: Final = frozenset(
    {
        "SECRET", "CREDENTIAL", "CREDENTIALS", "CREDS", "APIKEY", "APIKEYS", "ACCESSKEY",
        "SECRETKEY", "PRIVATEKEY", "CLIENTSECRET", "DOCKERCONFIGJSON", "DOCKERCFG",
    }
)  # fmt: skip
_KEY_COMPOUNDS: Final = frozenset(
    {
        "API", "ACCESS", "SECRET", "PRIVATE", "MASTER", "SIGNING", "ENCRYPTION", "LICENSE",
        "AUTH", "SESSION", "ACCOUNT", "SUBSCRIPTION", "CLIENT", "APP", "SHAREDACCESS",
    }
)  # fmt: skip
# Words that, right before TOKEN, make it a counter, a tokenizer symbol or a pagination cursor.
_TOKEN_NOT_SECRET_AFTER: Final = frozenset(
    {
        "MAX", "MIN", "NUM", "NUMBER", "TOTAL", "INPUT", "OUTPUT", "COMPLETION", "PROMPT",
        "PAD", "EOS", "BOS", "UNK", "SEP", "CLS", "MASK", "START", "END", "STOP", "SPECIAL",
        "NEXT", "PAGE", "PREV", "PREVIOUS", "CONTINUATION", "CANCELLATION", "SYNC", "RESUME",
        "RESUMPTION", "PAGINATION", "CURSOR", "IDEMPOTENCY", "REQUEST", "CHANGE", "LEXER",
        "PARSER", "DESIGN", "THEME", "COLOR", "SEMANTIC", "DECODER", "ENCODER", "BYTE", "WORD",
        "SUB", "TEXT", "FIRST", "LAST", "CURRENT", "PEEK", "CACHED", "CACHE", "REASONING",
        "THINKING", "EOT", "BOT", "STARTING", "PUBLIC", "CSRF", "XSRF",
        # AWS idempotency tokens and pagination cursors (ClientToken, nextForwardToken...)
        "CLIENT", "CREATION", "REGISTRATION", "FORWARD", "BACKWARD", "SEQUENCE", "ACTION",
        "UPDATE", "UNIT", "IMPORT", "EXPORT", "VERIFICATION", "CONTINUE", "GRANT",
    }
)  # fmt: skip
# Words that, right before KEY, make it a credential (API_KEY, SIGNING_KEY, STRIPE_KEY...);
# any other KEY is taken for a lookup key (cache_key, sort_key, alias_key, PUBLIC_KEY...).
_KEY_WORDS: Final = frozenset(
    {
        "API", "ACCESS", "SECRET", "PRIVATE", "MASTER", "SIGNING", "SIGN", "ENCRYPTION",
        "DECRYPTION", "ENC", "CRYPTO", "CRYPT", "CIPHER", "AES", "HMAC", "JWT", "LICENSE",
        "AUTH", "SESSION", "ACCOUNT", "CLIENT", "APP", "SHARED", "SUBSCRIPTION",
        "CONSUMER", "ROOT", "SSH", "DEPLOY", "WEBHOOK", "SERVICE", "SERVER", "ADMIN", "WRITE",
        "INGEST", "SECURITY", "COOKIE", "CSRF", "TOTP", "OTP", "RECOVERY", "PGP", "GPG", "RSA",
        "TLS", "SSL", "FERNET", "VAULT", "UNSEAL", "SALT", "MAC", "ED25519",
        "ECDSA", "DSA", "AGE", "SOPS", "SIGNER",
    }
)  # fmt: skip
# Providers whose credential is commonly <PROVIDER>_KEY (or <PROVIDER>_<SOMETHING>_KEY).
_VENDORS: Final = frozenset(
    {
        "STRIPE", "OPENAI", "ANTHROPIC", "CLAUDE", "SENDGRID", "MAILGUN", "MAILCHIMP",
        "MANDRILL", "POSTMARK", "RESEND", "TWILIO", "ALGOLIA", "PUSHER", "SEGMENT", "DATADOG",
        "DD", "NEWRELIC", "SENTRY", "GOOGLE", "GCP", "GEMINI", "FIREBASE", "MAPS", "AZURE",
        "AWS", "MISTRAL", "COHERE", "GROQ", "REPLICATE", "HF", "HUGGINGFACE", "PINECONE",
        "WEAVIATE", "SUPABASE", "CLOUDFLARE", "CF", "FASTLY", "HEROKU", "NETLIFY", "VERCEL",
        "GITHUB", "GITLAB", "SLACK", "DISCORD", "TELEGRAM", "SHOPIFY", "PAYPAL", "BRAINTREE",
        "PLAID", "MAPBOX", "LINEAR", "NOTION", "AIRTABLE", "ASANA", "JIRA", "OKTA", "AUTH0",
        "DEEPL", "ELEVENLABS", "DEEPGRAM", "PERPLEXITY", "TOGETHER", "FIREWORKS", "OPENROUTER",
        "XAI", "DEEPSEEK", "VOYAGE", "TAVILY", "SERPAPI", "LANGSMITH", "LANGCHAIN", "WANDB",
        "NGROK", "TAILSCALE", "DOPPLER", "INFISICAL", "SQUARE", "ADYEN", "RAZORPAY", "PADDLE",
        "KLAVIYO", "HUBSPOT", "SALESFORCE", "ZENDESK", "INTERCOM", "MIXPANEL", "AMPLITUDE",
        "POSTHOG", "HONEYCOMB", "GRAFANA", "PAGERDUTY", "OPSGENIE", "CIRCLECI", "BUILDKITE",
        "SNYK", "SONAR", "CODECOV", "NPM", "PYPI", "DOCKER", "DOCKERHUB", "YOUTUBE", "SPOTIFY",
        "TWITTER", "FACEBOOK", "INSTAGRAM", "LINKEDIN", "CONTENTFUL", "SANITY", "ALCHEMY",
        "INFURA", "ETHERSCAN", "COINBASE", "BINANCE", "OPENWEATHER", "WEATHER", "BREVO",
        "SENDINBLUE", "SPARKPOST", "MAILJET", "VONAGE", "NEXMO", "PLIVO", "MESSAGEBIRD",
        "LAUNCHDARKLY", "SPLIT", "STATSIG", "UPSTASH", "NEON", "PLANETSCALE", "TURSO", "FLY",
        "RENDER", "RAILWAY", "DIGITALOCEAN", "DO", "LINODE", "VULTR", "HETZNER", "BACKBLAZE",
        "B2", "WASABI", "MINIO", "BUGSNAG", "ROLLBAR", "LOGTAIL", "LOGDNA", "PAPERTRAIL",
    }
)  # fmt: skip
_KEY_QUALIFIERS: Final = _KEY_WORDS | _VENDORS
# Right before KEY, these make it public or a lookup key whatever came earlier
# (STRIPE_PUBLISHABLE_KEY, RECAPTCHA_SITE_KEY, GITHUB_CACHE_KEY).
_KEY_NOT_QUALIFIERS: Final = frozenset(
    {
        "PUBLIC", "PUBLISHABLE", "PUB", "SITE", "CACHE", "SORT", "PARTITION", "PRIMARY",
        "FOREIGN", "INDEX", "HASH", "ROUTING", "OBJECT", "LOOKUP", "IDEMPOTENCY", "DEDUP",
        "GROUP", "MESSAGE", "QUEUE", "S3", "BUCKET", "MAP", "DICT", "ID",
    }
)  # fmt: skip
# Words after the last secret word that describe the secret instead of holding it.
_DESCRIPTIVE: Final = frozenset(
    {
        "URL", "URI", "URLS", "ENDPOINT", "HOST", "HOSTNAME", "PORT", "PATH", "FILE", "FILES",
        "FILENAME", "DIR", "DIRECTORY", "FOLDER", "LOCATION", "TTL", "EXPIRY", "EXPIRES",
        "EXPIRATION", "EXPIRE", "LIFETIME", "AGE", "TIMEOUT", "LENGTH", "LEN", "SIZE", "MIN",
        "MAX", "COUNT", "LIMIT", "TYPE", "TYPES", "KIND", "NAME", "NAMES", "ID", "IDS",
        "HEADER", "HEADERS", "FIELD", "FIELDS", "PARAM", "PARAMS", "PARAMETER", "ENABLED",
        "DISABLED", "ENABLE", "DISABLE", "REQUIRED", "FORMAT", "VERSION", "ALGORITHM",
        "ALGORITHMS", "ALG", "ALGO", "REGION", "PREFIX", "SUFFIX", "ENV", "MODE", "POLICY",
        "ROTATION", "RESET", "STRENGTH", "PROVIDER", "ISSUER", "AUDIENCE", "SCOPE", "SCOPES",
        "DOMAIN", "HINT", "PATTERN", "REGEX", "RULES", "RULE", "COMPLEXITY", "ARN", "REF",
        "REFS", "NAMESPACE", "LABEL", "METHOD", "STYLE", "HASHERS", "HASHER", "VALIDATORS",
        "VALIDATOR", "HASH", "HASHED", "CHANGED", "UPDATED", "CREATED", "AT", "SAMESITE",
        "SECURE", "HTTPONLY", "SOURCE", "SRC", "STORE", "BACKEND", "MANAGER", "CLASS",
        "MODULE", "SERVICE", "STATUS", "PROMPT", "MESSAGE", "MSG", "ERROR", "ERRORS",
        "PLACEHOLDER", "INPUT", "BUTTON", "FORM", "VISIBLE", "HIDDEN", "SHOW", "TOGGLE", "ICON",
        "COMPONENT", "VIEW", "PAGE", "SCREEN", "ROUTE", "HANDLER", "CALLBACK", "CACHE", "USAGE",
        "USED", "REMAINING", "BUDGET", "INDEX", "POSITION", "POS", "OFFSET", "SPAN", "VALID",
        "VALIDITY", "CHECK", "VERIFY", "VERIFIED", "EXISTS", "STDIN", "FROM", "INTERACTIVE",
        "LOADER", "READER", "WRITER", "PROPERTY", "INTERVAL", "DURATION", "SECONDS", "MINUTES",
        "HOURS", "DAYS", "LABELS", "SELECTOR", "MOUNT", "VOLUME", "VAR", "VARIABLE", "CMD",
        "COMMAND", "SCRIPT", "HELPER", "TEMPLATE", "ROLE", "USER", "USERNAME", "OWNER", "KEYS",
        "TOPIC", "QUEUE", "JAR", "NUMBER", "FLAGS", "FLAG", "DESCRIPTION", "DOC", "STRATEGY",
        "LOGIN", "SETTINGS", "OPTIONS", "CONFIG", "SPEC", "TIME", "DATE", "LEEWAY", "AUTHORITY",
        "ISSUERS", "KEYRING",
    }
)  # fmt: skip
_AUTH_NOT_SECRET: Final = frozenset({"OAUTH", "NOAUTH", "REAUTH", "PREAUTH", "UNAUTH"})
# Words after the secret word that still name the secret itself (SECRET_KEY_BASE,
# client-key-data, SecretString, API_KEY_PROD, password_confirmation).
_HOLDERS: Final = frozenset(
    {
        "BASE", "DATA", "VALUE", "VAL", "STRING", "STR", "B64", "BASE64", "HEX", "RAW", "JSON",
        "PEM", "DER", "TEXT", "CONTENT", "CONTENTS", "PLAIN", "PLAINTEXT", "ENCODED", "ENCRYPTED",
        "SECRET", "KEY", "PROD", "PRODUCTION", "DEV", "DEVELOPMENT", "STAGING", "STAGE", "TEST",
        "LIVE", "LOCAL", "OLD", "NEW", "PRIMARY", "SECONDARY", "BACKUP", "CONFIRMATION",
        "CONFIRM", "REPEAT", "AGAIN", "CURRENT", "PREVIOUS", "NEXT", "OVERRIDE", "RW", "RO",
        "ADMIN", "ROOT", "MASTER", "USER", "APP", "DB", "CI", "BOT", "V1", "V2",
    }
)  # fmt: skip
# Words before the secret word that say the value is about the secret, not the secret.
_NEGATING: Final = frozenset(
    {
        "INVALID", "DUMMY", "MOCK", "PLACEHOLDER", "EXAMPLE", "SAMPLE", "NO", "WITHOUT",
        "MISSING", "EMPTY", "IS", "HAS", "USE", "USES", "REQUIRE", "REQUIRES", "REQUIRED",
        "NEEDS", "SHOW", "HIDE", "ALLOW", "ENABLE", "DISABLE", "SKIP", "VERIFY", "VALIDATE",
        "CHECK", "SUPPORTS", "WITH", "TYPE", "FORMAT", "MAX", "MIN", "NUM", "UNEXPECTED",
        "EXPECTED", "ACCEPTABLE", "UNSUPPORTED", "SUPPORTED",
    }
)  # fmt: skip


def secret_name_kind(name: str) -> str | None:
    """Whether a key, variable or flag *name* says its value is a secret.

    Returns ``"password"``, ``"cookie"``, ``"authorization"`` or ``"secret"``, or ``None`` when
    the name does not name a secret (``TOKENIZER_PATH``, ``max_tokens``, ``PUBLIC_KEY``...).
    """
    if len(name) <= 64 and _TOKEN_LIKE_PART.search(name) is None:
        return _cached_name_kind(name)
    return _name_kind(name)  # never cache what could be a credential used as a key


# Logs repeat the same few names thousands of times; only word-like names are remembered.
_TOKEN_LIKE_PART: Final = re.compile(r"[A-Za-z0-9]{25,}|[0-9]{4,}")


def _name_kind(name: str) -> str | None:
    words = [w.upper() for w in _WORD_RE.findall(name) if not w.isdigit()]
    for i in range(len(words) - 1, -1, -1):
        kind = _secret_word(words, i)
        if kind is None:
            continue
        if i > 0 and words[i - 1] in _NEGATING:
            return None
        tail = words[i + 1 :]
        if not tail:
            return "secret" if kind == "auth" else kind
        if kind == "access-key-id":
            return "secret"  # AWS_ACCESS_KEY_ID: an id, but the brief's rule and a cheap one
        if kind in {"cookie", "auth"} or not all(w in _HOLDERS for w in tail):
            return None  # TOKEN_TTL, PASSWORD_FILE, COOKIE_SECURE, AUTH_PROVIDER, token_bucket
        return kind
    return None


_cached_name_kind: Final = functools.lru_cache(maxsize=4096)(_name_kind)


def _secret_word(words: list[str], i: int) -> str | None:
    word = words[i].rstrip("0123456789") or words[i]
    before = words[i - 1] if i > 0 else ""
    if words[i] == "AUTH0":
        return None  # the identity provider
    if word in _PASSWORD_WORDS or word.endswith(("PASSWORD", "PASSWD")):
        return "password"
    if word in _SECRET_WORDS or (word.endswith("SECRET") and word != "SECRETS"):
        return "secret"
    if word.endswith("TOKEN"):
        prefix = word[:-5]
        if prefix in _TOKEN_NOT_SECRET_AFTER or (not prefix and before in _TOKEN_NOT_SECRET_AFTER):
            return None
        return "secret"
    if word == "KEY":
        if i == 0 or before in _KEY_NOT_QUALIFIERS:
            return None
        if before not in _KEY_QUALIFIERS and not _VENDORS.intersection(words[:i]):
            return None
        if before == "ACCESS" and i + 1 < len(words) and words[i + 1] == "ID":
            return "access-key-id"
        return "secret"
    if word.endswith("KEY") and word[:-3] in _KEY_COMPOUNDS:
        return "secret"
    if word.endswith("AUTHORIZATION"):
        return "authorization"
    if word in {"COOKIE", "COOKIES"} and i == len(words) - 1:
        return "cookie"
    if word.endswith("AUTH") and word not in _AUTH_NOT_SECRET:
        return "auth"
    return None


# --------------------------------------------------------------------------------------------
# Values that cannot hold a secret
# --------------------------------------------------------------------------------------------

_NOT_A_SECRET_RE: Final = re.compile(
    r"""
      \$\{\{.*\}\} | \$\{[^{}]*\} | \$\(.*\)? | \$[A-Za-z_][A-Za-z0-9_]* | \$env:[A-Za-z_]\w*
    | [0-9]+\.[0-9]+ | \#[0-9a-fA-F]{3,8} | 0x[0-9a-fA-F]{1,8}
    | arn:[a-z0-9-]+:.* | [a-z]+(?:\.[a-z]+)+ | (?i:seconds|minutes|hours|days|val|value)
    | &[A-Za-z_][\w\-]* | [a-z][a-z0-9._\-]*(?:/[a-z0-9._\-]+){2,} | [A-Z][A-Z]*(?:_[A-Z]+)+
    | %[A-Za-z_][A-Za-z0-9_]*% | \{\{.*\}\} | \{[A-Za-z_][\w.\[\]'"]*\} | <[^<>\n]*>
    | \*[A-Za-z_][\w\-]* | \*+ | x{3,} | X{3,} | y{3,} | Y{3,} | \u2022+ | -+ | [0-9]{1,3} | -[0-9]+
    | (?i:your)[A-Za-z_\-]* | (?i:my)[_\-][A-Za-z_\-]*
    | (?i:null|none|nil|undefined|true|false|yes|no|on|off|required|optional|include|omit
         |same-origin|redacted|filtered|hidden|masked|n/a|stdin|empty|unset|inherit
         |password|passwd|pass|pwd|secret|secrets|token|apikey|api_key|api-key|key|credentials
         |low|medium|high|critical|info|warning|error|debug|read|write|delete|allow|deny|ask
         |enabled|disabled|public|private|internal|basic|bearer|string|number|integer|boolean
         |object|array|sensitive|dummy|example|placeholder|replace_me|replaceme|todo|tbd
         |test|demo|sample|fake|invalid|foo|bar|baz|qux)
    | __[A-Za-z]\w*__
    | \[REDACTED:[a-z0-9-]{1,64}:[0-9a-f]{8}\] | \[(?i:redacted|filtered|hidden|masked)\]
    | \((?i:redacted|hidden)\) | \*{3,}[A-Za-z0-9]{0,4}
    """,
    re.VERBOSE,
)
# Template holes: ``{name}``, ``${name}``, ``%(name)s``, ``%s``, ``{{ name }}``, ``{0}``.
_TEMPLATE_HOLE: Final = re.compile(
    r"\$?\{\{[^{}]*\}\}|\$?\{[^{}\"]*\}|%\([A-Za-z_]\w*\)[sdr]|%[sdr]|\$[A-Za-z_]\w*"
)
_ALNUM_RUN: Final = re.compile(r"[a-z0-9]+")
_REGEX_MARKERS: Final = ("\\w", "\\d", "\\s", "[^", "a-z", "A-Z", "0-9", "]+", "]*", "(?")
_PATH_RE: Final = re.compile(
    r"(?:~|\.{1,2}|\$\{?[A-Za-z_]\w*\}?)?/[\w.\-@]+(?:/[\w.\-@]*)*|[A-Za-z]:\\[\w.\-\\ ]+"
)
# Path prefixes recognised in values (nothing is written there).
_PATH_ROOTS: Final = (
    "/home/", "/etc/", "/var/", "/run/", "/usr/", "/opt/", "/Users/", "/mnt/", "/srv/",
    "/root/", "/secrets/", "/vault/", "/workspace/", "/app/", "/data/", "/dev/", "/proc/",
    "/config/", "/certs/", "/keys/", "/private/", "/Volumes/", "/nix/", "/work/",
    "/tmp/",  # noqa: S108
)  # fmt: skip
_STOPWORDS: Final = frozenset(
    {
        "the", "a", "an", "to", "of", "for", "is", "are", "be", "used", "and", "or", "your",
        "this", "that", "with", "in", "on", "as", "by", "it", "from", "if", "when", "will",
        "must", "should", "can", "not", "which", "use", "set", "see", "them", "its", "has",
        "have", "was", "were", "been", "into", "only", "any", "all", "each", "per", "via",
    }
)  # fmt: skip
_IDENTIFIER_RE: Final = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
_SNAKE_NAME_RE: Final = re.compile(
    r"[a-z][a-z0-9]*(?:[_.\-][a-z0-9]+)+|[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+"
)
_CAMEL_TYPE_RE: Final = re.compile(r"[A-Z][a-z0-9]+(?:[A-Z][a-z0-9]+)+")
_DOTTED_RE: Final = re.compile(r"[A-Za-z_$][\w$]*(?:(?:\.|\?\.|->|::)[A-Za-z_$][\w$]*)+[!?]?")
_KNOWN_OBJECTS: Final = frozenset(
    {
        "process", "os", "settings", "config", "self", "this", "env", "ENV", "secrets", "vars",
        "var", "args", "opts", "options", "params", "props", "context", "ctx", "app", "cfg",
        "conf", "request", "req", "System", "Environment", "import", "inputs", "steps", "needs",
    }
)  # fmt: skip
_TYPE_WORDS: Final = frozenset(
    {
        "str", "string", "String", "bytes", "int", "bool", "boolean", "Any", "any", "None",
        "Optional", "Union", "SecretStr", "SecretBytes", "number", "float", "object", "unknown",
        "never", "void", "Text", "list", "List", "dict", "Dict", "Mapping", "char", "Vec",
        "Option", "Secret", "Password", "Token", "Credentials", "Buffer", "Uint8Array", "Bytes",
        "StrictStr", "ClassVar", "Final", "Literal", "Sequence", "Callable", "PasswordStr",
        "tuple", "Tuple", "set", "Set", "Path", "URL", "HttpUrl", "AnyUrl", "Json",
    }
)  # fmt: skip
_CODE_WORDS: Final = frozenset(
    {
        "await", "new", "this", "self", "function", "lambda", "async", "typeof", "yield", "not",
        "require", "import", "from", "if", "return", "del", "delete", "const", "let", "var",
        "static", "final", "private", "public", "protected", "readonly", "Some", "Ok", "Err",
        "cls", "super", "os", "process", "getpass", "input", "prompt",
    }
)  # fmt: skip
_OPERATOR_AFTER: Final = frozenset("+*/%|&?.<>=!^")
_CODE_OPERATOR: Final = re.compile(r"[ \t]*(?:[=!<>]=|\|\||&&|\?\?|[+*/%?]|\bif\b|\bor\b|\band\b)")
_DOC_FIELD: Final = re.compile(
    r"(?::(?:param|type|arg|argument|keyword|kwarg|ivar|cvar|var|raises|returns?)|@param|@arg)"
    r"[ \t]+(?:[\w\[\], .|]+[ \t]+)?\Z"
)


_EXAMPLE_MAX: Final = 256
"""Documented examples are single tokens: longer values are not looked up in the rule set."""


def _not_a_positional_secret(value: str) -> bool:
    """:func:`_not_a_secret` for a value whose place says it is a password (``user:PW@host``,
    ``curl -u user:PW``): there even a one- or two-character value is the password."""
    if 0 < len(value) < 3:
        return not value.isalnum()  # ``$2``, ``**``, ``-``: a parameter or a mask
    return _not_a_secret(value)


def _not_a_secret(value: str) -> bool:
    """A value that names, masks, templates or stands in for a secret, or cannot be one."""
    if len(value) < 3 or not any(c.isalnum() for c in value):
        return True
    if _NOT_A_SECRET_RE.fullmatch(value) is not None or _looks_like_path(value):
        return True
    if "..." in value or "\u2026" in value or "[redacted]" in value.lower() or value.endswith(".."):
        return True  # an example cut short (``tg_...``), never a real secret
    if value[0] == "<" and " " in value:
        return True  # markup: ``<xsd:element name=``
    if value.endswith(":") and _not_a_secret(value.rstrip(":")):
        return True  # ``token:``
    if len(value) >= 8 and is_placeholder(value, words=False, strict=True):
        return True  # ``aaaaaaaa...``, ``pnu_XXXX...``, ``sha256~XXXX_PUT_YOUR_TOKEN_HERE``
    if len(value) <= _EXAMPLE_MAX and data_rules.documented_example(value):
        return True  # ``sk_abcdefghijklmnopqrstuvwxyz123``, ``AKIA...EXAMPLE``: documented examples
    if any(marker in value for marker in _REGEX_MARKERS) or value.startswith("/^"):
        return True  # a regular expression
    words = value.split()
    if len(words) == 2 and words[0].lower() in {"basic", "bearer", "token"}:
        return _not_a_secret(words[1])  # ``Bearer xxxx``, ``Bearer <token>``
    if ("{" in value or "%" in value or "$" in value) and _TEMPLATE_HOLE.search(value):
        filled = value
        for _ in range(4):  # nested holes: ``{b64encode(f'{user}:{pw}')}``
            filled, holes = _TEMPLATE_HOLE.subn("", filled)
            if not holes:
                break
        if set(_ALNUM_RUN.findall(filled.lower())) <= {"basic", "bearer", "token"}:
            return True  # only template holes: ``{user}:{password}``, ``Bearer {token}``
    return False


def _is_prose(value: str) -> bool:
    """Words of a sentence (a description after ``token:``), not a passphrase."""
    words = value.split()
    return len(words) >= 3 and any(w.lower().strip(".,;:()") in _STOPWORDS for w in words)


def _looks_like_path(value: str) -> bool:
    if _PATH_RE.fullmatch(value) is None:
        return False
    if value.startswith(("~/", "./", "../", "$")) or value[1:3] == ":\\":
        return True
    last = value.rstrip("/").rsplit("/", 1)[-1]
    has_extension = "." in last and 1 <= len(last.rsplit(".", 1)[1]) <= 5
    return value.startswith(_PATH_ROOTS) or (value.count("/") >= 2 and has_extension)


def _norm(s: str) -> str:
    return s.replace("_", "").replace("-", "").replace(".", "").lower()


def _same_name(value: str, name: str) -> bool:
    """A value that repeats its name: ``password=password``, ``self.key_password =
    key_password``, ``apiKey: api_key``, ``"ssh-key": "SshKey"``, ``anthos-auth:
    google-cloud-cli-anthos-auth``, ``"rapt_token": "rapt"``."""
    v = _norm(value)
    last_part = re.split(r"\.|->|::", name)[-1]
    if v in {_norm(name), _norm(last_part), _norm(last_part) + "s"}:
        return True
    words = [_norm(w) for w in _WORD_RE.findall(last_part)]
    contains = len(words) >= 2 and _norm(last_part) in v and not _has_digit(v)
    return v in words or contains


# --------------------------------------------------------------------------------------------
# Value scanning (the text right after ``name=``, ``name:``, ``--flag``...)
# --------------------------------------------------------------------------------------------

_DQ_BODY: Final = re.compile(r'(?:[^"\\\n]|\\.){0,8192}"')
_SQ_BODY: Final = re.compile(r"[^'\n]{0,8192}'")
_BQ_BODY: Final = re.compile(r"[^`\n]{0,8192}`")
_EDQ_BODY: Final = re.compile(r'(?:[^"\\\n]|\\[^"\n]){0,8192}\\"')
_BARE: Final = re.compile(r"""(?:[^\s'"`;&|<>,(){}\[\]\\]|\\(?![nrt"'\\])){1,4096}""")
_LINE: Final = re.compile(r"[^\r\n]{0,8192}")
_NEXT_CHAR: Final = re.compile(r"[ \t]*(.)?")


class _Value(NamedTuple):
    start: int
    end: int
    quoted: bool
    after: str
    """The first non-blank character after the value ('' at the end of the line or text)."""


def _scan_value(text: str, pos: int, *, line_mode: bool = False) -> _Value | None:
    """The value starting at ``pos``: a quoted string (quotes excluded), a bare word, or (in
    line mode, for YAML-like ``name: value`` lines) the rest of the line minus a ``#`` comment.
    ``None`` when it is a reference (``$(...)``, ``${...}``) or absent."""
    n = len(text)
    if pos >= n:
        return None
    p = pos
    if text[p] in "bBrRuUfF":  # Python string prefixes: b"...", f"...", rb"..."
        q = p + 1
        if q < n and text[q] in "bBrRuUfF" and text[q] != text[p]:
            q += 1
        if q < n and text[q] in "\"'`":
            p = q
    c = text[p]
    if c == "\\" and text.startswith(('\\"', "\\'"), p):  # JSON-escaped quotes: \"value\"
        escaped_dq = text[p + 1] == '"'
        m = (_EDQ_BODY if escaped_dq else _SQ_BODY).match(text, p + 2)
        if m is None:
            return None
        return _Value(p + 2, m.end() - (2 if escaped_dq else 1), True, _after(text, m.end()))
    body = {'"': _DQ_BODY, "'": _SQ_BODY, "`": _BQ_BODY}.get(c)
    if body is not None:
        m = body.match(text, p + 1)
        if m is None:
            return None
        return _Value(p + 1, m.end() - 1, True, _after(text, m.end()))
    if text.startswith(("$(", "${", "<(", "$[", "{{"), p):
        return None
    if line_mode:
        if c in "([{":
            return None  # a tuple, list or mapping, not a scalar
        m = _LINE.match(text, p)
        end = m.end() if m else p
        for marker in (" #", "\t#"):
            at = text.find(marker, p, end)
            if at != -1:
                end = at
        while end > p and text[end - 1] in " \t":
            end -= 1
        after = ""
        if end > p and text[end - 1] in ",;":
            after = text[end - 1]
            end -= 1
        return _Value(p, end, False, after) if end > p else None
    m = _BARE.match(text, p)
    if m is None:
        return None
    return _Value(p, m.end(), False, _after(text, m.end()))


_LOOK_BEHIND: Final = 2048
"""How far back rules look for a line start or a command: keeps every rule linear in the text."""


def _line_start(text: str, pos: int) -> int:
    floor = max(0, pos - _LOOK_BEHIND)
    found = text.rfind("\n", floor, pos)
    return found + 1 if found != -1 else floor


def _after(text: str, pos: int) -> str:
    m = _NEXT_CHAR.match(text, pos)
    return (m.group(1) or "") if m else ""


def _is_code_reference(text: str, value: _Value, name: str, mode: str) -> bool:
    """An unquoted value that is code, not a literal: ``password=password``,
    ``token=self.token``, ``key=os.environ["K"]``, ``token=get_token()``, ``pw=args[0]``,
    ``f(password=pw, ...)``, ``auth = header + x``.

    ``mode`` is ``"env"`` for ``NAME=value`` (shell, .env: only unmistakable references
    count), ``"yaml"`` for a ``name: value`` line, ``"query"`` for URL queries and connection
    strings (``?token=x&``, ``;Password=x;``: always literal) and ``"code"`` otherwise.
    """
    if mode == "query":
        return False
    raw = text[value.start : value.end]
    if raw.startswith("!") and mode != "env":
        return True  # ``auth = !headers``
    first = raw.split(None, 1)[0] if raw.strip() else raw
    word = _IDENTIFIER_RE.match(first)
    if word is None:
        return False
    if mode == "yaml" and _CODE_OPERATOR.match(raw, len(first)):
        return True  # ``credentials: state === 'anonymous'``
    ident = word.group(0)
    rest = first[word.end() :]
    dotted = _DOTTED_RE.match(first) is not None
    if dotted and _has_digit(first) and _TOKEN_LIKE_PART.search(first):
        dotted = False  # ``F1tY3UU_1CoNAN7dV6BI0OB...Lmp.GAX0oiIs...``: a token with dots
    if mode == "env":
        return (dotted and ident in _KNOWN_OBJECTS) or (
            not rest and ident.isupper() and _same_name(ident, name)
        )
    if dotted and (mode in {"code", "yaml"} or ident in _KNOWN_OBJECTS or "(" in rest):
        return True
    if mode == "yaml" and not rest and ident.isupper() and ident.count("_") >= 1:
        return True  # ``"API_KEY": FAKE_API_KEY`` - a constant, not a YAML scalar
    if ident in _CODE_WORDS and (rest or value.after or " " in raw):
        return True
    nxt = rest[:1] if rest else (raw[len(first) : len(first) + 2].strip()[:1] or value.after)
    spaced = text[value.end : value.end + 1] in {" ", "\t"}
    if nxt in {"(", "["} or (
        mode == "code" and not rest and spaced and value.after in _OPERATOR_AFTER
    ):
        return True  # ``auth = header + extra``
    if not rest and _same_name(ident, name):
        return True
    if not rest and value.after in {",", ")", "}"}:
        return True  # an argument or a dict value: ``f(password=pw, ...)``, ``{token: tok}``
    # ``auth = header``: a variable (INI files with digit-free values lose)
    return mode == "code" and not rest and not _has_digit(ident)


def _is_annotation(raw: str, after: str) -> bool:
    """``password: str``, ``token: Optional[str] = None``, ``key: Ed25519PrivateKey``."""
    word = _IDENTIFIER_RE.match(raw)
    if word is None:
        return False
    ident = word.group(0)
    rest_raw = raw[word.end() :]
    rest = rest_raw.lstrip()
    follows = rest[:1] or after
    if follows == "=" and rest_raw[:1] == "=":
        return False  # ``RkFLRX...=``: base64 padding, not ``Type = default``
    if ident in _TYPE_WORDS:
        return True
    if not ident[0].isupper() or ident.isupper():
        return False
    return follows in {"[", "|", "=", ",", ")"} or _CAMEL_TYPE_RE.fullmatch(ident) is not None


# --------------------------------------------------------------------------------------------
# Credential formats: found by one scan for long words, dispatched on their first characters
# --------------------------------------------------------------------------------------------


class _Format(NamedTuple):
    kind: str
    regex: re.Pattern[str]
    right: frozenset[str]
    """Characters that must not follow the match."""
    check: Callable[[str], bool] | None


def _has_digit(s: str) -> bool:
    return any(c.isdigit() for c in s)


def _openai_check(s: str) -> bool:
    body = s[3:]
    return any(c.isupper() for c in body) and _has_digit(body)


def _aws_secret_shape(s: str) -> bool:
    return (
        len(s) == 40
        and any(c.isupper() for c in s)
        and any(c.islower() for c in s)
        and any(c.isdigit() or c in "/+" for c in s)
    )


_FORMAT_TABLE: Final[tuple[tuple[tuple[str, ...], _Format], ...]] = tuple(
    (keys, _Format(kind, re.compile(pattern), right, check))
    for keys, kind, pattern, right, check in (
        (
            ("AK", "AS", "AG", "AI", "AR", "AN", "AP"),
            "aws-access-key",
            r"A(?:KIA|SIA|GPA|IDA|ROA|IPA|NPA|NVA|PKA)[A-Z0-9]{16}",
            _ALNUM,
            None,
        ),
        (
            ("Fw", "FQ", "IQ"),
            "aws-session-token",
            r"(?:FwoGZXIvYXdz|FQoGZXIvYXdz|IQoJb3JpZ2luX2Vj)[A-Za-z0-9/+=]{50,}",
            _B64_CHARS,
            None,
        ),
        (("AI",), "google-api-key", r"AIza[0-9A-Za-z_\-]{35}", _TOKEN_CHARS, None),
        (("GO",), "google-oauth-secret", r"GOCSPX-[A-Za-z0-9_\-]{20,}", _TOKEN_CHARS, None),
        (("do",), "digitalocean-token", r"do[por]_v1_[a-f0-9]{64}", _ALNUM, None),
        (("HR",), "heroku-key", r"HRKU-[A-Za-z0-9_\-]{20,}", _TOKEN_CHARS, None),
        (("gh",), "github-token", r"gh[pousr]_[A-Za-z0-9]{30,}", _TOKEN_CHARS, None),
        (("gi",), "github-token", r"github_pat_[A-Za-z0-9_]{20,}", _TOKEN_CHARS, None),
        (
            ("gl",),
            "gitlab-token",
            r"gl(?:pat|dt|rt|ptt|cbt|soat|oas|ffct|imt|agent|feed|ft)-[A-Za-z0-9_\-]{20,}",
            _TOKEN_CHARS,
            None,
        ),
        (("GR",), "gitlab-token", r"GR1348941[A-Za-z0-9_\-]{20,}", _TOKEN_CHARS, None),
        (("np",), "npm-token", r"npm_[A-Za-z0-9]{36,}", _ALNUM, None),
        (("py",), "pypi-token", r"pypi-Ag[A-Za-z0-9_\-]{50,}", _TOKEN_CHARS, None),
        (("dc",), "docker-hub-token", r"dckr_pat_[A-Za-z0-9_\-]{20,}", _TOKEN_CHARS, None),
        (("hf",), "huggingface-token", r"hf_[A-Za-z0-9]{30,}", _ALNUM, None),
        (("sk",), "anthropic-key", r"sk-ant-[A-Za-z0-9_\-]{20,}", _TOKEN_CHARS, None),
        (
            ("sk",),
            "openai-key",
            r"sk-(?:proj-|svcacct-|admin-|None-)?[A-Za-z0-9_\-]{20,}",
            _TOKEN_CHARS,
            _openai_check,
        ),
        (("sk", "rk"), "stripe-key", r"[sr]k_(?:live|test)_[A-Za-z0-9]{10,}", _ALNUM, None),
        (("wh",), "stripe-key", r"whsec_[A-Za-z0-9]{20,}", _ALNUM, None),
        (("xo",), "slack-token", r"xox[baprse]-[A-Za-z0-9\-]{10,}", _TOKEN_CHARS, None),
        (("xa",), "slack-token", r"xapp-\d-[A-Za-z0-9\-]{10,}", _TOKEN_CHARS, None),
        (("sh",), "shopify-token", r"shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}", _ALNUM, None),
        (("da",), "databricks-token", r"dapi[a-f0-9]{32}(?:-\d)?", _ALNUM, None),
        (("li",), "linear-key", r"lin_api_[A-Za-z0-9]{40}", _ALNUM, None),
        (("pu",), "pulumi-token", r"pul-[a-f0-9]{40}", _ALNUM, None),
        (("gl",), "grafana-token", r"glc_[A-Za-z0-9+/=_\-]{32,}", _B64_CHARS, None),
        (("gl",), "grafana-token", r"glsa_[A-Za-z0-9]{32}_[a-fA-F0-9]{8}", _ALNUM, None),
        (("NR",), "newrelic-key", r"NRAK-[A-Z0-9]{27}", _ALNUM, None),
        (("PM",), "postman-key", r"PMAK-[a-f0-9]{24}-[a-f0-9]{34}", _ALNUM, None),
        (("AT",), "atlassian-token", r"ATATT3[A-Za-z0-9_\-=]{50,}", _TOKEN_CHARS, None),
        (
            ("AG",),
            "age-secret-key",
            r"AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}",
            _ALNUM,
            None,
        ),
        (
            ("ey", "ew"),
            "jwt",
            r"e(?:yJ|wo)[A-Za-z0-9_\-]{8,}\.e(?:yJ|wo)[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]*",
            _TOKEN_CHARS,
            None,
        ),
    )
)


def _index_formats() -> dict[str, tuple[_Format, ...]]:
    index: dict[str, list[_Format]] = {}
    for keys, fmt in _FORMAT_TABLE:
        for key in keys:
            index.setdefault(key, []).append(fmt)
    return {key: tuple(fmts) for key, fmts in index.items()}


_FORMATS_BY_PREFIX: Final = _index_formats()
# Formats whose distinctive prefix ends with a dot: the long word starts after it.
_DOTTED_FORMATS: Final = (
    ("SG.", "sendgrid-key", re.compile(r"SG\.[A-Za-z0-9_\-]{16,}\.[A-Za-z0-9_\-]{30,}")),
    ("hvs.", "vault-token", re.compile(r"hvs\.[A-Za-z0-9_\-]{24,}")),
    ("hvb.", "vault-token", re.compile(r"hvb\.[A-Za-z0-9_\-]{24,}")),
    ("hvr.", "vault-token", re.compile(r"hvr\.[A-Za-z0-9_\-]{24,}")),
    ("ya29.", "google-oauth-token", re.compile(r"ya29\.[A-Za-z0-9_\-]{20,}")),
)
_LONG_WORD: Final = re.compile(r"[A-Za-z0-9_\-]{15}[A-Za-z0-9_\-]*")
_TWILIO: Final = re.compile(r"SK[0-9a-fA-F]{32}")
_TELEGRAM: Final = re.compile(r"AA[A-Za-z0-9_\-]{33}")
_TERRAFORM_TAIL: Final = re.compile(r"[A-Za-z0-9_\-=]{60,}")
_AWS_PAIR: Final = re.compile(
    r"A(?:KIA|SIA)[A-Z0-9]{16}[^\n]{1,200}?(?<![A-Za-z0-9/+])(?P<v>[A-Za-z0-9/+]{40})"
    r"(?![A-Za-z0-9/+=])"
)


def _right_ok(text: str, end: int, forbidden: frozenset[str]) -> bool:
    return end >= len(text) or text[end] not in forbidden


def _left_ok(text: str, start: int, forbidden: frozenset[str] = _ALNUM) -> bool:
    return start == 0 or text[start - 1] not in forbidden


def _scan_formats(text: str, low: str, out: list[_Span]) -> None:
    twilio: bool | None = None
    formats_for = _FORMATS_BY_PREFIX.get
    for m in _LONG_WORD.finditer(text):
        start = m.start()
        if text[start] in "_-":
            while text[start] in "_-" and start < m.end() - 1:
                start += 1
        key = text[start : start + 2]
        for fmt in formats_for(key, ()):
            f = fmt.regex.match(text, start)
            if f is None or not _right_ok(text, f.end(), fmt.right):
                continue
            if fmt.check is not None and not fmt.check(f.group(0)):
                continue
            if fmt.kind != "jwt" and (
                is_placeholder(f.group(0))
                or text.startswith(("####", "****", "xxxx", "XXXX"), f.end())
                or data_rules.allowlisted(f.group(0))
            ):
                break  # ``ghp_xxxx...``, ``hf_requiredCharacteristicTypes...``: not a token
            out.append(_Span(start, f.end(), fmt.kind))
            if fmt.kind == "aws-access-key" and key in {"AK", "AS"}:
                pair = _AWS_PAIR.match(text, start)
                if pair is not None and _aws_secret_shape(pair.group("v")):
                    out.append(_Span(pair.start("v"), pair.end("v"), "aws-secret-key"))
            break
        before = text[start - 1] if start else ""
        if before == "." and start >= 3:
            _dotted_format(text, start, out)
        elif before == ":" and key == "AA":
            _telegram(text, start, out)
        if key == "SK":
            if twilio is None:
                twilio = "twilio" in low
            if twilio:
                _twilio(text, low, start, out)


def _dotted_format(text: str, start: int, out: list[_Span]) -> None:
    if start >= 9 and text.startswith(".atlasv1.", start - 9):
        head = start - 9 - 14
        tail = _TERRAFORM_TAIL.match(text, start)
        key_head = text[head : start - 9] if head >= 0 else ""
        ok = tail and key_head and all(c in _ALNUM for c in key_head) and _left_ok(text, head)
        if ok and tail and not is_placeholder(text[start : tail.end()], strict=True):
            out.append(_Span(head, tail.end(), "terraform-token"))
        return
    for prefix, kind, regex in _DOTTED_FORMATS:
        begin = start - len(prefix)
        if begin >= 0 and text.startswith(prefix, begin) and _left_ok(text, begin):
            m = regex.match(text, begin)
            found = m is not None and _right_ok(text, m.end(), _TOKEN_CHARS)
            if m is not None and found and not is_placeholder(m.group(0), strict=True):
                out.append(_Span(begin, m.end(), kind))
            return


def _telegram(text: str, start: int, out: list[_Span]) -> None:
    m = _TELEGRAM.match(text, start)
    if m is None or not _right_ok(text, m.end(), _TOKEN_CHARS):
        return
    digits = start - 1
    while digits > 0 and text[digits - 1].isdigit() and start - 1 - digits < 10:
        digits -= 1
    in_url = digits >= 4 and text.startswith(
        "/bot", digits - 4
    )  # https://api.telegram.org/bot<token>/getMe
    if start - 1 - digits >= 8 and (_left_ok(text, digits) or in_url):
        out.append(_Span(digits, m.end(), "telegram-bot-token"))


def _twilio(text: str, low: str, start: int, out: list[_Span]) -> None:
    m = _TWILIO.match(text, start)
    if m is None or not _right_ok(text, m.end(), _ALNUM):
        return
    if "twilio" in low[max(0, start - 300) : m.end() + 300]:
        out.append(_Span(start, m.end(), "twilio-key"))


# --------------------------------------------------------------------------------------------
# Structure: private keys, URLs, headers
# --------------------------------------------------------------------------------------------

_PEM_BEGIN: Final = re.compile(r"-----BEGIN[ A-Z0-9]{0,40}PRIVATE KEY(?: BLOCK)?-----")
_PEM_END: Final = re.compile(r"-----END[ A-Z0-9]{0,40}-----")
_PEM_BODY: Final = re.compile(r"(?:[A-Za-z0-9+/=\s:,\-\\]|\\n){0,65536}")
_KEY_MATERIAL: Final = re.compile(r"[A-Za-z0-9+/]{16,}")
_PUTTY: Final = re.compile(r"private-lines: \d+\r?\n(?:[a-z0-9+/=]+\r?\n?){1,200}")


def _scan_private_keys(text: str, low: str, out: list[_Span]) -> None:
    """PEM blocks (``-----BEGIN ... PRIVATE KEY-----`` to ``-----END ...-----``, RSA, EC,
    OPENSSH, ENCRYPTED, PGP...) whole, a block cut short up to its last key line, and the
    private lines of PuTTY keys."""
    begins = list(_PEM_BEGIN.finditer(text))
    for i, m in enumerate(begins):
        limit = begins[i + 1].start() if i + 1 < len(begins) else len(text)
        limit = min(limit, m.end() + 65536)
        end_at = text.find("-----END", m.end(), limit)
        footer = _PEM_END.match(text, end_at) if end_at != -1 else None
        if footer is not None:
            end = footer.end()
        else:  # cut short (truncated output): the key lines that follow
            body = _PEM_BODY.match(text, m.end(), limit)
            end = body.end() if body else m.end()
            while end > m.end() and text[end - 1] in " \t\r\n\\-":
                end -= 1
            if text[end - 2 : end] == "\\n":
                end -= 2
        if _KEY_MATERIAL.search(text, m.end(), end) is None:
            continue  # ``_SK_START = b"-----BEGIN OPENSSH PRIVATE KEY-----"``: no key
        out.append(_Span(m.start(), end, "private-key"))
    if "private-lines:" in low:
        for m in _PUTTY.finditer(low):
            body_start = low.index("\n", m.start()) + 1
            out.append(_Span(body_start, m.end(), "private-key"))


_URL: Final = re.compile(
    r"://(?:(?P<user>[^\s:/?#@\[\]\"'<>\\]{0,256})(?::(?P<pw>[^\s/?#\"'<>\\]{0,512}))?"
    r"@(?=[A-Za-z0-9\[])|(?P<hook>hooks\.slack\.com/(?:services|workflows|triggers)/"
    r"|discord(?:app)?\.com/api/webhooks/\d+/))"
)
_WEBHOOK_TAIL: Final = re.compile(r"[A-Za-z0-9_/\-]{20,}")


def _scan_urls(text: str, out: list[_Span]) -> None:
    for m in _URL.finditer(text):
        if m.group("hook") is not None:
            tail = _WEBHOOK_TAIL.match(text, m.end())
            if tail is not None:
                kind = "slack-webhook" if "slack" in m.group("hook") else "discord-webhook"
                out.append(_Span(tail.start(), tail.end(), kind))
            continue
        user = m.group("user")
        pw = m.group("pw")
        if pw is not None and not _not_a_positional_secret(pw):
            out.append(_Span(m.start("pw"), m.end("pw"), "url-credentials"))
        if _token_like(user):
            out.append(_Span(m.start("user"), m.end("user"), "url-credentials"))


def _token_like(s: str) -> bool:
    """A URL user name that is a token (``https://<token>@host``, ``https://<token>:x-oauth...``)."""
    if len(s) < 20 or _not_a_secret(s):
        return False
    return _has_digit(s) and any(c.isalpha() for c in s) and all(c in _NAME_CHARS for c in s)


_AUTH_SCHEMES: Final = {
    "basic": "basic-auth",
    "bearer": "bearer-token",
    "token": "bearer-token",
    "jwt": "bearer-token",
    "dpop": "bearer-token",
    "apikey": "authorization",
    "api-key": "authorization",
    "key": "authorization",
    "sso-key": "authorization",
    "splunk": "authorization",
    "ssws": "authorization",
    "otp": "authorization",
    "negotiate": "authorization",
    "ntlm": "authorization",
    "geniekey": "authorization",
    "klaviyo-api-key": "authorization",
}
# Schemes whose parameters are per-request proofs (signatures, digests), not reusable secrets;
# an access key id inside them is still found by its format.
_AUTH_SCHEMES_SIGNED: Final = frozenset(
    {"digest", "aws4-hmac-sha256", "hawk", "oauth", "signature", "mac", "hoba", "mutual", "vapid"}
)
_AUTHORIZATION: Final = re.compile(r"authorization(?P<close>\\?[\"'])?\]?[ \t]*(?:[:=]|=>)[ \t]*")
_AUTH_BODY: Final = re.compile(
    r"""(?:[bfruBFRU]{1,2}(?=["'`]))?(?P<q>\\?["'`])?[ \t]*(?P<body>[^\r\n"'`\\]{0,4096})"""
)
_CREDENTIAL: Final = re.compile(r"[^\s\"'\\,;]+")
_CONSTANT_RE: Final = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")


def _scan_authorization(text: str, low: str, out: list[_Span]) -> None:
    covered = 0
    for m in _AUTHORIZATION.finditer(low):
        if m.start() < covered:
            continue
        begin = m.start()
        if begin >= 6 and low.startswith("proxy-", begin - 6):
            begin -= 6
        elif begin >= 5 and low.startswith("http_", begin - 5):
            begin -= 5
        if not _left_ok(text, begin, _TOKEN_CHARS):
            continue
        b = _AUTH_BODY.match(text, m.end())
        if b is None:
            continue
        body, base = b.group("body"), b.start("body")
        covered = b.end()
        parts = body.split(None, 2)
        if not parts:
            continue
        scheme = parts[0].lower()
        if scheme in _AUTH_SCHEMES_SIGNED:
            continue
        if scheme in _AUTH_SCHEMES:
            if len(parts) < 2:
                continue
            cred = _CREDENTIAL.match(body, body.index(parts[1], len(parts[0])))
            kind = _AUTH_SCHEMES[scheme]
        else:
            cred = _CREDENTIAL.match(body, body.index(parts[0]))
            kind = "authorization"
        if cred is None or cred.group(0)[:1] in {"{", "$", "<", "%", "("}:
            continue  # a template: ``f"Bearer {token}"``, ``Bearer $TOKEN``, ``<token>``
        value = cred.group(0).rstrip(".)]}")
        if _not_a_secret(value) or value.lower() in _AUTH_SCHEMES:
            continue
        if _DOTTED_RE.fullmatch(value) or (_IDENTIFIER_RE.fullmatch(value) and len(value) < 8):
            continue  # ``Authorization: settings.token`` is code
        if _CONSTANT_RE.fullmatch(value):
            continue  # ``"SCHEMATHESIS_OBJECT_LEVEL_AUTHORIZATION"``: a constant's name
        if kind == "authorization" and b.group("q") is None and "(" in cred.group(0):
            continue  # ``authorization = request.headers.get("Authorization")``
        if kind == "authorization" and b.group("q") is None and not _token_like(value):
            # No scheme and no quotes: a raw HTTP header line, or code (``"Authorization":
            # header``) - only a header line, or a value inside the header's string, counts.
            line_start = _line_start(text, begin)
            in_string = begin > 0 and text[begin - 1] in "\"'" and m.group("close") is None
            if not in_string and _LINE_START.match(text, line_start, begin) is None:
                continue
        out.append(_Span(base + cred.start(), base + cred.start() + len(value), kind))


_BEARER: Final = re.compile(r"bearer[ \t]+(?P<v>[a-z0-9\-._~+/]{16,}=*)(?![a-z0-9\-._~+/=])")


def _scan_bearer(text: str, low: str, out: list[_Span]) -> None:
    """``Bearer <token>`` anywhere (logs, docs, code), for tokens that look like tokens."""
    for m in _BEARER.finditer(low):
        value = text[m.start("v") : m.end("v")]
        if _left_ok(text, m.start()) and _has_digit(value) and any(c.isalpha() for c in value):
            out.append(_Span(m.start("v"), m.end("v"), "bearer-token"))


_COOKIE: Final = re.compile(r"cookie(?:\\?[\"'])?\]?[ \t]*(?P<op>[:=])[ \t]*")
_COOKIE_BODY: Final = re.compile(r"""(?P<q>\\?["'])?[ \t]*(?P<body>[^\r\n"'\\]{0,8192})""")
_COOKIE_PAIR: Final = re.compile(r"[ \t]*(?P<name>[^=;\s]+)[ \t]*=[ \t]*(?P<value>[^;\r\n]*)")


def _cookie_pairs(text: str, start: int, end: int, out: list[_Span], *, first_only: bool) -> None:
    pos = start
    while pos < end:
        m = _COOKIE_PAIR.match(text, pos, end)
        if m is not None:
            v_start, v_end = m.span("value")
            while v_end > v_start and text[v_end - 1] in " \t":
                v_end -= 1
            if not _not_a_secret(text[v_start:v_end].strip('"')):
                out.append(_Span(v_start, v_end, "cookie"))
        semi = text.find(";", pos, end)
        if first_only or semi == -1:
            return
        pos = semi + 1


_COOKIE_HEADER_VALUE: Final = re.compile(
    r"[ \t]*[A-Za-z0-9!#$%&*+\-.^_|~]+=[^;]*(?:;[ \t]*[A-Za-z0-9!#$%&*+\-.^_|~]+(?:=[^;]*)?)*;?"
)


def _scan_cookies(text: str, low: str, out: list[_Span]) -> None:
    """``Cookie: a=1; b=2`` (every value), ``Set-Cookie: sid=...; Path=/`` (the first value),
    as HTTP headers, curl ``-H`` arguments or JSON/YAML ``"cookie": "..."``."""
    covered = 0
    for m in _COOKIE.finditer(low):
        if m.start() < covered:
            continue
        is_set = m.start() >= 4 and low.startswith("set-", m.start() - 4)
        begin = m.start() - 4 if is_set else m.start()
        if not _left_ok(text, begin, _NAME_CHARS):
            continue
        b = _COOKIE_BODY.match(text, m.end())
        if b is None:
            continue
        start, end = b.span("body")
        covered = end
        while end > start and text[end - 1] in " \t":
            end -= 1
        body = text[start:end]
        quoted = b.group("q") is not None
        if m.group("op") == "=" and not quoted:
            continue  # ``cookie = make_cookie(...)`` is code
        line_start = _line_start(text, begin)
        header = quoted or _LINE_START.match(text, line_start, begin) is not None
        if "=" not in body:
            after = _after(text, end)
            if body.endswith((",", ";")):
                after, end, body = body[-1], end - 1, body[:-1]
            if not header or _not_a_secret(body) or _is_prose(body) or _same_name(body, "cookie"):
                continue
            value = _Value(start, end, quoted, after)
            if quoted or not _is_code_reference(text, value, "cookie", "yaml"):
                out.append(_Span(start, end, "cookie"))
            continue
        if _COOKIE_HEADER_VALUE.fullmatch(body) is not None:
            _cookie_pairs(text, start, end, out, first_only=is_set)


# --------------------------------------------------------------------------------------------
# Structure: command-line flags
# --------------------------------------------------------------------------------------------

_FLAG: Final = re.compile(r"-(?P<dash>-?)(?P<name>[A-Za-z][A-Za-z0-9_\-]{0,60})(?P<sep>=|[ \t]+)?")
_FLAG_LEFT: Final = frozenset(" \t\n\r\"'([,=")
_FLAG_WORDS: Final = ("pass", "pwd", "secret", "token", "key", "cred", "auth", "cookie", "user")
_MYSQL: Final = re.compile(
    r"(?:^|[\s/;|&(`'\"])(?:mysql|mysqldump|mysqladmin|mysqlimport|mysqlshow|mysqlcheck|mariadb"
    r"|mariadb-dump)(?:\s|$)"
)
_LOGIN: Final = re.compile(
    r"(?:^|[\s/;|&(`'\"])(?:(?:docker|podman|nerdctl|buildah|skopeo|oras|crane|regctl|helm\s+registry)"
    r"\s+login|sshpass|mongo|mongosh|mongodump|mongorestore|mongoimport|mongoexport|mycli"
    r"|twine\s+(?:upload|register))(?:\s|$)"
)
_REDIS_CLI: Final = re.compile(r"(?:^|[\s/;|&(`'\"])redis-cli(?:\s|$)")
_SQLCMD: Final = re.compile(r"(?:^|[\s/;|&(`'\"])(?:sqlcmd|bcp)(?:\s|$)")
_SMB: Final = re.compile(r"(?:^|[\s/;|&(`'\"])(?:smbclient|rpcclient|smbmap|mount\.cifs)(?:\s|$)")
_CURL: Final = re.compile(r"(?:^|[\s/;|&(`'\"])(?:curl|wget)(?:\s|$)")
_HTTPIE: Final = re.compile(r"(?:^|[\s/;|&(`'\"])(?:http|https|xh)(?:\s|$)")
_GH_SECRET: Final = re.compile(r"(?:^|[\s;|&(`'\"])gh\s+secret\s+set\s")
_AZ_SECRET: Final = re.compile(r"(?:^|[\s;|&(`'\"])az\s+keyvault\s+secret\s+set\s")
_NPM: Final = re.compile(r"(?:^|[\s/;|&(`'\"])(?:npm|pnpm|yarn)(?:\s|$)")
_HTTPIE_BEARER: Final = re.compile(r"(?:--auth-type[ \t]*=?[ \t]*|-A[ \t]+)bearer\b", re.IGNORECASE)
_ECHO_INTO_LOGIN: Final = re.compile(
    r"(?:^|(?<=[\s;&(`'\"]))echo[ \t]+(?:-n[ \t]+)?"
    r"(?P<v>\"[^\"\n]*\"|'[^'\n]*'|[^\s|;&]+)[ \t]*\|[ \t]*"
    r"(?:sudo[ \t]+)?(?:docker|podman|nerdctl|buildah|skopeo|oras|helm[ \t]+registry)[ \t]+login\b"
)
_DOCKER_SECRET_SPEC: Final = re.compile(r"(?:id|src|source|type|env|target|required)=")
_WORD_BEFORE: Final = re.compile(r"([A-Za-z]+)[ \t]+\Z")
_PROGRAM_FLAGS: Final = frozenset({"body", "b", "value", "otp", "bearer", "oauth2-bearer"})
"""Flags whose names say nothing, that hold a secret only for one program (``gh secret set -b``,
``az keyvault secret set --value``, ``npm publish --otp``)."""
_SLUG: Final = re.compile(r"[a-z][a-z._/\-]*")


class _Commands:
    """Where programs are named in one text - each found once, so the flag rules stay linear."""

    __slots__ = ("_found", "_text")

    def __init__(self, text: str) -> None:
        self._text = text
        self._found: dict[re.Pattern[str], list[int]] = {}

    def ran(self, program: re.Pattern[str], pos: int) -> bool:
        """Whether ``program`` is named in the shell command (back to ``;``, ``|``, ``&`` or a
        line break) that ``pos`` is in."""
        starts = self._found.get(program)
        if starts is None:
            starts = self._found[program] = [m.start() for m in program.finditer(self._text)]
        if not starts:
            return False
        floor = max(0, pos - _LOOK_BEHIND)
        segment_start = max(floor, *(self._text.rfind(c, floor, pos) for c in ";|&\n"))
        i = bisect.bisect_left(starts, segment_start)
        return i < len(starts) and starts[i] < pos


def _value_span(text: str, pos: int, kind: str, out: list[_Span]) -> None:
    """The literal value at ``pos`` (quoted or a bare word) as a ``kind`` span."""
    value = _scan_value(text, pos)
    if value is None or value.start == value.end:
        return
    raw = text[value.start : value.end]
    if (raw.startswith("-") and not value.quoted) or _not_a_secret(raw):
        return
    out.append(_Span(value.start, value.end, kind))


def _scan_flags(text: str, out: list[_Span]) -> None:
    cmds = _Commands(text)
    for m in _FLAG.finditer(text):
        start = m.start()
        if start > 0 and text[start - 1] not in _FLAG_LEFT:
            continue
        name, sep, long_flag = m.group("name"), m.group("sep"), m.group("dash") == "-"
        if long_flag or len(name) > 1:
            lname = name.lower()
            relevant = any(w in lname for w in _FLAG_WORDS) or lname in _PROGRAM_FLAGS
            if not relevant and not (name[0] in "pu" and not long_flag):
                continue
        if long_flag:
            _long_flag(text, m, name, sep, cmds, out)
        else:
            _short_flag(text, m, name, sep, cmds, out)


def _long_flag(
    text: str, m: re.Match[str], name: str, sep: str | None, cmds: _Commands, out: list[_Span]
) -> None:
    lname = name.lower()
    pos = m.start()
    if lname == "password-stdin":  # ``echo 'x' | docker login --password-stdin``
        line_start = _line_start(text, m.start())
        echoes = list(_ECHO_INTO_LOGIN.finditer(text, line_start, m.start()))
        if echoes:
            _value_span(text, echoes[-1].start("v"), "password", out)
        return
    if sep is None:
        return
    if lname in {"user", "proxy-user"}:
        if cmds.ran(_CURL, pos):
            _user_password(text, m.end(), out)
        return
    if lname in {"bearer", "oauth2-bearer"} and (cmds.ran(_CURL, pos) or cmds.ran(_HTTPIE, pos)):
        _value_span(text, m.end(), "bearer-token", out)  # ``curl --oauth2-bearer TOKEN``
        return
    if lname == "auth" and cmds.ran(_HTTPIE, pos):
        _user_password(text, m.end(), out)
        return
    if lname == "cookie":
        if cmds.ran(_CURL, pos):
            _curl_cookie(text, m.end(), out)
        return
    if lname == "body":
        if cmds.ran(_GH_SECRET, pos):
            _value_span(text, m.end(), "generic-secret", out)
        return
    if lname == "value":
        if cmds.ran(_AZ_SECRET, pos):
            _value_span(text, m.end(), "generic-secret", out)
        return
    if lname == "otp":
        if cmds.ran(_NPM, pos):
            _value_span(text, m.end(), "generic-secret", out)
        return
    _named_flag(text, m, name, out)


def _named_flag(text: str, m: re.Match[str], name: str, out: list[_Span]) -> None:
    """``--password x``, ``--token=x``, ``--api-key x``, ``--client-secret x``, ``-password x``."""
    word_before = _WORD_BEFORE.search(text, max(0, m.start() - 20), m.start())
    if word_before is not None and word_before.group(1).lower() in _STOPWORDS:
        return  # prose: ``use the --password option``
    kind = secret_name_kind(name)
    if kind is None or kind in {"cookie", "authorization"}:
        return
    value = _scan_value(text, m.end())
    if value is None or value.start == value.end:
        return
    raw = text[value.start : value.end]
    if not value.quoted and raw.startswith("-"):
        return
    if name.lower() == "secret" and _SLUG.fullmatch(raw):
        return  # ``gcloud ... --secret=db-pass`` names a secret, does not hold one
    if name.lower().endswith("auth") and ":" not in raw and not _token_like(raw):
        return  # ``--auth basic``: a mode; credentials look like ``user:pass`` or a token
    if _not_a_secret(raw) or _DOCKER_SECRET_SPEC.match(raw):
        return  # ``docker build --secret id=x,src=file`` names a secret, does not hold one
    if raw.startswith("pass:"):  # openssl ``-passin pass:...``
        if len(raw) > 5:
            out.append(_Span(value.start + 5, value.end, "password"))
        return
    if raw.startswith(("env:", "file:", "fd:", "stdin", "fileb:")) or _URL_VALUE.match(raw):
        return
    out.append(
        _Span(value.start, value.end, "password" if kind == "password" else "generic-secret")
    )


def _short_flag(
    text: str, m: re.Match[str], name: str, sep: str | None, cmds: _Commands, out: list[_Span]
) -> None:
    """Short flags that carry a password only for some programs: ``mysql -pSECRET``,
    ``docker login -p``, ``sshpass -p``, ``redis-cli -a``, ``sqlcmd -P``, ``curl -u u:p``,
    ``smbclient -U user%pass``, ``curl -b 'session=...'``, openssl ``-pass pass:...``."""
    pos = m.start()
    flag = name[0]
    value_at = m.start() + 2
    if name in {"pass", "passin", "passout", "password"}:
        if sep is not None:
            _named_flag(text, m, "password", out)
        return
    if flag == "p" and (len(name) > 1 or sep is None) and cmds.ran(_MYSQL, pos):
        quote = text[pos - 1] if pos else ""
        end = text.find(quote, value_at) if quote in {"'", '"'} else -1
        if end > value_at and not _not_a_secret(text[value_at:end]):  # ``'-pmy pass'``
            out.append(_Span(value_at, end, "password"))
        else:
            _value_span(text, value_at, "password", out)
        return
    if flag == "u" and len(name) > 1 and sep is None and cmds.ran(_CURL, pos):
        _user_password(text, value_at, out)  # ``curl -ubob:pass``
        return
    if len(name) > 1:
        if len(name) >= 3 and sep is not None:
            _named_flag(text, m, name, out)  # Go/Java style: ``-storepass x``, ``-token x``
        return
    if sep is not None and "=" in sep:
        return
    if sep is not None:
        value_at = m.end()
    if flag == "p":
        if cmds.ran(_LOGIN, pos):
            _value_span(text, value_at, "password", out)
    elif flag == "a":
        if cmds.ran(_REDIS_CLI, pos):
            _value_span(text, value_at, "password", out)
        elif cmds.ran(_HTTPIE, pos):
            line = text[_line_start(text, pos) : text.find("\n", pos) % (len(text) + 1)]
            if _HTTPIE_BEARER.search(line):
                _value_span(text, value_at, "bearer-token", out)  # ``-A bearer -a TOKEN``
            else:
                _user_password(text, value_at, out)
    elif flag == "P":
        if cmds.ran(_SQLCMD, pos):
            _value_span(text, value_at, "password", out)
    elif flag == "u":
        if cmds.ran(_CURL, pos):
            _user_password(text, value_at, out)
    elif flag == "U":
        if cmds.ran(_SMB, pos):
            _user_password(text, value_at, out, separator="%")
    elif flag == "b" and cmds.ran(_CURL, pos):
        _curl_cookie(text, value_at, out)
    elif flag == "b" and cmds.ran(_GH_SECRET, pos):
        _value_span(text, value_at, "generic-secret", out)


def _user_password(text: str, pos: int, out: list[_Span], *, separator: str = ":") -> None:
    value = _scan_value(text, pos)
    if value is None:
        return
    colon = text.find(separator, value.start, value.end)
    if colon == -1:
        return  # ``curl -u user`` prompts for the password
    pw = text[colon + 1 : value.end]
    if not _not_a_positional_secret(pw):
        out.append(_Span(colon + 1, value.end, "basic-auth" if separator == ":" else "password"))


def _curl_cookie(text: str, pos: int, out: list[_Span]) -> None:
    value = _scan_value(text, pos)
    if value is None or "=" not in text[value.start : value.end]:
        return  # a cookie-jar file name
    _cookie_pairs(text, value.start, value.end, out, first_only=False)


# --------------------------------------------------------------------------------------------
# Secret-named assignments
# --------------------------------------------------------------------------------------------

_ASSIGNMENT_OP: Final = (
    r"(?P<rest>[a-z0-9_.\-]{0,64})(?P<close>\\?[\"'])?\]?[ \t]*"
    r"(?P<op>:=|\?=|=>|=(?!=)|:(?![:/\\])|>|,(?=[ \t]*[\"']))[ \t]*"
)
_ASSIGNMENT: Final = re.compile(r"(?:pass|pwd|secret|token|key|cred|auth)" + _ASSIGNMENT_OP)
# Rarer secret words get their own scans, run only when the word occurs (fewer alternatives
# keep the main scan fast).
_RARE_ASSIGNMENTS: Final = (
    ("sig=", re.compile(r"sig" + _ASSIGNMENT_OP)),
    ("dockerc", re.compile(r"dockerc" + _ASSIGNMENT_OP)),
)
_PASSWORD_SPACE: Final = re.compile(r"password[ \t]+(?=\S)")
_LINE_START: Final = re.compile(r"[ \t]*(?:-[ \t]+)?(?:\\?[\"'])?\Z")
_TYPE_THEN_ASSIGN: Final = re.compile(r"[^=\n,()]{0,200}?(?<![=!<>])=(?![=>])[ \t]*")
_GETENV_BEFORE: Final = re.compile(
    r"(?:getenv|environ\.get|env\.get|ENV\.fetch|Getenv|GetEnv\w*|getenv\w*|config\.get"
    r"|setProperty|config\.put|\.put|\.set|\.setenv|putenv)\([ \t]*\Z"
)
_NETRC_BEFORE: Final = re.compile(
    r"(?:^|\s)(?:machine\s+\S+|default)(?:\s+(?:login|account|port)\s+\S+)*\s+\Z"
)
_SQL_CONTEXT: Final = re.compile(r"\b(?:with|user|role|login|alter|create|identified)\b")
_ASSIGNMENT_START: Final = re.compile(r"[A-Za-z_][\w.\-]*[ \t]*=(?=[^=])")
_URL_VALUE: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]{0,20}://")
_AWS_SECRET_VALUE: Final = re.compile(r"[A-Za-z0-9/+]{40}")
_KIND_BY_NAME: Final = {
    "accountkey": "azure-storage-key",
    "sharedaccesskey": "azure-shared-access-key",
}


def _scan_assignments(text: str, low: str, out: list[_Span]) -> None:
    _assignments(text, low, _ASSIGNMENT, out)
    for word, regex in _RARE_ASSIGNMENTS:
        if word in low:
            _assignments(text, low, regex, out)
    if "password" in low:
        for m in _PASSWORD_SPACE.finditer(low):
            _password_space_value(text, low, m, out)


def _assignments(text: str, low: str, regex: re.Pattern[str], out: list[_Span]) -> None:
    covered = 0  # end of the last value redacted: matches inside it add nothing
    for m in regex.finditer(low):
        if m.start() < covered:
            continue
        found = len(out)
        name_start = m.start()
        limit = max(0, name_start - 128)
        while name_start > limit and text[name_start - 1] in _NAME_CHARS:
            name_start -= 1
        name = text[name_start : m.end("rest")].lstrip("-.")
        if name:
            _assignment(text, low, m, name_start, name, out)
        if len(out) > found:
            covered = out[-1].end


def _assignment(
    text: str, low: str, m: re.Match[str], name_start: int, name: str, out: list[_Span]
) -> None:
    op = m.group("op")
    lname = name.lower()
    if lname == "sig":  # an Azure shared access signature in a URL query
        if name_start > 0 and text[name_start - 1] in "?&;" and op == "=":
            _value_span(text, m.end(), "azure-sas", out)
        return
    if text[name_start] == "-":
        return  # ``--password=x``: a flag, the flag rule decides
    if lname == "key" and op == "=" and name_start > 0 and text[name_start - 1] in "?&;":
        value = _scan_value(text, m.end())  # ``?key=AIza...``: an API key; ``?key=name`` is not
        if value is not None and _token_like(text[value.start : value.end]):
            _value_span(text, m.end(), "generic-secret", out)
        return
    if op == ":" and m.group("close") is None and m.start("op") > m.end("rest"):
        return  # ``pass :data:`x``` - YAML keys do not have a space before the colon
    if op == ":" and m.end("op") == m.end() and text[m.end() : m.end() + 1] not in {'"', "'", "\\"}:
        return  # ``arn:...:secret:name``, ``:token:`x```: not a mapping (YAML needs the space)
    kind = secret_name_kind(name)
    if kind is None or kind in {"cookie", "authorization"} or (name == "passwd" and op == ":"):
        return  # headers have their own rules; ``passwd:`` is nsswitch's user database
    if op == ">":
        _xml_element(text, m, name_start, name, kind, out)
        return
    if op == ",":
        if _GETENV_BEFORE.search(text, max(0, name_start - 40), name_start - 1):
            value = _scan_value(text, m.end())
            if value is not None and value.quoted:
                _literal(text, value, "generic-secret", out)
        return
    if _DOC_FIELD.search(text, max(0, name_start - 60), name_start):
        return  # ``:param password: the password to use``
    line_start = _line_start(text, name_start)
    at_line_start = _LINE_START.match(text, line_start, name_start) is not None
    before = text[name_start - 1] if name_start else ""
    if before in {"?", "&", ";"}:
        mode = "query"
    elif op == "=" and _is_env_name(name) and text[m.end("rest") : m.end()][:1] == "=":
        mode = "env"
    elif op == ":" and at_line_start and not (before in {'"', "'"} and m.group("close") is None):
        mode = "yaml"
    else:
        mode = "code"
    if before in {'"', "'"} and m.group("close") is None and op == ":":
        # ``"X-Api-Key: value"``: a header inside a string; ``"passwd:shell"`` is not one
        if text[m.end("op") : m.end("op") + 1] not in {" ", "\t"}:
            return
        mode = "query"
    value = _scan_value(text, m.end(), line_mode=mode == "yaml")
    if value is None or value.start == value.end:
        return
    raw = text[value.start : value.end]
    if not value.quoted and op == ":" and _is_annotation(raw, value.after):
        assign = _TYPE_THEN_ASSIGN.match(text, m.end())  # ``token: str = "..."``
        if assign is None:
            return
        value = _scan_value(text, assign.end())
        if value is None or value.start == value.end:
            return
        mode = "code"
    if value.quoted and mode == "env" and value.start > 0 and text[value.start - 1] == "`":
        return  # ``KEY=`cmd```: a command substitution, what it prints is not in the text
    if value.quoted:
        content = text[value.start : value.end]
        if value.after in {"+", "%", "|"} or _same_name(content, name):
            return  # a fragment (``auth = "Basic " + encoded``), a union or a label
        if content.lstrip()[:1] in {",", ";", ")", "]", "}", "+"}:
            return  # the name was inside a string: ``("Auth: ", Style(...))``
        if _SNAKE_NAME_RE.fullmatch(content) and secret_name_kind(content) is not None:
            return  # the name of a secret: ``SECRET_KEY = 'aws_secret_access_key'``
        if _ASSIGNMENT_START.match(content):
            return  # code (``a secret: `password=password```); inner assignments are scanned
    elif _is_code_reference(text, value, name, mode):
        return
    raw = text[value.start : value.end]
    if _not_a_secret(raw) or _not_a_secret(raw.strip()) or _is_prose(raw):
        return
    if _URL_VALUE.match(raw):
        return  # a URL: the URL rule redacts the credentials it carries
    if lname == "pwd" and _looks_like_path(raw):
        return
    out_kind = _KIND_BY_NAME.get(lname)
    if out_kind is None and _AWS_SECRET_VALUE.fullmatch(raw) and _aws_secret_shape(raw):
        words = {w.upper() for w in _WORD_RE.findall(name)}
        if words & {"SECRET", "SECRETACCESSKEY", "SECRETKEY"}:
            out_kind = "aws-secret-key"
    if out_kind is None:
        if mode == "env":
            out_kind = "env-secret"
        elif kind == "password":
            out_kind = "password"
        else:
            out_kind = "generic-secret"
    out.append(_Span(value.start, value.end, out_kind))


def _literal(text: str, value: _Value, kind: str, out: list[_Span]) -> None:
    if value.end > value.start and not _not_a_secret(text[value.start : value.end]):
        out.append(_Span(value.start, value.end, kind))


def _is_env_name(name: str) -> bool:
    return name.upper() == name and any(c.isalpha() for c in name) and "." not in name


def _xml_element(
    text: str, m: re.Match[str], name_start: int, name: str, kind: str, out: list[_Span]
) -> None:
    """``<password>...</password>`` (Maven settings.xml, app.config...)."""
    if name_start == 0 or text[name_start - 1] != "<" or m.group("close") is not None:
        return
    if name.lower().endswith("auth"):
        return  # ``<auth>EXTERNAL</auth>`` (D-Bus) names a mechanism
    closing = f"</{name}>"
    end = text.find(closing, m.end(), m.end() + 1024)
    if end == -1 or "\n" in text[m.end() : end]:
        return
    start = m.end()
    value = _Value(start, end, True, "")
    _literal(text, value, "password" if kind == "password" else "generic-secret", out)


def _password_space_value(text: str, low: str, m: re.Match[str], out: list[_Span]) -> None:
    """``PASSWORD 'x'`` in SQL (``CREATE USER u WITH PASSWORD 'x'``) and ``password x`` in a
    ``.netrc`` (``machine host login user password x``)."""
    if not _left_ok(text, m.start(), _TOKEN_CHARS):
        return
    pos = m.end()
    if text[pos] in "'\"":
        if _SQL_CONTEXT.search(low, max(0, m.start() - 80), m.start()):
            value = _scan_value(text, pos)
            if value is not None:
                _literal(text, value, "password", out)
        return
    if _NETRC_BEFORE.search(low, max(0, m.start() - 300), m.start()):
        end = pos
        while end < len(text) and not text[end].isspace():
            end += 1
        _literal(text, _Value(pos, end, False, ""), "password", out)


_IDENTIFIED_BY: Final = re.compile(r"identified[ \t]+(?:with[ \t]+\w+[ \t]+)?by[ \t]+(?=['\"])")
_SQLPLUS: Final = re.compile(
    r"(?:jdbc:oracle:thin:|sqlplus[ \t]+(?:-\w+[ \t]+)*)[a-z0-9_$#]+/(?P<v>[^@\s/\"']+)(?=@|\s|$)"
)
_HEROKU: Final = re.compile(
    r"heroku[a-z0-9_\-. ]{0,40}?(?:api[_\- ]?key|token|auth|password)(?:\\?[\"'])?"
    r"[ \t]*[:= \t][ \t]*(?:\\?[\"'])?(?P<v>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}"
    r"-[0-9a-f]{12})"
)
_DOCKERFILE_ENV: Final = re.compile(r"env[ \t]+(?P<name>[a-z_][a-z0-9_]*)[ \t]+(?=[^\s=])")
_CONFIG_SET: Final = re.compile(
    r"config(?P<ure>ure)?[ \t]+(?P<set>set[ \t]+|--(?:global|local|system)[ \t]+)?"
    r"(?P<name>[^\s=\"'-][^\s=\"']*)[ \t]+(?=[^\s-])"
)
_CONFIG_PROGRAM: Final = re.compile(r"(?P<program>npm|yarn|pnpm|poetry|git|aws)[ \t]+\Z")


def _scan_rare(text: str, low: str, out: list[_Span]) -> None:
    """Rules whose keyword rarely occurs: a substring test decides whether to run them."""
    if "identified" in low:
        for m in _IDENTIFIED_BY.finditer(low):
            if not _SQL_CONTEXT.search(low, max(0, m.start() - 80), m.start()):
                continue  # ``a library identified by 'name'``
            value = _scan_value(text, m.end())
            if value is not None:
                _literal(text, value, "password", out)
    if "sqlplus" in low or "jdbc:oracle" in low:
        for m in _SQLPLUS.finditer(low):
            _literal(text, _Value(m.start("v"), m.end("v"), False, ""), "password", out)
    if "heroku" in low:
        for m in _HEROKU.finditer(low):
            out.append(_Span(m.start("v"), m.end("v"), "heroku-key"))
    if "config" in low:
        for m in _CONFIG_SET.finditer(low):
            program = _CONFIG_PROGRAM.search(low, max(0, m.start() - 12), m.start())
            if program is None:
                continue
            if program.group("program") in {"npm", "yarn", "pnpm", "aws"} and not m.group("set"):
                continue
            name = text[m.start("name") : m.end("name")]
            kind = secret_name_kind(name)
            if kind is None:
                continue
            value = _scan_value(text, m.end())
            if value is None:
                continue
            raw = text[value.start : value.end]
            out_kind = "password" if kind == "password" else "generic-secret"
            if _aws_secret_shape(raw) and "secret" in name.lower():
                out_kind = "aws-secret-key"
            _literal(text, value, out_kind, out)
    if "env " in low:  # Dockerfile ``ENV NAME value`` (the legacy form without ``=``)
        for m in _DOCKERFILE_ENV.finditer(low):
            indent = text[_line_start(text, m.start()) : m.start()]
            if indent.strip(" \t"):
                continue  # not at the start of a line
            if secret_name_kind(text[m.start("name") : m.end("name")]) is not None:
                value = _scan_value(text, m.end(), line_mode=True)
                if value is not None:
                    _literal(text, value, "env-secret", out)
    if "authorization" in low:
        _scan_authorization(text, low, out)
    if "bearer" in low:
        _scan_bearer(text, low, out)
    if "cookie" in low:
        _scan_cookies(text, low, out)


# --------------------------------------------------------------------------------------------
# Putting it together
# --------------------------------------------------------------------------------------------


def _lower(text: str) -> str:
    """``text.lower()`` with the same length, so offsets in it are offsets in ``text``."""
    low = text.lower()
    if len(low) == len(text):
        return low
    # U+0130 lowers to two code points; map characters one by one instead.
    return "".join(c.lower() if len(c.lower()) == 1 else c for c in text)


class _SpanCache:
    """What ``_scan_spans`` found in texts seen recently. The scan is a pure function of the
    text and the rule set, and most strings of a hook request come again: the object keys,
    the session id, cwd and transcript path of every event, the command in the call, in its
    operations and in its result. The cache is keyed by a keyed BLAKE2b digest of the text
    (a key of its own per process), so it holds no secret text, only offsets and kinds; it
    is emptied when the rule set changes and when it is full (bounded memory)."""

    MAX_TEXT: Final = 2048
    """Longer texts (tool output) seldom repeat: scanned every time, not remembered."""
    MAX_ENTRIES: Final = 16384

    def __init__(self) -> None:
        self._key = secrets.token_bytes(16)
        self._entries: dict[bytes, tuple[_Span, ...]] = {}
        self._rules: data_rules.RuleSet | None = None

    def spans(self, text: str) -> list[_Span]:
        if len(text) > self.MAX_TEXT:
            return _scan_spans(text)
        rules = data_rules.rule_set()
        if rules is not self._rules:
            self._entries = {}
            self._rules = rules
        digest = hashlib.blake2b(
            text.encode("utf-8", "surrogatepass"), digest_size=16, key=self._key
        ).digest()
        entries = self._entries
        known = entries.get(digest)
        if known is not None:
            return list(known)
        found = _scan_spans(text)
        if len(entries) >= self.MAX_ENTRIES:
            entries.clear()
        entries[digest] = tuple(found)
        return found


_span_cache = _SpanCache()


def _find_spans(text: str) -> list[_Span]:
    """Every secret in ``text`` as sorted, non-overlapping spans, each named by its best kind."""
    if len(text) < 6:
        return []
    return _span_cache.spans(text)


def _scan_spans(text: str) -> list[_Span]:
    """``_find_spans`` without the cache: every scanner over ``text``."""
    low = _lower(text)
    found: list[_Span] = []
    _scan_formats(text, low, found)
    _scan_private_keys(text, low, found)
    _scan_urls(text, found)
    _scan_flags(text, found)
    _scan_assignments(text, low, found)
    _scan_rare(text, low, found)
    found = [s for s in found if s.end > s.start]
    data = data_rules.scan(text, low)
    if data:
        found.extend(_outside(found, [_Span(*span) for span in data]))
    if not found:
        return []
    if "[redacted:" in low:
        found = _outside_tags(text, found)
    return _merge(found) if found else []


def _outside(found: list[_Span], extra: list[_Span]) -> list[_Span]:
    """The ``extra`` spans that overlap none of ``found``: where trailguard's own rules saw a
    secret, their span and kind stand (they keep ``user`` in ``user:password``, the scheme of
    an ``Authorization`` header); the data rules add what they missed."""
    if not found:
        return extra
    ordered = sorted((s.start, s.end) for s in found)
    starts = [start for start, _ in ordered]
    reach: list[int] = []
    furthest = 0
    for _, end in ordered:
        furthest = max(furthest, end)
        reach.append(furthest)
    kept = []
    for span in extra:
        i = bisect.bisect_left(starts, span.end)  # spans starting before this one ends
        if i == 0 or reach[i - 1] <= span.start:
            kept.append(span)
    return kept


def _outside_tags(text: str, candidates: list[_Span]) -> list[_Span]:
    """Candidates minus existing redaction tags, so redacting twice changes nothing more."""
    tags = [m.span() for m in REDACTION_TAG_RE.finditer(text)]
    result: list[_Span] = []
    for cand in candidates:
        pieces = [(cand.start, cand.end)]
        for t_start, t_end in tags:
            if t_end <= cand.start or t_start >= cand.end:
                continue
            remaining: list[tuple[int, int]] = []
            for p_start, p_end in pieces:
                if t_end <= p_start or t_start >= p_end:
                    remaining.append((p_start, p_end))
                    continue
                if p_start < t_start:
                    remaining.append((p_start, t_start))
                if t_end < p_end:
                    remaining.append((t_end, p_end))
            pieces = remaining
        for p_start, p_end in pieces:
            piece = text[p_start:p_end].strip(" \t\"',;:")
            if len(piece) >= 4 and any(c.isalnum() for c in piece):
                result.append(_Span(p_start, p_end, cand.kind))
    return result


def _merge(candidates: list[_Span]) -> list[_Span]:
    """Overlapping candidates become one span (their union) named by the most specific kind."""
    candidates.sort(key=lambda s: (s.start, -s.end))
    merged: list[_Span] = []
    group = [candidates[0]]
    end = candidates[0].end
    for span in candidates[1:]:
        if span.start < end:
            group.append(span)
            end = max(end, span.end)
            continue
        merged.append(_Span(group[0].start, end, _best_kind(group)))
        group, end = [span], span.end
    merged.append(_Span(group[0].start, end, _best_kind(group)))
    return merged


def _glued(text: str, span: _Span) -> bool:
    """Whether a span touches a token character (no separator between it and its neighbour)."""
    return (span.start > 0 and text[span.start - 1] in _TOKEN_CHARS) or (
        span.end < len(text) and text[span.end] in _TOKEN_CHARS
    )


def _to_original(found: list[_Span], placed: list[tuple[int, int, int]]) -> list[_Span]:
    """Spans found in rendered text, outside its tags, as offsets in the original text."""
    result: list[_Span] = []
    for span in found:
        shift = 0
        for tag_start, tag_end, replaced in placed:
            if tag_end <= span.start:
                shift += (tag_end - tag_start) - replaced
            elif tag_start < span.end:
                break  # overlaps a tag: already redacted
        else:
            result.append(_Span(span.start - shift, span.end - shift, span.kind))
    return result


def _priority(kind: str) -> int:
    if kind in _PRIORITY:
        return _PRIORITY[kind]
    return _DATA_PRIORITY if kind in _data_kinds() else _FORMAT_PRIORITY


@functools.cache
def _data_kinds() -> frozenset[str]:
    return frozenset(rule.kind for rule in data_rules.rule_set().rules)


def _best_kind(group: list[_Span]) -> str:
    best = max(group, key=lambda s: (_priority(s.kind), s.end - s.start))
    return best.kind


_STRUCTURAL_FIELDS: Final = frozenset(
    {
        "event_type",
        "event_id",
        "seq",
        "timestamp",
        "observed_at",
        "source",
        "policy_result",
        "policy_version",
        "output_sha256",
        "input_sha256",
    }
)
"""Event fields the redactor never rewrites: identifiers, times and hashes the gateway made."""


class Redactor:
    """Replaces secrets in text and JSON values with ``[REDACTED:<kind>:<keyed hash>]``.

    ``key`` keys the HMAC-SHA256 whose first 8 hex chars tag each secret; the gateway derives it
    from its data directory, so tags correlate within one deployment and nowhere else.
    """

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, bytes | bytearray) or not key:
            raise TypeError("the redaction key must be non-empty bytes")
        self._key = bytes(key)

    def __repr__(self) -> str:
        return "Redactor(key=<hidden>)"

    def tag(self, kind: str, secret: str) -> str:
        """The text that replaces ``secret``."""
        data = secret.encode("utf-8", "surrogatepass")
        digest = hmac.new(self._key, data, hashlib.sha256).hexdigest()
        return f"[REDACTED:{kind}:{digest[:8]}]"

    def redact_text(self, text: str) -> tuple[str, list[Finding]]:
        """``text`` with every secret replaced, and where each one was (offsets in ``text``)."""
        spans = _find_spans(text)
        if not spans:
            return text, []
        out, placed = self._render(text, spans)
        # A secret glued to another one (``...KEY0000-----BEGIN...``) only stands apart once its
        # neighbour is a tag: look again until nothing new turns up, so that redacting the
        # output finds nothing more. Rare - separators normally surround secrets.
        # Likewise a data rule's match may reach over one secret to the next (``curl ... -u a:b
        # ... curl -u a:b``): look again when one fired.
        for _ in range(3):
            data_fired = any(span.kind in _data_kinds() for span in spans)
            if not data_fired and not any(_glued(text, span) for span in spans):
                break
            extra = _to_original(_find_spans(out), placed)
            if not extra:
                break
            spans = _merge(spans + extra)
            out, placed = self._render(text, spans)
        return out, [Finding(span.kind, span.start, span.end) for span in spans]

    def _render(self, text: str, spans: list[_Span]) -> tuple[str, list[tuple[int, int, int]]]:
        """The text with each span replaced by its tag, and where each tag landed
        (``(start, end, length of what it replaced)``)."""
        parts: list[str] = []
        placed: list[tuple[int, int, int]] = []
        pos = out_len = 0
        for span in spans:
            before = text[pos : span.start]
            tag = self.tag(span.kind, text[span.start : span.end])
            parts += (before, tag)
            out_len += len(before)
            placed.append((out_len, out_len + len(tag), span.end - span.start))
            out_len += len(tag)
            pos = span.end
        parts.append(text[pos:])
        return "".join(parts), placed

    def redact_event(self, event: Any) -> Any:
        """``event`` (a trailguard.events model) with every secret in its agent-controlled
        fields replaced by a tag; writer-owned events (checkpoints, gateway start and stop)
        and structural fields (ids, times, hashes, policy versions) are left as they are.

        A secret found in one field is also replaced wherever else the event repeats it: the
        classifier copies pieces of a command into ``operations`` (a redirect target, an
        argument) where they stand without the name that made them a secret."""
        return self.redact_events([event])[0]

    def redact_events(self, events: list[Any]) -> list[Any]:
        """:meth:`redact_event` for events made from one request (a tool call and its
        ``infra_operation`` events): a secret found in any of them is replaced in all."""
        found: dict[str, str] = {}
        first = [self._redact_event(event, found) for event in events]
        known: dict[str, str] = {}
        for secret, kind in found.items():
            if len(secret) >= _ECHO_MIN:
                known[secret] = kind
            for part in _ECHO_PART.findall(secret):  # ``id|token`` split by a shell parser
                known.setdefault(part, kind)
        if not known:
            return first
        echo = re.compile("|".join(re.escape(s) for s in sorted(known, key=len, reverse=True)))
        return [self._redact_echoes(event, echo, known) for event in first]

    def _redact_event(self, event: Any, found: dict[str, str]) -> Any:
        from trailguard.events import Checkpoint, GatewayStart, GatewayStop

        if isinstance(event, Checkpoint | GatewayStart | GatewayStop):
            return event
        data = event.model_dump()
        changed: dict[str, Any] = {}
        for name, value in data.items():
            if name in _STRUCTURAL_FIELDS or value is None or isinstance(value, bool | int | float):
                continue
            findings: list[Finding] = []
            redacted = self._walk(value, "", None, findings, None, found)
            if findings:
                changed[name] = redacted
        if not changed:
            return event
        return type(event).model_validate({**data, **changed})

    def _redact_echoes(self, event: Any, echo: re.Pattern[str], known: dict[str, str]) -> Any:
        from trailguard.events import Checkpoint, GatewayStart, GatewayStop

        if isinstance(event, Checkpoint | GatewayStart | GatewayStop):
            return event
        data = event.model_dump()
        changed: dict[str, Any] = {}

        def replace(text: str) -> str:
            tags = [m.span() for m in REDACTION_TAG_RE.finditer(text)]

            def one(m: re.Match[str]) -> str:
                if any(t0 <= m.start() < t1 for t0, t1 in tags):
                    return m.group(0)  # inside a tag's hash
                return self.tag(known[m.group(0)], m.group(0))

            text = echo.sub(one, text) if echo.search(text) else text
            return _cut_echoes(text, known, self.tag) if _CUT_MARK.search(text) else text

        def walk(value: Any) -> Any:
            if isinstance(value, str):
                # A secret cut short where an excerpt says so (``…``), or where a field's cap
                # fell inside it (the field's end): neither is in its format any more.
                return self._redact_cut_tail(replace(value), known)
            if isinstance(value, Mapping):
                return {replace(k) if isinstance(k, str) else k: walk(v) for k, v in value.items()}
            if isinstance(value, list | tuple):
                items = [walk(item) for item in value]
                return items if isinstance(value, list) else tuple(items)
            return value

        for name, value in data.items():
            if name in _STRUCTURAL_FIELDS or value is None or isinstance(value, bool | int | float):
                continue
            new = walk(value)
            if new != value:
                changed[name] = new
        if not changed:
            return event
        return type(event).model_validate({**data, **changed})

    def _redact_cut_tail(self, text: str, known: dict[str, str]) -> str:
        """``text`` whose end is the start of a known secret (a field capped in the middle of
        one: ``...PASSWORD 'FAKEabc``) with that start replaced by the secret's tag."""
        if not text or REDACTION_TAG_RE.search(text[-_TAG_TAIL:]) is not None:
            return text
        for secret, kind in known.items():
            for n in range(min(len(secret) - 1, len(text) - 1), _CUT_MIN - 1, -1):
                start = secret[:n]
                if text.endswith(start) and not text[-n - 1].isalnum():
                    if start.isalpha() and start.islower():
                        break  # a word (``origin master``), not the start of a credential
                    return text[:-n] + self.tag(kind, secret)
        return text

    def redact_value(self, value: Any) -> tuple[Any, list[Finding]]:
        """A copy of a JSON-like value (dicts, lists, strings, numbers...) with secrets redacted.

        Strings are redacted as text. Every string or number under a secret-named key
        (``password``, ``api_key``, ``Authorization``, ``client_secret``... - see
        :func:`secret_name_kind`) is redacted whatever it looks like, except the empty string
        and text that already is a redaction tag; booleans and null are kept. Dictionary keys
        are redacted as text too. Each Finding's ``path`` is the JSON pointer of its string.
        """
        findings: list[Finding] = []
        return self._walk(value, "", None, findings), findings

    def _walk(
        self,
        value: Any,
        path: str,
        secret_kind: str | None,
        out: list[Finding],
        name: Any = None,
        found: dict[str, str] | None = None,
    ) -> Any:
        if isinstance(value, str):
            if secret_kind is not None:
                before = len(out)
                whole = self._redact_whole(value, path, secret_kind, out, name)
                if found is not None and len(out) > before:
                    f = out[-1]
                    found[value[f.start : f.end]] = f.kind
                return whole
            redacted, findings = self.redact_text(value)
            out.extend(Finding(f.kind, f.start, f.end, path) for f in findings)
            if found is not None:
                for f in findings:
                    found[value[f.start : f.end]] = f.kind
            return redacted
        if isinstance(value, bool) or value is None:
            return value
        if isinstance(value, int | float):
            if secret_kind is None:
                return value
            return self._redact_whole(repr(value), path, secret_kind, out, name)  # no echo
        if isinstance(value, Mapping):
            result: dict[Any, Any] = {}
            for key, item in value.items():
                new_key, child_kind = key, secret_kind
                if isinstance(key, str):
                    new_key, key_findings = self.redact_text(key)
                    out.extend(Finding(f.kind, f.start, f.end, path) for f in key_findings)
                    if found is not None:
                        for f in key_findings:
                            found[key[f.start : f.end]] = f.kind
                    if child_kind is None:
                        child_kind = _VALUE_KIND.get(secret_name_kind(key) or "")
                child_path = f"{path}/{_pointer_escape(str(new_key))}"
                result[new_key] = self._walk(item, child_path, child_kind, out, key, found)
            return result
        if isinstance(value, list | tuple):
            items = [
                self._walk(item, f"{path}/{i}", secret_kind, out, name, found)
                for i, item in enumerate(value)
            ]
            return items if isinstance(value, list) else tuple(items)
        return value

    def _redact_whole(
        self, value: str, path: str, kind: str, out: list[Finding], name: Any = None
    ) -> str:
        if not value or REDACTION_TAG_RE.fullmatch(value):
            return value
        if kind == "authorization":  # keep the scheme: ``Bearer [REDACTED:bearer-token:...]``
            parts = value.split(None, 1)
            if len(parts) == 2 and parts[0].lower() in _AUTH_SCHEMES:
                start = len(value) - len(parts[1])
                if REDACTION_TAG_RE.fullmatch(value[start:]):
                    return value
                sub_kind = _AUTH_SCHEMES[parts[0].lower()]
                out.append(Finding(sub_kind, start, len(value), path))
                return value[:start] + self.tag(sub_kind, value[start:])
        # A value that is one recognised credential is named by its format; the key gives
        # context (``aws_secret_access_key``) to formats that need one.
        prefix = f"{name}=" if isinstance(name, str) and _ENV_KEY_RE.fullmatch(name) else ""
        for span in _find_spans(prefix + value):
            if span.start == len(prefix) and span.end == len(prefix) + len(value):
                if _priority(span.kind) > _PRIORITY["password"]:
                    kind = span.kind
                break
        out.append(Finding(kind, 0, len(value), path))
        return self.tag(kind, value)


_CUT_MARK: Final = re.compile(r"\u2026|\.\.\.")
"""Where an excerpt was cut short (``parse error in command: <first 60 characters>…``)."""


def _cut_echoes(text: str, known: dict[str, str], tag: Callable[[str, str], str]) -> str:
    """``text`` with every known secret cut short by an excerpt (its first characters right
    before ``…`` or ``...``) replaced by the whole secret's tag: a prefix of a secret is no
    longer in its format, so no rule would find it again."""
    secrets = sorted(known, key=len, reverse=True)
    for mark in reversed(list(_CUT_MARK.finditer(text))):
        end = mark.start()
        for secret in secrets:
            head = secret[:_ECHO_MIN]
            at = text.find(head, max(0, end - len(secret) + 1), end)
            while at != -1 and not secret.startswith(text[at:end]):
                at = text.find(head, at + 1, end)
            if at != -1:
                text = text[:at] + tag(known[secret], secret) + text[end:]
                break
    return text


_ECHO_MIN: Final = 6
"""Secrets at least this long are also replaced where another field of the event repeats them."""
_CUT_MIN: Final = 8
"""A field's end is taken for a capped secret when it repeats at least this much of its start."""
_TAG_TAIL: Final = 40
"""A text ending in a tag (within this many characters) was not cut inside a secret."""
_ECHO_PART: Final = re.compile(r"[A-Za-z0-9+/=_\-.~]{12,}")
_ENV_KEY_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,100}")
_VALUE_KIND: Final = {
    "password": "password",
    "cookie": "cookie",
    "authorization": "authorization",
    "secret": "generic-secret",
}


def _pointer_escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")
