"""Commands around the gateway: serve, tokens, sessions, install, and the hook client."""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from trailguard import __version__
from trailguard.cli._common import (
    CommandGroup,
    DataDir,
    DeveloperOption,
    ProjectOption,
    StoreOption,
    app,
    cell,
    cli_actor,
    csv_cell,
    err,
    fail,
    open_read_only,
    open_state,
    out,
    printable,
    record_from_cli,
    record_read,
    resolve_data_dir,
    resolve_location,
    resolve_session_id,
)
from trailguard.cli.archive import (
    ArchiveEveryOption,
    HotDaysOption,
    LockModeOption,
    RetentionDaysOption,
    RetentionOption,
    ServeArchiveOption,
    archive_schedule,
)
from trailguard.errors import InvalidInputError
from trailguard.store.state import ROLES

# -- serve ----------------------------------------------------------------------------------------


@app.command()
def serve(
    data_dir: DataDir = None,
    store: StoreOption = None,
    sequencer: Annotated[
        bool,
        typer.Option(
            help="With --store: compete to be the shared ledger's sequencer (the replica "
            "holding the lock assigns positions and signs). --no-sequencer: a front end only."
        ),
    ] = True,
    host: Annotated[str, typer.Option(help="Address to bind. Keep 127.0.0.1 unless fronted.")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8787,
    checkpoint_every: Annotated[int, typer.Option(help="Sign a checkpoint every N events.")] = 1000,
    checkpoint_interval: Annotated[
        float, typer.Option(help="...or every T seconds with new events.")
    ] = 10.0,
    signing_key: Annotated[
        Path | None,
        typer.Option(help="Signing key file (else $TRAILGUARD_SIGNING_KEY or the data dir's)."),
    ] = None,
    idle_timeout: Annotated[
        float, typer.Option(help="End a session as timed_out after this many idle seconds.")
    ] = 1800.0,
    anthropic_upstream: Annotated[
        str, typer.Option(help="Where /anthropic forwards model requests.")
    ] = "https://api.anthropic.com",
    budget_session_usd: Annotated[float | None, typer.Option(help="USD per session.")] = None,
    budget_developer_day_usd: Annotated[
        float | None, typer.Option(help="USD per developer per UTC day.")
    ] = None,
    budget_project_day_usd: Annotated[
        float | None, typer.Option(help="USD per project per UTC day.")
    ] = None,
    budget_thresholds: Annotated[
        str, typer.Option(help="Percentages that raise budget_threshold events.")
    ] = "50,80,100",
    prices: Annotated[
        Path | None, typer.Option(help="JSON price file overriding the shipped table.")
    ] = None,
    policy: Annotated[
        Path | None,
        typer.Option(
            help="Directory of .cedar policies [default: the shipped pack]. Reloaded on change."
        ),
    ] = None,
    trusted_proxy: Annotated[
        list[str] | None,
        typer.Option(
            help="Address or network (CIDR) of a reverse proxy whose X-Forwarded-For is "
            "believed (repeatable). Without it, forwarded headers are ignored."
        ),
    ] = None,
    hook_rate: Annotated[
        float,
        typer.Option(
            help="Hook requests per second allowed per token (bursts of twice that); 0: no "
            "limit. An agent makes a few per second."
        ),
    ] = 300.0,
    require_hooks: Annotated[
        bool,
        typer.Option(
            "--require-hooks",
            help="Refuse model requests through /anthropic for sessions no trailguard hook has "
            "reported (hooks missing, disabled or bypassed); each such session is alerted.",
        ),
    ] = False,
    archive: ServeArchiveOption = None,
    archive_every: ArchiveEveryOption = "1d",
    retention: RetentionOption = None,
    retention_days: RetentionDaysOption = None,
    lock_mode: LockModeOption = "COMPLIANCE",
    hot_days: HotDaysOption = 90,
    sink: Annotated[
        list[str] | None,
        typer.Option(
            help="Stream every event to a SIEM (repeatable): syslog+tls://HOST:PORT?ca=FILE, "
            "splunk-hec+https://HOST:PORT?token_file=FILE, webhook+https://HOST/PATH?"
            "secret_file=FILE (see `trailguard sinks --help`)."
        ),
    ] = None,
    sinks_file: Annotated[
        Path | None, typer.Option(help="A TOML file of [[sinks]] tables, each with url = ...")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Hook pipeline processes (each on its own core) feeding one ledger writer "
            "process. A kill, an exhausted budget or a policy change made through one worker "
            "holds on every worker from its next request. [default: 1, one process]"
        ),
    ] = None,
) -> None:
    """Run the gateway: on the embedded SQLite ledger of a data directory, or as one of several
    replicas of a shared ledger on PostgreSQL (--store URL, with the same --signing-key)."""
    import uvicorn

    from trailguard.gateway.app import create_app
    from trailguard.ledger.keys import SigningKeyError
    from trailguard.ledger.writer import Ledger, LedgerConfig, LedgerError

    if checkpoint_every < 1 or checkpoint_interval <= 0 or idle_timeout <= 0:
        fail("--checkpoint-every must be >= 1, --checkpoint-interval and --idle-timeout > 0")
    if hook_rate < 0:
        fail("--hook-rate must be 0 (no limit) or a positive number of requests per second")
    from trailguard.gateway.auth import TrustedProxies

    proxies = tuple(trusted_proxy or ())
    try:
        TrustedProxies(proxies)
    except ValueError as exc:
        fail(f"--trusted-proxy: {exc}")
    from decimal import Decimal

    from trailguard.cost.budgets import BudgetConfig
    from trailguard.cost.prices import PriceTableError, load_price_table
    from trailguard.policy.loader import PolicyError, load_policy_set

    try:
        thresholds = tuple(sorted(int(t) for t in budget_thresholds.split(",") if t.strip()))
    except ValueError:
        fail(f"--budget-thresholds must be comma-separated percentages, got {budget_thresholds!r}")
    limits = (budget_session_usd, budget_developer_day_usd, budget_project_day_usd)
    if any(limit is not None and limit <= 0 for limit in limits) or not thresholds:
        fail("budgets must be positive amounts and thresholds a non-empty list")
    session_usd, developer_day_usd, project_day_usd = (
        Decimal(str(limit)) if limit is not None else None for limit in limits
    )
    budget_config = BudgetConfig(
        session_usd, developer_day_usd, project_day_usd, thresholds=thresholds
    )
    try:
        load_price_table(prices)
    except PriceTableError as exc:
        fail(str(exc))

    try:
        load_policy_set(policy)  # refuse to start on a broken policy set, before anything else
    except PolicyError as exc:
        fail(f"policies do not load: {exc}")
    from trailguard.siem.config import SinkConfigError, load_sinks

    try:
        sink_configs = load_sinks(sink or (), [sinks_file] if sinks_file else ())
    except SinkConfigError as exc:
        fail(f"{exc}. Nothing was recorded.")
    if sink_configs and store:
        fail(
            "--sink streams from a data-directory ledger; a shared ledger (--store) cannot have "
            "sinks yet (their cursors would have to be shared too). Nothing was recorded."
        )
    for sink_config in sink_configs:
        for warning in sink_config.warnings:
            err.print(f"[yellow]warning:[/] sink {sink_config.name}: {warning}")
    location = resolve_location(data_dir, store)
    directory = location.description
    if workers is not None and workers < 1:
        fail("--workers must be at least 1")
    if workers is not None and workers > 1 and hasattr(location, "url"):
        fail(
            "--workers N runs the pipeline of one data directory on N cores; with --store, run "
            "more replicas instead (each is a writer of the shared ledger). Nothing was recorded."
        )
    worker_count = 1 if hasattr(location, "url") else (workers or default_workers())
    if archive is not None and hasattr(location, "url"):
        fail("--archive archives the embedded SQLite ledger (--data-dir); not yet --store")
    archiving = archive_schedule(
        archive, archive_every, retention, retention_days, lock_mode, hot_days
    )
    # Take the port before anything is recorded: a second gateway on a busy port must fail
    # here, saying so, not after writing a start and a stop into someone's ledger.
    listener = _bind(host, port)
    ledger_config = LedgerConfig(
        checkpoint_every_events=checkpoint_every,
        checkpoint_interval_seconds=checkpoint_interval,
    )
    app_options: dict[str, Any] = {
        "idle_timeout": idle_timeout,
        "policy_dir": policy,
        "budgets": budget_config,
        "prices_file": prices,
        "anthropic_upstream": anthropic_upstream,
        "trusted_proxies": proxies,
        "hook_rate_per_second": hook_rate or None,
        "require_hooks": require_hooks,
        "sinks": sink_configs,
    }

    def server_for(asgi_app: Any) -> uvicorn.Server:
        from trailguard.gateway.one_write import OneWriteHttpToolsProtocol

        return uvicorn.Server(
            uvicorn.Config(
                asgi_app,
                http=OneWriteHttpToolsProtocol,  # a response's head and body in one write
                log_level="warning",
                # uvicorn would believe X-Forwarded-For from loopback and rewrite the client's
                # address before trailguard sees it: the app decides, from --trusted-proxy only.
                proxy_headers=False,
                server_header=False,
            )
        )

    if worker_count > 1:
        _serve_workers(
            worker_count,
            listener,
            location.data_dir,
            lambda: Ledger.open(location.data_dir, config=ledger_config, key_file=signing_key),
            app_options,
            server_for,
            archiving,
            host=host,
            port=port,
            directory=directory,
        )
        return
    ledger: Any
    try:
        if hasattr(location, "url"):
            from trailguard.ledger.shared import SharedLedger

            ledger = SharedLedger.open(
                location.url, config=ledger_config, key_file=signing_key, sequencer=sequencer
            )
        else:
            ledger = Ledger.open(location.data_dir, config=ledger_config, key_file=signing_key)
    except (LedgerError, SigningKeyError, OSError) as exc:
        listener.close()
        fail(str(exc))
    server = server_for(create_app(ledger, **app_options))
    err.print(f"trailguard {__version__}: ledger {directory}, log {ledger.origin}")
    for sink_config in sink_configs:
        err.print(
            f"streaming to {sink_config.name} ({sink_config.destination}, {sink_config.format})"
        )
    err.print(f"listening on http://{host}:{port} (Ctrl-C to stop)")
    stop_reason = "shutdown"
    scheduler = archiving(ledger, location.data_dir) if archiving is not None else None
    try:
        # The app's shutdown closes the ledger: uvicorn re-raises SIGTERM/SIGINT once it has
        # shut down, so code after run() may never execute.
        server.run(sockets=[listener])
    except Exception as exc:
        stop_reason = f"error: {type(exc).__name__}: {exc}"[:500]
        raise
    finally:
        if scheduler is not None:
            scheduler.stop()
        ledger.close(reason=stop_reason)
        listener.close()


