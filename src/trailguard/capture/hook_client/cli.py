"""``trailguard hook``'s command line: arguments, stdin, the answer on stdout, the exit code."""

from __future__ import annotations

import sys

from trailguard.capture.hook_client import answers, fastjson
from trailguard.capture.hook_client.invocation import Invocation
from trailguard.capture.hook_client.support import describe_exception, now_rfc3339
from trailguard.hook_protocol import GATING_EVENTS, failure_answer

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import BinaryIO, TextIO

EXIT_BAD_INPUT = 2
"""Claude Code treats exit 2 as a block (PreToolUse) with stderr as the reason."""


USAGE = """\
Usage: trailguard hook [--gateway URL]

  The command hook Claude Code runs for each hook event (`trailguard install` writes it into
  the settings file). It reads the hook payload on stdin, records it with the trailguard
  gateway and prints the gateway's answer on stdout. If the gateway cannot be reached, tool
  calls are denied and the event is kept in the spool until the next successful contact.

Options:
  --gateway URL  The gateway to report to. Default: $TRAILGUARD_URL, else 'url' in
                 ~/.config/trailguard/hook.json ($TRAILGUARD_HOOK_CONFIG), else
                 http://127.0.0.1:8787.
  -h, --help     Show this message and exit (stdin is not read).

Environment:
  TRAILGUARD_TOKEN      the agent token (else 'token_file' in hook.json)
  TRAILGUARD_TIMEOUT    seconds to wait for the gateway (default 10)
  TRAILGUARD_SPOOL_DIR  where undelivered events wait (default ~/.local/state/trailguard/spool)
"""


def _parse_arguments(argv: Sequence[str]) -> tuple[str | None, str | None]:
    """``(gateway, problem)`` from ``hook``'s arguments; ``problem`` says what is wrong."""
    gateway: str | None = None
    rest = list(argv)
    while rest:
        argument = rest.pop(0)
        if argument == "--gateway":
            gateway = rest.pop(0) if rest else ""
        elif argument.startswith("--gateway="):
            gateway = argument.split("=", 1)[1]
        else:
            return None, f"unknown argument {argument!r} (see 'trailguard hook --help')"
        if not gateway:
            return None, "--gateway needs a URL, e.g. --gateway http://127.0.0.1:8787"
    return gateway, None


def main(
    stdin: BinaryIO,
    stdout: TextIO,
    environ: Mapping[str, str],
    stderr: TextIO | None = None,
    argv: Sequence[str] = (),
) -> int:
    """Run one hook: read the payload on ``stdin``, print the answer on ``stdout``, return the
    exit code (0, or 2 when stdin is not a hook payload or the arguments are wrong).

    ``argv`` are the arguments after ``hook``: ``--gateway URL``, or ``--help``, which prints
    the usage without reading stdin."""
    err = stderr if stderr is not None else sys.stderr
    if any(argument in ("-h", "--help") for argument in argv):
        stdout.write(USAGE)
        return 0
    gateway, problem = _parse_arguments(argv)
    if problem is not None:
        err.write(f"trailguard hook: {problem}; blocking, since the event cannot be recorded.\n")
        return EXIT_BAD_INPUT
    observed_at = now_rfc3339()
    try:
        raw = stdin.read()
        payload = fastjson.loads(raw)
    except Exception as exc:  # bytes that are not JSON, not UTF-8, or an unreadable stdin
        err.write(
            "trailguard: the hook input on stdin is not JSON "
            f"({describe_exception(exc)}); blocking, since the event cannot be recorded.\n"
        )
        return EXIT_BAD_INPUT
    event = payload.get("hook_event_name") if isinstance(payload, dict) else None
    if not isinstance(event, str) or not event:
        what = "a JSON object" if not isinstance(payload, dict) else "without hook_event_name"
        err.write(
            f"trailguard: the hook input on stdin is not a Claude Code hook payload ({what}); "
            "blocking, since the event cannot be recorded.\n"
        )
        return EXIT_BAD_INPUT

    inv = Invocation(payload, event, environ, observed_at, err, gateway)
    try:
        answer = answers.handle(inv, environ, err)
    except BaseException as exc:  # a bug (or ^C) must still deny: a crash would let tools run
        problem = f"the hook client failed ({describe_exception(exc)}); this is a bug"
        inv.spool(problem)
        err.write(f"trailguard: {problem}\n")
        answer = failure_answer(
            event,
            f"trailguard: {problem}. The tool call is blocked to keep the audit trail complete. "
            f"{inv.saved_sentence('on the next successful contact')}",
        )
    finally:
        inv.release_usage()
    try:
        stdout.write(fastjson.dumps(answer) + "\n")
        stdout.flush()
    except Exception as exc:  # without stdout a deny cannot be said: exit 2 blocks instead
        err.write(f"trailguard: cannot write the hook answer ({describe_exception(exc)})\n")
        return EXIT_BAD_INPUT if event in GATING_EVENTS else 0
    return 0
