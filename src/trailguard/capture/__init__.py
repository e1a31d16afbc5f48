"""Agent adapters: turn what an agent sends (hook payloads, telemetry, API traffic) into events."""
