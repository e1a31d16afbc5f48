"""trailguard: a tamper-evident audit trail gateway for AI coding agents."""

__version__ = "0.1.0"
