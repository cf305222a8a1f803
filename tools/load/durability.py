"""Crash durability: kill -9 the agent at random points of a mixed XML workload.

    python -m tools.load.durability --kills 100 --seed 1 [--json out.json]

A local-root session on the Unix socket runs random add-domain, remove-domain, set-vcpu,
add-variable (two variables in one request), set-variable and remove-variable requests on a
few domains. After every acknowledged request the tool reads ``list-constraints`` and records
it in its journal as the last acknowledged state. Each round sends one more request and kills
the agent with SIGKILL after a random delay (0-40 ms, sometimes before the agent has read it,
sometimes after it answered), restarts it on the same state directory and reads the state
again. The state must equal the last acknowledged one, or that state with the in-flight
request applied completely: never a half-applied request (spec DESIGN "Nothing is lost":
every change is committed before it is acknowledged).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

from lxml import etree

from agent.cli.connection import LdmConnection
from agent.testing import AgentProcess

DOMAINS = ("d0", "d1", "d2", "d3")
RASD = "./schemas/CIM_ResourceAllocationSettingData"
GPROP = "./schemas/GenericProperty"
OVF = "./schemas/envelope"
_REQUEST = ('<LDM_interface version="1.3"><cmd><action>{action}</action><data version="3.0"><Envelope>'
            '<References/><Content xsi:type="ovf:VirtualSystem_Type" ovf:id="{domain}">{section}'
            "</Content></Envelope></data></cmd></LDM_interface>")
LIST_CONSTRAINTS = ('<LDM_interface version="1.3"><cmd><action>list-constraints</action>'
                    '<data version="3.0"/></cmd></LDM_interface>')


def _hw(items: str) -> str:
    return f'<Section xsi:type="ovf:VirtualHardwareSection_Type">{items}</Section>'


def _var(name: str, value: str | None = None) -> str:
    item = f'<rasd:OtherResourceType>var</rasd:OtherResourceType><gprop:GenericProperty key="name">{name}</gprop:GenericProperty>'
    if value is not None:
        item += f'<gprop:GenericProperty key="value">{value}</gprop:GenericProperty>'
    return f"<Item>{item}</Item>"


def request(action: str, domain: str, section: str = "") -> str:
    return _REQUEST.format(action=action, domain=domain, section=section)


# -- the state and the expected effect of each operation --------------------------------------

def state_of(response: bytes) -> dict:
    """Domains other than primary from list-constraints: {name: {"cpu": n, "vars": {k: v}}}."""
    state = {}
    for content in etree.fromstring(response).iter("Content"):
        name = content.get(f"{{{OVF}}}id")
        if name == "primary":
            continue
        domain = {"cpu": None, "vars": {}}
        for item in content.iter("Item"):
            rtype = item.findtext(f"{{{RASD}}}OtherResourceType")
            props = {p.get("key"): p.text or "" for p in item.iter(f"{{{GPROP}}}GenericProperty")}
            if rtype == "cpu":
                domain["cpu"] = item.findtext(f"{{{RASD}}}AllocationUnits")
            elif rtype == "var":
                domain["vars"][props.get("name")] = props.get("value")
        state[name] = domain
    return state


class Workload:
    """Random operations and the state each would produce if applied completely."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.counter = 0
        self.fresh_cpu: str | None = None  # a new domain's cpu constraint, once seen

    def next(self, state: dict) -> tuple[str, str, dict]:
        """(description, request, expected state if applied)."""
        rng = self.rng
        domain = rng.choice(DOMAINS)
        expected = json.loads(json.dumps(state))
        exists = domain in state
        if not exists or rng.random() < 0.1:
            op = "add-domain" if not exists else "remove-domain"
        else:
            op = rng.choice(("set-vcpu", "add-variable", "add-variable", "set-variable",
                             "remove-variable", "remove-domain"))
        if op == "add-domain":
            expected[domain] = {"cpu": self.fresh_cpu, "vars": {}}
            section = ('<Section xsi:type="ovf:ResourceAllocationSection_Type"><Item>'
                       "<rasd:OtherResourceType>ldom_info</rasd:OtherResourceType></Item></Section>")
            return f"add-domain {domain}", request(op, domain, section), expected
        if op == "remove-domain":
            del expected[domain]
            return f"remove-domain {domain}", request(op, domain), expected
        if op == "set-vcpu":
            n = str(rng.randrange(1, 9))
            expected[domain]["cpu"] = n
            item = (f"<Item><rasd:OtherResourceType>cpu</rasd:OtherResourceType>"
                    f"<rasd:AllocationUnits>{n}</rasd:AllocationUnits></Item>")
            return f"set-vcpu {n} {domain}", request(op, domain, _hw(item)), expected
        variables = expected[domain]["vars"]
        if op == "add-variable" or not variables:
            self.counter += 1
            pairs = {f"a{self.counter}": str(rng.randrange(10**6)), f"b{self.counter}": "x" * rng.randrange(1, 50)}
            variables.update(pairs)
            items = "".join(_var(k, v) for k, v in pairs.items())
            return f"add-variable {sorted(pairs)} {domain}", request("add-variable", domain, _hw(items)), expected
        name = rng.choice(sorted(variables))
        if op == "set-variable":
            value = str(rng.randrange(10**6))
            variables[name] = value
            return f"set-variable {name}={value} {domain}", request(op, domain, _hw(_var(name, value))), expected
        del variables[name]
        return f"remove-variable {name} {domain}", request(op, domain, _hw(_var(name))), expected


