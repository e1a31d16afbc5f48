"""The PostgreSQL schema of a shared ledger: tables, monthly partitions, and the rules the
database itself enforces whoever connects (append-only events, contiguous ``seq``, a signed head
that never moves back), plus the grants of the gateway role.

Everything lives in the schema ``trailguard``. Its owner (who ran ``trailguard init --store``)
owns the tables and the partitions; replicas connect as a gateway role that may insert and read
the ledger but holds no UPDATE, DELETE or TRUNCATE on it. Partitions are created through a
``SECURITY DEFINER`` function so that they too belong to the owner, never to the gateway role.
"""

from __future__ import annotations

import re
from typing import Final

import psycopg
from psycopg import sql

SCHEMA: Final = "trailguard"
SCHEMA_VERSION: Final = 2
DEFAULT_GATEWAY_ROLE: Final = "trailguard_gateway"

SEQUENCER_LOCK: Final = 0x7472_6C67  # "trlg": pg_advisory_lock key held by the sequencer
INTAKE_CHANNEL: Final = "trailguard_intake"
SEQUENCED_CHANNEL: Final = "trailguard_sequenced"

_TEXT = 'text COLLATE "C"'  # byte order, as SQLite compares: ranges and prefixes behave alike

# One entry per schema version. Never edit a released one.
MIGRATIONS: Final[tuple[str, ...]] = (
    f"""
    CREATE TABLE schema_version (version integer NOT NULL);
    INSERT INTO schema_version VALUES (0);

    -- Set once (origin, pinned verifier key): the gateway role may insert, never change.
    CREATE TABLE meta (key {_TEXT} PRIMARY KEY, value text NOT NULL);

    -- The sequencer's position and its latest signed tree head, written in the same
    -- transaction as the events it covers. head_size is read from the note itself.
    CREATE TABLE ledger_head (
        only_row    boolean PRIMARY KEY DEFAULT true CHECK (only_row),
        next_seq    bigint NOT NULL DEFAULT 0,
        head_size   bigint NOT NULL DEFAULT 0,
        signed_head text
    );
    INSERT INTO ledger_head DEFAULT VALUES;

    CREATE TABLE events (
        seq          bigint NOT NULL,
        event_id     {_TEXT} NOT NULL,
        "timestamp"  {_TEXT} NOT NULL,
        event_type   {_TEXT} NOT NULL,
        session_id   {_TEXT},
        developer_id {_TEXT},
        project_id   {_TEXT},
        tool         {_TEXT},
        leaf_hash    bytea NOT NULL,
        body         bytea NOT NULL
    ) PARTITION BY RANGE ("timestamp");
    -- A unique index of a partitioned table must contain the partition key, so uniqueness of
    -- seq is the insert trigger's job (below) and event ids are checked by the sequencer.
    CREATE INDEX events_by_seq       ON events (seq);
    CREATE INDEX events_by_event_id  ON events (event_id);
    CREATE INDEX events_by_session   ON events (session_id, "timestamp", seq);
    CREATE INDEX events_by_developer ON events (developer_id, "timestamp");
    CREATE INDEX events_by_project   ON events (project_id, "timestamp");
    CREATE INDEX events_by_time      ON events ("timestamp");
    CREATE INDEX events_by_type      ON events (event_type, seq);

    CREATE TABLE tree_nodes (
        level integer NOT NULL,
        idx   bigint NOT NULL,
        hash  bytea NOT NULL,
        PRIMARY KEY (level, idx)
    );

    CREATE TABLE quarantine (
        seq            bigint NOT NULL,
        event_id       text NOT NULL,
        leaf_hash      bytea NOT NULL,
        body           bytea NOT NULL,
        reason         text NOT NULL,
        quarantined_at text NOT NULL,
        moved          bigserial PRIMARY KEY
    );

    -- Events accepted durably by a replica, waiting for the sequencer to give them a seq.
    -- The canonical bytes are stored around the seq: body = prefix || seq || suffix.
    CREATE TABLE intake (
        intake_id    bigserial PRIMARY KEY,
        event_id     {_TEXT} NOT NULL UNIQUE,
        "timestamp"  {_TEXT} NOT NULL,
        event_type   {_TEXT} NOT NULL,
        session_id   {_TEXT},
        developer_id {_TEXT},
        project_id   {_TEXT},
        tool         {_TEXT},
        body_prefix  bytea NOT NULL,
        body_suffix  bytea NOT NULL,
        replica      text NOT NULL,
        accepted_at  timestamptz NOT NULL DEFAULT now()
    );
    -- A queue: every row is deleted within milliseconds, so vacuum it often.
    ALTER TABLE intake SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 2000,
                            autovacuum_vacuum_cost_delay = 0);

    CREATE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'DELETE' AND current_setting('trailguard.quarantining', true) = 'on' THEN
            RETURN OLD;
        END IF;
        RAISE EXCEPTION 'ledger % are append-only: % refused', TG_TABLE_NAME, TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END $$;

    -- Every insert statement must continue the ledger exactly where it ends: seq contiguous
    -- from next_seq, no duplicate, whoever inserts and however many sequencers race.
    CREATE FUNCTION continue_ledger() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        lo bigint; hi bigint; n bigint; distinct_n bigint; expected bigint;
    BEGIN
        SELECT min(seq), max(seq), count(*), count(DISTINCT seq)
            INTO lo, hi, n, distinct_n FROM inserted;
        IF n = 0 THEN RETURN NULL; END IF;
        SELECT next_seq INTO expected FROM ledger_head FOR UPDATE;
        IF lo <> expected OR hi - lo + 1 <> n OR distinct_n <> n THEN
            RAISE EXCEPTION 'ledger seq must continue at %: got % rows at seq %..%',
                expected, n, lo, hi USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        UPDATE ledger_head SET next_seq = hi + 1;
        RETURN NULL;
    END $$;

    -- The signed head only moves forward; only quarantine may lower next_seq (to the head).
    CREATE FUNCTION head_moves_forward() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF NEW.signed_head IS DISTINCT FROM OLD.signed_head THEN
            NEW.head_size := split_part(NEW.signed_head, E'\\n', 2)::bigint;
        ELSE
            NEW.head_size := OLD.head_size;
        END IF;
        IF NEW.head_size < OLD.head_size THEN
            RAISE EXCEPTION 'the signed tree head cannot move back from % to %',
                OLD.head_size, NEW.head_size USING ERRCODE = 'insufficient_privilege';
        END IF;
        IF NEW.next_seq < OLD.next_seq AND NOT (
            current_setting('trailguard.quarantining', true) = 'on'
            AND NEW.next_seq >= NEW.head_size
        ) THEN
            RAISE EXCEPTION 'the ledger cannot shrink from % to % events',
                OLD.next_seq, NEW.next_seq USING ERRCODE = 'insufficient_privilege';
        END IF;
        RETURN NEW;
    END $$;

    CREATE TRIGGER events_continue AFTER INSERT ON events
        REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION continue_ledger();
    CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
        FOR EACH ROW EXECUTE FUNCTION refuse_change();
    CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
        FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
    CREATE TRIGGER tree_nodes_append_only BEFORE UPDATE OR DELETE ON tree_nodes
        FOR EACH ROW EXECUTE FUNCTION refuse_change();
    CREATE TRIGGER tree_nodes_no_truncate BEFORE TRUNCATE ON tree_nodes
        FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
    CREATE TRIGGER meta_set_once BEFORE UPDATE OR DELETE ON meta
        FOR EACH ROW EXECUTE FUNCTION refuse_change();
    CREATE TRIGGER quarantine_append_only BEFORE UPDATE OR DELETE ON quarantine
        FOR EACH ROW EXECUTE FUNCTION refuse_change();
    CREATE TRIGGER head_forward BEFORE UPDATE ON ledger_head
        FOR EACH ROW EXECUTE FUNCTION head_moves_forward();
    CREATE TRIGGER head_kept BEFORE DELETE ON ledger_head
        FOR EACH ROW EXECUTE FUNCTION refuse_change();

    -- Monthly partitions, created as the owner (so never owned by the gateway role), with the
    -- truncate guard (a partition can be truncated on its own; row triggers are inherited).
    CREATE FUNCTION ensure_month_partition(month text) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = trailguard, pg_temp AS $$
    DECLARE
        first_day date; name text;
    BEGIN
        IF month !~ '^[0-9]{{4}}-[0-9]{{2}}$' THEN
            RAISE EXCEPTION 'not a month (YYYY-MM): %', month;
        END IF;
        first_day := to_date(month || '-01', 'YYYY-MM-DD');
        name := 'events_' || to_char(first_day, 'YYYY_MM');
        PERFORM pg_advisory_xact_lock(hashtext('trailguard partitions'));
        IF to_regclass('trailguard.' || name) IS NOT NULL THEN RETURN; END IF;
        EXECUTE format('CREATE TABLE trailguard.%I PARTITION OF trailguard.events '
                       'FOR VALUES FROM (%L) TO (%L)', name, to_char(first_day, 'YYYY-MM'),
                       to_char(first_day + interval '1 month', 'YYYY-MM'));
        EXECUTE format('CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON trailguard.%I '
                       'FOR EACH STATEMENT EXECUTE FUNCTION trailguard.refuse_change()', name);
        EXECUTE format('REVOKE ALL ON trailguard.%I FROM PUBLIC', name);
    END $$;

    -- The one way events leave the tree: rows beyond the signed head (never signed by the
    -- sequencer), moved to quarantine as evidence. Nothing the head covers can be moved.
    CREATE FUNCTION quarantine_from(first bigint, why text, moved_at text) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = trailguard, pg_temp AS $$
    DECLARE
        covered bigint; count_moved bigint;
    BEGIN
        SELECT head_size INTO covered FROM ledger_head FOR UPDATE;
        IF first < covered THEN
            RAISE EXCEPTION 'seq % is covered by the signed tree head (size %): not movable',
                first, covered USING ERRCODE = 'insufficient_privilege';
        END IF;
        PERFORM set_config('trailguard.quarantining', 'on', true);
        INSERT INTO quarantine (seq, event_id, leaf_hash, body, reason, quarantined_at)
            SELECT seq, event_id, leaf_hash, body, why, moved_at FROM events
            WHERE seq >= first ORDER BY seq;
        GET DIAGNOSTICS count_moved = ROW_COUNT;
        DELETE FROM events WHERE seq >= first;
        DELETE FROM tree_nodes WHERE (idx + 1) << level > first;
        UPDATE ledger_head SET next_seq = first;
        PERFORM set_config('trailguard.quarantining', 'off', true);
        RETURN count_moved;
    END $$;

    -- Gateway state: mutable and unsigned (what matters is also an event in the ledger).
    CREATE TABLE tokens (
        token_hash   {_TEXT} PRIMARY KEY,
        token_id     {_TEXT} NOT NULL UNIQUE,
        developer_id {_TEXT} NOT NULL,
        role         {_TEXT} NOT NULL CHECK (role IN ('agent', 'auditor', 'admin')),
        created_at   {_TEXT} NOT NULL,
        revoked_at   {_TEXT},
        projects     text NOT NULL DEFAULT '[]'
    );
    CREATE TABLE sessions (
        session_id     {_TEXT} PRIMARY KEY,
        developer_id   {_TEXT},
        project_id     {_TEXT},
        started_at     {_TEXT},
        last_event_at  {_TEXT} NOT NULL,
        ended_at       {_TEXT},
        end_reason     {_TEXT},
        raw_end_reason text,
        never_started  boolean NOT NULL DEFAULT false
    );
    CREATE INDEX sessions_by_developer ON sessions (developer_id, last_event_at);
    CREATE INDEX sessions_by_project   ON sessions (project_id, last_event_at);
    CREATE TABLE session_kills (
        session_id   {_TEXT} PRIMARY KEY,
        requested_at {_TEXT} NOT NULL,
        requested_by text,
        reason       text,
        recorded_at  {_TEXT}
    );
    CREATE TABLE pending_events (
        queue_id  bigserial PRIMARY KEY,
        document  text NOT NULL,
        queued_at {_TEXT} NOT NULL
    );
    """,
    # 2: repacking a month that has ended in session order. Rows arrive interleaved (32 agents
    # at a time put ~1 event of a session on each 8 KiB heap page), so reading a session's day
    # cold costs one page per event; a repacked month holds each session's events together.
    """
    CREATE FUNCTION repack_month_partition(month text) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = trailguard, pg_temp AS $$
    DECLARE
        first_day date; name text; packed text; lo text; hi text;
        original bigint; copied bigint; differing bigint; definition text;
    BEGIN
        IF month !~ '^[0-9]{4}-[0-9]{2}$' THEN
            RAISE EXCEPTION 'not a month (YYYY-MM): %', month;
        END IF;
        first_day := to_date(month || '-01', 'YYYY-MM-DD');
        -- Event times are the gateway's receipt time: a month a day past its end gets no more.
        IF first_day + interval '1 month 1 day' > now() THEN
            RAISE EXCEPTION 'month % has not ended a day ago: only past months are repacked',
                month USING ERRCODE = 'object_not_in_prerequisite_state';
        END IF;
        name := 'events_' || to_char(first_day, 'YYYY_MM');
        packed := name || '_packing';
        lo := to_char(first_day, 'YYYY-MM');
        hi := to_char(first_day + interval '1 month', 'YYYY-MM');
        IF to_regclass('trailguard.' || name) IS NULL THEN
            RAISE EXCEPTION 'no partition for month %', month;
        END IF;
        PERFORM pg_advisory_xact_lock(hashtext('trailguard partitions'));
        -- Readers go on; a writer to this month (there should be none) waits.
        EXECUTE format('LOCK TABLE trailguard.%I IN SHARE MODE', name);
        EXECUTE format('CREATE TABLE trailguard.%I (LIKE trailguard.events)', packed);
        EXECUTE format('INSERT INTO trailguard.%I SELECT * FROM trailguard.%I '
                       'ORDER BY session_id, "timestamp", seq', packed, name);
        GET DIAGNOSTICS copied = ROW_COUNT;
        EXECUTE format('SELECT count(*) FROM trailguard.%I', name) INTO original;
        EXECUTE format('SELECT count(*) FROM trailguard.%I o FULL JOIN trailguard.%I p '
                       'ON o.seq = p.seq WHERE o.seq IS NULL OR p.seq IS NULL '
                       'OR ROW(o.*) IS DISTINCT FROM ROW(p.*)', name, packed) INTO differing;
        IF copied <> original OR differing <> 0 THEN
            RAISE EXCEPTION 'repacking % copied % of % rows, % differing: nothing changed',
                month, copied, original, differing;
        END IF;
        -- The partition bound as a constraint, and every index of the ledger, built now so
        -- that attaching neither scans nor builds while the parent is locked.
        EXECUTE format('ALTER TABLE trailguard.%I ADD CONSTRAINT %I CHECK '
                       '("timestamp" IS NOT NULL AND "timestamp" >= %L AND "timestamp" < %L)',
                       packed, packed || '_bounds', lo, hi);
        FOR definition IN
            SELECT pg_get_indexdef(indexrelid) FROM pg_index
            WHERE indrelid = 'trailguard.events'::regclass
        LOOP
            EXECUTE regexp_replace(definition, '^CREATE INDEX \\S+ ON ONLY trailguard\\.events ',
                                   format('CREATE INDEX ON trailguard.%I ', packed));
        END LOOP;
        EXECUTE format('ANALYZE trailguard.%I', packed);
        -- From here to the commit the parent is locked: a detach, a rename, an attach.
        EXECUTE format('ALTER TABLE trailguard.events DETACH PARTITION trailguard.%I', name);
        EXECUTE format('DROP TABLE trailguard.%I', name);
        EXECUTE format('ALTER TABLE trailguard.%I RENAME TO %I', packed, name);
        EXECUTE format('ALTER TABLE trailguard.events ATTACH PARTITION trailguard.%I '
                       'FOR VALUES FROM (%L) TO (%L)', name, lo, hi);
        EXECUTE format('ALTER TABLE trailguard.%I DROP CONSTRAINT %I', name, packed || '_bounds');
        EXECUTE format('CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON trailguard.%I '
                       'FOR EACH STATEMENT EXECUTE FUNCTION trailguard.refuse_change()', name);
        EXECUTE format('REVOKE ALL ON trailguard.%I FROM PUBLIC', name);
        RETURN copied;
    END $$;
    REVOKE ALL ON FUNCTION repack_month_partition(text) FROM PUBLIC;
    """,
)

