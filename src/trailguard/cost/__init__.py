"""Cost metrics: model prices (a versioned table shipped as data), token usage, and exact USD
arithmetic for attributing each model response's cost to the tool calls it emitted."""
