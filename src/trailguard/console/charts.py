"""Geometry of the console's pictures, computed here and drawn as inline SVG by the templates.

Pure functions from numbers to coordinates: no HTML is built here (the templates escape every
label), and no colour carries meaning alone (shapes and labels say it too).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal

from trailguard.events import parse_timestamp

__all__ = [
    "Bar",
    "BarChart",
    "Mark",
    "TimelineChart",
    "bar_list",
    "column_chart",
    "nice_ceiling",
    "timeline_chart",
]

Shape = Literal["circle", "square", "diamond", "triangle", "bar", "tick"]


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^n at or above ``value`` (an axis maximum people can
    read); 1 for nothing."""
    if value <= 0 or not math.isfinite(value):
        return 1.0
    exponent = math.floor(math.log10(value))
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        candidate = step * 10.0**exponent
        if candidate >= value * (1 - 1e-12):
            return candidate
    return 10.0 ** (exponent + 1)  # pragma: no cover - the loop always returns


def usd(value: float | None) -> str:
    if value is None:
        return "unknown"
    if value and abs(value) < 0.01:
        return f"${value:.4f}"
    return f"${value:,.2f}"


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    value: float
    value_label: str


@dataclass(frozen=True)
class BarChart:
    width: int
    height: int
    bars: list[Bar]
    ticks: list[tuple[float, str]]
    """(coordinate on the value axis, label)."""
    plot_left: float
    plot_top: float
    plot_width: float
    plot_height: float
    title: str
    orientation: Literal["columns", "rows"]
    label_every: int = 1


COLUMN_WIDTH: Final = 760
COLUMN_HEIGHT: Final = 240


