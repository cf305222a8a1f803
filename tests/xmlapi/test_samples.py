"""Checks of the sample requests in ``samples/requests/`` against the wire-format spec.

The samples are meant to be sent unchanged to an agent (the lead's live round trip reads
``samples/requests/ORDER``), so this module pins down, without an agent:

* there is exactly one ``<action>.xml`` per action string of ldm-xml.md §5.14, and every
  sample's ``cmd/action`` matches its file name (variants are ``<action>-<variant>.xml``);
* every sample is fully declared with the canonical namespaces of §0.4 and validates against
  ``schemas/combined-v3.xsd`` as it is (§8.2, checked with the ``xmlschema`` package);
* every ``Item`` names a resource keyword of §6 and only carries keys that §6 lists for that
  resource with direction Req or Both; the resource types, their placement (§6.0), the
  options (§2.5, §5) and the migrate-domain layout (§7.1) fit the action;
* ``ORDER`` lists every sample once, with the requests that cannot succeed standalone last.

The tables below are copied from the specification on purpose: they are the independent
reference the samples are checked against.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections import Counter
from pathlib import Path

import pytest
from lxml import etree

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "samples" / "requests"
ORDER_FILE = SAMPLES / "ORDER"
SCHEMA_FILE = REPO / "schemas" / "combined-v3.xsd"

# ldm-xml.md §5.14, the alphabetical index (63 strings), in index order.
ACTIONS = [
    "add-domain", "add-io", "add-mau", "add-memory", "add-spconfig", "add-variable",
    "add-vconscon", "add-vcpu", "add-vdisk", "add-vdiskserver", "add-vdiskserverdevice",
    "add-vdpcc", "add-vdpcs", "add-vnet", "add-vswitch", "bind-domain", "cancel-operation",
    "list-bindings", "list-constraints", "list-devices", "list-domain", "list-services",
    "list-spconfig", "list-variable", "migrate-domain", "reg-all-events", "reg-domain-events",
    "reg-hardware-events", "reg-resource-events", "remove-domain", "remove-io", "remove-mau",
    "remove-memory", "remove-reconf", "remove-spconfig", "remove-variable", "remove-vconscon",
    "remove-vcpu", "remove-vdisk", "remove-vdiskserver", "remove-vdiskserverdevice",
    "remove-vdpcc", "remove-vdpcs", "remove-vnet", "remove-vswitch", "set-domain", "set-io",
    "set-mau", "set-memory", "set-spconfig", "set-variable", "set-vconscon", "set-vconsole",
    "set-vcpu", "set-vnet", "set-vswitch", "start-domain", "stop-domain", "unbind-domain",
    "unreg-all-events", "unreg-domain-events", "unreg-hardware-events", "unreg-resource-events",
]

# §0.4: the six canonical declarations of the root.
CANONICAL_NAMESPACES = {
    "xsi": "http://www.w3.org/2001/XMLSchema-instance",
    "ovf": "./schemas/envelope",
    "rasd": "./schemas/CIM_ResourceAllocationSettingData",
    "vssd": "./schemas/CIM_VirtualSystemSettingData",
    "gprop": "./schemas/GenericProperty",
    "bind": "./schemas/Binding",
}
XSI = CANONICAL_NAMESPACES["xsi"]
OVF = CANONICAL_NAMESPACES["ovf"]
RASD = CANONICAL_NAMESPACES["rasd"]
GPROP = CANONICAL_NAMESPACES["gprop"]
XSI_TYPE = f"{{{XSI}}}type"
OVF_ID = f"{{{OVF}}}id"
OTHER_RESOURCE_TYPE = f"{{{RASD}}}OtherResourceType"
GENERIC_PROPERTY = f"{{{GPROP}}}GenericProperty"

# §2.3: accepted LDM_interface versions.
SUPPORTED_VERSIONS = {"1.0", "1.1", "1.2", "1.3", "1.4", "1.5", "1.6", "1.7"}

# §6.1-§6.18: per resource keyword, the keys a request may carry (direction Req or Both).
# "elements" are keys in element form (rasd:AllocationUnits, rasd:Address, unprefixed uuid);
# "gprop" are GenericProperty keys.  Response-only keys (state, device, bound, type, cid, free,
# cpuset, status, spconfig_status, ...) are deliberately absent.  The two input aliases the
# tables name (dev-path, iov_bus_enable_iov) are accepted as the spec says.
REQUEST_KEYS: dict[str, dict[str, set[str]]] = {
    "ldom_info": {
        "elements": {"uuid", "rasd:Address"},
        "gprop": {"mac-addr", "hostid", "master", "failure-policy", "extended-mapin-space",
                  "rc-add-policy", "perf-counters", "cpu-arch", "target", "username",
                  "password"},
    },
    "cpu": {"elements": {"rasd:AllocationUnits"}, "gprop": {"wcore"}},
    "mau": {"elements": {"rasd:AllocationUnits"}, "gprop": set()},
    "memory": {"elements": {"rasd:AllocationUnits"}, "gprop": set()},
    "vds": {"elements": set(), "gprop": {"service_name"}},
    "vds_volume": {
        "elements": set(),
        "gprop": {"vol_name", "service_name", "block_dev", "vol_opts", "mpgroup"},
    },
    "disk": {"elements": set(), "gprop": {"vdisk_name", "service_name", "vol_name", "timeout", "id"}},
    "vsw": {
        "elements": {"rasd:Address"},
        "gprop": {"service_name", "default-vlan-id", "dev_path", "dev-path", "id",
                  "inter_vnet_link", "linkprop", "mode", "pvid", "mtu", "vid"},
    },
    "network": {
        "elements": {"rasd:Address"},
        "gprop": {"vnet_name", "service_name", "linkprop", "pvid", "vid", "mode", "id", "mtu"},
    },
    "vcc": {"elements": set(), "gprop": {"service_name", "min_port", "max_port"}},
    "var": {"elements": set(), "gprop": {"name", "value"}},
    "physio_device": {"elements": set(), "gprop": {"name", "iov", "iov_bus_enable_iov"}},
    "spconfig": {"elements": set(), "gprop": {"spconfig_name"}},
    "policy": {
        "elements": set(),
        "gprop": {"policy_name", "policy_enable", "policy_priority", "policy_vcpu_min",
                  "policy_vcpu_max", "policy_util_lower", "policy_util_upper",
                  "policy_tod_begin", "policy_tod_end", "policy_sample_rate",
                  "policy_elastic_margin", "policy_attack", "policy_decay"},
    },
    "console": {"elements": set(), "gprop": {"port", "service_name", "group", "enable-log"}},
    "vdpcs": {"elements": set(), "gprop": {"service_name"}},
    "vdpcc": {"elements": set(), "gprop": {"vdpcc_name", "service_name"}},
    "core": {"elements": set(), "gprop": set()},
}

# §6.1 and §2.6: request-only keys that are errors outside migrate-domain.
MIGRATION_ONLY_KEYS = {"target", "username", "password"}

# §5.2-§5.13 "Takes": the resource types each action reads (absent = no Items at all).
_REPLAY_TYPES = {"ldom_info", "cpu", "mau", "memory", "physio_device", "var", "vcc", "vds",
                 "vds_volume", "vsw", "network", "disk", "console", "policy"}
ACTION_RESOURCES: dict[str, set[str]] = {
    "add-domain": _REPLAY_TYPES,
    "set-domain": {"ldom_info", "policy"},
    **{f"{verb}-vcpu": {"cpu"} for verb in ("add", "set", "remove")},
    **{f"{verb}-mau": {"mau"} for verb in ("add", "set", "remove")},
    **{f"{verb}-memory": {"memory"} for verb in ("add", "set", "remove")},
    **{f"{verb}-io": {"physio_device"} for verb in ("add", "set", "remove")},
    "add-vdiskserver": {"vds"}, "remove-vdiskserver": {"vds"},
    "add-vdiskserverdevice": {"vds_volume"}, "remove-vdiskserverdevice": {"vds_volume"},
    "add-vdisk": {"disk"}, "remove-vdisk": {"disk"},
    **{f"{verb}-vswitch": {"vsw"} for verb in ("add", "set", "remove")},
    **{f"{verb}-vnet": {"network"} for verb in ("add", "set", "remove")},
    **{f"{verb}-vconscon": {"vcc"} for verb in ("add", "set", "remove")},
    "set-vconsole": {"console"},
    "add-vdpcs": {"vdpcs"}, "remove-vdpcs": {"vdpcs"},
    "add-vdpcc": {"vdpcc"}, "remove-vdpcc": {"vdpcc"},
    **{f"{verb}-spconfig": {"spconfig"} for verb in ("add", "set", "remove", "list")},
    **{f"{verb}-variable": {"var"} for verb in ("add", "set", "remove", "list")},
    "list-devices": {"cpu", "core", "mau", "memory", "physio_device"},
    "migrate-domain": {"ldom_info"},
}

# §5.2-§5.13 "Takes" = empty: these send an empty data.
EMPTY_DATA_ACTIONS = {a for a in ACTIONS if a.startswith(("reg-", "unreg-"))}

# §6.0 placement: resources a request may only put inside a Content, and those it may only put
# in a Section directly under Envelope.  add-vdiskserver/-vswitch/-vconscon/-vdpcs need the
# service domain's Content; set-io and the list-devices selectors are Envelope-only.
CONTENT_ONLY = {"ldom_info", "cpu", "mau", "memory", "var", "disk", "network", "console",
                "physio_device", "policy", "vdpcc"}
ENVELOPE_ONLY = {"spconfig", "core"}
SERVICE_ADD_ACTIONS = {"add-vdiskserver", "add-vswitch", "add-vconscon", "add-vdpcs"}
ENVELOPE_ONLY_ACTIONS = {"set-io", "list-devices"}

# §5 option columns (§2.5 flags).  Flags that take a following word are listed separately.
ACTION_FLAGS: dict[str, set[str]] = {
    "remove-domain": {"-a"}, "start-domain": {"-a"}, "stop-domain": {"-f", "-a"},
    "bind-domain": {"-f"}, "remove-io": {"-n"}, "remove-vdiskserver": {"-f"},
    "add-vdiskserverdevice": {"-f", "-q"}, "remove-vdiskserverdevice": {"-f"},
    "remove-vdisk": {"-f"}, "remove-vswitch": {"-f"}, "remove-vnet": {"-f"},
    "remove-vconscon": {"-f"}, "remove-vdpcs": {"-f"}, "remove-vdpcc": {"-f"},
    "add-spconfig": {"-r"}, "remove-spconfig": {"-r"}, "list-spconfig": {"-r"},
    "list-devices": {"-a", "-B"}, "migrate-domain": {"-n", "-f", "-c"},
    "cancel-operation": {"-f"},
}
FLAGS_WITH_WORD = {("add-spconfig", "-r"), ("list-spconfig", "-r")}
CANCEL_WORDS = {"migration", "reconf", "memdr"}

# §7.1: the argument names migrate-domain accepts.
MIGRATE_ARGUMENTS = {"cidmap", "mblockmap", "max-downtime", "max-bandwidth", "max-rounds",
                     "timeout", "on-timeout", "auto-converge", "compression"}

# The actions the brief requires to sit at the end of ORDER as expected failures.
MUST_BE_EXPECTED_FAILURES = {"migrate-domain", "cancel-operation", "remove-reconf",
                             "add-vdpcs", "remove-vdpcs", "add-vdpcc", "remove-vdpcc"}

VARIANT_SUFFIX = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


def sample_files() -> list[Path]:
    return sorted(SAMPLES.glob("*.xml"))


def action_for_stem(stem: str) -> str | None:
    """The action a sample file is for: its stem, or the longest action A with stem A-<variant>."""
    if stem in ACTIONS:
        return stem
    candidates = [a for a in ACTIONS
                  if stem.startswith(a + "-") and VARIANT_SUFFIX.fullmatch(stem[len(a) + 1:])]
    return max(candidates, key=len) if candidates else None


def parse(path: Path) -> etree._ElementTree:
    return etree.parse(str(path), etree.XMLParser(remove_blank_text=True))


def action_of(tree: etree._ElementTree) -> str:
    return tree.getroot().findtext("cmd/action").strip()


def items_with_placement(tree: etree._ElementTree):
    """Yield (item, placement) for every Item; placement is 'Content' or 'Envelope'."""
    for envelope in tree.getroot().iterfind("cmd/data/Envelope"):
        for section in envelope.iterfind("Section"):
            for item in section.iterfind("Item"):
                yield item, "Envelope"
        for section in envelope.iterfind("Content/Section"):
            for item in section.iterfind("Item"):
                yield item, "Content"


def resource_type(item: etree._Element) -> str:
    types = item.findall(OTHER_RESOURCE_TYPE)
    assert len(types) == 1, "an Item needs exactly one rasd:OtherResourceType"
    return types[0].text.strip()


def item_keys(item: etree._Element) -> tuple[list[str], list[str]]:
    """(element keys, gprop keys) of an Item, in document order, without OtherResourceType."""
    elements, gprops = [], []
    for child in item:
        if child.tag == OTHER_RESOURCE_TYPE:
            continue
        if child.tag == GENERIC_PROPERTY:
            gprops.append(child.get("key"))
        else:
            qname = etree.QName(child)
            prefix = {RASD: "rasd:", None: ""}.get(qname.namespace, f"{{{qname.namespace}}}")
            elements.append(prefix + qname.localname)
    return elements, gprops


def read_order() -> list[tuple[str, str | None]]:
    """ORDER as (file name, expected-failure reason or None), skipping blank lines."""
    entries = []
    for line in ORDER_FILE.read_text().splitlines():
        if not line.strip():
            continue
        name, sep, note = line.partition("#")
        reason = None
        if sep:
            match = re.fullmatch(r"\s*expected-failure:\s*(\S.*)", note)
            assert match, f"ORDER note must be '# expected-failure: <why>': {line!r}"
            reason = match.group(1)
        entries.append((name.strip(), reason))
    return entries


ALL_SAMPLES = sample_files()
SAMPLE_IDS = [p.name for p in ALL_SAMPLES]


# --- (a) one file per action ------------------------------------------------------------

def test_action_list_is_the_63_strings_of_the_index():
    assert len(ACTIONS) == 63
    assert len(set(ACTIONS)) == 63
    assert ACTIONS == sorted(ACTIONS)


def test_exactly_one_sample_per_action():
    stems = {p.stem for p in ALL_SAMPLES}
    missing = sorted(set(ACTIONS) - stems)
    assert not missing, f"no sample for: {missing}"
    extras = sorted(stem for stem in stems - set(ACTIONS) if action_for_stem(stem) is None)
    assert not extras, f"files named neither <action>.xml nor <action>-<variant>.xml: {extras}"


@pytest.mark.parametrize("path", ALL_SAMPLES, ids=SAMPLE_IDS)
def test_action_text_matches_file_name(path):
    tree = parse(path)
    commands = tree.getroot().findall("cmd")
    assert len(commands) == 1, "one command per sample"
    assert len(commands[0].findall("action")) == 1
    assert action_of(tree) == action_for_stem(path.stem)


# --- (b) well-formed, fully declared, valid against combined-v3.xsd ---------------------

@pytest.mark.parametrize("path", ALL_SAMPLES, ids=SAMPLE_IDS)
def test_sample_is_fully_declared_in_the_spec_style(path):
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<LDM_interface "), "no XML declaration or comment before the root"
    assert "<!--" not in text and "<?" not in text
    root = parse(path).getroot()
    assert root.tag == "LDM_interface"
    assert root.get("version") in SUPPORTED_VERSIONS
    assert dict(root.nsmap) == CANONICAL_NAMESPACES
    for element in root.iter():
        if element is not root:
            assert element.nsmap == root.nsmap, f"extra declaration on {element.tag}"
    datas = root.findall("cmd/data")
    assert datas, "every sample carries a data element"
    action = action_of(parse(path))
    for data in datas:
        assert data.get("version") == "3.0"
        envelope = data.find("Envelope")
        if action in EMPTY_DATA_ACTIONS:
            assert len(data) == 0, "event registration takes an empty data"
            continue
        if envelope is None:
            continue
        assert envelope[0].tag == "References" and len(envelope[0]) == 0
        for content in envelope.iterfind("Content"):
            assert content.get(XSI_TYPE) == "ovf:VirtualSystem_Type"
            assert content.get(OVF_ID)
        for section in envelope.iter("Section"):
            types = {resource_type(i) for i in section.iterfind("Item")}
            expected = ("ovf:ResourceAllocationSection_Type"
                        if types & {"ldom_info", "spconfig"}
                        else "ovf:VirtualHardwareSection_Type")
            assert section.get(XSI_TYPE) == expected, f"Section holding {sorted(types)}"


@pytest.fixture(scope="module")
def combined_schema(xmlschema_request):
    assert SCHEMA_FILE.is_file(), f"{SCHEMA_FILE} is missing (the schemas of §8.1 are needed)"
    return xmlschema_request


@pytest.mark.parametrize("path", ALL_SAMPLES, ids=SAMPLE_IDS)
def test_sample_validates_against_combined_schema(combined_schema, path):
    import xmlschema

    try:
        errors = [f"{e.path}: {e.reason}" for e in combined_schema.iter_errors(str(path))]
    except xmlschema.XMLSchemaException as exc:  # e.g. an unknown xsi:type (§8.4)
        pytest.fail(f"xmlschema could not validate {path.name}: {exc}")
    assert not errors, "\n".join(errors)


# --- (c) resources and keys -------------------------------------------------------------

@pytest.mark.parametrize("path", ALL_SAMPLES, ids=SAMPLE_IDS)
def test_items_use_known_resources_and_request_keys(path):
    tree = parse(path)
    action = action_of(tree)
    for item, _placement in items_with_placement(tree):
        rtype = resource_type(item)
        assert rtype in REQUEST_KEYS, f"unknown resource keyword {rtype!r}"
        elements, gprops = item_keys(item)
        allowed = REQUEST_KEYS[rtype]
        assert set(elements) <= allowed["elements"], f"{rtype}: {elements}"
        assert set(gprops) <= allowed["gprop"], f"{rtype}: {gprops}"
        repeated = [k for k, n in Counter(elements + gprops).items() if n > 1]
        assert not repeated, f"{rtype}: repeated keys {repeated}"
        if action != "migrate-domain":
            assert not MIGRATION_ONLY_KEYS & set(gprops), f"{action} carries migration keys"


@pytest.mark.parametrize("path", ALL_SAMPLES, ids=SAMPLE_IDS)
def test_items_fit_the_action_and_are_placed_as_section_6_0_says(path):
    tree = parse(path)
    action = action_of(tree)
    items = list(items_with_placement(tree))
    allowed_types = ACTION_RESOURCES.get(action, set())
    if not allowed_types:
        assert not items, f"{action} takes no resource Items"
    for item, placement in items:
        rtype = resource_type(item)
        assert rtype in allowed_types, f"{action} does not read {rtype} Items"
        if action in ENVELOPE_ONLY_ACTIONS or rtype in ENVELOPE_ONLY:
            assert placement == "Envelope", f"{action}: {rtype} belongs directly under Envelope"
        elif rtype in CONTENT_ONLY or action in SERVICE_ADD_ACTIONS:
            assert placement == "Content", f"{action}: {rtype} belongs inside a Content"


@pytest.mark.parametrize("path", ALL_SAMPLES, ids=SAMPLE_IDS)
def test_options_and_arguments_are_accepted_by_the_action(path):
    root = parse(path).getroot()
    action = action_of(parse(path))
    cmd = root.find("cmd")
    tokens = " ".join(o.text or "" for o in cmd if o.tag in ("option", "options")).split()
    flags = ACTION_FLAGS.get(action, set())
    seen, words, previous = set(), [], None
    for token in tokens:
        if token.startswith("-"):
            assert re.fullmatch(r"-[A-Za-z]", token), f"not a single flag: {token}"
            assert token in flags and token not in seen, f"{action}: bad flag {token}"
            seen.add(token)
        elif (action, previous) in FLAGS_WITH_WORD:
            pass
        else:
            words.append(token)
        previous = token
    if action == "cancel-operation":
        assert len(words) == 1 and words[0] in CANCEL_WORDS
        assert "-f" not in seen or words[0] == "migration"
    else:
        assert not words, f"{action}: stray words {words}"
    arguments = (cmd.findtext("arguments") or "").split()
    if action != "migrate-domain":
        assert not arguments
    names = [a.partition("=")[0] for a in arguments]
    assert all("=" in a for a in arguments)
    assert set(names) <= MIGRATE_ARGUMENTS and len(names) == len(set(names))


@pytest.mark.parametrize("path", [p for p in ALL_SAMPLES if action_for_stem(p.stem) == "migrate-domain"],
                         ids=lambda p: p.name)
def test_migrate_domain_layout_and_base64_credentials(path):
    datas = parse(path).getroot().findall("cmd/data")
    assert len(datas) == 1
    contents = datas[0].findall("Envelope/Content")
    assert len(contents) == 2, "source and target Content (§7.1)"
    source, target = contents
    assert len(source) == 0, "the source Content has no Section"
    sections = target.findall("Section")
    assert len(sections) == 1
    items = sections[0].findall("Item")
    assert [resource_type(i) for i in items] == ["ldom_info"]
    props = {p.get("key"): p.text.strip() for p in items[0].iterfind(GENERIC_PROPERTY)}
    assert props.get("target")
    for key in ("username", "password"):
        assert key in props, f"{key} is needed without -c"
        decoded = base64.b64decode(props[key], validate=True)
        assert base64.b64encode(decoded).decode() == props[key]
        assert decoded.decode("utf-8")


def test_migrate_domain_rejects_garbage_base64_as_this_test_reads_it():
    # Guards the check above: a non-base64 credential must not slip through.
    with pytest.raises(binascii.Error):
        base64.b64decode("not base64!", validate=True)


# --- ORDER -------------------------------------------------------------------------------

def test_order_lists_every_sample_once():
    names = [name for name, _ in read_order()]
    repeated = [n for n, count in Counter(names).items() if count > 1]
    assert not repeated, f"listed twice: {repeated}"
    assert set(names) == {p.name for p in ALL_SAMPLES}


def test_order_puts_expected_failures_last_and_marks_the_unrunnable_ones():
    entries = read_order()
    reasons = [reason for _, reason in entries]
    first_failure = next(i for i, r in enumerate(reasons) if r is not None)
    assert all(r is not None for r in reasons[first_failure:]), "expected failures go last"
    marked = {action_for_stem(Path(n).stem) for n, r in entries if r is not None}
    assert MUST_BE_EXPECTED_FAILURES <= marked


def test_order_creates_before_use_and_removes_last():
    position = {Path(name).stem: i for i, (name, reason) in enumerate(read_order()) if reason is None}
    before = [
        ("add-vdiskserver", "add-vdiskserverdevice"), ("add-vdiskserverdevice", "add-vdisk"),
        ("add-vswitch", "add-vnet"), ("add-vconscon", "set-vconsole"),
        ("add-domain", "add-vcpu"), ("add-domain", "set-domain"), ("add-vcpu", "bind-domain"),
        ("add-memory", "bind-domain"), ("add-variable", "set-variable"),
        ("set-variable", "remove-variable"), ("bind-domain", "start-domain"),
        ("start-domain", "stop-domain"), ("stop-domain", "unbind-domain"),
        ("unbind-domain", "remove-domain"), ("remove-vdisk", "remove-vdiskserverdevice"),
        ("remove-vdiskserverdevice", "remove-vdiskserver"), ("remove-vnet", "remove-vswitch"),
        ("remove-domain", "remove-vconscon"), ("add-spconfig", "set-spconfig"),
        ("set-spconfig", "remove-spconfig"), ("reg-all-events", "unreg-all-events"),
    ]
    wrong = [(a, b) for a, b in before if not position[a] < position[b]]
    assert not wrong, f"out of order: {wrong}"