def default_workers() -> int:
    """Worker processes when --workers is not given: one. Several workers answer 1.3-1.6x the
    hooks on two cores (docs/throughput.md) and hold a kill, an exhausted budget and a policy
    change from every worker's next request (gateway/shared_changes.py); the default stays
    one process until the lead decides otherwise."""
    return 1


def _serve_workers(
    count: int,
    listener: socket.socket,
    data_dir: Path,
    open_ledger: Any,
    app_options: dict[str, Any],
    server_for: Any,
    archiving: Any,
    *,
    host: str,
    port: int,
    directory: str,
) -> None:
    """``serve --workers N`` (N > 1): see trailguard.gateway.workers."""
    from trailguard.gateway.app import create_app
    from trailguard.gateway.auth import hook_burst
    from trailguard.gateway.shared_changes import SharedChanges
    from trailguard.gateway.shared_limits import SharedRateLimiter
    from trailguard.gateway.workers import Supervisor, WorkerPlan, WorkerStartError

    rate = app_options.get("hook_rate_per_second")
    limiter = SharedRateLimiter(rate, hook_burst(rate)) if rate else None
    made: list[SharedChanges] = []  # made with the supervisor's private directory, before forking

    def make_app(ledger: Any, index: int) -> Any:
        return create_app(
            ledger,
            **app_options,
            lead_jobs=index == 0,
            hook_limiter=limiter,
            share_state=True,
            changes=made[0].as_worker(index),
        )

    def start_jobs(ledger: Any) -> Any:
        scheduler = archiving(ledger, data_dir)
        return scheduler.stop

    plan = WorkerPlan(
        data_dir=data_dir,
        workers=count,
        open_ledger=open_ledger,
        make_app=make_app,
        make_server=server_for,
        start_jobs=start_jobs if archiving is not None else None,
    )
    supervisor = Supervisor(plan, listener)
    made.append(SharedChanges(count, supervisor.runtime))
    err.print(f"trailguard {__version__}: ledger {directory}, {count} worker processes")
    err.print(f"listening on http://{host}:{port} (Ctrl-C to stop)")
    try:
        stopped_by = supervisor.run()
    except WorkerStartError as exc:
        fail(str(exc))
    finally:
        listener.close()
    if stopped_by is not None:  # like uvicorn: end as the signal would have ended us
        signal.signal(stopped_by, signal.SIG_DFL)
        os.kill(os.getpid(), stopped_by)


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket on (host, port), or a clear failure when it is taken or refused."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
        listener.listen(2048)
    except OSError as exc:
        listener.close()
        if exc.errno == errno.EADDRINUSE:
            fail(
                f"{host}:{port} is already in use (another trailguard gateway?); stop it or "
                "choose another --port. Nothing was recorded."
            )
        fail(f"cannot listen on {host}:{port}: {exc.strerror}. Nothing was recorded.")
    listener.set_inheritable(True)
    return listener