def column_chart(
    points: Sequence[tuple[str, float]], *, title: str, width: int = COLUMN_WIDTH
) -> BarChart:
    """Vertical bars (e.g. USD per day), a value axis with 5 ticks, and a label under every
    n-th bar so the labels never overlap."""
    left, top, bottom, right = 64.0, 12.0, 40.0, 12.0
    plot_width = width - left - right
    plot_height = COLUMN_HEIGHT - top - bottom
    maximum = nice_ceiling(max((value for _, value in points), default=0.0))
    slot = plot_width / max(1, len(points))
    bar_width = max(1.0, min(48.0, slot * 0.8))
    bars = []
    for index, (label, value) in enumerate(points):
        height = plot_height * value / maximum if value > 0 else 0.0
        bars.append(
            Bar(
                x=left + index * slot + (slot - bar_width) / 2,
                y=top + plot_height - height,
                width=bar_width,
                height=height,
                label=label,
                value=value,
                value_label=usd(value),
            )
        )
    ticks = [
        (top + plot_height - plot_height * i / 4, axis_usd(maximum * i / 4, maximum))
        for i in range(5)
    ]
    return BarChart(
        width=width,
        height=COLUMN_HEIGHT,
        bars=bars,
        ticks=ticks,
        plot_left=left,
        plot_top=top,
        plot_width=plot_width,
        plot_height=plot_height,
        title=title,
        orientation="columns",
        label_every=max(1, math.ceil(len(points) / max(1, int(plot_width // 72)))),
    )


ROW_HEIGHT: Final = 22
HALF_WIDTH: Final = 520


def bar_list(
    points: Sequence[tuple[str, float]], *, title: str, width: int = COLUMN_WIDTH, top_n: int = 12
) -> BarChart:
    """Horizontal bars, largest first (e.g. USD per developer); the rest summed in one row."""
    ordered = sorted(points, key=lambda point: -point[1])
    if len(ordered) > top_n:
        rest = sum(value for _, value in ordered[top_n - 1 :])
        ordered = [*ordered[: top_n - 1], (f"{len(points) - top_n + 1} others", rest)]
    left, right, top = min(220.0, width * 0.36), 96.0, 6.0
    plot_width = width - left - right
    maximum = nice_ceiling(max((value for _, value in ordered), default=0.0))
    bars = [
        Bar(
            x=left,
            y=top + index * ROW_HEIGHT,
            width=plot_width * value / maximum if value > 0 else 0.0,
            height=ROW_HEIGHT - 6,
            label=label,
            value=value,
            value_label=usd(value),
        )
        for index, (label, value) in enumerate(ordered)
    ]
    height = int(top * 2 + ROW_HEIGHT * max(1, len(bars)))
    return BarChart(
        width=width,
        height=height,
        bars=bars,
        ticks=[],
        plot_left=left,
        plot_top=top,
        plot_width=plot_width,
        plot_height=height - 2 * top,
        title=title,
        orientation="rows",
    )


# -- a session's timeline -------------------------------------------------------------------------


@dataclass(frozen=True)
class Mark:
    x: float
    y: float
    shape: Shape
    kind: str
    """A CSS class: allowed, denied, ask, risk-high, alert, cost..."""
    label: str
    href: str
    size: float = 6.0


@dataclass
class TimelineChart:
    width: int
    height: int
    lanes: list[tuple[str, float]]
    marks: list[Mark] = field(default_factory=list)
    ticks: list[tuple[float, str]] = field(default_factory=list)
    plot_left: float = 110.0
    plot_right: float = 0.0
    start: str | None = None
    end: str | None = None


TIMELINE_WIDTH: Final = 960
LANE_HEIGHT: Final = 30
LANES: Final = ("prompts", "tool calls", "infrastructure", "alerts", "cost")
RISK_ORDER: Final = {"low": 0, "medium": 1, "high": 2, "critical": 3}


def _moment(timestamp: str) -> float:
    return parse_timestamp(timestamp).timestamp()


def _tick_labels(start: float, end: float, count: int) -> list[tuple[float, str]]:
    span = max(end - start, 1.0)
    labels = []
    for i in range(count + 1):
        moment = datetime.fromtimestamp(start + span * i / count, UTC)
        if span < 60:
            label = moment.strftime("%H:%M:%S.%f")[:12]
        elif span < 6 * 3600:
            label = moment.strftime("%H:%M:%S")
        else:
            label = moment.strftime("%m-%d %H:%M")
        labels.append((i / count, label))
    return labels


def axis_usd(value: float, maximum: float) -> str:
    """A value-axis label with as many decimals as the axis needs ($0.025, not $0.03)."""
    if maximum >= 10:
        return f"${value:,.0f}"
    decimals = 2 if maximum >= 1 else max(3, 1 - math.floor(math.log10(maximum / 4)))
    return f"${value:.{decimals}f}"


def timeline_chart(
    events: Sequence[dict[str, Any]],
    links: dict[int, str],
    per_call_usd: dict[str, float],
) -> TimelineChart:
    """One session on a time axis: a lane each for prompts, tool calls (shape and class by
    decision), infrastructure operations (by risk), alerts and budget thresholds, and model
    spend (bar height by cost). Every mark links to its entry in the timeline (``links``: seq
    to the entry's URL)."""
    left, right = 110.0, 16.0
    lanes = [(name, 24.0 + index * LANE_HEIGHT) for index, name in enumerate(LANES)]
    lane_y = dict(lanes)
    chart = TimelineChart(
        width=TIMELINE_WIDTH,
        height=int(24 + LANE_HEIGHT * len(LANES) + 24),
        lanes=lanes,
        plot_left=left,
        plot_right=TIMELINE_WIDTH - right,
    )
    timed = [e for e in events if isinstance(e.get("timestamp"), str)]
    if not timed:
        return chart
    start, end = _moment(timed[0]["timestamp"]), _moment(timed[-1]["timestamp"])
    span = max(end - start, 1.0)
    plot = TIMELINE_WIDTH - left - right
    chart.start, chart.end = timed[0]["timestamp"], timed[-1]["timestamp"]
    chart.ticks = [
        (left + plot * fraction, label) for fraction, label in _tick_labels(start, end, 5)
    ]
    largest_cost = max(
        (e.get("costUsd") or 0.0 for e in timed if e.get("eventType") == "cost"), default=0.0
    )

    def x_of(event: dict[str, Any]) -> float:
        return left + plot * (_moment(event["timestamp"]) - start) / span

    for event in timed:
        kind = event.get("eventType")
        href = links.get(event.get("seq", -1), "#")
        when = event["timestamp"][11:19]
        if kind == "prompt":
            chart.marks.append(
                Mark(x_of(event), lane_y["prompts"], "tick", "prompt", f"{when} prompt", href)
            )
        elif kind == "tool_invocation":
            decision = event.get("policyResult") or "unknown"
            shape: Shape = {"denied": "square", "ask": "diamond"}.get(decision, "circle")  # type: ignore[assignment]
            rule = f" by {event['policyRule']}" if decision in ("denied", "ask") else ""
            spend = per_call_usd.get(event.get("toolUseId") or "")
            cost = f", {usd(spend)}" if spend is not None else ""
            chart.marks.append(
                Mark(
                    x_of(event),
                    lane_y["tool calls"],
                    shape,
                    decision,
                    f"{when} {event.get('tool')}: {decision}{rule}{cost}",
                    href,
                )
            )
            operations = event.get("operations") or []
            if operations:
                worst = max(operations, key=lambda op: RISK_ORDER.get(op.get("risk"), 0))
                chart.marks.append(
                    Mark(
                        x_of(event),
                        lane_y["infrastructure"],
                        "diamond",
                        f"risk-{worst.get('risk')}",
                        f"{when} {worst.get('action')} on {worst.get('resource') or '-'} "
                        f"(risk {worst.get('risk')})"
                        + (f" and {len(operations) - 1} more" if len(operations) > 1 else ""),
                        href,
                    )
                )
        elif kind in ("alert", "budget_threshold"):
            label = (
                f"{when} {event.get('alertType')} ({event.get('severity')})"
                if kind == "alert"
                else f"{when} budget {event.get('scope')} at {event.get('percent')} %"
            )
            chart.marks.append(
                Mark(x_of(event), lane_y["alerts"], "triangle", "alert", label, href)
            )
        elif kind == "cost":
            spend = event.get("costUsd")
            fraction = (spend or 0.0) / largest_cost if largest_cost else 0.0
            chart.marks.append(
                Mark(
                    x_of(event),
                    lane_y["cost"],
                    "bar",
                    "cost" if spend is not None else "cost-unknown",
                    f"{when} {event.get('model') or 'model'}: {usd(spend)}",
                    href,
                    size=max(2.0, (LANE_HEIGHT - 6) * fraction),
                )
            )
        elif kind == "session_end":
            chart.marks.append(
                Mark(
                    x_of(event),
                    lane_y["tool calls"],
                    "tick",
                    f"end-{event.get('reason')}",
                    f"{when} session ended: {event.get('reason')}",
                    href,
                    size=12,
                )
            )
    return chart
