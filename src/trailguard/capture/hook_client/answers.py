"""The answer to one hook event: send it (after replaying the spool) and decide what to print.

Gating events (PreToolUse, PermissionRequest) fail closed: every failure answers deny, with a
reason that says what happened and whether the event was kept. Other events answer ``{}``.
Only the events that need them load the transcript reader and the SessionStart context.
"""

from __future__ import annotations

from trailguard.capture.hook_client import fastjson, gateway
from trailguard.capture.hook_client.config import HookConfig, env, load_config
from trailguard.capture.hook_client.support import describe_exception, join, listdir, now_rfc3339
from trailguard.capture.hook_client.transport import GatewayUnavailableError
from trailguard.hook_protocol import GATING_EVENTS, failure_answer
from trailguard.ids import new_event_id

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any, TextIO

    from trailguard.capture.hook_client.invocation import Invocation
    from trailguard.capture.hook_client.spool import ReplayReport

    Json = dict[str, Any]


def _attach_usage(inv: Invocation, config: HookConfig, marker: Json, err: TextIO) -> None:
    """Put the model usage appended to the session's transcript since the last event into
    ``marker["usage"]``. Never raises: without a usable transcript the event goes without.

    Not for the gating events: they hold up a tool call, and the message that asked for the
    tool is the transcript's last line then, which the reader holds back anyway; the next event
    (PostToolUse, Stop, ...) carries it."""
    path = inv.payload.get("transcript_path")
    if not isinstance(path, str) or not path:
        return
    from trailguard.capture.hook_client import transcript

    try:
        usage = transcript.read_transcript_usage(
            config.spool_dir, path, turn_ended=inv.event in transcript.TURN_END_EVENTS
        )
    except FileNotFoundError:
        return  # SessionStart and the first prompt come before Claude Code writes the file
    except Exception as exc:
        err.write(f"trailguard: transcript usage skipped ({describe_exception(exc)})\n")
        return
    if usage is None:
        return
    inv.usage = usage
    if usage.entries:
        marker["usage"] = usage.entries


def _spool_contents(spool_dir: str) -> tuple[bool, bool]:
    """(events may be queued, poisoned events may wait to be reported), from one listing of
    the spool: the spool and poison code loads only when there is something for it."""
    try:
        names = listdir(spool_dir)
    except (FileNotFoundError, NotADirectoryError):
        return False, False
    except OSError:
        return True, True  # let the spool code meet the problem, as it always has
    queued = any(name.endswith(".json") and not name.startswith(".") for name in names)
    return queued, "poisoned" in names


