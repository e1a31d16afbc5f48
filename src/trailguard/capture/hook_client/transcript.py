"""Model usage from the session transcript: what Claude Code appended since the last event.

Read incrementally (offset, head hash and message ids sent, in ``<spool>/transcripts/``) and
sent with the event as ``trailguard.usage``; the read position moves only once the event is
with the gateway or in the spool. Loaded only for the events that carry usage.
"""

from __future__ import annotations

import os
import stat

from trailguard.capture.hook_client import fastjson
from trailguard.capture.hook_client.files import ensure_private_dir, remove, try_lock
from trailguard.capture.hook_client.support import sha256_hex

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    Json = dict[str, Any]

TRANSCRIPT_MAX_READ = 4 * 1024 * 1024
"""Bytes of transcript read per invocation at most; the rest is read by the next ones."""
USAGE_MAX_ENTRIES = 200
"""Assistant messages reported per event at most; the rest go with the next events."""
USAGE_SENT_MEMORY = 500
"""Message ids remembered as sent, so lines read again are not reported twice."""
_TRANSCRIPT_HEAD = 1024
"""Bytes at the start of a transcript whose hash tells a replaced file from a grown one."""
TURN_END_EVENTS = frozenset({"Stop", "SubagentStop", "StopFailure", "SessionEnd", "PreCompact"})
"""Events after which the last assistant message is complete even if nothing follows it."""


class TranscriptUsage:
    """What one incremental read of a transcript found: the usage entries to send and the
    state to save once the event carrying them is delivered or spooled."""

    __slots__ = ("entries", "lock", "state", "state_path")

    def __init__(
        self, entries: list[Json], state: Json | None, state_path: str, lock: int | None
    ) -> None:
        self.entries = entries
        """``{"messageId", "model", "usage", "toolUseIds"[, "requestId"]}`` per message."""
        self.state = state
        """``{"offset", "head", "sent"}`` to save, or None when nothing changed."""
        self.state_path = state_path
        self.lock = lock
        """The fd holding ``<state>.lock`` until the state is saved (None: not locked)."""

    def commit(self) -> None:
        """Save the state (the usage is now with the gateway or in the spool). Once only."""
        state, self.state = self.state, None
        try:
            if state is not None:
                _write_state(self.state_path, state)
        finally:
            self.release()

    def release(self) -> None:
        """Let the next hook read this transcript (closing is what releases the lock)."""
        lock, self.lock = self.lock, None
        if lock is None:
            return
        try:
            os.close(lock)
        except OSError:
            return


def _head_hash(head_bytes: bytes, offset: int) -> str | None:
    """Hash of the part of the file's head below ``offset`` (None at 0: nothing read yet)."""
    return sha256_hex(head_bytes[: min(offset, _TRANSCRIPT_HEAD)]) if offset > 0 else None


def _load_state(path: str) -> tuple[int, str | None, list[str]]:
    """(offset, head hash, sent ids) of a state file; a missing or broken one starts at 0."""
    try:
        with open(path, "rb") as handle:
            state = fastjson.loads(handle.read())
    except (OSError, ValueError):
        return 0, None, []
    if not isinstance(state, dict):
        return 0, None, []
    offset, head, sent = state.get("offset"), state.get("head"), state.get("sent")
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        return 0, None, []
    sent = [s for s in sent if isinstance(s, str)] if isinstance(sent, list) else []
    return offset, head if isinstance(head, str) else None, sent


def _write_state(path: str, state: Json) -> None:
    """Replace the state file atomically. No fsync: a state lost in a crash only makes the next
    read send usage again, which the gateway recognises by message id."""
    directory, name = os.path.split(path)
    temp = os.path.join(directory, f".{name}.{os.getpid()}.tmp")
    try:
        with open(temp, "wb") as handle:
            handle.write(fastjson.dumps(state, compact=True).encode("utf-8"))
        os.replace(temp, path)
    except BaseException:
        remove(temp)
        raise


def _read_at(fd: int, offset: int, size: int) -> bytes:
    os.lseek(fd, offset, os.SEEK_SET)
    chunks: list[bytes] = []
    while size > 0:
        chunk = os.read(fd, min(size, 1024 * 1024))
        if not chunk:
            break
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _assistant_line(line: bytes) -> tuple[str, str | None, Json, list[str], str | None] | None:
    """(message id, model, usage, tool_use ids, request id) of an assistant transcript line."""
    if b'"assistant"' not in line:  # cheap test first: most lines are not, some are large
        return None
    try:
        record = fastjson.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict) or record.get("type") != "assistant":
        return None
    message = record.get("message")
    if not isinstance(message, dict):
        return None
    message_id, usage = message.get("id"), message.get("usage")
    if not isinstance(message_id, str) or not message_id or not isinstance(usage, dict):
        return None
    model = message.get("model")
    content = message.get("content")
    tool_ids = [
        block["id"]
        for block in (content if isinstance(content, list) else ())
        if isinstance(block, dict)
        and block.get("type") == "tool_use"
        and isinstance(block.get("id"), str)
    ]
    request_id = record.get("requestId")
    return (
        message_id,
        model if isinstance(model, str) else None,
        usage,
        tool_ids,
        request_id if isinstance(request_id, str) else None,
    )


