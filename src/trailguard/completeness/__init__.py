"""Completeness you can prove: the hooks' record reconciled with what the model itself asked
for (the API proxy's tool_use blocks, telemetry, the transcript); gaps and unaudited sessions
flagged."""
