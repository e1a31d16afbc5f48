"""On-demand incident export: a chronological report across sessions (HTML, Markdown, JSON), an
evidence bundle that verifies offline, and the SOC 2 evidence pack.

``records`` selects and verifies the events, ``report`` builds what is shown, ``html`` and
``markdown`` render it, ``bundle`` writes and checks evidence bundles, ``standalone`` is the
dependency-free verifier shipped inside each bundle, ``soc2`` builds the pack.
"""
