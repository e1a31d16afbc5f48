"""Downstream records joined to the session and tool call that caused them: CloudTrail events
(whose User-Agent carries ``app/trailguard-<session>``) and application JSON-lines logs (whose
entries carry ``TRAILGUARD_SESSION_ID``).

``cloudtrail`` and ``applog`` read the files into typed records, ``digest`` checks CloudTrail's
signed digests, ``matching`` joins a record to a tool call, and ``importer`` turns records into
redacted ``downstream_record`` events (and ``unexplained_activity`` alerts) for the ledger.
"""
