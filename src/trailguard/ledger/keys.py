"""The checkpoint signing key: created on first start (mode 0600), or supplied from a file or
the environment, and pinned to the ledger it first signed."""

from __future__ import annotations

import contextlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from trailguard.errors import InvalidInputError
from trailguard.ledger.note import NoteError, Signer, Verifier

SIGNING_KEY_FILE = "signing.key"
VERIFIER_KEY_FILE = "signing.pub"
SIGNING_KEY_ENV = "TRAILGUARD_SIGNING_KEY"
"""Holds the key itself (``PRIVATE+KEY+name+id+base64``), for secret managers that inject env."""


class SigningKeyError(InvalidInputError):
    """A signing or verifier key that cannot be used; the message says what to do."""


@dataclass(frozen=True)
class LoadedSigner:
    signer: Signer
    source: str
    """Where the key came from, for `trailguard info`: a path, or the environment variable."""


def _read_private_file(path: Path) -> str:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise SigningKeyError(f"signing key file {path} does not exist") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SigningKeyError(
            f"signing key file {path} is readable by other users (mode {stat.S_IMODE(mode):04o}); "
            f"run: chmod 600 {path}"
        )
    return path.read_text(encoding="utf-8")


def _parse_signer(text: str, where: str) -> Signer:
    try:
        return Signer.from_string(text)
    except NoteError as exc:
        raise SigningKeyError(f"signing key from {where} is not usable: {exc}") from None


def write_file_durably(
    path: Path, content: str, *, mode: int = 0o600, replace: bool = False
) -> None:
    """Write ``path`` so that after a crash it holds either nothing or all of ``content``:
    a temporary file in the same directory, fsynced, renamed over, and the directory fsynced.
    Without ``replace`` an existing file is never overwritten (FileExistsError)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, content.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        if replace:
            os.replace(temporary, path)
        else:
            os.link(temporary, path)  # atomic create-if-absent
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def write_private_file(path: Path, content: str) -> None:
    """Create ``path`` with mode 0600 (never overwriting), durably."""
    write_file_durably(path, content, mode=0o600)


def ensure_public_key_file(data_dir: Path, verifier: Verifier) -> None:
    """``signing.pub`` holds the verifier key of the key in use: written durably, and rewritten
    when a crash left it empty or it no longer matches (it is a convenience copy; the ledger
    pins the key it was created with)."""
    public = data_dir / VERIFIER_KEY_FILE
    expected = verifier.to_string() + "\n"
    try:
        if public.read_text(encoding="utf-8") == expected:
            return
    except (OSError, UnicodeDecodeError):
        pass
    write_file_durably(public, expected, mode=0o644, replace=True)


def load_or_create_signer(
    data_dir: Path, *, key_file: Path | None = None, default_name: str
) -> LoadedSigner:
    """The key that signs this data directory's checkpoints, by precedence: ``key_file``, the
    ``TRAILGUARD_SIGNING_KEY`` environment variable, ``<data_dir>/signing.key``; created there
    on first start if none exists."""
    if key_file is not None:
        text = _read_private_file(key_file)
        return LoadedSigner(_parse_signer(text, str(key_file)), str(key_file))
    from_env = os.environ.get(SIGNING_KEY_ENV)
    if from_env:
        return LoadedSigner(_parse_signer(from_env, SIGNING_KEY_ENV), f"${SIGNING_KEY_ENV}")
    path = data_dir / SIGNING_KEY_FILE
    if path.exists():
        return LoadedSigner(_parse_signer(_read_private_file(path), str(path)), str(path))
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    signer = Signer.generate(default_name)
    write_private_file(path, signer.to_string() + "\n")
    ensure_public_key_file(data_dir, signer.verifier)
    return LoadedSigner(signer, f"{path} (created)")


def load_verifier(value: str) -> Verifier:
    """A verifier key given as the key string itself or as a path to a file holding it."""
    text = value
    candidate = Path(value)
    if "+" not in value or candidate.exists():
        try:
            text = candidate.read_text(encoding="utf-8")
        except OSError as exc:
            raise SigningKeyError(
                f"cannot read verifier key file {value}: {exc.strerror}"
            ) from None
    try:
        return Verifier.from_string(text.strip())
    except NoteError as exc:
        raise SigningKeyError(f"verifier key {value!r} is not usable: {exc}") from None


REDACTION_KEY_FILE = "redaction.key"


def redaction_key(data_dir: Path) -> bytes:
    """The key of the redaction tags' keyed hash: created once per data directory (0600), so
    equal secrets get equal tags across restarts but the tags reveal nothing elsewhere."""
    import secrets

    path = data_dir / REDACTION_KEY_FILE
    if not path.exists():
        with contextlib.suppress(FileExistsError):  # two processes raced to create it
            write_private_file(path, secrets.token_hex(32) + "\n")
    return bytes.fromhex(_read_private_file(path).strip())
