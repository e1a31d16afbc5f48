"""A Parquet copy of each segment's events, Hive-partitioned by UTC date
(``parquet/date=YYYY-MM-DD/<first>-<end>.parquet``), for Athena, Trino or DuckDB.

It is a convenience copy: the signed record is the segment's ``events.jsonl.gz``. Each row
carries the event's exact canonical bytes in ``event`` beside the columns people filter on.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

COLUMNS = (
    "seq",
    "eventId",
    "timestamp",
    "eventType",
    "sessionId",
    "developerId",
    "projectId",
    "tool",
    "event",
)


def available() -> bool:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


def parquet_by_day(rows: Sequence[tuple[int, bytes, dict[str, Any]]]) -> dict[str, bytes]:
    """{day: Parquet file bytes} for (seq, canonical bytes, parsed event) rows in seq order.
    Deterministic: the same rows give the same bytes (no timestamps in the file metadata)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema(
        [
            ("seq", pa.int64()),
            ("eventId", pa.string()),
            ("timestamp", pa.string()),
            ("eventType", pa.string()),
            ("sessionId", pa.string()),
            ("developerId", pa.string()),
            ("projectId", pa.string()),
            ("tool", pa.string()),
            ("event", pa.string()),
        ]
    )
    days: dict[str, list[tuple[int, bytes, dict[str, Any]]]] = {}
    for row in rows:
        timestamp = row[2].get("timestamp")
        day = timestamp[:10] if isinstance(timestamp, str) else "unknown"
        days.setdefault(day, []).append(row)
    files = {}
    for day, day_rows in days.items():
        columns: dict[str, list[Any]] = {name: [] for name in COLUMNS}
        for seq, body, document in day_rows:
            columns["seq"].append(seq)
            for name in COLUMNS[1:-1]:
                value = document.get(name)
                columns[name].append(value if isinstance(value, str) else None)
            columns["event"].append(body.decode())
        table = pa.table(columns, schema=schema)
        buffer = io.BytesIO()
        pq.write_table(table, buffer, compression="zstd", write_statistics=True)
        files[day] = buffer.getvalue()
    return files


def parquet_rows(data: bytes) -> list[tuple[int, bytes]]:
    """(seq, event bytes) of every row of a Parquet copy, to compare it with the events."""
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(data), columns=["seq", "event"])
    return [
        (int(seq), str(event).encode())
        for seq, event in zip(
            table.column("seq").to_pylist(), table.column("event").to_pylist(), strict=True
        )
    ]