@app.command()
def init(
    data_dir: DataDir = None,
    store: StoreOption = None,
    gateway_role: Annotated[
        str | None,
        typer.Option(
            help="With --store: the database role replicas connect as; granted INSERT and "
            "SELECT on the ledger, never UPDATE, DELETE or TRUNCATE (it must exist)."
        ),
    ] = None,
    signing_key: Annotated[
        Path | None,
        typer.Option(help="Signing key file (else $TRAILGUARD_SIGNING_KEY or a new one)."),
    ] = None,
) -> None:
    """Create a data directory (ledger and signing key) without serving. Use it to create
    tokens before the first start; `serve` does the same on its first start. With --store,
    create the shared ledger's schema in PostgreSQL, as its owner."""
    from trailguard.ledger.keys import SigningKeyError
    from trailguard.ledger.writer import Ledger, LedgerError

    location = resolve_location(data_dir, store)
    if hasattr(location, "url"):
        _init_store(location, gateway_role)
        return
    if gateway_role is not None:
        fail("--gateway-role applies to a PostgreSQL --store only")
    directory = location.data_dir
    existed = (directory / "ledger.sqlite3").exists()
    try:
        ledger = Ledger.open(directory, key_file=signing_key, run_reason="init")
    except (LedgerError, SigningKeyError, OSError) as exc:
        fail(str(exc))
    ledger.close(reason="init")
    out.print(
        f"{directory} already held a ledger (log {ledger.origin}); nothing changed but a start"
        if existed
        else f"created {directory} (log {ledger.origin})"
    )


