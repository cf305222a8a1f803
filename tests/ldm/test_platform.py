"""Platform descriptions: the embedded default and the samples."""

from pathlib import Path

import pytest

from agent.ldm import LdmError, default_platform, load_platform, parse_platform
from tests.ldm.fakes import SAMPLES

G = 1 << 30


def test_default_is_two_sockets_of_eight_cores_of_eight_strands_with_256g():
    p = default_platform()
    assert (p.sockets, p.cores_per_socket, p.strands_per_core) == (2, 8, 8)
    assert p.cpu_freq_mhz == 3600
    assert len(p.usable_strands()) == 128
    assert len(p.crypto_units()) == 16
    assert sum(r.size for r in p.usable_memory()) == 256 * G


def test_sample_default_is_the_embedded_default():
    embedded = Path(__file__).resolve().parents[2] / "agent" / "ldm" / "platforms" / "default.toml"
    assert (SAMPLES / "default.toml").read_text() == embedded.read_text()


@pytest.mark.parametrize("path", sorted(SAMPLES.glob("*.toml")), ids=lambda p: p.name)
def test_every_sample_platform_loads(path):
    p = load_platform(path)
    assert p.usable_strands() and p.usable_memory()


def test_strand_ids_follow_core_times_strands_per_core():
    p = load_platform(SAMPLES / "tiny.toml")
    assert p.strands_of_core(1) == [4, 5, 6, 7]
    assert p.core_of_strand(6) == 1


def test_blacklisted_memory_is_not_usable():
    p = load_platform(SAMPLES / "tiny.toml")
    assert sum(r.size for r in p.usable_memory()) == G - 64 * (1 << 20)


def test_io_devices_are_found_by_name_or_path():
    p = default_platform()
    assert p.io_device("pci@500").name == "pci_1"
    assert p.io_device("/SYS/MB/PCIE1").type == "pcie"


def test_a_broken_description_names_the_problem():
    with pytest.raises(LdmError, match="Invalid platform description"):
        parse_platform("[machine]\nhostname = 'x'\n")


def test_unaligned_memory_range_is_refused():
    text = (SAMPLES / "tiny.toml").read_text().replace('size = "1G"', 'size = "1025M"')
    with pytest.raises(LdmError, match="granule"):
        parse_platform(text)
