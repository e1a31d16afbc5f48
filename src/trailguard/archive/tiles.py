"""C2SP tlog-tiles hash tiles (https://c2sp.org/tlog-tiles) of the RFC 6962 tree.

A tile at level L holds up to 256 consecutive node hashes of height 8·L (level 0: leaf hashes),
concatenated; it is full at 256 hashes and partial (``.p/<width>``) at the tree's right edge.
``TileBuilder`` consumes leaf hashes in order and says which tiles complete; its open partial
tiles are exactly the state needed to continue the tree, and they determine the compact range
(the perfect subtrees covering [0, size)), hence the root at any size.
"""

from __future__ import annotations

from collections.abc import Sequence

from trailguard.ledger import merkle

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT

Tile = tuple[int, int, int, bytes]
"""(level, index, width, the concatenated hashes)."""


def tile_path(level: int, index: int, width: int = TILE_WIDTH) -> str:
    """The tile's path: ``tile/<L>/<N>[.p/<W>]``, N in zero-padded 3-digit elements, all but the
    last prefixed ``x`` (c2sp.org/tlog-tiles, "Merkle Tree")."""
    if not 0 < width <= TILE_WIDTH:
        raise ValueError(f"tile width {width} is outside 1..{TILE_WIDTH}")
    digits = f"{index:03d}"
    while len(digits) % 3:
        digits = "0" + digits
    groups = [digits[i : i + 3] for i in range(0, len(digits), 3)]
    encoded = "/".join([*(f"x{group}" for group in groups[:-1]), groups[-1]])
    suffix = "" if width == TILE_WIDTH else f".p/{width}"
    return f"tile/{level}/{encoded}{suffix}"


def tiles_for_size(size: int) -> list[tuple[int, int, int]]:
    """(level, index, width) of every tile of a tree of ``size`` leaves: all full tiles and the
    partial one at each level's right edge."""
    tiles: list[tuple[int, int, int]] = []
    level = 0
    while True:
        nodes = size >> (TILE_HEIGHT * level)
        if nodes == 0:
            break
        tiles.extend((level, index, TILE_WIDTH) for index in range(nodes // TILE_WIDTH))
        if nodes % TILE_WIDTH:
            tiles.append((level, nodes // TILE_WIDTH, nodes % TILE_WIDTH))
        if nodes < TILE_WIDTH:
            break
        level += 1
    return tiles


def new_tiles(previous_size: int, size: int) -> list[tuple[int, int, int]]:
    """The tiles of ``size`` that the tree of ``previous_size`` did not have (each tile name is
    written once: a wider partial tile has another name)."""
    tiles: list[tuple[int, int, int]] = []
    level = 0
    while True:
        nodes = size >> (TILE_HEIGHT * level)
        if nodes == 0:
            break
        old_nodes = previous_size >> (TILE_HEIGHT * level)
        first_new_full = old_nodes // TILE_WIDTH
        tiles.extend(
            (level, index, TILE_WIDTH) for index in range(first_new_full, nodes // TILE_WIDTH)
        )
        if nodes % TILE_WIDTH and nodes != old_nodes:
            tiles.append((level, nodes // TILE_WIDTH, nodes % TILE_WIDTH))
        if nodes < TILE_WIDTH:
            break
        level += 1
    return tiles


def _perfect_subtrees(hashes: Sequence[bytes]) -> list[bytes]:
    """The perfect subtrees over a run of same-height hashes that starts aligned, largest
    first (the bits of its length)."""
    roots = []
    begin = 0
    width = len(hashes)
    for bit in range(width.bit_length() - 1, -1, -1):
        if width >> bit & 1:
            roots.append(merkle.root_of(hashes[begin : begin + (1 << bit)]))
            begin += 1 << bit
    return roots


class TileBuilder:
    """The tiles of a growing tree. ``open[L]`` holds the hashes of the level-L tile still open
    (fewer than 256 of them)."""

    def __init__(self, size: int = 0, open_tiles: Sequence[Sequence[bytes]] = ()) -> None:
        self.size = size
        self.open: list[list[bytes]] = [list(tile) for tile in open_tiles]
        levels = 1
        while size >> (TILE_HEIGHT * levels):
            levels += 1
        while len(self.open) < levels:
            self.open.append([])
        for level, tile in enumerate(self.open):
            expected = (size >> (TILE_HEIGHT * level)) % TILE_WIDTH
            if len(tile) != expected:
                raise ValueError(
                    f"open tile at level {level} has {len(tile)} hashes; a tree of size {size} "
                    f"has {expected}"
                )
        self.completed: list[Tile] = []
        """Full tiles completed by ``append`` since the caller last cleared the list."""

    def append(self, leaf_hash: bytes) -> None:
        node = leaf_hash
        level = 0
        self.size += 1
        while True:
            if level == len(self.open):
                self.open.append([])
            tile = self.open[level]
            tile.append(node)
            if len(tile) < TILE_WIDTH:
                return
            index = (self.size >> (TILE_HEIGHT * level)) // TILE_WIDTH - 1
            self.completed.append((level, index, TILE_WIDTH, b"".join(tile)))
            node = merkle.root_of(tile)
            self.open[level] = []
            level += 1

    def partial_tiles(self) -> list[Tile]:
        """The open tiles that hold at least one hash, as partial tiles."""
        tiles = []
        for level, tile in enumerate(self.open):
            if tile:
                index = (self.size >> (TILE_HEIGHT * level)) // TILE_WIDTH
                tiles.append((level, index, len(tile), b"".join(tile)))
        return tiles

    def compact_range(self) -> list[bytes]:
        """The perfect subtrees covering [0, size), largest first (RFC 6962 §2.1 order)."""
        subtrees: list[bytes] = []
        for tile in reversed(self.open):
            subtrees.extend(_perfect_subtrees(tile))
        return subtrees

    def root(self) -> bytes:
        return merkle.root_from_subtrees(self.compact_range())


def split_tile(data: bytes, width: int) -> list[bytes]:
    """A tile's bytes as its hashes; ValueError when the length is not ``width`` hashes."""
    if len(data) != width * merkle.HASH_SIZE:
        raise ValueError(
            f"a tile of width {width} is {width * merkle.HASH_SIZE} bytes, found {len(data)}"
        )
    return [data[i : i + merkle.HASH_SIZE] for i in range(0, len(data), merkle.HASH_SIZE)]