def handle(inv: Invocation, environ: Mapping[str, str], err: TextIO) -> Json:
    """Send the event (after the spool) and decide the answer. May raise on bugs only."""
    config = inv.config = load_config(environ, inv.gateway)
    for warning in config.warnings:
        err.write(f"trailguard: {warning}\n")
    event, payload = inv.event, inv.payload
    marker: Json = {"observedAt": inv.observed_at}
    payload["trailguard"] = marker
    inv.event_id = new_event_id()
    if event not in GATING_EVENTS:
        _attach_usage(inv, config, marker, err)

    if event == "SessionStart":
        from trailguard.capture.hook_client import context

        try:
            marker["context"] = context.collect_context(payload, environ)
        except Exception as exc:  # context is a claim, not worth losing the event over
            marker["context"] = {"error": describe_exception(exc)}
        env_file = env(environ, "CLAUDE_ENV_FILE")
        session_id = payload.get("session_id")
        if env_file is not None and isinstance(session_id, str) and session_id:
            try:
                context.write_env_file(env_file, session_id)
            except OSError as exc:
                err.write(f"trailguard: cannot write {env_file}: {describe_exception(exc)}\n")
    elif event == "ConfigChange":
        from trailguard.capture.hook_client import settings

        cwd = payload.get("cwd")
        try:
            hooks = settings.read_hook_config(cwd if isinstance(cwd, str) else None, environ)
        except Exception as exc:
            hooks = {"error": describe_exception(exc)}
        marker["context"] = {"hooks": hooks}

    where = f"the audit gateway at {config.url}"
    blocked = "tool calls are blocked until it is back"

    queued, poisoned = _spool_contents(config.spool_dir)
    replay: ReplayReport | None = None
    if queued:
        from trailguard.capture.hook_client import spool

        try:
            replay = spool.replay_spool(config)
        except Exception as exc:  # a replay bug must not stop the current event
            err.write(f"trailguard: spool replay failed: {describe_exception(exc)}\n")
    problems: list[tuple[str, Json]] = []
    if poisoned:
        from trailguard.capture.hook_client import poison

        problems = poison.unreported_spool_problems(config)
    if problems:
        marker["spoolProblems"] = [problem for _path, problem in problems]
    if replay is not None and replay.down:
        problem = f"{where} is unreachable ({replay.stopped})"
        inv.spool(problem)
        return failure_answer(
            event, f"trailguard: {problem}; {blocked}. {inv.saved_sentence('when it returns')}"
        )

    try:
        status, body = gateway.post_event(config, payload, inv.event_id)
    except ValueError as exc:  # TRAILGUARD_URL is not a usable URL
        problem = f"the audit gateway URL {config.url!r} is not usable ({exc})"
        inv.spool(problem)
        return failure_answer(
            event,
            f"trailguard: {problem}; fix TRAILGUARD_URL or 'url' in {config.config_path}. "
            f"Tool calls are blocked until then. {inv.saved_sentence('once it is fixed')}",
        )
    except GatewayUnavailableError as exc:
        problem = f"{where} is unreachable ({exc.detail})"
        inv.spool(problem)
        return failure_answer(
            event, f"trailguard: {problem}; {blocked}. {inv.saved_sentence('when it returns')}"
        )

    detail = gateway.detail_suffix(body)
    if 200 <= status < 300 or status == 409:
        inv.usage_delivered()
    if 200 <= status < 300:
        # The gateway works: what it failed on during the replay was the files' fault.
        if (replay is not None and replay.failed) or problems:
            from trailguard.capture.hook_client import poison

            if replay is not None:
                poison.count_failed_tries(config, replay.failed)
            poison.mark_spool_problems_reported(problems)
        try:
            answer = fastjson.loads(body)
        except ValueError:
            answer = None
        if isinstance(answer, dict):
            return answer
        # The gateway commits before answering, so the event is recorded: no spool.
        return failure_answer(
            event,
            f"trailguard: {where} answered HTTP {status} with something that is not a hook "
            f"decision ({body[:100]!r}); the tool call is blocked. The event was recorded.",
        )
    if status == 409:  # a fresh id already recorded: the event is in, but there is no verdict
        return failure_answer(
            event,
            f"trailguard: {where} says this event is already recorded (HTTP 409{detail}) but "
            "gave no decision; the tool call is blocked.",
        )
    if status in (401, 403):
        used = config.auth_origin
        problem = f"{where} refused the token (HTTP {status}{detail}); token used: {used}"
        inv.spool(problem)
        fix = (
            "The token is missing or invalid: create one with `trailguard token create` and set "
            f"TRAILGUARD_TOKEN (or token_file in {config.config_path})."
            if status == 401
            else "The token is not allowed to record events: ask for one that is, and set "
            "TRAILGUARD_TOKEN."
        )
        return failure_answer(
            event,
            f"trailguard: {problem}. {fix} Tool calls are blocked until then. "
            f"{inv.saved_sentence('once the token is fixed')}",
        )
    if status >= 500 or status in gateway.RETRYABLE_STATUSES:
        problem = f"{where} is failing (HTTP {status}{detail})"
        inv.spool(problem)
        return failure_answer(
            event, f"trailguard: {problem}; {blocked}. {inv.saved_sentence('when it recovers')}"
        )
    # Any other answer (400, 404, 413, 422, 3xx): the gateway will not take this event as it is.
    problem = f"{where} rejected the event (HTTP {status}{detail})"
    try:
        record = {
            "eventId": inv.event_id,
            "spooledAt": now_rfc3339(),
            "reason": problem,
            "payload": payload,
        }
        from trailguard.capture.hook_client import spool

        inv.spooled_path = spool.write_spool_file(
            join(config.spool_dir, "rejected"), inv.event_id, record
        )
        kept = f"The event was kept in {inv.spooled_path} for inspection."
    except Exception as exc:
        kept = f"The event could not be kept locally ({describe_exception(exc)})."
    return failure_answer(event, f"trailguard: {problem}; the tool call is blocked. {kept}")
