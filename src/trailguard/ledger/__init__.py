"""The tamper-evident ledger: canonical event bytes, an RFC 6962 Merkle tree, signed checkpoints,
and the offline verifier an auditor runs."""