def _init_store(location: Any, gateway_role: str | None) -> None:
    from trailguard.store.base import StoreError
    from trailguard.store.postgres import schema
    from trailguard.store.postgres.connect import open_connection

    try:
        conn = open_connection(location.url)
    except StoreError as exc:
        fail(str(exc))
    try:
        created = schema.install(conn, gateway_role)
    except schema.SchemaError as exc:
        fail(str(exc))
    except Exception as exc:  # psycopg.Error: e.g. no right to create the schema
        fail(f"cannot create the trailguard schema in {location.description}: {exc}")
    finally:
        conn.close()
    out.print(
        ("created the trailguard schema in " if created else "the trailguard schema is in ")
        + location.description
        + (f"; role {gateway_role} may insert and read the ledger, never change it"
           if gateway_role else "")
    )  # fmt: skip


@app.command()
def version() -> None:
    """Print the version."""
    out.print(__version__)


# -- tokens ---------------------------------------------------------------------------------------

token_app = typer.Typer(
    cls=CommandGroup, help="API tokens: they decide who a request is from.", no_args_is_help=True
)
app.add_typer(token_app, name="token")


def gateway_state(data_dir: Any) -> Any:
    """The gateway state of a data directory (a Path or None) or of a resolved location."""
    if data_dir is None or isinstance(data_dir, Path):
        return open_state(resolve_data_dir(data_dir))
    return open_state(data_dir)