_GRANTS: Final = (
    "GRANT USAGE ON SCHEMA trailguard TO {role}",
    "GRANT SELECT, INSERT ON trailguard.events, trailguard.tree_nodes, trailguard.meta TO {role}",
    "GRANT SELECT ON trailguard.quarantine, trailguard.schema_version TO {role}",
    "GRANT SELECT, UPDATE ON trailguard.ledger_head TO {role}",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON trailguard.intake TO {role}",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON trailguard.tokens, trailguard.sessions, "
    "trailguard.session_kills, trailguard.pending_events TO {role}",
    "GRANT USAGE ON ALL SEQUENCES IN SCHEMA trailguard TO {role}",
    "GRANT EXECUTE ON FUNCTION trailguard.ensure_month_partition(text), "
    "trailguard.quarantine_from(bigint, text, text) TO {role}",
)
"""What a replica may do: read and insert the ledger, move its own head forward, and manage
the gateway state. No UPDATE, DELETE or TRUNCATE on events, tree nodes, meta or quarantine."""


class SchemaError(Exception):
    """The database has no usable trailguard schema; the message says what to run."""


def installed_version(conn: psycopg.Connection[tuple[object, ...]]) -> int | None:
    """The schema version in the database, or None when trailguard was never installed."""
    row = conn.execute("SELECT to_regclass('trailguard.schema_version') IS NOT NULL").fetchone()
    if not row or not row[0]:
        return None
    found = conn.execute("SELECT version FROM trailguard.schema_version").fetchone()
    return int(str(found[0])) if found else 0


