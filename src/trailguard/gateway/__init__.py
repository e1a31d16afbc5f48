"""The gateway: the HTTP service agents report to, in front of the ledger."""