def _token_change(action: str, record: Any) -> Any:
    from trailguard.events import TokenChange

    return TokenChange(
        action=action,  # type: ignore[arg-type]
        token_id=record.token_id,
        role=record.role,
        subject_developer_id=record.developer_id,
        projects=list(record.projects),
        changed_by=cli_actor(),
        source="cli",
    )


@token_app.command("create")
def token_create(
    developer: Annotated[str, typer.Option(help="The developerId this token stands for.")],
    role: Annotated[str, typer.Option(help="agent (hooks), auditor (read), admin")] = "agent",
    project: Annotated[
        list[str] | None,
        typer.Option(
            help="Bind the token to this project id (repeatable): a session may only be "
            "attributed to these projects."
        ),
    ] = None,
    data_dir: DataDir = None,
    store: StoreOption = None,
) -> None:
    """Create a token; it is printed once, as the last line, and stored only as a hash. The
    creation (never the token) is recorded in the ledger."""
    directory = resolve_location(data_dir, store)
    state = gateway_state(directory)
    try:
        if role not in ROLES:
            fail(f"--role must be one of {', '.join(ROLES)}, got {role!r}")
        token, record = state.create_token(developer, role, tuple(project or ()))
        record_from_cli(state, directory, [_token_change("created", record)])
    except InvalidInputError as exc:
        fail(str(exc))
    finally:
        state.close()
    bound = f", bound to {', '.join(record.projects)}" if record.projects else ""
    err.print(f"token {record.token_id} for {developer} ({role}{bound}); it is not shown again:")
    out.print(token)


@token_app.command("list")
def token_list(data_dir: DataDir = None, store: StoreOption = None) -> None:
    """List tokens (ids, developers, roles; never the tokens themselves)."""
    state = gateway_state(resolve_location(data_dir, store))
    try:
        for record in state.tokens():
            status = f"revoked {record.revoked_at}" if record.revoked_at else "active"
            out.print(
                f"{record.token_id}  {record.developer_id}  {record.role}  "
                f"created {record.created_at}  {status}"
            )
    finally:
        state.close()


@token_app.command("revoke")
def token_revoke(token_id: str, data_dir: DataDir = None, store: StoreOption = None) -> None:
    """Revoke a token by its id (tok_...); requests with it get 401 from then on."""
    directory = resolve_location(data_dir, store)
    state = gateway_state(directory)
    try:
        record = state.revoke_token(token_id)
        if record is None:
            fail(f"no active token {token_id} (see `trailguard token list`)", 1)
        record_from_cli(state, directory, [_token_change("revoked", record)])
    finally:
        state.close()
    out.print(f"revoked {token_id}")


# -- sessions -------------------------------------------------------------------------------------

sessions_app = typer.Typer(
    cls=CommandGroup, help="Agent sessions: list, show, kill.", no_args_is_help=True
)
app.add_typer(sessions_app, name="sessions")


