"""Entry point of the ``trailguard`` command."""

from __future__ import annotations

import os
import sys

if not __package__:
    # Run by path, as install's command hook does (python -I -S .../trailguard/__main__.py hook):
    # no site, so the package's own directory goes on sys.path (after the standard library).
    sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

INTERNAL_ERROR_EXIT = 3


def main() -> None:
    if sys.argv[1:2] == ["hook"]:
        # Runs once per tool call: the standard-library client, without the CLI's imports.
        from trailguard.capture import hook_client

        sys.exit(hook_client.main(sys.stdin.buffer, sys.stdout, os.environ, argv=sys.argv[2:]))

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