def install(conn: psycopg.Connection[tuple[object, ...]], gateway_role: str | None) -> bool:
    """Create or upgrade the schema (as its owner) and grant ``gateway_role`` its rights.
    Returns whether anything was created. ``conn`` must not be in a transaction."""
    if gateway_role is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]{0,62}", gateway_role):
        raise SchemaError(f"{gateway_role!r} is not a usable role name")
    created = False
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('trailguard schema'))")
        version = installed_version(conn)
        if version is not None and version > SCHEMA_VERSION:
            raise SchemaError(
                f"the database has trailguard schema version {version}, newer than this "
                f"trailguard understands ({SCHEMA_VERSION}): upgrade trailguard"
            )
        if version is None:
            conn.execute("CREATE SCHEMA trailguard")
            version = 0
        conn.execute("SET LOCAL search_path = trailguard, pg_temp")
        for number in range(version, SCHEMA_VERSION):
            conn.execute(MIGRATIONS[number].encode())
            conn.execute("UPDATE schema_version SET version = %s", (number + 1,))
            created = True
        if gateway_role is not None:
            exists = conn.execute(
                "SELECT 1 FROM pg_roles WHERE rolname = %s", (gateway_role,)
            ).fetchone()
            if not exists:
                raise SchemaError(
                    f"role {gateway_role} does not exist: create it first, e.g. "
                    f"CREATE ROLE {gateway_role} LOGIN PASSWORD '...'"
                )
            for grant in _GRANTS:
                conn.execute(sql.SQL(grant).format(role=sql.Identifier(gateway_role)))
    return created


def repack_month(conn: psycopg.Connection[tuple[object, ...]], month: str) -> int:
    """Rewrite the partition of ``month`` (YYYY-MM, ended at least a day ago) in session order,
    as the schema's owner; returns how many events it holds. The rows are copied and compared
    before the old partition is dropped, indexes are built before the swap, and readers go on
    meanwhile (the parent is locked only for the detach and attach). ``conn`` must be in
    autocommit mode: the new partition is vacuumed afterwards, so that its pages carry their
    hint bits and its visibility map is set before the first reader comes."""
    row = conn.execute("SELECT trailguard.repack_month_partition(%s)", (month,)).fetchone()
    name = sql.Identifier(SCHEMA, f"events_{month.replace('-', '_')}")
    conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(name))
    return int(str(row[0])) if row else 0


def month_of(timestamp: str) -> str:
    """The partition month (YYYY-MM) of an RFC 3339 timestamp."""
    return timestamp[:7]