def _output_tokens(usage: Json) -> int:
    value = usage.get("output_tokens")
    return value if isinstance(value, int) and not isinstance(value, bool) else -1


def read_transcript_usage(
    spool_dir: str, transcript_path: str, *, turn_ended: bool
) -> TranscriptUsage | None:
    """Usage of the assistant messages appended to ``transcript_path`` since the last read.

    State lives in ``<spool>/transcripts/<sha256 of the path>.json``: the offset read up to, a
    hash of the file's first bytes, and the last message ids sent. A file shorter than the
    offset or with another head was replaced: it is read again from 0 (ids already sent are
    still skipped). Only complete lines are read, at most TRANSCRIPT_MAX_READ bytes. Lines of
    one message id are merged (tool_use ids united, the usage of the line with the most output
    tokens). The last message stays for the next read while its line is the last one in the
    file, since more of its lines may be on the way, unless ``turn_ended``.

    Returns None when there is nothing to do (no regular file, another hook holds this
    transcript). Raises OSError when the transcript or the state cannot be used."""
    state_dir = os.path.join(spool_dir, "transcripts")
    state_path = os.path.join(state_dir, sha256_hex(os.fsencode(transcript_path)) + ".json")
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(transcript_path, flags)  # O_NONBLOCK: a FIFO must not hang the hook
    lock: int | None = None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None
        ensure_private_dir(state_dir)
        locked = try_lock(state_path + ".lock")
        if locked is False:
            return None  # a concurrent hook is reading this transcript: the next one catches up
        lock = locked if isinstance(locked, int) and not isinstance(locked, bool) else None
        saved_offset, saved_head, sent = _load_state(state_path)
        head_bytes = _read_at(fd, 0, _TRANSCRIPT_HEAD)
        start = saved_offset
        if start > info.st_size or saved_head != _head_hash(head_bytes, start):
            start = 0  # shrunk or replaced
        available = info.st_size - start
        capped = available > TRANSCRIPT_MAX_READ
        data = _read_at(fd, start, min(available, TRANSCRIPT_MAX_READ))
        complete = data.rfind(b"\n") + 1
        lines = data[:complete].split(b"\n")
        if complete == 0 and capped:
            complete, lines = len(data), []  # a line longer than the cap: skipped, not parsed

        entries: dict[str, Json] = {}
        first_line_at: dict[str, int] = {}
        most_output: dict[str, int] = {}
        last_line_of: str | None = None
        position = 0
        for line in lines:
            line_at = start + position
            position += len(line) + 1
            if not line.strip():
                continue
            parsed = _assistant_line(line)
            if parsed is None:
                last_line_of = None
                continue
            message_id, model, usage, tool_ids, request_id = parsed
            last_line_of = message_id
            entry = entries.get(message_id)
            if entry is None:
                entry = {"messageId": message_id, "model": model, "usage": usage}
                entry["toolUseIds"] = []
                entries[message_id] = entry
                first_line_at[message_id] = line_at
                most_output[message_id] = _output_tokens(usage)
            elif _output_tokens(usage) > most_output[message_id]:
                entry["usage"] = usage
                most_output[message_id] = _output_tokens(usage)
                if model is not None:
                    entry["model"] = model
            if entry["model"] is None:
                entry["model"] = model
            known = entry["toolUseIds"]
            for tool_id in tool_ids:
                if tool_id not in known:
                    known.append(tool_id)
            if request_id is not None and "requestId" not in entry:
                entry["requestId"] = request_id

        already = set(sent)
        held = last_line_of
        if (
            held is None
            or turn_ended
            or held in already
            or (capped and first_line_at[held] == start)  # it alone fills the window
        ):
            held = None
        chosen: list[Json] = []
        resume_at = start + complete
        for message_id, entry in entries.items():
            if message_id in already:
                continue
            if message_id == held or len(chosen) >= USAGE_MAX_ENTRIES:
                resume_at = min(resume_at, first_line_at[message_id])
                continue
            chosen.append(entry)

        state: Json | None = None
        new_head = _head_hash(head_bytes, resume_at)
        if chosen or resume_at != saved_offset or new_head != saved_head:
            new_sent = (sent + [entry["messageId"] for entry in chosen])[-USAGE_SENT_MEMORY:]
            state = {"offset": resume_at, "head": new_head, "sent": new_sent}
        result = TranscriptUsage(chosen, state, state_path, lock)
        lock = None  # the result holds it until commit or release
        return result
    finally:
        os.close(fd)
        if lock is not None:
            os.close(lock)