@sessions_app.command("list")
def sessions_list(
    data_dir: DataDir = None,
    store: StoreOption = None,
    developer: DeveloperOption = None,
    project: ProjectOption = None,
    since: Annotated[
        str | None,
        typer.Option(help="Sessions active at or after this date or RFC 3339 time (with zone)."),
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Sessions started before this date or time.")
    ] = None,
    active: Annotated[
        bool | None, typer.Option("--active/--ended", help="Only open, or only ended, sessions.")
    ] = None,
    output_format: Annotated[
        str, typer.Option("--format", help="table (on a terminal), tsv, csv or json")
    ] = "table",
) -> None:
    """Sessions, oldest first. Piped, the table becomes tab-separated full values."""
    from trailguard.retrieval import QueryError, parse_time

    if output_format not in ("table", "tsv", "csv", "json"):
        fail(f"--format must be table, tsv, csv or json, got {output_format!r}")
    try:
        since_at = parse_time(since, name="since") if since else None
        until_at = parse_time(until, name="until") if until else None
    except QueryError as exc:
        fail(str(exc))
    location = resolve_location(data_dir, store)
    state = gateway_state(location)
    try:
        found = list(
            state.sessions(
                developer_id=developer,
                project_id=project,
                since=since_at,
                until=until_at,
                active=active,
            )
        )
    finally:
        state.close()
    record_read(
        location,
        "cli sessions list",
        {"developer": developer, "project": project, "since": since, "until": until,
         "active": active},
        len(found),
    )  # fmt: skip
    rows = [_session_row(summary) for summary in found]
    if output_format == "json":
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
    elif output_format in {"csv", "tsv"}:
        import csv

        writer = csv.writer(sys.stdout, delimiter="," if output_format == "csv" else "\t")
        writer.writerow(SESSION_COLUMNS)
        for row in rows:
            writer.writerow([csv_cell(row[column]) for column in SESSION_COLUMNS])
    elif not out.is_terminal:
        sys.stdout.write("\t".join(SESSION_COLUMNS) + "\n")
        for row in rows:
            sys.stdout.write(
                "\t".join(printable(row[c] if row[c] is not None else "") for c in SESSION_COLUMNS)
                + "\n"
            )
    else:
        out.print(_sessions_table(rows, out.width))


SESSION_COLUMNS = (
    "sessionId",
    "developerId",
    "projectId",
    "startedAt",
    "lastEventAt",
    "endedAt",
    "endReason",
)


def _session_row(summary: Any) -> dict[str, Any]:
    return {
        "sessionId": summary.session_id,
        "developerId": summary.developer_id,
        "projectId": summary.project_id,
        "startedAt": summary.started_at,
        "lastEventAt": summary.last_event_at,
        "endedAt": summary.ended_at,
        "endReason": summary.end_reason,
        "neverStarted": summary.never_started,
    }


def _sessions_table(rows: list[dict[str, Any]], width: int) -> Any:
    """The sessions as a table fitted to ``width``: the session id is never cut; on a narrow
    terminal the least needed columns go (last event, then ended) and the rest wrap."""
    from rich.table import Table

    columns = ["session", "developer", "project", "started", "last event", "ended", "reason"]
    keys = ["sessionId", "developerId", "projectId", "startedAt", "lastEventAt", "endedAt",
            "endReason"]  # fmt: skip
    longest = max((len(row["sessionId"]) for row in rows), default=7)
    for dropped in ("last event", "ended"):
        if width >= longest + 24 * (len(columns) - 1):
            break
        index = columns.index(dropped)
        del columns[index], keys[index]
    table = Table(*columns, expand=False)
    table.columns[0].no_wrap = True
    table.columns[0].min_width = longest
    for column in table.columns[1:]:
        column.overflow = "fold"
    for row in rows:
        values = dict(row)
        if values["startedAt"] is None:
            values["startedAt"] = "(never started)"
        table.add_row(*(cell(values[key]) for key in keys))
    return table


