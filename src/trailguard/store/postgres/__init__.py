"""The shared store on PostgreSQL (the optional ``[postgres]`` extra: psycopg 3 and
psycopg-pool): the ledger several gateway replicas write through one sequencer, and the
gateway state they share."""

from trailguard.store.postgres.connect import describe, is_postgres_url
from trailguard.store.postgres.ledger_store import PostgresStore

__all__ = ["PostgresStore", "describe", "is_postgres_url"]
