"""``python -m trailguard.capture.hook_client``: the hook client without the ``trailguard`` CLI."""

from __future__ import annotations

import os
import sys

from trailguard.capture.hook_client import main

sys.exit(main(sys.stdin.buffer, sys.stdout, os.environ, argv=sys.argv[1:]))
