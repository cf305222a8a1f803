"""The integrity oracle judges guest memory on its own (no guest process involved)."""

from __future__ import annotations

import pytest

from agent.hypervisor.sim import layout, oracle

PAGE = 8192


def booted_memory(npages=64, writes=((20, 1), (20, 2), (33, 1), (63, 1))):
    geo = layout.Geometry(PAGE, npages)
    ram = memoryview(bytearray(geo.memory_bytes))
    layout.init_header(ram, geo)
    painter = oracle.PagePainter(PAGE)
    ledger = oracle.ledger_view(ram, geo)
    for index, gen in writes:
        painter.paint(ram, index, gen)
        ledger[index] = gen
    layout.write_field(ram, "pages_written", sum(ledger))
    layout.seal_header(ram)
    return ram, geo


def test_consistent_memory_verifies():
    ram, geo = booted_memory()
    assert oracle.verify_ram(ram, geo) is None


def test_untouched_memory_of_a_guest_that_never_ran_verifies():
    geo = layout.Geometry(PAGE, 16)
    assert oracle.verify_ram(memoryview(bytearray(geo.memory_bytes)), geo) is None


@pytest.mark.parametrize(
    "offset",
    [0, 9, 16, 4000, PAGE - 9, PAGE - 8, PAGE - 1],
    ids=["stamp-index", "stamp-gen", "body-start", "body-middle", "body-end", "crc", "trailer"],
)
def test_one_flipped_byte_anywhere_in_a_written_page_is_caught(offset):
    ram, geo = booted_memory()
    ram[33 * PAGE + offset] ^= 0x40
    problem = oracle.verify_ram(ram, geo)
    assert problem and problem.startswith("page 33 ")


def test_a_flipped_byte_in_a_never_written_page_is_caught():
    ram, geo = booted_memory()
    ram[40 * PAGE + 100] = 1
    assert oracle.verify_ram(ram, geo) == "page 40 was never written but is not zero"


def test_a_stale_page_is_caught_against_the_ledger():
    """A page holding an older generation than the ledger records: a lost write."""
    ram, geo = booted_memory()
    oracle.PagePainter(PAGE).paint(ram, 20, 1)
    assert "ledger expects generation 2" in oracle.verify_ram(ram, geo)


def test_a_stale_ledger_is_caught_by_the_write_count():
    ram, geo = booted_memory()
    oracle.ledger_view(ram, geo)[20] = 1
    oracle.PagePainter(PAGE).paint(ram, 20, 1)  # page and ledger agree, header does not
    assert oracle.verify_ram(ram, geo).startswith("ledger: generations sum to")


def test_a_flipped_byte_in_the_header_is_caught():
    ram, geo = booted_memory()
    ram[layout.HEADER_FIELDS["beats"]] ^= 1
    assert oracle.verify_ram(ram, geo) == "header page fails its checksum"


def test_painted_pages_are_not_trivially_compressible():
    """Pages carry pool data, so a compressing data plane still moves real bytes."""
    import zlib

    ram, _ = booted_memory()
    page = ram[20 * PAGE : 21 * PAGE].tobytes()
    assert len(zlib.compress(page, 1)) > PAGE * 0.9


def test_geometry_rejects_bad_sizes():
    with pytest.raises(ValueError, match="multiple of the page size"):
        layout.geometry_for(PAGE * 10 + 1, PAGE)
    with pytest.raises(ValueError, match="power of two"):
        layout.geometry_for(PAGE * 10, 3000)
    with pytest.raises(ValueError, match="too small"):
        layout.geometry_for(PAGE * 2, PAGE)