def matches(actual: dict, expected: dict) -> bool:
    """Equal, where an expected cpu of None (a fresh domain, default unknown yet) matches any."""
    if set(actual) != set(expected):
        return False
    for name, want in expected.items():
        got = actual[name]
        if got["vars"] != want["vars"] or (want["cpu"] is not None and got["cpu"] != want["cpu"]):
            return False
    return True


# -- the run -------------------------------------------------------------------------------------

def connect(agent: AgentProcess) -> LdmConnection:
    conn = LdmConnection.unix(agent.socket_path, timeout=20)
    conn.negotiate()
    return conn


def succeeded(response: bytes) -> bool:
    return etree.fromstring(response).findtext("response/status") == "success"


def run(kills: int, seed: int, workdir: Path, progress=None, max_ops: int = 6) -> dict:
    """``kills`` rounds of acknowledged operations, one in-flight operation and SIGKILL."""
    rng = random.Random(seed)
    workload = Workload(rng)
    state_dir = workdir / "state"
    journal: list[dict] = []
    figures = {"seed": seed, "kills": 0, "acknowledged": 0, "failed_requests": 0,
               "in_flight_applied": 0, "in_flight_absent": 0, "mismatches": [], "restarts_failed": 0,
               "model_disagreements": 0}
    agent = AgentProcess(state_dir, host_name="durable.example.com").start()
    conn = connect(agent)
    acked = state_of(conn.request(LIST_CONSTRAINTS))
    started = time.monotonic()
    try:
        for round_no in range(kills):
            for _ in range(rng.randrange(0, max_ops)):
                what, doc, expected = workload.next(acked)
                ok = succeeded(conn.request(doc))
                observed = state_of(conn.request(LIST_CONSTRAINTS))
                if ok:
                    figures["acknowledged"] += 1
                    if not matches(observed, expected):  # the oracle's model is off
                        figures["model_disagreements"] += 1
                    if what.startswith("add-domain"):
                        workload.fresh_cpu = observed[what.split()[1]]["cpu"]
                else:
                    figures["failed_requests"] += 1
                acked = observed
                journal.append({"op": what, "ok": ok})
            what, doc, expected = workload.next(acked)
            try:
                conn.sock.sendall(doc.encode())
            except OSError:
                pass
            time.sleep(rng.choice((0.0, rng.uniform(0, 0.04))))
            agent.kill()
            conn.close()
            figures["kills"] += 1
            agent = AgentProcess(state_dir, host_name="durable.example.com")
            try:
                agent.start()
            except RuntimeError as exc:
                figures["restarts_failed"] += 1
                figures["mismatches"].append({"round": round_no, "in_flight": what, "error": str(exc)[-2000:]})
                break
            conn = connect(agent)
            actual = state_of(conn.request(LIST_CONSTRAINTS))
            if matches(actual, acked):
                figures["in_flight_absent"] += 1
            elif matches(actual, expected):
                figures["in_flight_applied"] += 1
                acked = actual
            else:
                figures["mismatches"].append({"round": round_no, "in_flight": what, "acknowledged": acked,
                                              "in_flight_applied": expected, "after_restart": actual})
                acked = actual  # go on from what is there, to find further mismatches
            journal.append({"op": what, "in_flight": True})
            if progress and (round_no + 1) % 10 == 0:
                progress(f"{round_no + 1} kills, {len(figures['mismatches'])} mismatches")
    finally:
        conn.close()
        agent.stop()
        agent.destroy_guests()
    figures["elapsed_s"] = round(time.monotonic() - started, 1)
    figures["journal_length"] = len(journal)
    figures["mismatch_count"] = len(figures["mismatches"])
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", help="write the figures here as JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ldmx-durability-") as tmp:
        figures = run(args.kills, args.seed, Path(tmp),
                      progress=lambda line: print(line, file=sys.stderr, flush=True))
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0 if figures["mismatch_count"] == 0 and not figures["restarts_failed"] else 1


if __name__ == "__main__":
    sys.exit(main())
