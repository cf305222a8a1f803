"""Page scanning of the data plane: zero/data pieces and hole cover (spec §10.3)."""

import os

from agent.migration import pagescan

PAGE = 8192


def ram_with(pages, data_pages):
    ram = bytearray(pages * PAGE)
    for page in data_pages:
        ram[page * PAGE:(page + 1) * PAGE] = os.urandom(PAGE)
    return memoryview(ram)


def test_pieces_split_zero_and_data_and_cover_the_run_in_order():
    ram = ram_with(300, [0, 1, 2, 70, 71, 299])
    pieces = list(pagescan.ZeroScanner(ram, PAGE, 64).pieces(0, 300))
    assert pieces == [(False, 0, 3), (True, 3, 67), (False, 70, 2), (True, 72, 227), (False, 299, 1)]


def test_data_pieces_never_exceed_the_frame_limit():
    ram = ram_with(200, range(200))
    pieces = list(pagescan.ZeroScanner(ram, PAGE, 64).pieces(10, 150))
    assert pieces == [(False, 10, 64), (False, 74, 64), (False, 138, 22)]


def test_a_page_with_one_nonzero_byte_is_data():
    ram = bytearray(10 * PAGE)
    ram[4 * PAGE + PAGE - 1] = 1
    pieces = list(pagescan.ZeroScanner(memoryview(ram), PAGE, 64).pieces(0, 10))
    assert pieces == [(True, 0, 4), (False, 4, 1), (True, 5, 5)]


def test_a_one_page_run_is_one_piece_zero_or_data():
    ram = bytearray(10 * PAGE)
    ram[4 * PAGE + PAGE - 1] = 1
    scanner = pagescan.ZeroScanner(memoryview(ram), PAGE, 64)
    assert list(scanner.pieces(4, 1)) == [(False, 4, 1)]
    assert list(scanner.pieces(5, 1)) == [(True, 5, 1)]
    assert list(scanner.pieces(9, 1)) == [(True, 9, 1)]


def test_dirty_runs_read_the_bitmap_lsb_first_and_clip_to_the_guest():
    bitmap = bytes([0b00000110, 0xFF, 0x80])
    assert pagescan.dirty_runs(bitmap, 24) == [(1, 2), (8, 8), (23, 1)]
    assert pagescan.dirty_runs(bitmap, 20) == [(1, 2), (8, 8)]


def test_cover_marks_holes_between_extents():
    assert pagescan.cover([(2, 3), (10, 1)], 12) == [
        (True, 0, 2), (False, 2, 3), (True, 5, 5), (False, 10, 1), (True, 11, 1)]
    assert pagescan.cover([], 5) == [(True, 0, 5)]
    assert pagescan.cover([(0, 99)], 5) == [(False, 0, 5)]


def test_coalesce_joins_runs_across_small_gaps_only():
    runs = [(0, 1), (2, 1), (5, 2), (20, 1)]
    assert pagescan.coalesce(runs, 2) == [(0, 7), (20, 1)]
    assert pagescan.coalesce(runs, 0) == runs
    assert pagescan.coalesce([], 2) == []


def test_stream_share_splits_a_run_by_page_index_modulo_the_stream_count():
    """§10.1, M108: stream s of N carries exactly the pages equal to s mod N, as one
    strided frame per run."""
    from agent.migration.dataplane import stream_share

    for streams in (1, 2, 3, 8):
        for first, count in ((0, 1), (5, 1), (7, 64 * streams), (13, 100)):
            covered = []
            for stream in range(streams):
                start, n = stream_share(stream, streams, first, count)
                pages = list(range(start, start + n * streams, streams))
                assert all(page % streams == stream for page in pages)
                covered += pages
            assert sorted(covered) == list(range(first, first + count))
