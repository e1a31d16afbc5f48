"""Policy decisions with Cedar: loading and versioning policy sets, deciding tool calls, and the
default policy pack shipped with trailguard."""
