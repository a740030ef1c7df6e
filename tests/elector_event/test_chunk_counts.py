"""The chunk bookkeeping of fused attention, in closed form and per run of
tiles, equals counting tile by tile (``ChunkLink.chunk_of`` of every tile)."""

from __future__ import annotations

import itertools

import numpy as np

from backends.elector.event_sim import _chunk_runs, _chunk_sizes
from backends.elector.event_stages import ChunkLink

LINKS = [ChunkLink(count=count, stride=stride) for count, stride in
         itertools.product((1, 3, 12), (1, 4, 7, 64))] + \
        [ChunkLink(count=count, col_tiles=cols, rows_per_tile=rpt, rows_per_chunk=rpc)
         for count, cols, rpt, rpc in itertools.product((1, 4, 9), (1, 3, 50), (1, 5), (2, 7))]


def test_tiles_per_chunk_in_closed_form() -> None:
    for link, tiles in itertools.product(LINKS, (1, 5, 36, 37, 250)):
        expected = np.bincount(link.chunk_of(np.arange(tiles)), minlength=link.count)
        assert _chunk_sizes(link, tiles).tolist() == expected.tolist(), (link, tiles)


def test_runs_of_a_wave_give_the_per_tile_maxima_and_counts() -> None:
    rng = np.random.default_rng(12)
    for link, (first, size), keep in itertools.product(
            LINKS, ((0, 40), (13, 200), (101, 7)), (1.0, 0.5)):
        tiles = np.arange(first, first + size, dtype=np.int64)
        tiles = tiles[rng.random(size) < keep] if keep < 1 else tiles
        if not tiles.size:
            continue                        # (the engine never passes no tiles)
        done = rng.integers(0, 1000, tiles.size)
        chunks = link.chunk_of(tiles)
        starts, runs = _chunk_runs(link, tiles)
        by_tile = np.zeros(link.count, dtype=np.int64)
        np.maximum.at(by_tile, chunks, done)
        by_run = np.zeros(link.count, dtype=np.int64)
        np.maximum.at(by_run, runs, np.maximum.reduceat(done, starts))
        assert by_run.tolist() == by_tile.tolist()
        counts = np.diff(np.append(starts, tiles.size))
        assert np.bincount(runs, weights=counts, minlength=link.count).tolist() == \
            np.bincount(chunks, minlength=link.count).tolist()