@sessions_app.command("show")
def sessions_show(
    session_id: str,
    data_dir: DataDir = None,
    store_url: StoreOption = None,
    output_format: Annotated[str, typer.Option("--format", help="text or json")] = "text",
) -> None:
    """Who, project, start, end and why, event counts, and a completeness line."""
    from trailguard.cli.completeness import print_session
    from trailguard.completeness.report import session_completeness
    from trailguard.retrieval import session_report

    directory = resolve_location(data_dir, store_url)
    store = open_read_only(directory)
    try:
        session_id = resolve_session_id(store, session_id)
        report = session_report(store, session_id)
        reconciled = session_completeness(store, session_id)
    finally:
        store.close()
    record_read(directory, "cli sessions show", {"session": session_id}, 1 if report else 0)
    if report is None:
        fail(f"no events for session {session_id}", 1)
    sources = reconciled.to_json() if reconciled is not None else None
    if output_format == "json":
        document = report.to_json() | {"completeness": sources}
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
        return
    claimed = ", ".join(f"{k} {v}" for k, v in report.claimed_identity.items()) or "(none)"
    lines = [
        ("session", report.session_id),
        ("developer", report.developer_id or "(unknown)"),
        ("project", report.project_id or "(none)"),
        ("claimed", f"{claimed} (what the machine said; not verified)"),
        ("remote", report.git_remote or "(none)"),
        ("branch", report.git_branch or "(none)"),
        ("permission", report.permission_mode or "(not reported)"),
        ("model", report.model or "(not reported)"),
        ("started", report.started_at or "(never started: flagged)"),
    ]
    if report.ended_at is None:
        ended = "(open)"
    elif report.end_reason == "killed":
        who = report.ended_by or "an admin"
        ended = f"{report.ended_at} (killed by {who}"
        ended += f": {report.raw_end_reason!r})" if report.raw_end_reason else ")"
    elif report.end_reason in ("timed_out", "budget_exhausted"):
        ended = f"{report.ended_at} ({report.end_reason}: {report.raw_end_reason or ''})"
    else:
        ended = f"{report.ended_at} ({report.end_reason}"
        ended += f", agent said {report.raw_end_reason!r})" if report.raw_end_reason else ")"
    lines.append(("ended", ended))
    counts = ", ".join(f"{kind} {n}" for kind, n in sorted(report.counts.items()))
    lines.append(
        ("cost", f"${report.cost_usd:.4f} over {report.counts.get('cost', 0)} model requests")
    )
    lines.append(("decisions", f"{report.denials} denied, {report.asks} asked of "
                  f"{report.tool_calls} tool calls"))  # fmt: skip
    lines.append(("events", f"{sum(report.counts.values())}: {counts}"))
    for label, value in lines:
        out.print(f"{label:<11} ", cell(value), sep="")
    if report.downstream:
        from trailguard.cli.correlate import print_downstream

        print_downstream(report)
    if report.complete:
        out.print(
            f"[green]complete[/]: all {report.tool_calls} tool calls have an invocation and a "
            "result, error or denial"
        )
    else:
        out.print(
            f"[red]incomplete[/]: {len(report.gaps)} gap(s) in {report.tool_calls} tool calls"
        )
        for gap in report.gaps:
            out.print("  gap ", cell(gap), sep="")
    if sources is not None:
        out.print("reconciled with the proxy, telemetry and transcript:")
        print_session(sources)


@sessions_app.command("kill")
def sessions_kill(
    session_id: str,
    data_dir: DataDir = None,
    store_url: StoreOption = None,
    reason: Annotated[str | None, typer.Option(help="Recorded with the session's end.")] = None,
    by: Annotated[
        str | None, typer.Option(help="Who asks (default: the OS user running this).")
    ] = None,
) -> None:
    """Kill a session: the gateway records session_end (killed) and from then on denies every
    hook of it with continue=false."""
    directory = resolve_location(data_dir, store_url)
    state = gateway_state(directory)
    store = open_read_only(directory)
    try:
        session_id = resolve_session_id(store, session_id)
        new = state.request_kill(session_id, by or cli_actor(), reason)
    finally:
        store.close()
        state.close()
    if not new:
        out.print(f"session {session_id} was already killed")
        return
    running = directory.writer_running()
    out.print(
        f"session {session_id}: kill requested"
        + ("" if running else " (no gateway runs now: it is recorded when the gateway starts)")
    )


