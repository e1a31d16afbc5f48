"""The compliance archive: the ledger cut at signed checkpoints into sealed segments, written
once to S3 Object Lock (or a local directory), indexed, and verifiable from the archive and the
public key alone. The layout is specified in docs/archive-format.md.

Public surface: ``backends.open_archive`` (a URL to an archive), ``seal.archive_ledger`` (one
run of the exporter), ``verify.verify_archive``, ``prune.prune_hot_store``, ``index.find``.
"""
