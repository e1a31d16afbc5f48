"""Events pruned from the hot store, brought back for an evidence bundle: their exact bytes
from the archive's sealed segments (each segment checked against its signed checkpoint), and
the leaf hashes of the pruned blocks from the archive's level-0 hash tiles (C2SP tlog-tiles), so
that each archived event gets an inclusion proof against the hot store's latest signed tree
head like any other event, and the bundle verifies offline with nothing but the key.

Nothing read from the archive is trusted: a tile or an event that was changed makes the proof
miss the signed root, and the export refuses to write the bundle.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from trailguard.archive.backends import Archive, MissingObjectError
from trailguard.archive.index import archived_bodies
from trailguard.archive.seal import ArchiveIntegrityError
from trailguard.archive.tiles import TILE_WIDTH, split_tile, tile_path
from trailguard.ledger.note import Verifier
from trailguard.retrieval import EventQuery
from trailguard.store.base import PRUNED_BEFORE_KEY, EventFilter, LedgerRow, Store, row_of


def pruned_before(store: Store) -> int:
    """The first seq the hot store still holds (events before it were archived and pruned)."""
    return int(store.get_meta(PRUNED_BEFORE_KEY) or 0)


def archived_rows(
    archive: Archive, filters: Sequence[EventFilter], verifier: Verifier, *, below: int
) -> list[LedgerRow]:
    """The archived events matching any of ``filters`` with a seq under ``below``, as ledger
    rows (their exact bytes; the leaf hash computed from them, never read)."""
    found: dict[int, LedgerRow] = {}
    for event_filter in filters:
        for body, document in archived_bodies(
            archive, EventQuery(event_filter), verifier, below=below
        ):
            found[document["seq"]] = row_of(body, document)
    return [found[seq] for seq in sorted(found)]


class TileLeaves:
    """Leaf hashes of a tree whose first ``boundary`` leaves left the hot store: those come
    from the archive's full level-0 tiles (the hot store prunes whole 256-leaf blocks, so each
    pruned block is one full tile), the rest from the store. A callable ``(begin, end) ->
    hashes``, what the proof tree reads leaves with."""

    _TILES_KEPT = 64

    def __init__(self, archive: Archive, store: Store) -> None:
        self._archive = archive
        self._store = store
        self.boundary = pruned_before(store)
        self._tiles: OrderedDict[int, list[bytes]] = OrderedDict()

    def __call__(self, begin: int, end: int) -> list[bytes]:
        if begin >= self.boundary:
            return self._store.leaf_hashes(begin, end)
        hashes: list[bytes] = []
        position = begin
        while position < min(end, self.boundary):
            block = position // TILE_WIDTH
            tile = self._tile(block)
            stop = min(end, self.boundary, (block + 1) * TILE_WIDTH)
            hashes.extend(tile[position - block * TILE_WIDTH : stop - block * TILE_WIDTH])
            position = stop
        if end > self.boundary:
            hashes.extend(self._store.leaf_hashes(self.boundary, end))
        return hashes

    def _tile(self, block: int) -> list[bytes]:
        cached = self._tiles.get(block)
        if cached is not None:
            self._tiles.move_to_end(block)
            return cached
        key = tile_path(0, block)
        try:
            hashes = split_tile(self._archive.get(key).data, TILE_WIDTH)
        except MissingObjectError:
            raise ArchiveIntegrityError(
                f"{self._archive.url}/{key}: the hash tile of pruned leaves "
                f"{block * TILE_WIDTH}..{(block + 1) * TILE_WIDTH - 1} is missing; run "
                "`trailguard archive verify`"
            ) from None
        except ValueError as exc:
            raise ArchiveIntegrityError(f"{self._archive.url}/{key}: {exc}") from None
        self._tiles[block] = hashes
        if len(self._tiles) > self._TILES_KEPT:
            self._tiles.popitem(last=False)
        return hashes
