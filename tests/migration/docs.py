"""Request documents for the migration tests (ldm-xml §2, §7.1), built from plain values."""

from __future__ import annotations

import base64

from lxml import etree

_ROOT = ('<LDM_interface version="1.3" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
         'xmlns:ovf="./schemas/envelope" xmlns:rasd="./schemas/CIM_ResourceAllocationSettingData" '
         'xmlns:vssd="./schemas/CIM_VirtualSystemSettingData" '
         'xmlns:gprop="./schemas/GenericProperty" xmlns:bind="./schemas/Binding">')


def _doc(action: str, body: str = "", options: str = "", arguments: str = "") -> bytes:
    opts = f"<options>{options}</options>" if options else ""
    args = f"<arguments>{arguments}</arguments>" if arguments else ""
    data = f'<data version="3.0"><Envelope><References/>{body}</Envelope></data>' if body else \
        '<data version="3.0"/>'
    return f"{_ROOT}<cmd><action>{action}</action>{opts}{args}{data}</cmd></LDM_interface>".encode()


def _content(name: str, items: str = "", section: str = "VirtualHardwareSection_Type") -> str:
    inner = f'<Section xsi:type="ovf:{section}">{items}</Section>' if items else ""
    return f'<Content xsi:type="ovf:VirtualSystem_Type" ovf:id="{name}">{inner}</Content>'


def _quantity(rtype: str, amount: str) -> str:
    return (f"<Item><rasd:OtherResourceType>{rtype}</rasd:OtherResourceType>"
            f"<rasd:AllocationUnits>{amount}</rasd:AllocationUnits></Item>")


def simple(action: str, domain: str, options: str = "") -> bytes:
    return _doc(action, _content(domain), options)


def add_domain(name: str) -> bytes:
    item = "<Item><rasd:OtherResourceType>ldom_info</rasd:OtherResourceType></Item>"
    return _doc("add-domain", _content(name, item, "ResourceAllocationSection_Type"))


def set_quantity(action: str, domain: str, rtype: str, amount: str) -> bytes:
    return _doc(action, _content(domain, _quantity(rtype, amount)))


def add_vcc(domain: str, service: str, low: int, high: int) -> bytes:
    item = ('<Item><rasd:OtherResourceType>vcc</rasd:OtherResourceType>'
            f'<gprop:GenericProperty key="service_name">{service}</gprop:GenericProperty>'
            f'<gprop:GenericProperty key="min_port">{low}</gprop:GenericProperty>'
            f'<gprop:GenericProperty key="max_port">{high}</gprop:GenericProperty></Item>')
    return _doc("add-vconscon", _content(domain, item))


def list_domain() -> bytes:
    return _doc("list-domain")


def props(action: str, domain: str, rtype: str, values: dict[str, str]) -> bytes:
    """An ``action`` on ``domain`` with one Item of ``rtype`` carrying ``values``."""
    fields = "".join(f'<gprop:GenericProperty key="{k}">{v}</gprop:GenericProperty>'
                     for k, v in values.items())
    item = f"<Item><rasd:OtherResourceType>{rtype}</rasd:OtherResourceType>{fields}</Item>"
    return _doc(action, _content(domain, item))


def list_free(rtype: str = "memory") -> bytes:
    """list-devices of one class (``memory``, ``cpu``, ...): what is free."""
    item = f"<Item><rasd:OtherResourceType>{rtype}</rasd:OtherResourceType></Item>"
    return _doc("list-devices", f'<Section xsi:type="ovf:VirtualHardwareSection_Type">{item}'
                                '</Section>')


def list_free_memory() -> bytes:
    return list_free("memory")


def values(response: bytes, key: str) -> list[str]:
    """Every value of property ``key`` in an answer, in document order."""
    root = etree.fromstring(response)
    return [p.text or "" for p in root.iter("{./schemas/GenericProperty}GenericProperty")
            if p.get("key") == key]


def reg_domain_events() -> bytes:
    return _doc("reg-domain-events")


def migrate(domain: str, target: str, user: str | None, password: str | None,
            tdomain: str | None = None, options: str = "", arguments: str = "") -> bytes:
    props = f'<gprop:GenericProperty key="target">{target}</gprop:GenericProperty>'
    if user is not None:
        props += (f'<gprop:GenericProperty key="username">'
                  f'{base64.b64encode(user.encode()).decode()}</gprop:GenericProperty>')
    if password is not None:
        props += (f'<gprop:GenericProperty key="password">'
                  f'{base64.b64encode(password.encode()).decode()}</gprop:GenericProperty>')
    item = f"<Item><rasd:OtherResourceType>ldom_info</rasd:OtherResourceType>{props}</Item>"
    body = _content(domain) + _content(tdomain or domain, item, "ResourceAllocationSection_Type")
    return _doc("migrate-domain", body, options, arguments)


def cancel(domain: str, force: bool = False) -> bytes:
    return _doc("cancel-operation", _content(domain), "-f migration" if force else "migration")


def reg_all_events() -> bytes:
    return _doc("reg-all-events")


# -- reading answers ----------------------------------------------------------------------

def status(response: bytes) -> str:
    return etree.fromstring(response).findtext("response/status") or ""


def lines(response: bytes) -> list[str]:
    return [m.text or "" for m in etree.fromstring(response).iter("resp_msg")]


def domains(response: bytes) -> dict[str, dict[str, str]]:
    """list-domain → {name: {key: value}} of each ldom_info Item."""
    out: dict[str, dict[str, str]] = {}
    root = etree.fromstring(response)
    for content in root.iter("{*}Content"):
        name = content.get("{./schemas/envelope}id")
        props: dict[str, str] = {}
        for item in content.iter("Item"):
            for child in item:
                key = child.get("key") or etree.QName(child).localname
                props[key] = child.text or ""
        out[name] = props
    return out


def event_props(document: bytes) -> tuple[str, dict[str, str]]:
    """(action, ldom_info properties) of one LDM_event."""
    root = etree.fromstring(document)
    props = {p.get("key"): p.text or "" for p in root.iter("{./schemas/GenericProperty}GenericProperty")}
    return root.findtext("cmd/action") or "", props


def free_bytes(response: bytes) -> int:
    """The total size of the memory blocks a list-devices answer lists."""
    from agent.ldm.sizes import parse_size

    root = etree.fromstring(response)
    return sum(parse_size(p.text) for p in
               root.iter("{./schemas/GenericProperty}GenericProperty") if p.get("key") == "size")
