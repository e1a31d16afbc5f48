"""The price table: USD per million tokens for each model, shipped as versioned data and
overridable by a file of the same shape. An unknown model has no price (its cost is unknown,
never zero).

Model names are matched after dropping a ``-YYYYMMDD`` date suffix and a ``[…]`` variant, then
through the table's aliases, then by the longest known name followed by ``-`` and a letter
(``claude-3-5-haiku-latest`` → ``claude-3-5-haiku``), so an unknown version such as
``claude-opus-4-9`` is unknown rather than priced as ``claude-opus-4``. The shipped table is the
one Claude Code 2.1.328 itself carries (its ``notes`` say so).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass, field
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

from trailguard.errors import InvalidInputError

_DATE_SUFFIX = re.compile(r"-\d{8}$")
_VARIANT = re.compile(r"\[[^\]]*\]$")
_PROVIDER_PREFIX = re.compile(r"^(?:.*/)?(?:[a-z]{2,}\.)?anthropic\.")
_PROVIDER_SUFFIX = re.compile(r"(?:@\d{8}|-v\d+(?::\d+)?)$")
_FIELDS = ("input", "output", "cacheWrite5m", "cacheWrite1h", "cacheRead")


class PriceTableError(InvalidInputError):
    """A price file that cannot be used; the message names the file and the model."""


@dataclass(frozen=True)
class ModelPrice:
    """USD per million tokens."""

    input: Decimal
    output: Decimal
    cache_write_5m: Decimal
    cache_write_1h: Decimal
    cache_read: Decimal
    long_prompt: ModelPrice | None = None
    """Rates for every token of a request whose prompt exceeds ``long_prompt_above`` tokens."""
    long_prompt_above: int | None = None

    def rates_for(self, prompt_tokens: int) -> ModelPrice:
        """The rates that apply to a request with this many prompt tokens (input, cache writes
        and cache reads), as Claude Code charges them."""
        if self.long_prompt and self.long_prompt_above and prompt_tokens > self.long_prompt_above:
            return self.long_prompt
        return self


@dataclass(frozen=True)
class PriceTable:
    version: str
    models: dict[str, ModelPrice] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)

    def price_for(self, model: str) -> ModelPrice | None:
        name = _VARIANT.sub("", model.strip().lower()).rsplit("/", 1)[-1]  # Vertex paths
        name = _DATE_SUFFIX.sub("", _PROVIDER_SUFFIX.sub("", _PROVIDER_PREFIX.sub("", name)))
        name = self.aliases.get(name, name)
        if name in self.models:
            return self.models[name]
        candidates = [
            known
            for known in self.models
            if name.startswith(known + "-") and name[len(known) + 1 : len(known) + 2].isalpha()
        ]
        return self.models[max(candidates, key=len)] if candidates else None


def _models(data: Any, where: str) -> dict[str, ModelPrice]:
    if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
        raise PriceTableError(f'{where}: expected an object with a "models" object')
    models = {}
    for name, entry in data["models"].items():
        base = _rates(entry, where, name)
        long_prompt = entry.get("longPrompt")
        if isinstance(long_prompt, dict):
            above = long_prompt.get("abovePromptTokens")
            if not isinstance(above, int) or above <= 0:
                raise PriceTableError(
                    f"{where}: model {name!r}: longPrompt needs abovePromptTokens"
                )
            base = dataclasses.replace(
                base,
                long_prompt=_rates(long_prompt, where, f"{name} longPrompt"),
                long_prompt_above=above,
            )
        models[name.lower()] = base
    return models


def _rates(entry: Any, where: str, name: str) -> ModelPrice:
    if not isinstance(entry, dict) or any(
        not isinstance(entry.get(key), int | float)
        or isinstance(entry.get(key), bool)
        or not math.isfinite(entry[key])
        or entry[key] < 0
        for key in _FIELDS
    ):
        raise PriceTableError(
            f"{where}: model {name!r} needs finite non-negative numbers for {', '.join(_FIELDS)}"
        )
    rates = [Decimal(str(entry[key])) for key in _FIELDS]
    return ModelPrice(rates[0], rates[1], rates[2], rates[3], rates[4])


def load_price_table(override: Path | None = None) -> PriceTable:
    """The shipped table, with ``override``'s models replacing or extending it."""
    shipped = json.loads(
        resources.files("trailguard.cost").joinpath("data/prices.json").read_text("utf-8")
    )
    models = _models(shipped, "shipped price table")
    aliases = {str(k).lower(): str(v).lower() for k, v in (shipped.get("aliases") or {}).items()}
    version = str(shipped.get("version", "unknown"))
    if override is not None:
        try:
            data = json.loads(override.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise PriceTableError(f"{override}: cannot read prices ({exc})") from None
        models.update(_models(data, str(override)))
        version = f"{version}+{override.name}:{data.get('version', 'local')}"
    return PriceTable(version, models, aliases)