# -- install --------------------------------------------------------------------------------------


@app.command()
def install(
    gateway: Annotated[str, typer.Option(help="Gateway URL, e.g. http://127.0.0.1:8787")] = (
        "http://127.0.0.1:8787"
    ),
    project_dir: Annotated[
        Path | None, typer.Option("--project", help="Install into DIR/.claude/settings.json")
    ] = None,
    user: Annotated[bool, typer.Option("--user", help="Install into ~/.claude/settings.json")] = (
        False
    ),
    managed: Annotated[
        bool, typer.Option("--managed", help="Install into /etc/claude-code/managed-settings.json")
    ] = False,
    mode: Annotated[str, typer.Option(help="http (default) or command")] = "http",
    hook_command: Annotated[
        str | None,
        typer.Option(
            help="Command hook to run [default: this Python, -I -S, trailguard/__main__.py hook]"
        ),
    ] = None,
    allow_managed_hooks_only: Annotated[
        bool, typer.Option(help="With --managed: ignore hooks from user and project settings.")
    ] = False,
    uninstall: Annotated[bool, typer.Option("--uninstall", help="Remove trailguard's hooks.")] = (
        False
    ),
) -> None:
    """Merge trailguard's hooks into a Claude Code settings file, idempotently."""
    from trailguard.capture import install as installer

    scopes = [
        name
        for name, chosen in (("project", project_dir), ("user", user), ("managed", managed))
        if chosen
    ]
    if len(scopes) != 1:
        fail("choose exactly one of --project DIR, --user, --managed")
    if mode not in ("http", "command"):
        fail("--mode must be http or command")
    if allow_managed_hooks_only and not managed:
        fail("--allow-managed-hooks-only only applies with --managed")
    if project_dir is not None and not project_dir.is_dir():
        fail(
            f"--project {project_dir}: no such folder; give the project's existing folder "
            "(install does not create projects)"
        )
    path = installer.settings_path(scopes[0], project_dir=project_dir)  # type: ignore[arg-type]
    if hook_command is None:
        hook_command = installer.default_hook_command()
    try:
        if uninstall:
            result = installer.uninstall(path)
        else:
            result = installer.install(
                path,
                gateway,
                mode,  # type: ignore[arg-type]
                hook_command=hook_command,
                allow_managed_hooks_only=allow_managed_hooks_only,
            )
    except (installer.InstallError, OSError) as exc:
        fail(str(exc))
    verb = "removed from" if uninstall else "installed in"
    if result.changed:
        out.print(f"trailguard hooks {verb} {result.path}")
    else:
        out.print(f"{result.path} already up to date")
    if not uninstall and mode == "http":
        err.print(
            "HTTP hooks send $TRAILGUARD_TOKEN: set it in the environment Claude Code runs in."
        )
        err.print(
            "HTTP hooks record no model cost. For cost, run Claude Code through the API proxy: "
            f"ANTHROPIC_BASE_URL={installer.normalize_gateway_url(gateway)}/anthropic "
            "ANTHROPIC_CUSTOM_HEADERS='X-Trailguard-Token: <your agent token>' (or use "
            "--mode command, which reads usage from the transcript)."
        )


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    help="The command hook client (Claude Code runs it; reads the hook JSON on stdin).",
)
def hook() -> None:
    from trailguard.capture import hook_client

    raise typer.Exit(hook_client.main(sys.stdin.buffer, sys.stdout, os.environ, argv=sys.argv[2:]))
