"""``trailguard hook``: the command hook client Claude Code runs once per hook event.

It reads the hook payload on stdin, posts it to the gateway (``POST <url>/hooks/claude-code``,
docs/hook-protocol.md) and prints the gateway's JSON answer on stdout. It runs once per tool
call, so it imports only the standard library (plus the stdlib-only ``trailguard.ids`` and
``trailguard.hook_protocol``, whose answers the gateway gives too), and of that only what the
event needs: no ``json``, ``socket``, ``re``, ``enum``, ``typing`` or ``os`` on the way to an answer
(``fastjson``, ``transport``), and the transcript reader and the SessionStart context only for
the events that use them.

Failure handling, which is the point of this module:

- PreToolUse and PermissionRequest fail closed: whatever goes wrong (gateway unreachable,
  timeout, 5xx, 401/403, an answer that is not a JSON object, a bug here), the client prints a
  deny whose reason says what happened, and exits 0. Exit codes other than 0 and 2, crashes and
  hook timeouts let Claude Code run the tool, so the client never relies on them.
- Every other event prints ``{}`` when the gateway cannot take it.
- An event the gateway did not take is written to the spool (``<spool>/<eventId>.json``, temp
  file + fsync + rename + directory fsync, mode 0600 in a 0700 directory) before anything is
  printed, and replayed, oldest first, the next time the gateway answers.
- The model usage Claude Code appends to the session transcript is read incrementally and sent
  with the event (``trailguard.usage``); the read position moves only once the event is with
  the gateway or in the spool. A transcript problem never stops the event.
- stdin that is not a JSON object with a ``hook_event_name`` cannot be attributed to an event:
  the client exits 2 with the reason on stderr, which Claude Code treats as a block for
  PreToolUse (and shows to the user for the other events). Nothing is spooled: the gateway
  could not record it either.

Modules, one job each:

- ``cli``: arguments, stdin, the answer on stdout, the exit code;
- ``answers``: send the event after the spool, and the answer for each outcome;
- ``invocation``: one run's payload, event id and spool state;
- ``config``: ``--gateway``, the environment, ``hook.json``;
- ``gateway`` and ``transport``: the POST to ``/hooks/claude-code`` over a plain socket;
- ``spool``, ``poison`` and ``files``: the spool, its replay, the poison spool, durable files;
- ``transcript``: model usage from the transcript (events after a tool call or a turn);
- ``context`` and ``settings``: what SessionStart (and ConfigChange) report about the machine;
- ``fastjson`` and ``support``: JSON through ``_json``, and small shared helpers (the
  environment, a directory listing and path joins among them, without ``os``).
"""

from __future__ import annotations

from trailguard.capture.hook_client.cli import EXIT_BAD_INPUT, main

__all__ = ["EXIT_BAD_INPUT", "main"]
