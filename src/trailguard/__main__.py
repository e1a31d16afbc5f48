"""Entry point of the ``trailguard`` command."""

from __future__ import annotations

import sys

if not __package__:
    # Run by path, as install's command hook does (python -I -S .../trailguard/__main__.py hook):
    # no site, so the package's own directory goes on sys.path (after the standard library).
    # A script's __file__ is absolute; string operations instead of os.path, whose import costs
    # the hook 1.4 ms per tool call (hook_client/support.py).
    _separator = "\\" if sys.platform == "win32" else "/"
    sys.path.append(__file__.rsplit(_separator, 2)[0])

INTERNAL_ERROR_EXIT = 3


def main() -> None:
    if sys.argv[1:2] == ["hook"]:
        # Runs once per tool call: the standard-library client, without the CLI's imports.
        from trailguard.capture import hook_client
        from trailguard.capture.hook_client.support import environment

        sys.exit(hook_client.main(sys.stdin.buffer, sys.stdout, environment(), argv=sys.argv[2:]))

    import os

    from trailguard.cli import app

    try:
        app(standalone_mode=True)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        # A bug must never look like a verdict: verify's "not intact" is exit 1, this is 3.
        if os.environ.get("TRAILGUARD_DEBUG"):
            raise
        print(
            f"trailguard: internal error ({type(exc).__name__}: {exc}); this is a bug. "
            "Set TRAILGUARD_DEBUG=1 to see the traceback.",
            file=sys.stderr,
        )
        sys.exit(INTERNAL_ERROR_EXIT)


if __name__ == "__main__":
    main()
