"""Entry point of the ``trailguard`` command."""

from __future__ import annotations


def main() -> None:
    from trailguard.cli import app

    app()


if __name__ == "__main__":
    main()
