"""Token usage of one model request and what it costs, in exact decimal arithmetic."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from trailguard.cost.prices import ModelPrice

MILLION = Decimal(1_000_000)
_QUANTUM = Decimal("1e-10")


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0
    cache_read_tokens: int = 0

    @classmethod
    def from_anthropic(cls, usage: dict[str, Any]) -> Usage:
        """From the Messages API ``usage`` object. Cache creation without the 5 m / 1 h split
        (``cache_creation``) counts as 5 m, the API's default."""
        created = _count(usage.get("cache_creation_input_tokens"))
        nested = usage.get("cache_creation")
        split: dict[str, Any] = nested if isinstance(nested, dict) else {}
        one_hour = _count(split.get("ephemeral_1h_input_tokens"))
        five_minutes = _count(split.get("ephemeral_5m_input_tokens"))
        if not split:
            five_minutes = created
        else:
            five_minutes += max(created - five_minutes - one_hour, 0)
        return cls(
            input_tokens=_count(usage.get("input_tokens")),
            output_tokens=_count(usage.get("output_tokens")),
            cache_write_5m_tokens=five_minutes,
            cache_write_1h_tokens=one_hour,
            cache_read_tokens=_count(usage.get("cache_read_input_tokens")),
        )

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_write_5m_tokens + other.cache_write_5m_tokens,
            self.cache_write_1h_tokens + other.cache_write_1h_tokens,
            self.cache_read_tokens + other.cache_read_tokens,
        )


def cost_usd(usage: Usage, price: ModelPrice) -> Decimal:
    """The request's cost in USD (prices are per million tokens; a long prompt switches every
    token of the request to the model's long-prompt rates)."""
    prompt = (
        usage.input_tokens
        + usage.cache_write_5m_tokens
        + usage.cache_write_1h_tokens
        + usage.cache_read_tokens
    )
    price = price.rates_for(prompt)
    total = (
        usage.input_tokens * price.input
        + usage.output_tokens * price.output
        + usage.cache_write_5m_tokens * price.cache_write_5m
        + usage.cache_write_1h_tokens * price.cache_write_1h
        + usage.cache_read_tokens * price.cache_read
    )
    return (total / MILLION).quantize(_QUANTUM)


def split_evenly(amount: Decimal, parts: int) -> list[Decimal]:
    """``amount`` in ``parts`` shares that add up to it exactly (remainder to the first)."""
    if parts <= 0:
        raise ValueError("parts must be positive")
    share = (amount / parts).quantize(_QUANTUM, rounding="ROUND_DOWN")
    shares = [share] * parts
    shares[0] += amount - share * parts
    return shares
