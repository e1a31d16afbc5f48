"""Private, durable files: what the spool, the poison spool and the transcript reader write.

Temp file, fsync, atomic rename, fsync of the directory (after a crash a file is complete or
absent); mode 0600 in 0700 directories; advisory locks that never block.
"""

from __future__ import annotations

import os


def fsync_dir(path: str) -> None:
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return  # platforms that cannot open directories (Windows) cannot fsync them either
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def ensure_private_dir(path: str) -> None:
    """Create ``path`` and any missing parent as 0700, making each new entry durable. An
    existing directory keeps its mode: pointing TRAILGUARD_SPOOL_DIR at a shared directory
    never chmods it."""
    path = os.path.abspath(path)
    if os.path.isdir(path):
        return
    parent = os.path.dirname(path)
    if parent != path:
        ensure_private_dir(parent)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        if not os.path.isdir(path):
            raise
        return
    fsync_dir(parent)


def write_private_file(final: str, data: bytes) -> str:
    """Write ``data`` durably to ``final`` (mode 0600, its directory created 0700); return it.

    Temp file, fsync, atomic rename, fsync of the directory: after a crash the file is either
    complete or absent."""
    directory = os.path.dirname(final)
    ensure_private_dir(directory)
    temp = os.path.join(directory, f".{os.path.basename(final)}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            if hasattr(os, "fchmod"):
                os.fchmod(fd, 0o600)
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, final)
    except BaseException:
        remove(temp)
        raise
    fsync_dir(directory)
    return final


def remove(path: str) -> None:
    """Delete ``path`` if it is there; never raises."""
    try:
        os.unlink(path)
    except OSError:
        return


def try_lock(lock_path: str) -> int | bool | None:
    """An fd holding an exclusive lock on ``lock_path``; False if another process holds it;
    None if locking is not possible here (then the caller goes ahead: the gateway drops
    duplicates)."""
    try:
        import fcntl
    except ImportError:
        return None
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return False
    except OSError:
        os.close(fd)
        return None
    return fd
