"""The GuestPort adapter drives a Hypervisor: launch creates and starts, halt stops and
destroys, reset restarts."""

from agent.hypervisor.base import GuestSpec
from agent.ldm.hvport import HypervisorGuests
from tests.ldm.fakes import make_manager, tiny

M = 1 << 20


class RecordingHypervisor:
    page_size = 8192

    def __init__(self):
        self.guests: dict[str, GuestSpec] = {}
        self.calls: list[tuple] = []

    def create(self, spec):
        self.calls.append(("create", spec.name, spec.vcpus, spec.memory_bytes))
        self.guests[spec.name] = spec

    def start(self, name):
        self.calls.append(("start", name))

    def stop(self, name, force=False):
        self.calls.append(("stop", name, force))

    def destroy(self, name):
        self.calls.append(("destroy", name))
        del self.guests[name]

    def list(self):
        return sorted(self.guests)


def test_start_and_stop_of_a_domain_create_start_stop_and_destroy_its_guest():
    hv = RecordingHypervisor()
    m = make_manager(tiny(), guests=HypervisorGuests(hv))
    m.set_vcpu("primary", 2)
    m.set_memory("primary", 256 * M)
    m.add_domain("web1")
    m.set_vcpu("web1", 2)
    m.set_memory("web1", 128 * M)
    m.bind_domain("web1")
    m.start_domain("web1")
    m.stop_domain("web1", force=True)
    assert hv.calls == [("create", "web1", 2, 128 * M), ("start", "web1"),
                        ("stop", "web1", True), ("destroy", "web1")]
    assert m.summary("web1").state == "bound"


def test_reset_restarts_the_guest():
    hv = RecordingHypervisor()
    guests = HypervisorGuests(hv)
    guests.launch("g", 1, 64 * M)
    guests.reset("g")
    assert hv.calls[-2:] == [("stop", "g", True), ("start", "g")]
