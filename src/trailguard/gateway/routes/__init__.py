"""The gateway's HTTP routes, one router per area: hooks, telemetry, the model API proxy, the
record (events, checkpoints), and health."""
