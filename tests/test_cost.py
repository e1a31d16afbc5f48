"""Cost metrics: prices, usage arithmetic, once-only accounting, budgets, loop detection and the
gateway's usage converters.

Every expected dollar figure is worked out by hand from the per-million-token rates of
``cost/data/prices.json`` (quoted next to each computation), never by asking the code under test.
Tests marked ``xfail(strict=True)`` pin bugs found while writing them: they flip to a failure
("XPASS(strict)") once the bug is fixed, so the mark must then be removed.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trailguard.capture.anthropic_proxy import ModelRequestRecord
from trailguard.capture.hook_request import parse_usage_entries
from trailguard.capture.otlp import ApiRequestUsage
from trailguard.cost import loops
from trailguard.cost.accounting import CostAccountant, UsageObservation
from trailguard.cost.budgets import BudgetConfig, BudgetTracker
from trailguard.cost.loops import LoopConfig, LoopDetector
from trailguard.cost.prices import ModelPrice, PriceTableError, load_price_table
from trailguard.cost.usage import Usage, cost_usd, split_evenly
from trailguard.events import Alert, BudgetThreshold, Cost, SessionEnd
from trailguard.gateway.costs import CostRecorder, from_proxy, from_telemetry, from_transcript
from trailguard.gateway.sessions import SessionRegistry
from trailguard.store.gateway_state import GatewayState

D = Decimal


def price(input_: str, output: str, write_5m: str, write_1h: str, read: str) -> ModelPrice:
    return ModelPrice(D(input_), D(output), D(write_5m), D(write_1h), D(read))


# Rates copied by hand from prices.json (USD per million tokens).
OPUS_5_5 = price("4", "20", "5", "8", "0.2")
OPUS_5 = price("5", "25", "6.25", "10", "0.5")
OPUS_4_5 = price("5", "25", "6.25", "10", "0.5")
OPUS_4 = price("15", "75", "18.75", "30", "1.5")
SONNET_4 = price("3", "15", "3.75", "6", "0.3")
SONNET_5 = price("2", "10", "2.5", "4", "0.2")
SONNET_5_5 = price("2", "10", "2.5", "4", "0.1")
HAIKU_4_5 = price("1", "5", "1.25", "2", "0.1")
HAIKU_5_5 = price("0.1", "0.5", "0.125", "0.2", "0.01")

# CLAUDE_CODE.md: 3,900 input + 240 output + 1,500 cache-read tokens of claude-opus-5-5.
# 3900 * 4 + 240 * 20 + 1500 * 0.2 = 15600 + 4800 + 300 = 20700 per million = 0.0207 USD.
WORKED = Usage(input_tokens=3900, output_tokens=240, cache_read_tokens=1500)
WORKED_USD = D("0.0207")


@pytest.fixture(scope="module")
def table():
    return load_price_table()


# --------------------------------------------------------------------------------------------
# Prices


def test_worked_example_from_claude_code_md_costs_exactly_0_0207(table):
    assert cost_usd(WORKED, table.price_for("claude-opus-5-5")) == WORKED_USD


def test_worked_example_from_the_api_usage_object(table):
    usage = Usage.from_anthropic(
        {"input_tokens": 3900, "output_tokens": 240, "cache_read_input_tokens": 1500}
    )
    assert cost_usd(usage, table.price_for("claude-opus-5-5")) == WORKED_USD


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("claude-opus-5-5", OPUS_5_5),
        ("claude-opus-5", OPUS_5),
        ("claude-opus-4", OPUS_4),
        ("claude-opus-4-1", OPUS_4),
        ("claude-opus-4-5", OPUS_4_5),
        ("claude-opus-4-6", OPUS_4_5),
        ("claude-opus-4-7", OPUS_4_5),
        ("claude-opus-4-8", OPUS_4_5),
        ("claude-sonnet-4", SONNET_4),
        ("claude-sonnet-4-5", SONNET_4),
        ("claude-sonnet-4-6", SONNET_4),
        ("claude-sonnet-5", SONNET_5),
        ("claude-sonnet-5-5", SONNET_5_5),
        ("claude-haiku-4-5", HAIKU_4_5),
        ("claude-haiku-5-5", HAIKU_5_5),
    ],
)
def test_every_family_has_its_published_rates(table, model, expected):
    rates = ("input", "output", "cache_write_5m", "cache_write_1h", "cache_read")
    found = table.price_for(model)
    assert found is not None
    assert [getattr(found, r) for r in rates] == [getattr(expected, r) for r in rates]


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("claude-sonnet-4-5-20250929", SONNET_4),
        # opus-4-5 must not fall back to the 3x dearer claude-opus-4 prefix.
        ("claude-opus-4-5-20251101", OPUS_4_5),
        ("claude-haiku-4-5-20251001", HAIKU_4_5),
        ("claude-opus-5-5[1m]", OPUS_5_5),
        ("claude-sonnet-4-5-20250929[1m]", SONNET_4),
        ("Claude-Opus-5-5[1M]", OPUS_5_5),
        ("  claude-opus-5-5  ", OPUS_5_5),
        ("claude-opus-4-0", OPUS_4),  # an alias in the table
        ("claude-3-5-haiku-latest", price("0.8", "4", "1", "1.6", "0.08")),
    ],
)
def test_dated_and_variant_names_resolve_to_their_base_model(table, model, expected):
    assert table.price_for(model) == expected


@pytest.mark.parametrize(
    "model",
    [
        "",
        "gpt-5",
        "claude-unknown-9",
        "claude",
        "opus-5-5",
        # An unknown version of a known family is unknown, not priced as the family.
        "claude-opus-4-9",
        "claude-sonnet-4-7",
        "claude-opus-5-5-1",
    ],
)
def test_unknown_model_has_no_price(table, model):
    assert table.price_for(model) is None


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("claude-opus-4-5@20251101", OPUS_4_5),
        ("anthropic.claude-opus-4-5-20251101-v1:0", OPUS_4_5),
        ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", SONNET_4),
        ("projects/p/locations/l/publishers/anthropic/models/claude-haiku-4-5", HAIKU_4_5),
    ],
)
def test_names_normalised_as_the_shipped_table_documents(table, model, expected):
    assert table.price_for(model) == expected


def test_shipped_table_has_a_version(table):
    assert table.version == "2026-11-01"


def write_json(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def rates(input_: float, output: float, w5: float, w1: float, read: float) -> dict[str, float]:
    return {
        "input": input_,
        "output": output,
        "cacheWrite5m": w5,
        "cacheWrite1h": w1,
        "cacheRead": read,
    }


def test_override_replaces_a_price_adds_a_model_and_keeps_the_rest(tmp_path):
    override = write_json(
        tmp_path / "acme-prices.json",
        {
            "version": "acme-7",
            "models": {
                "claude-opus-5-5": rates(6, 30, 7.5, 12, 0.6),
                "Claude-Acme-1": rates(1, 2, 3, 4, 0.5),
            },
        },
    )
    table = load_price_table(override)
    assert table.price_for("claude-opus-5-5") == price("6", "30", "7.5", "12", "0.6")
    assert table.price_for("claude-opus-5-5-20260101[1m]") == price("6", "30", "7.5", "12", "0.6")
    assert table.price_for("claude-acme-1") == price("1", "2", "3", "4", "0.5")
    assert table.price_for("claude-sonnet-4-5") == SONNET_4
    assert table.version == "2026-11-01+acme-prices.json:acme-7"
    # The worked example at the overridden rates: 3900*6 + 240*30 + 1500*0.6 = 31500 -> 0.0315.
    assert cost_usd(WORKED, table.price_for("claude-opus-5-5")) == D("0.0315")


def test_override_without_a_version_is_marked_local(tmp_path):
    override = write_json(tmp_path / "p.json", {"models": {}})
    assert load_price_table(override).version == "2026-11-01+p.json:local"


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        "[]",
        '{"version": "x"}',
        '{"models": []}',
        '{"models": {"claude-x": 3}}',
        '{"models": {"claude-x": {"input": 1, "output": 2, "cacheWrite5m": 3, "cacheWrite1h": 4}}}',
        '{"models": {"claude-x": {"input": -1, "output": 2, "cacheWrite5m": 3, '
        '"cacheWrite1h": 4, "cacheRead": 5}}}',
        '{"models": {"claude-x": {"input": "1", "output": 2, "cacheWrite5m": 3, '
        '"cacheWrite1h": 4, "cacheRead": 5}}}',
    ],
)
def test_malformed_override_raises_an_error_naming_the_file(tmp_path, content):
    override = tmp_path / "broken-prices.json"
    override.write_text(content, encoding="utf-8")
    with pytest.raises(PriceTableError, match=r"broken-prices\.json"):
        load_price_table(override)


def test_bad_model_entry_error_names_the_model(tmp_path):
    override = write_json(
        tmp_path / "p.json", {"models": {"claude-x": {**rates(1, 2, 3, 4, 5), "cacheRead": -1}}}
    )
    with pytest.raises(PriceTableError, match="claude-x"):
        load_price_table(override)


def test_missing_override_file_raises_an_error_naming_it(tmp_path):
    with pytest.raises(PriceTableError, match=r"nowhere\.json"):
        load_price_table(tmp_path / "nowhere.json")


@pytest.mark.parametrize("bad", ["NaN", "Infinity"])
def test_non_finite_price_in_override_is_rejected(tmp_path, bad):
    # json.dumps writes float("nan") / float("inf") as the NaN / Infinity json.loads accepts.
    override = write_json(
        tmp_path / "p.json", {"models": {"claude-x": rates(float(bad), 1, 1, 1, 1)}}
    )
    assert bad in override.read_text(encoding="utf-8")
    with pytest.raises(PriceTableError, match=r"p\.json"):
        load_price_table(override)


# --------------------------------------------------------------------------------------------
# Usage


def test_from_anthropic_without_split_counts_all_cache_writes_as_5m():
    usage = Usage.from_anthropic(
        {
            "input_tokens": 11,
            "output_tokens": 22,
            "cache_creation_input_tokens": 1000,
            "cache_read_input_tokens": 33,
        }
    )
    assert usage == Usage(11, 22, 1000, 0, 33)


def test_from_anthropic_with_full_split():
    usage = Usage.from_anthropic(
        {
            "cache_creation_input_tokens": 1000,
            "cache_creation": {"ephemeral_5m_input_tokens": 400, "ephemeral_1h_input_tokens": 600},
        }
    )
    assert (usage.cache_write_5m_tokens, usage.cache_write_1h_tokens) == (400, 600)


@pytest.mark.parametrize(
    ("split", "five_minutes", "one_hour"),
    [
        ({"ephemeral_1h_input_tokens": 300}, 700, 300),
        ({"ephemeral_5m_input_tokens": 100, "ephemeral_1h_input_tokens": 300}, 700, 300),
        ({"ephemeral_5m_input_tokens": 250}, 1000, 0),
        ({"ephemeral_1h_input_tokens": 1000}, 0, 1000),
        ({}, 1000, 0),
    ],
)
def test_from_anthropic_partial_split_remainder_is_5m(split, five_minutes, one_hour):
    usage = Usage.from_anthropic({"cache_creation_input_tokens": 1000, "cache_creation": split})
    assert (usage.cache_write_5m_tokens, usage.cache_write_1h_tokens) == (five_minutes, one_hour)


def test_from_anthropic_ignores_values_that_are_not_counts():
    usage = Usage.from_anthropic(
        {
            "input_tokens": -5,
            "output_tokens": True,
            "cache_creation_input_tokens": "100",
            "cache_read_input_tokens": 2.5,
            "cache_creation": "nope",
        }
    )
    assert usage == Usage()


def test_cost_prices_each_token_kind_at_its_own_rate():
    usage = Usage(
        input_tokens=1000,
        output_tokens=500,
        cache_write_5m_tokens=2000,
        cache_write_1h_tokens=3000,
        cache_read_tokens=10000,
    )
    # opus-5-5: 1000*4 + 500*20 + 2000*5 + 3000*8 + 10000*0.2
    #         = 4000 + 10000 + 10000 + 24000 + 2000 = 50000 -> 0.05
    assert cost_usd(usage, OPUS_5_5) == D("0.05")
    # sonnet-4-5: 1234*3 + 567*15 + 89*3.75 + 10*6 + 4321*0.3
    #           = 3702 + 8505 + 333.75 + 60 + 1296.3 = 13897.05 -> 0.01389705
    assert cost_usd(Usage(1234, 567, 89, 10, 4321), SONNET_4) == D("0.01389705")


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        (Usage(cache_write_5m_tokens=1_000_000), D("5")),
        (Usage(cache_write_1h_tokens=1_000_000), D("8")),
        (Usage(cache_read_tokens=1_000_000), D("0.2")),
        (Usage(input_tokens=1), D("0.000004")),
        (Usage(), D("0")),
    ],
)
def test_cost_of_single_token_kinds(usage, expected):
    assert cost_usd(usage, OPUS_5_5) == expected


def test_usages_add_field_by_field():
    assert Usage(1, 2, 3, 4, 5) + Usage(10, 20, 30, 40, 50) == Usage(11, 22, 33, 44, 55)


@settings(max_examples=500, deadline=None)
@given(
    amount=st.decimals(min_value=0, max_value=1000, places=10, allow_nan=False),
    parts=st.integers(min_value=1, max_value=500),
)
def test_split_evenly_sums_exactly(amount, parts):
    shares = split_evenly(amount, parts)
    assert len(shares) == parts
    assert sum(shares, D(0)) == amount
    assert all(share >= 0 for share in shares)
    # Even: the remainder the first share carries is less than one quantum per part.
    assert max(shares) - min(shares) < D("1e-10") * parts


def test_split_evenly_gives_the_remainder_to_the_first_share():
    assert split_evenly(D("0.01"), 3) == [D("0.0033333334"), D("0.0033333333"), D("0.0033333333")]


@pytest.mark.parametrize("parts", [0, -1])
def test_split_evenly_rejects_no_parts(parts):
    with pytest.raises(ValueError, match="positive"):
        split_evenly(D(1), parts)


# --------------------------------------------------------------------------------------------
# Accounting


def observation(
    source: str,
    *,
    request_id: str | None = None,
    message_id: str | None = None,
    tools: tuple[str, ...] = (),
    usage: Usage = WORKED,
    model: str | None = "claude-opus-5-5",
    session: str | None = "sess_1",
) -> UsageObservation:
    return UsageObservation(
        source=source,  # type: ignore[arg-type]
        session_id=session,
        model=model,
        usage=usage,
        request_id=request_id,
        message_id=message_id,
        tool_use_ids=tools,
    )


def record(accountant: CostAccountant, obs: UsageObservation) -> list[Cost | Alert]:
    return accountant.record(obs, developer_id="dev_jordan", project_id="proj_backend")


def costs_of(events: list[Cost | Alert]) -> list[Cost]:
    return [e for e in events if isinstance(e, Cost)]


@pytest.fixture
def accountant(table):
    return CostAccountant(table)


def test_one_cost_event_per_request(accountant):
    events = record(
        accountant, observation("proxy", request_id="req_1", message_id="msg_1", tools=("tu_1",))
    )
    assert len(events) == 1
    cost = events[0]
    assert isinstance(cost, Cost)
    assert cost.cost_usd == 0.0207
    assert (
        cost.input_tokens,
        cost.output_tokens,
        cost.cache_write_5m_tokens,
        cost.cache_write_1h_tokens,
        cost.cache_read_tokens,
    ) == (3900, 240, 0, 0, 1500)
    assert cost.model == "claude-opus-5-5"
    assert cost.request_id == "req_1"
    assert cost.tool_use_ids == ["tu_1"]
    assert cost.source == "proxy"
    assert (cost.session_id, cost.developer_id, cost.project_id) == (
        "sess_1",
        "dev_jordan",
        "proj_backend",
    )
    assert cost.extra == {"priceTable": "2026-11-01", "messageId": "msg_1"}
    assert accountant.session_total("sess_1") == WORKED_USD


def test_request_id_falls_back_to_message_id(accountant):
    (cost,) = record(accountant, observation("transcript", message_id="msg_1"))
    assert cost.request_id == "msg_1"


def three_reports() -> dict[str, UsageObservation]:
    return {
        "proxy": observation("proxy", request_id="req_1", message_id="msg_1", tools=("tu_1",)),
        "otlp": observation("otlp", request_id="req_1"),
        "transcript": observation("transcript", message_id="msg_1", tools=("tu_1",)),
    }


ORDERS = list(itertools.permutations(["proxy", "otlp", "transcript"]))


@pytest.mark.parametrize("order", ORDERS, ids="-".join)
def test_same_request_from_three_sources_counts_once_in_any_order(accountant, order):
    reports = three_reports()
    costs = [c for source in order for c in costs_of(record(accountant, reports[source]))]
    assert len(costs) == 1
    assert costs[0].source == order[0]
    assert accountant.session_total("sess_1") == WORKED_USD
    spend = accountant.sessions["sess_1"]
    assert sum(spend.per_tool_call.values(), D(0)) + spend.overhead == WORKED_USD


@pytest.mark.parametrize(
    "order",
    [
        pytest.param(
            order,
        )
        if order[0] == "otlp"
        else order
        for order in ORDERS
    ],
    ids="-".join,
)
def test_tool_attribution_survives_any_arrival_order(accountant, order):
    reports = three_reports()
    events = [e for source in order for e in record(accountant, reports[source])]
    costs = costs_of(events)
    if order[0] == "otlp":  # counted before any source named the tool call: attributed later
        assert [c.tool_use_ids for c in costs] == [[]]
        (late,) = [e for e in events if getattr(e, "name", None) == "cost_attribution"]
        assert late.payload["toolUseIds"] == ["tu_1"]
    else:
        assert [c.tool_use_ids for c in costs] == [["tu_1"]]
    spend = accountant.sessions["sess_1"]
    assert spend.per_tool_call == {"tu_1": WORKED_USD}
    assert spend.overhead == 0


@pytest.mark.parametrize(
    "third",
    [observation("otlp", request_id="req_1"), observation("transcript", message_id="msg_1")],
    ids=["otlp", "transcript"],
)
def test_ids_learnt_from_a_duplicate_match_a_third_report_with_other_usage(accountant, third):
    # The first report knows one id, the proxy both; the third shares only the id the first
    # lacked, and its usage differs (so only that id, merged from the proxy's report, can tie it).
    first = (
        observation("transcript", message_id="msg_1")
        if third.source == "otlp"
        else observation("otlp", request_id="req_1")
    )
    assert len(record(accountant, first)) == 1
    assert record(accountant, observation("proxy", request_id="req_1", message_id="msg_1")) == []
    other_usage = observation(
        third.source,
        request_id=third.request_id,
        message_id=third.message_id,
        usage=Usage(input_tokens=3900, output_tokens=241, cache_read_tokens=1500),
    )
    assert record(accountant, other_usage) == []
    assert accountant.session_total("sess_1") == WORKED_USD


def test_repeated_report_from_one_source_counts_once(accountant):
    first = observation("transcript", message_id="msg_1")
    assert len(record(accountant, first)) == 1
    assert record(accountant, first) == []
    assert accountant.session_total("sess_1") == WORKED_USD


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (
            observation("proxy", request_id="req_1", message_id="msg_1"),
            observation("proxy", request_id="req_2", message_id="msg_2"),
        ),
        (observation("otlp", request_id="req_1"), observation("otlp", request_id="req_2")),
        (
            observation("transcript", message_id="msg_1"),
            observation("transcript", message_id="msg_2"),
        ),
        (observation("otlp"), observation("otlp")),  # no ids at all
    ],
)
def test_equal_usage_from_the_same_source_counts_twice(accountant, first, second):
    assert len(costs_of(record(accountant, first))) == 1
    assert len(costs_of(record(accountant, second))) == 1
    assert accountant.session_total("sess_1") == D("0.0414")


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (
            observation("proxy", request_id="req_1", message_id="msg_1"),
            observation("otlp", request_id="req_2"),
        ),
        (
            observation("proxy", request_id="req_1", message_id="msg_1"),
            observation("transcript", message_id="msg_2"),
        ),
        (observation("otlp", request_id="req_2"), observation("proxy", request_id="req_1")),
    ],
)
def test_equal_usage_with_contradicting_ids_counts_twice(accountant, first, second):
    assert len(costs_of(record(accountant, first))) == 1
    assert len(costs_of(record(accountant, second))) == 1
    assert accountant.session_total("sess_1") == D("0.0414")


def test_different_usage_from_different_sources_without_shared_ids_counts_twice(accountant):
    record(accountant, observation("otlp", request_id="req_1"))
    other = Usage(input_tokens=2500)  # 2500 * 4 = 10000 -> 0.01
    assert len(record(accountant, observation("transcript", message_id="m", usage=other))) == 1
    assert accountant.session_total("sess_1") == D("0.0307")


def test_dedup_is_per_session(accountant):
    record(accountant, observation("proxy", request_id="req_1", session="sess_1"))
    assert len(record(accountant, observation("otlp", request_id="req_1", session="sess_2"))) == 1
    assert accountant.session_total("sess_1") == WORKED_USD
    assert accountant.session_total("sess_2") == WORKED_USD


def test_tool_call_split_plus_overhead_equals_session_total(accountant):
    # 2500 input * 4 = 10000 -> 0.01, split three ways: 0.0033333334 + 2 * 0.0033333333.
    record(
        accountant,
        observation(
            "proxy", request_id="r1", usage=Usage(input_tokens=2500), tools=("tu_a", "tu_b", "tu_c")
        ),
    )
    record(accountant, observation("proxy", request_id="r2"))  # no tool: 0.0207 overhead
    # 240 output * 20 = 4800 -> 0.0048, to tu_d; 1000 output * 20 -> 0.02, to tu_a again.
    record(
        accountant,
        observation("proxy", request_id="r3", usage=Usage(output_tokens=240), tools=("tu_d",)),
    )
    record(
        accountant,
        observation("proxy", request_id="r4", usage=Usage(output_tokens=1000), tools=("tu_a",)),
    )
    spend = accountant.sessions["sess_1"]
    assert spend.per_tool_call == {
        "tu_a": D("0.0233333334"),
        "tu_b": D("0.0033333333"),
        "tu_c": D("0.0033333333"),
        "tu_d": D("0.0048"),
    }
    assert spend.overhead == D("0.0207")
    assert accountant.session_total("sess_1") == D("0.0555")
    assert sum(spend.per_tool_call.values(), D(0)) + spend.overhead == D("0.0555")


def test_unknown_model_cost_is_unknown_and_warned_once_per_model(accountant):
    first = record(accountant, observation("proxy", request_id="r1", model="claude-nope-1"))
    assert [type(e) for e in first] == [Alert, Cost]
    alert, cost = first
    assert alert.alert_type == "unknown_model_price"
    assert "claude-nope-1" in alert.message
    assert alert.session_id == "sess_1"
    assert cost.cost_usd is None
    assert cost.model == "claude-nope-1"

    again = record(accountant, observation("proxy", request_id="r2", model="claude-nope-1"))
    assert [type(e) for e in again] == [Cost]
    assert again[0].cost_usd is None
    # Another session, same unknown model: still no second warning.
    other_session = record(
        accountant, observation("proxy", request_id="r3", model="claude-nope-1", session="sess_2")
    )
    assert [type(e) for e in other_session] == [Cost]

    other_model = record(accountant, observation("proxy", request_id="r4", model="gpt-x"))
    assert [type(e) for e in other_model] == [Alert, Cost]
    assert "gpt-x" in other_model[0].message

    no_model = record(accountant, observation("proxy", request_id="r5", model=None))
    assert [type(e) for e in no_model] == [Alert, Cost]
    assert "(none)" in no_model[0].message

    record(accountant, observation("proxy", request_id="r6"))  # a priced request
    spend = accountant.sessions["sess_1"]
    assert spend.total == WORKED_USD
    assert spend.unknown_requests == 4
    assert spend.overhead == WORKED_USD


# -- the proxy's figure wins over a claim (telemetry, transcript), whichever arrives first ------

TINY = Usage(input_tokens=10, output_tokens=1)  # 10 * 4 + 1 * 20 = 60 per million
TINY_USD = D("0.00006")
LARGE = Usage(input_tokens=39_000, output_tokens=2_400)  # 156000 + 48000 -> 0.204


def mismatches(events: list[Cost | Alert]) -> list[Alert]:
    return [e for e in events if isinstance(e, Alert) and e.alert_type == "usage_claim_mismatch"]


@pytest.mark.parametrize(
    "claim",
    [
        observation("transcript", request_id="req_1", message_id="msg_1", usage=TINY),
        observation("transcript", message_id="msg_1", usage=TINY, tools=("tu_1",)),
        observation("otlp", request_id="req_1", usage=TINY),
    ],
    ids=["transcript-both-ids", "transcript-message-id", "otlp"],
)
def test_a_smaller_claim_counted_first_is_charged_up_to_the_proxys_figure(accountant, claim):
    (claimed,) = costs_of(record(accountant, claim))
    assert claimed.cost_usd == float(TINY_USD)

    proxy = observation("proxy", request_id="req_1", message_id="msg_1", tools=("tu_1",))
    events = record(accountant, proxy)

    (correction,) = costs_of(events)
    assert correction.cost_usd == float(WORKED_USD - TINY_USD)
    assert correction.source == "proxy"
    assert correction.request_id == "req_1"
    assert correction.tool_use_ids == ["tu_1"]
    # Tokens: observed minus claimed, per counter (3900 - 10, 240 - 1, 1500 - 0).
    assert (correction.input_tokens, correction.output_tokens, correction.cache_read_tokens) == (
        3890,
        239,
        1500,
    )
    assert correction.extra is not None
    assert correction.extra["correction"] == {
        "claimedSource": claim.source,
        "claimedUsd": float(TINY_USD),
        "observed": {
            "source": "proxy",
            "model": "claude-opus-5-5",
            "inputTokens": 3900,
            "outputTokens": 240,
            "cacheWrite5mTokens": 0,
            "cacheWrite1hTokens": 0,
            "cacheReadTokens": 1500,
            "costUsd": float(WORKED_USD),
        },
    }
    (alert,) = mismatches(events)
    assert alert.severity == "high"
    assert (alert.session_id, alert.developer_id) == ("sess_1", "dev_jordan")
    assert alert.details is not None
    assert alert.details["requestId"] == "req_1"
    assert alert.details["claimed"]["inputTokens"] == 10  # type: ignore[index]
    assert alert.details["observed"]["inputTokens"] == 3900  # type: ignore[index]
    assert alert.details["chargedUsd"] == float(WORKED_USD - TINY_USD)
    assert "req_1" in alert.message
    assert "sess_1" in alert.message
    assert accountant.session_total("sess_1") == WORKED_USD
    spend = accountant.sessions["sess_1"]
    assert spend.per_tool_call == {"tu_1": WORKED_USD}
    assert spend.overhead == 0
    # The proxy's final record of the same request (after the provisional one) adds nothing,
    # nor does the claim sent again.
    assert record(accountant, proxy) == []
    assert record(accountant, claim) == []
    assert accountant.session_total("sess_1") == WORKED_USD


@pytest.mark.parametrize("usage", [TINY, LARGE], ids=["smaller", "larger"])
def test_a_claim_after_the_proxy_changes_nothing_and_raises_nothing(accountant, usage):
    proxy = observation("proxy", request_id="req_1", message_id="msg_1")
    assert len(costs_of(record(accountant, proxy))) == 1
    for source in ("transcript", "otlp"):
        claim = observation(source, request_id="req_1", message_id="msg_1", usage=usage)
        assert record(accountant, claim) == []
    assert accountant.session_total("sess_1") == WORKED_USD


def test_a_larger_claim_counted_first_stands_and_raises_a_medium_alert(accountant):
    record(accountant, observation("transcript", message_id="msg_1", usage=LARGE))
    events = record(accountant, observation("proxy", request_id="req_1", message_id="msg_1"))
    assert costs_of(events) == []  # a charge is never taken back
    (alert,) = mismatches(events)
    assert alert.severity == "medium"
    assert alert.details is not None
    assert alert.details["chargedUsd"] == 0.0
    assert alert.details["claimed"]["costUsd"] == 0.204  # type: ignore[index]
    assert alert.details["observed"]["costUsd"] == float(WORKED_USD)  # type: ignore[index]
    assert accountant.session_total("sess_1") == D("0.204")


def test_an_unpriced_claim_is_charged_in_full_when_the_proxy_observes_a_priced_model(accountant):
    events = record(
        accountant, observation("transcript", message_id="msg_1", usage=TINY, model="claude-x")
    )
    assert [c.cost_usd for c in costs_of(events)] == [None]
    assert accountant.sessions["sess_1"].unknown_requests == 1
    events = record(accountant, observation("proxy", request_id="req_1", message_id="msg_1"))
    assert [c.cost_usd for c in costs_of(events)] == [float(WORKED_USD)]
    assert [a.severity for a in mismatches(events)] == ["high"]
    assert accountant.session_total("sess_1") == WORKED_USD
    assert accountant.sessions["sess_1"].unknown_requests == 0


def ledger_json(cost: Cost) -> dict[str, object]:
    return json.loads(cost.model_dump_json(by_alias=True))


def test_a_claim_counted_by_another_process_is_corrected_by_the_proxys_figure_here(table):
    """Workers: the claim reached one process, the proxied request another, which learnt the
    claim from the shared ledger (what it was charged, too) before counting the proxy."""
    hook_worker, proxy_worker = CostAccountant(table), CostAccountant(table)
    claim = observation("transcript", request_id="req_1", message_id="msg_1", usage=TINY)
    (claimed,) = costs_of(record(hook_worker, claim))
    proxy_worker.note_counted_elsewhere(ledger_json(claimed))

    events = record(proxy_worker, observation("proxy", request_id="req_1", message_id="msg_1"))
    (correction,) = costs_of(events)
    assert correction.cost_usd == float(WORKED_USD - TINY_USD)
    assert [a.severity for a in mismatches(events)] == ["high"]

    # The first process learns the correction: it stands for the observed figure there too, so
    # neither a claim nor the proxy's report reaching it later counts again.
    hook_worker.note_counted_elsewhere(ledger_json(correction))
    assert record(hook_worker, claim) == []
    assert record(hook_worker, observation("proxy", request_id="req_1", message_id="msg_1")) == []
    assert hook_worker.session_total("sess_1") == TINY_USD  # its own charge; budgets add the rest


def test_the_cost_report_counts_a_corrected_request_once_at_the_observed_figure(accountant):
    from trailguard.cost.report import cost_report

    claim = observation("transcript", message_id="msg_1", usage=TINY)
    proxy = observation("proxy", request_id="req_1", message_id="msg_1", tools=("tu_1",))
    costs = costs_of(record(accountant, claim)) + costs_of(record(accountant, proxy))
    report = cost_report([ledger_json(c) for c in costs], {"tu_1": "Bash"})
    assert report["requests"] == 1
    assert report["perModel"]["claude-opus-5-5"]["requests"] == 1
    assert report["totalUsd"] == float(WORKED_USD)


def test_timelines_say_a_correction_is_one_and_not_another_model_request(accountant):
    from trailguard.cli.query import _detail
    from trailguard.incident.report import entry_of

    claim = observation("transcript", message_id="msg_1", usage=TINY)
    proxy = observation("proxy", request_id="req_1", message_id="msg_1")
    claimed = ledger_json(costs_of(record(accountant, claim))[0])
    corrected = ledger_json(costs_of(record(accountant, proxy))[0])
    claimed["timestamp"] = corrected["timestamp"] = "2026-04-15T10:00:00.000Z"
    assert entry_of(claimed, 1).title.startswith("model request claude-opus-5-5")
    assert entry_of(corrected, 1).title.startswith("correction to the proxy's figure")
    assert not _detail(claimed).startswith("correction")
    assert _detail(corrected).startswith("correction to the proxy's figure")


# --------------------------------------------------------------------------------------------
# Budgets

DAY = "2026-04-15"


def add(tracker: BudgetTracker, amount: str, **keys: str | None) -> list[BudgetThreshold]:
    ids = {"session_id": "sess_1", "developer_id": None, "project_id": None, "day": DAY} | keys
    return tracker.add(D(amount), **ids)  # type: ignore[arg-type]


def test_session_thresholds_fire_once_each_in_order():
    tracker = BudgetTracker(BudgetConfig(session_usd=D("1.00")))
    seen = []
    for amount in ["0.3", "0.2", "0.29", "0.01", "0.1", "0.1", "1", "0.5"]:
        seen.append([(e.scope, e.percent, e.spent_usd, e.limit_usd) for e in add(tracker, amount)])
    assert seen == [
        [],
        [("session", 50, 0.5, 1.0)],
        [],
        [("session", 80, 0.8, 1.0)],
        [],
        [("session", 100, 1.0, 1.0)],
        [],
        [],
    ]


def test_one_jump_past_every_threshold_emits_them_all_in_order():
    tracker = BudgetTracker(BudgetConfig(session_usd=D("0.02")))
    events = add(tracker, "0.0207")
    assert [e.percent for e in events] == [50, 80, 100]
    assert all(e.session_id == "sess_1" and e.source == "gateway" for e in events)
    assert add(tracker, "1") == []


def test_configured_thresholds_are_used():
    tracker = BudgetTracker(BudgetConfig(session_usd=D("4"), thresholds=(25, 75)))
    assert [e.percent for e in add(tracker, "1")] == [25]
    assert [e.percent for e in add(tracker, "2")] == [75]
    assert add(tracker, "2") == []


def test_thresholds_are_tracked_per_scope_key():
    tracker = BudgetTracker(
        BudgetConfig(session_usd=D("10"), developer_day_usd=D("1"), project_day_usd=D("1.5"))
    )
    who = {"developer_id": "dev_jordan", "project_id": "proj_backend"}
    # dev 0.5/1 = 50 %; project 0.5/1.5 = 33 %; session 5 %.
    assert [(e.scope, e.percent) for e in add(tracker, "0.5", **who)] == [("developer_day", 50)]
    # Another session of the same developer and project: dev 100 %, project 67 %, session 5 %.
    events = add(tracker, "0.5", session_id="sess_2", **who)
    assert [(e.scope, e.percent) for e in events] == [
        ("developer_day", 80),
        ("developer_day", 100),
        ("project_day", 50),
    ]
    # Another developer on the same project: dev_alex 30 %, the project 1.3 / 1.5 = 87 %.
    events = add(tracker, "0.3", developer_id="dev_alex", project_id="proj_backend")
    assert [(e.scope, e.percent, e.developer_id) for e in events] == [
        ("project_day", 80, "dev_alex")
    ]


def test_day_scopes_keep_days_apart():
    tracker = BudgetTracker(BudgetConfig(developer_day_usd=D("1"), project_day_usd=D("1")))
    who = {"developer_id": "dev_jordan", "project_id": "proj_backend", "session_id": None}
    assert [(e.scope, e.percent) for e in add(tracker, "0.6", **who)] == [
        ("developer_day", 50),
        ("project_day", 50),
    ]
    next_day = add(tracker, "0.6", day="2026-04-16", **who)
    assert [(e.scope, e.percent, e.spent_usd) for e in next_day] == [
        ("developer_day", 50, 0.6),
        ("project_day", 50, 0.6),
    ]
    assert tracker.exhausted(None, "dev_jordan", "proj_backend", DAY) is None
    assert tracker.exhausted(None, "dev_jordan", "proj_backend", "2026-04-16") is None
    assert [e.percent for e in add(tracker, "0.4", **who)] == [80, 100, 80, 100]
    assert tracker.exhausted(None, "dev_jordan", "proj_backend", DAY) is not None
    assert tracker.exhausted(None, "dev_jordan", "proj_backend", "2026-04-16") is None


def test_no_limit_no_events_and_never_exhausted():
    tracker = BudgetTracker(BudgetConfig())
    assert add(tracker, "1000", developer_id="d", project_id="p") == []
    assert tracker.exhausted("sess_1", "d", "p", DAY) is None


def test_exhausted_at_exactly_the_limit_not_before():
    tracker = BudgetTracker(BudgetConfig(session_usd=D("0.0414")))
    add(tracker, "0.0207")
    assert tracker.exhausted("sess_1", None, None, DAY) is None
    add(tracker, "0.0207")
    exhausted = tracker.exhausted("sess_1", None, None, DAY)
    assert exhausted is not None
    assert (exhausted.scope, exhausted.key, exhausted.limit, exhausted.spent) == (
        "session",
        "sess_1",
        D("0.0414"),
        D("0.0414"),
    )
    assert "this session's budget of $0.0414 is exhausted ($0.0414 spent)" in exhausted.reason()


def test_exhausted_reports_the_first_exhausted_scope_with_a_reason_naming_it():
    tracker = BudgetTracker(
        BudgetConfig(session_usd=D("100"), developer_day_usd=D("1.00"), project_day_usd=D("1.50"))
    )
    add(tracker, "2", developer_id="dev_jordan", project_id="proj_backend")
    exhausted = tracker.exhausted("sess_1", "dev_jordan", "proj_backend", DAY)
    assert exhausted is not None
    assert (exhausted.scope, exhausted.key) == ("developer_day", f"dev_jordan/{DAY}")
    reason = exhausted.reason()
    assert "developer dev_jordan's daily budget of $1.00" in reason
    assert "$2.0000 spent" in reason
    # The project's budget is exhausted too: it is the one named for another developer.
    project = tracker.exhausted("sess_9", "dev_alex", "proj_backend", DAY)
    assert project is not None
    assert project.scope == "project_day"
    assert "project proj_backend's daily budget of $1.50" in project.reason()


def test_preload_counts_earlier_spend_without_events():
    tracker = BudgetTracker(BudgetConfig(developer_day_usd=D("1")))
    key = f"dev_jordan/{DAY}"
    assert tracker.preload("developer_day", key, D("0.85")) is None
    assert tracker.exhausted(None, "dev_jordan", None, DAY) is None
    # 0.9: 50 and 80 were already passed before the gateway started: no events for them.
    assert add(tracker, "0.05", developer_id="dev_jordan", session_id=None) == []
    events = add(tracker, "0.1", developer_id="dev_jordan", session_id=None)
    assert [(e.percent, e.spent_usd) for e in events] == [(100, 1.0)]
    exhausted = tracker.exhausted(None, "dev_jordan", None, DAY)
    assert exhausted is not None
    assert exhausted.spent == D("1.00")


def test_preload_alone_can_exhaust_a_budget():
    tracker = BudgetTracker(BudgetConfig(session_usd=D("1")))
    tracker.preload("session", "sess_1", D("1.2"))
    assert tracker.exhausted("sess_1", None, None, DAY) is not None
    assert add(tracker, "0.1") == []


def test_preloads_add_up_before_thresholds_are_marked():
    tracker = BudgetTracker(BudgetConfig(session_usd=D("1")))
    tracker.preload("session", "sess_1", D("0.3"))
    tracker.preload("session", "sess_1", D("0.3"))
    assert add(tracker, "0.01") == []


# --------------------------------------------------------------------------------------------
# Loops and spikes


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(loops.time, "monotonic", fake)
    return fake


def alert_types(alerts: list[Alert]) -> list[str]:
    return [a.alert_type for a in alerts]


def test_eighth_identical_call_alerts_once():
    detector = LoopDetector()
    call = {"command": "pytest -x", "description": "run tests"}
    results = [detector.tool_call("sess_1", "Bash", dict(call)) for _ in range(9)]
    assert [alert_types(r) for r in results] == [[]] * 7 + [["repeated_tool_call"], []]
    alert = results[7][0]
    assert alert.session_id == "sess_1"
    assert alert.details == {"tool": "Bash", "count": 8}
    assert "8 times" in alert.message


def test_input_key_order_and_whitespace_do_not_matter():
    detector = LoopDetector()
    inputs = [{"command": "ls", "description": "list"}, {"description": "list", "command": "ls"}]
    results = [detector.tool_call("sess_1", "Bash", inputs[i % 2]) for i in range(8)]
    assert alert_types(results[-1]) == ["repeated_tool_call"]
    assert all(r == [] for r in results[:-1])


def test_different_inputs_tools_and_sessions_are_counted_apart():
    detector = LoopDetector()
    for _ in range(7):
        assert detector.tool_call("sess_1", "Bash", {"command": "ls"}) == []
    assert detector.tool_call("sess_1", "Bash", {"command": "ls -a"}) == []
    assert detector.tool_call("sess_1", "Grep", {"command": "ls"}) == []
    assert detector.tool_call("sess_2", "Bash", {"command": "ls"}) == []
    assert alert_types(detector.tool_call("sess_1", "Bash", {"command": "ls"})) == [
        "repeated_tool_call"
    ]


def test_calls_outside_the_window_do_not_count(clock):
    detector = LoopDetector(LoopConfig(window_seconds=300))
    for _ in range(7):
        assert detector.tool_call("sess_1", "Bash", {"command": "ls"}) == []
    clock.now += 301
    assert detector.tool_call("sess_1", "Bash", {"command": "ls"}) == []
    for _ in range(6):
        assert detector.tool_call("sess_1", "Bash", {"command": "ls"}) == []
    assert alert_types(detector.tool_call("sess_1", "Bash", {"command": "ls"})) == [
        "repeated_tool_call"
    ]


def test_third_failure_of_the_same_call_alerts_once():
    detector = LoopDetector()
    call = {"command": "make deploy"}
    results = [detector.tool_failed("sess_1", "Bash", call) for _ in range(4)]
    assert [alert_types(r) for r in results] == [[], [], ["failing_call_retried"], []]
    assert results[2][0].details == {"tool": "Bash", "count": 3}
    assert detector.tool_failed("sess_1", "Bash", {"command": "make test"}) == []


def edit(path: str, old: str, new: str) -> dict[str, str]:
    return {"file_path": path, "old_string": old, "new_string": new}


def test_edit_reverting_an_earlier_edit_of_the_same_file_is_an_oscillation():
    detector = LoopDetector()
    assert detector.tool_call("sess_1", "Edit", edit("/app/a.py", "x = 1", "x = 2")) == []
    assert detector.tool_call("sess_1", "Edit", edit("/app/b.py", "x = 2", "x = 1")) == []
    assert detector.tool_call("sess_1", "Edit", edit("/app/a.py", "y = 1", "y = 2")) == []
    alerts = detector.tool_call("sess_1", "Edit", edit("/app/a.py", "x = 2", "x = 1"))
    assert alert_types(alerts) == ["edit_oscillation"]
    assert alerts[0].details == {"file": "/app/a.py"}
    # Going back and forth again is the same oscillation: no second alert.
    assert detector.tool_call("sess_1", "Edit", edit("/app/a.py", "x = 1", "x = 2")) == []
    assert detector.tool_call("sess_1", "Edit", edit("/app/a.py", "x = 2", "x = 1")) == []


def test_oscillation_is_per_session():
    detector = LoopDetector()
    detector.tool_call("sess_1", "Edit", edit("/app/a.py", "x = 1", "x = 2"))
    assert detector.tool_call("sess_2", "Edit", edit("/app/a.py", "x = 2", "x = 1")) == []


def test_two_unrelated_multiedits_of_one_file_are_not_an_oscillation():
    detector = LoopDetector()
    first = {"file_path": "/app/a.py", "edits": [{"old_string": "a", "new_string": "b"}]}
    second = {"file_path": "/app/a.py", "edits": [{"old_string": "c", "new_string": "d"}]}
    assert detector.tool_call("sess_1", "MultiEdit", first) == []
    assert detector.tool_call("sess_1", "MultiEdit", second) == []


def test_spend_spike_needs_two_minutes_of_history(clock):
    detector = LoopDetector()
    assert detector.spend("sess_1", D("0.01")) == []
    clock.now += 60
    assert detector.spend("sess_1", D("0.01")) == []
    clock.now += 59  # 119 s after the first spend: too early for a baseline
    assert detector.spend("sess_1", D("5")) == []


def test_spend_spike_against_the_sessions_baseline(clock):
    detector = LoopDetector()
    detector.spend("sess_1", D("0.01"))  # t = 0
    clock.now += 60
    detector.spend("sess_1", D("0.01"))  # t = 60
    clock.now += 70
    # t = 130: last minute 1.00; earlier 0.02 over max((130 - 60) / 60, 1) = 7/6 minutes
    # = 0.01714/min; 1.00 >= 0.50 and 1.00 > 5 * 0.01714.
    alerts = detector.spend("sess_1", D("1.00"))
    assert alert_types(alerts) == ["spend_spike"]
    assert alerts[0].details is not None
    assert alerts[0].details["lastMinuteUsd"] == 1.0
    assert alerts[0].details["baselineUsdPerMinute"] == pytest.approx(0.02 / (7 / 6))
    assert detector.spend("sess_2", D("1.00")) == []  # another session has no history


def test_spike_below_the_minimum_amount_is_noise(clock):
    detector = LoopDetector()
    detector.spend("sess_1", D("0.001"))
    clock.now += 130
    assert detector.spend("sess_1", D("0.49")) == []


def test_steady_high_spend_is_not_a_spike(clock):
    detector = LoopDetector()
    for _ in range(19):  # 0.20 every 10 s for three minutes: 1.20 / min all along
        assert detector.spend("sess_1", D("0.20")) == []
        clock.now += 10


# --------------------------------------------------------------------------------------------
# Gateway converters


def proxy_record(usage: dict[str, int], **fields: object) -> ModelRequestRecord:
    values: dict[str, object] = {
        "request_id": "req_1",
        "message_id": "msg_1",
        "model": "claude-opus-5-5",
        "session_id": "sess_1",
        "agent_id": None,
        "usage": usage,
        "tool_use_ids": ("toolu_1", "toolu_2"),
        "status": 200,
        "latency_ms": 12.0,
        "first_byte_ms": 3.0,
        "stream": True,
        "error": None,
    }
    return ModelRequestRecord(**(values | fields))  # type: ignore[arg-type]


def test_from_proxy_reads_the_dotted_cache_creation_split():
    obs = from_proxy(
        proxy_record(
            {
                "input_tokens": 3900,
                "output_tokens": 240,
                "cache_read_input_tokens": 1500,
                "cache_creation_input_tokens": 1000,
                "cache_creation.ephemeral_5m_input_tokens": 200,
                "cache_creation.ephemeral_1h_input_tokens": 700,
            }
        )
    )
    assert obs is not None
    assert obs.usage == Usage(3900, 240, 300, 700, 1500)  # 5 m: 200 + the 100 unaccounted for
    assert obs.source == "proxy"
    assert (obs.session_id, obs.model, obs.request_id, obs.message_id) == (
        "sess_1",
        "claude-opus-5-5",
        "req_1",
        "msg_1",
    )
    assert obs.tool_use_ids == ("toolu_1", "toolu_2")


def test_from_proxy_without_split_counts_cache_writes_as_5m():
    obs = from_proxy(proxy_record({"cache_creation_input_tokens": 1000, "output_tokens": 5}))
    assert obs is not None
    assert obs.usage == Usage(0, 5, 1000, 0, 0)


def test_from_proxy_skips_a_request_with_no_message():
    assert from_proxy(proxy_record({}, message_id=None, request_id=None, status=529)) is None


def telemetry(**fields: object) -> ApiRequestUsage:
    values: dict[str, object] = {
        "session_id": "sess_1",
        "request_id": "req_1",
        "model": "claude-opus-5-5",
        "input_tokens": 3900,
        "output_tokens": 240,
        "cache_read_tokens": 1500,
        "cache_creation_tokens": 1000,
        "cost_usd": 0.0207,
        "duration_ms": 800.0,
    }
    return ApiRequestUsage(**(values | fields))  # type: ignore[arg-type]


def test_from_telemetry_puts_the_unsplit_remainder_in_5m():
    obs = from_telemetry(telemetry(cache_creation_5m_tokens=200, cache_creation_1h_tokens=300))
    assert obs.usage == Usage(3900, 240, 700, 300, 1500)
    assert (obs.source, obs.session_id, obs.request_id, obs.message_id) == (
        "otlp",
        "sess_1",
        "req_1",
        None,
    )
    assert obs.reported_cost_usd == 0.0207
    assert obs.tool_use_ids == ()


def test_from_telemetry_without_split_is_all_5m():
    assert from_telemetry(telemetry()).usage == Usage(3900, 240, 1000, 0, 1500)


def test_from_telemetry_split_larger_than_total_is_kept_as_reported():
    obs = from_telemetry(
        telemetry(cache_creation_tokens=0, cache_creation_5m_tokens=10, cache_creation_1h_tokens=5)
    )
    assert (obs.usage.cache_write_5m_tokens, obs.usage.cache_write_1h_tokens) == (10, 5)


def test_from_transcript_ignores_malformed_entries():
    good = {
        "messageId": "msg_1",
        "requestId": "req_1",
        "model": "claude-opus-5-5",
        "usage": {"input_tokens": 3900, "output_tokens": 240, "cache_read_input_tokens": 1500},
        "toolUseIds": ["toolu_1", 7, "toolu_2"],
    }
    odd = {"usage": {"output_tokens": 9}, "model": 5, "messageId": 8, "toolUseIds": "toolu_x"}
    entries = ["text", 5, None, [], {"usage": "nope"}, {"messageId": "msg_0"}, good, odd]
    observations = from_transcript("sess_1", parse_usage_entries(entries))
    assert len(observations) == 2
    first, second = observations
    assert first.source == "transcript"
    assert (first.session_id, first.model, first.request_id, first.message_id) == (
        "sess_1",
        "claude-opus-5-5",
        "req_1",
        "msg_1",
    )
    assert first.usage == WORKED
    assert first.tool_use_ids == ("toolu_1", "toolu_2")
    assert (second.model, second.message_id, second.request_id, second.tool_use_ids) == (
        None,
        None,
        None,
        (),
    )
    assert second.usage == Usage(output_tokens=9)


@pytest.mark.parametrize("entries", [None, "x", {"usage": {}}, 3])
def test_from_transcript_of_a_non_list_is_empty(entries):
    assert from_transcript("sess_1", parse_usage_entries(entries)) == []


# --------------------------------------------------------------------------------------------
# CostRecorder: the three sources, budgets and the session end together


@pytest.fixture
def recorder(
    tmp_path: Path, table, open_ledger: Callable[..., object]
) -> tuple[CostRecorder, SessionRegistry]:
    ledger = open_ledger()
    sessions = SessionRegistry(GatewayState(tmp_path / "ledger"))
    sessions.start("sess_1", "dev_jordan", "proj_backend", "2026-04-15T10:00:00.000Z")
    costs = CostRecorder(
        ledger,  # type: ignore[arg-type]
        sessions,
        CostAccountant(table),
        BudgetTracker(BudgetConfig(session_usd=D("0.04"))),
        LoopDetector(),
    )
    return costs, sessions


def test_recorder_counts_three_sources_once_and_ends_the_session_at_its_budget(recorder):
    costs, sessions = recorder
    proxy = from_proxy(
        proxy_record(
            {"input_tokens": 3900, "output_tokens": 240, "cache_read_input_tokens": 1500},
            tool_use_ids=("toolu_1",),
        )
    )
    assert proxy is not None
    events = costs.events_for([proxy, from_telemetry(telemetry(cache_creation_tokens=0))])
    # 0.0207 of 0.04 = 51.75 %: one cost event (telemetry is the same request), 50 % crossed.
    assert [type(e) for e in events] == [Cost, BudgetThreshold]
    assert events[0].developer_id == "dev_jordan"
    assert events[1].percent == 50
    assert costs.refusal("sess_1") is None

    (transcript,) = from_transcript(
        "sess_1",
        parse_usage_entries(
            [{"messageId": "msg_2", "model": "claude-opus-5-5", "usage": {"input_tokens": 3900}}]
        ),
    )
    # 3900 * 4 = 15600 -> 0.0156; 0.0363 = 90.75 %.
    events = costs.events_for([transcript])
    assert [(type(e), getattr(e, "percent", None)) for e in events] == [
        (Cost, None),
        (BudgetThreshold, 80),
    ]
    (transcript,) = from_transcript(
        "sess_1",
        parse_usage_entries(
            [{"messageId": "msg_3", "model": "claude-opus-5-5", "usage": {"output_tokens": 240}}]
        ),
    )
    events = costs.events_for([transcript])  # + 0.0048 = 0.0411 >= 0.04
    assert [type(e) for e in events] == [Cost, BudgetThreshold, SessionEnd]
    assert events[1].percent == 100
    end = events[2]
    assert end.reason == "budget_exhausted"
    assert "this session's budget of $0.04" in (end.raw_reason or "")
    refusal = costs.refusal("sess_1")
    assert refusal is not None
    assert "this session's budget" in refusal
    summary = sessions.get("sess_1")
    assert summary is not None
    assert summary.end_reason == "budget_exhausted"
    # Later usage still costs, but the session is not ended twice.
    (late,) = from_transcript(
        "sess_1",
        parse_usage_entries(
            [{"messageId": "msg_4", "model": "claude-opus-5-5", "usage": {"input_tokens": 1}}]
        ),
    )
    assert [type(e) for e in costs.events_for([late])] == [Cost]


def test_a_gateway_restart_keeps_todays_spend_against_budgets(tmp_path):
    from trailguard.events import Cost
    from trailguard.gateway.costs import preload_budgets, today
    from trailguard.ledger.writer import Ledger
    from trailguard.store.sqlite import SQLiteStore

    ledger = Ledger.open(tmp_path / "ledger")
    ledger.append(Cost(session_id="s", developer_id="dev", model="m", cost_usd=0.7))
    ledger.close()
    tracker = BudgetTracker(BudgetConfig(session_usd=D("1"), developer_day_usd=D("0.5")))
    store = SQLiteStore.in_data_dir(tmp_path / "ledger", read_only=True)
    preload_budgets(store, tracker)
    store.close()
    exhausted = tracker.exhausted("s", "dev", None, today())
    assert exhausted is not None
    assert exhausted.scope == "developer_day"
    assert exhausted.spent == D("0.7")


def test_loop_detector_memory_is_bounded_against_endless_distinct_inputs():
    detector = LoopDetector(limit=500)
    for number in range(5_000):
        detector.tool_call("sess_flood", "Bash", {"command": f"echo {number} " + "x" * 2000})
        detector.tool_failed("sess_flood", "Bash", {"command": f"false {number}"})
    assert detector.tracked <= 2 * 500 + 2
    # ...and it still sees a real loop.
    alerts = [
        alert
        for _ in range(8)
        for alert in detector.tool_call("sess_loop", "Bash", {"command": "make test"})
    ]
    assert [a.alert_type for a in alerts] == ["repeated_tool_call"]


def test_loop_detector_keeps_digests_not_inputs():
    detector = LoopDetector()
    secret_looking = "echo " + "y" * 100_000
    detector.tool_call("sess_1", "Bash", {"command": secret_looking})
    held = repr(detector._calls)  # the state as held in memory
    assert "y" * 100 not in held
    assert len(held) < 1000


@pytest.mark.parametrize("usage_first", [True, False], ids=["usage-first", "tools-first"])
def test_telemetry_alone_attributes_cost_to_the_tool_calls_its_tool_decisions_name(
    accountant, usage_first
):
    """With OTLP as the only source, ``api_request`` carries the usage and ``tool_decision``
    records (one per tool call, possibly in later batches) name the calls by request id."""
    usage = observation("otlp", request_id="req_1")
    events: list[object] = []
    if usage_first:
        events += record(accountant, usage)
    events += accountant.attribute_tool_calls("sess_1", "req_1", ("tu_1",), "otlp")
    events += accountant.attribute_tool_calls("sess_1", "req_1", ("tu_2",), "otlp")
    if not usage_first:
        events += record(accountant, usage)
    spend = accountant.sessions["sess_1"]
    assert spend.per_tool_call == {"tu_1": WORKED_USD / 2, "tu_2": WORKED_USD / 2}
    assert spend.overhead == 0
    assert accountant.session_total("sess_1") == WORKED_USD
    assert len(costs_of(events)) == 1
    if usage_first:
        attributions = [e for e in events if getattr(e, "name", None) == "cost_attribution"]
        assert [a.payload["toolUseIds"] for a in attributions] == [["tu_1"], ["tu_1", "tu_2"]]
    else:
        assert costs_of(events)[0].tool_use_ids == ["tu_1", "tu_2"]


def test_tool_calls_named_for_another_sessions_request_move_nothing(accountant):
    record(accountant, observation("otlp", request_id="req_1", session="sess_1"))
    assert accountant.attribute_tool_calls("sess_2", "req_1", ("tu_x",), "otlp") == []
    assert accountant.sessions["sess_1"].overhead == WORKED_USD
    assert accountant.sessions["sess_1"].per_tool_call == {}
