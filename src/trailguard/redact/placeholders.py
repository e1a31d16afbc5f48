"""What only stands in for a secret, and the entropy guard.

A documentation placeholder (``ghp_xxxxxxxx...``, ``glc_1111...``, ``sk-...-abc123xyz-...``,
``RANDOMSTRINGHERE``) or a code identifier that happens to start like a token
(``hf_requiredCharacteristicTypesForDisplayMetadata``) destroys nothing when it is stored, and
redacting it destroys the evidence an auditor reads. Real credentials are random: no character
dominates them, no short unit repeats through them (``123123...``), they hold no long
alphabetical runs, and they do not read as words.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Final

_PLACEHOLDER_WORDS: Final = (
    "here", "your", "replace", "placeholder", "insert", "redacted", "goes",
    "xxxx", "yyyy", "zzzz",
)  # fmt: skip
_CAMEL_OR_SNAKE: Final = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|[0-9]+")
_VOWELS: Final = frozenset("aeiou")
_RUN: Final = re.compile(r"(.)\1{3,}")
_PERIODIC: Final = re.compile(r"(..)\1{5,}|(...)\2{3,}")
"""12 characters or more that repeat a unit of 2 or 3: ``121212...``, ``123123...``."""
_PERIODIC_MAX: Final = 256
"""Tokens are shorter; a longer value would need a 100-character pattern to count anyway."""
_SEQUENCES: Final = ("abcdefghijklmnopqrstuvwxyz", "0123456789", "zyxwvutsrqponmlkjihgfedcba")


def entropy(value: str) -> float:
    """Shannon entropy of ``value`` in bits per character."""
    if not value:
        return 0.0
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values())


def _body(value: str) -> str:
    """The part of a token after its provider prefix (``ghp_``, ``sk-ant-api03-``...)."""
    for _ in range(3):  # ``sk-`` ``ant-`` ``api03-``: a prefix has a few parts at most
        for sep in ("_", "-", ".", "~"):
            head, found, tail = value.partition(sep)
            if found and len(head) <= 8 and len(tail) >= 8:
                value = tail
                break
        else:
            return value
        if len(value) <= 16:
            return value
    return value


def _sequential_share(value: str) -> float:
    """How much of ``value`` is runs of 4+ consecutive alphabet or digits (``abcd``, ``1234``)."""
    low = value.lower()
    covered = [False] * len(low)
    for i in range(len(low) - 3):
        chunk = low[i : i + 4]
        if any(chunk in seq for seq in _SEQUENCES):
            for j in range(i, i + 4):
                covered[j] = True
    return sum(covered) / len(low) if low else 0.0


def _reads_as_words(value: str) -> bool:
    """``requiredCharacteristicTypes``, ``servingcellpriority_h_prio``, ``my-bot-token``: words
    of a language or of code, not random characters."""
    if any(c.isdigit() for c in value):
        return False
    words = [w for w in re.split(r"[_\-.]+", value) if w]
    parts = [p for w in words for p in _CAMEL_OR_SNAKE.findall(w)]
    letters = [p for p in parts if p.isalpha()]
    if not letters:
        return False
    upper = sum(1 for c in value if c.isupper())
    if upper > max(2, len(parts) + 1):
        return False  # more capitals than word starts: random mixed case
    text = "".join(letters).lower()
    vowel_share = sum(1 for c in text if c in _VOWELS) / len(text)
    longest_consonants = max(len(run) for run in re.split(r"[aeiouy]+", text))
    return vowel_share >= 0.3 and longest_consonants <= 4


def is_placeholder(value: str, *, words: bool = True, strict: bool = False) -> bool:
    """``value`` (a whole token, prefix included) only stands in for a credential.

    ``words=False`` for values under a secret name, where a password may well be words
    (``correcthorsebatterystaple``): only masks, runs and sequences count then.
    ``strict=True`` for a value that matched a provider's exact format: only masks
    (``xxxx``, one character repeated, ``####``, ``YOUR_TOKEN_HERE``) and code identifiers
    count - an exact-length ``sk-ant-api03-...`` made of ``abc123`` runs is taken for a key.
    """
    body = _body(value)
    if len(body) < 4:
        return True
    low = body.lower()
    if any(word in low for word in _PLACEHOLDER_WORDS):
        return True
    counts = Counter(low)
    top = counts.most_common(1)[0][1]
    longest_run = max((len(m.group(0)) for m in _RUN.finditer(low)), default=0)
    if top / len(low) >= 0.6 or longest_run >= max(8, 0.4 * len(low)) or "####" in low:
        return True  # ``xxxxxxxx``, ``0000000000000TUVWXYZ``, ``####`` (not Twitter's A...A)
    periodic = 0
    if len(low) <= _PERIODIC_MAX:
        periodic = max((len(m.group(0)) for m in _PERIODIC.finditer(low)), default=0)
    if periodic >= max(12, 0.4 * len(low)):
        return True  # ``GR1348941`` + ``ab9ab9ab9...``: a typed pattern, not random
    if strict:  # a long run of words only: ``GLC_CreateLightmapTexturesIndividual``
        long_words = len(body) >= 24 and len(_CAMEL_OR_SNAKE.findall(body)) >= 3
        return words and long_words and _reads_as_words(body)
    if _sequential_share(body) >= 0.4:
        return True  # ``abc123xyz-456def789ghij-klmnopqrstuvwx``
    return words and _reads_as_words(body)
