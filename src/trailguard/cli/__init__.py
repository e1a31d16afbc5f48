"""The ``trailguard`` command: a thin layer over the ledger, store and gateway modules.

Exit codes: 0 success; 1 the check failed (ledger not intact, proof invalid, lines skipped);
2 usage or input error (bad option, missing file, no such ledger); 3 internal error (a bug).
One module per group of commands; each registers itself on the shared app when it is imported,
which happens only when one of its commands runs (see ``LAZY_COMMANDS`` in ``_common``).
"""

from trailguard.cli._common import app, default_data_dir

__all__ = ["app", "default_data_dir"]
