"""Secret redaction: the pipeline stage between ``decide`` and ``ledger.append``.

Nothing an agent sends or sees is stored before :meth:`Redactor.redact_event` has replaced each
secret with ``[REDACTED:<rule>:<keyed hash>]``. The modules, one concern each:

* :mod:`~trailguard.redact.engine` - the :class:`Redactor`, trailguard's own structural rules
  (names, flags, headers, URLs, config formats) and hand-kept formats, span merging;
* :mod:`~trailguard.redact.rules` - token formats from a maintained rule set kept as data (a
  rules file the operator converts from gitleaks' configuration; not shipped with trailguard);
* :mod:`~trailguard.redact.placeholders` - what only stands in for a secret (``ghp_xxxx...``,
  ``<token>``, code identifiers) and the entropy guard;
* :mod:`~trailguard.redact.update` - converts a ``gitleaks.toml`` into that rules file
  (``trailguard secrets update-rules``).
"""

from trailguard.redact.engine import REDACTION_TAG_RE, Finding, Redactor, secret_name_kind

__all__ = ["REDACTION_TAG_RE", "Finding", "Redactor", "secret_name_kind"]
