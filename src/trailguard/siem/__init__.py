"""Real-time streaming of the ledger to SIEMs: one forwarder per sink, each reading the ledger in
``seq`` order from its own durable cursor, which moves only once the sink acknowledged delivery.

``config`` parses sink URLs and ``[[sinks]]`` files; ``formats``, ``cef`` and ``ocsf`` turn a
stored event into a message; ``transports`` deliver batches (syslog, Splunk HEC, webhooks);
``cursors`` keeps each sink's position in ``sinks.sqlite3``; ``forwarder`` runs one sink;
``manager`` runs them all for the gateway and answers status and metrics.
"""
