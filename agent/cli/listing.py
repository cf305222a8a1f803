"""Human and parseable output of the list sub-commands, shaped like the ldm CLI's.

Pure functions from the agent's answers (:mod:`agent.cli.answers`) to text. ``ldm list`` is the
table ``NAME STATE FLAGS CONS VCPU MEMORY UTIL NORM UPTIME``; ``-p`` the ``VERSION 1.6`` /
``DOMAIN|...`` lines; ``-l`` and ``-o`` add blocks (``UUID``, ``VCPU``, ``NETWORK``, ...) built
from ``list-bindings``; ``-o status`` is the migration listing of the migration spec §7.3.
"""

from __future__ import annotations

from typing import Callable, Iterable

from agent.cli.answers import Answer, ldom_info
from agent.xmlapi import model

TABLE = (("NAME", 16), ("STATE", 10), ("FLAGS", 7), ("CONS", 7), ("VCPU", 5), ("MEMORY", 8),
         ("UTIL", 5), ("NORM", 5), ("UPTIME", 0))
SEPARATOR = "-" * 78
PARSEABLE_VERSION = "VERSION 1.6"

# Long words of the six flag positions (migration spec §7.1), for -l -p.
FLAG_WORDS = ({"s": "starting-or-stopping"}, {"n": "normal", "t": "transition", "d": "degraded"},
              {"d": "delayed-reconfig", "r": "memory-dr"}, {"c": "control"},
              {"v": "vio-service"},
              {"s": "migration-source", "t": "migration-target", "e": "migration-error"})

Section = tuple[str, list[str]]  # a block: its title and its (indented) lines

# -- the domain table --------------------------------------------------------------------------


def uptime(seconds: str) -> str:
    """Seconds as ldm shows them: ``3d 4h 12m``, zero parts left out, ``Ns`` under a minute."""
    if not seconds.isdigit():
        return ""
    s = int(seconds)
    parts = [(s // 86400, "d"), (s % 86400 // 3600, "h"), (s % 3600 // 60, "m")]
    text = " ".join(f"{n}{unit}" for n, unit in parts if n)
    return text or f"{s}s"


def table_line(cells: Iterable[str]) -> str:
    out = ""
    for (_, width), cell in zip(TABLE, cells):
        out += cell.ljust(width) + " " if width else cell
    return out.rstrip()


def table_row(name: str, info: dict[str, str]) -> str:
    """One domain's row of the ``ldm list`` table."""
    util = info.get("util", "")
    util = f"{util}%" if util else ""
    return table_line([name, info.get("state", ""), info.get("flags", ""), info.get("console", ""),
                       info.get("ncpu", ""), info.get("memory", ""), util, util,
                       uptime(info.get("uptime", ""))])


def render_table(contents: list[model.Content]) -> str:
    """``ldm list``: the header and one row per domain."""
    lines = [table_line(h for h, _ in TABLE)]
    lines += [table_row(c.name, ldom_info(c)) for c in contents]
    return "\n".join(lines)


def size_bytes(text: str) -> str:
    """A size as the agent writes it (``8G``, ``1536M``, ``512K``, bytes) in bytes."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    if text[-1:].upper() in units and text[:-1].isdigit():
        return str(int(text[:-1]) * units[text[-1].upper()])
    return text


def flag_words(flags: str) -> str:
    """The long form of a flag string (``normal,control,vio-service``)."""
    return ",".join(words[letter] for words, letter in zip(FLAG_WORDS, flags) if letter in words)


def parseable_row(name: str, info: dict[str, str], long: bool = False) -> str:
    """One ``DOMAIN|...`` line of ``ldm list -p`` (``-l``: flags as words)."""
    flags = info.get("flags", "")
    return "|".join([
        f"DOMAIN|name={name}", f"state={info.get('state', '')}",
        f"flags={flag_words(flags) if long else flags}", f"cons={info.get('console', '')}",
        f"ncpu={info.get('ncpu', '')}", f"mem={size_bytes(info.get('memory', ''))}",
        f"util={info.get('util', '')}", f"uptime={info.get('uptime', '')}",
        f"norm_util={info.get('util', '')}"])


# -- migration status (migration spec §7.3) ----------------------------------------------------

STATUS_WIDTHS = (13, 12, 13)
# The MIGRATION block of -l -o status: every key of the migration spec §10.10, in its order,
# with the §7.3 units (B: sizes with one decimal, s: seconds from ms, ms: downtimes).
MIGRATION_LINES = (
    ("id", "migration-id", ""), ("role", "role", ""), ("peer", "peer", ""),
    ("peer-ldom", "peer-ldom", ""), ("phase", "phase", ""), ("status", "status", ""),
    ("outcome", "outcome", ""), ("time-elapsed", "time-elapsed", "s"),
    ("setup-time", "setup-time", "s"), ("round", "round", ""),
    ("memory-total", "memory-total", "B"), ("memory-processed", "memory-processed", "B"),
    ("memory-remaining", "memory-remaining", "B"), ("data-total", "data-total", "B"),
    ("data-processed", "data-processed", "B"), ("data-remaining", "data-remaining", "B"),
    ("transferred", "transferred", "B"), ("constant-pages", "constant-pages", ""),
    ("normal-pages", "normal-pages", ""), ("normal-bytes", "normal-bytes", "B"),
    ("page-size", "page-size", "B"), ("dirty-rate", "dirty-rate", "pages/s"),
    ("throughput", "throughput", "B/s"), ("compression", "compression", ""),
    ("compression-ratio", "compression-ratio", ""), ("throttle", "throttle", "%"),
    ("downtime-budget", "downtime-budget", "ms"), ("expected-downtime", "expected-downtime", "ms"),
    ("downtime", "downtime", "ms"), ("switchover", "switchover", ""), ("error", "error", ""))
# Statistics of the migration spec §10.10, in its order, for -l -p.
STATISTICS = ("migration-id", "phase", "status", "outcome", "time-elapsed", "setup-time", "round",
              "memory-total", "memory-processed", "memory-remaining", "data-total",
              "data-processed", "data-remaining", "transferred", "constant-pages", "normal-pages",
              "normal-bytes", "page-size", "dirty-rate", "throughput", "compression",
              "compression-ratio", "throttle", "downtime-budget", "expected-downtime", "downtime",
              "switchover", "error")


def human_size(nbytes: float) -> str:
    """Bytes with the CLI suffixes and one decimal (``9.2G``, ``310.5M``)."""
    for unit, scale in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f}{unit}"
    return f"{nbytes:.0f}"


def human_stat(value: str, unit: str) -> str:
    """A raw statistic (bytes, milliseconds, ...) as the human MIGRATION block shows it."""
    try:
        number = float(value)
    except ValueError:
        return value
    if unit == "B":
        return human_size(number)
    if unit == "B/s":
        return human_size(number) + "/s"
    if unit == "s":
        return f"{number / 1000:.1f}s"
    if unit == "ms":
        return f"{number:.0f}ms"
    if unit == "%":
        return f"{number:g}%"
    if unit:
        return f"{number:g} {unit}"
    return value


def migrating(info: dict[str, str]) -> bool:
    """A migration of the domain is in progress or unresolved (the STATUS row shows)."""
    return info.get("status") == "ongoing" or info.get("flags", "")[5:6] in ("s", "t", "e")


def status_section(info: dict[str, str]) -> Section:
    """The STATUS block: one migration row while a migration runs or is unresolved."""
    source = info.get("role") == "target"
    header = ["OPERATION", "PROGRESS", "SOURCE" if source else "TARGET",
              "SOURCE-LDOM" if source else "TARGET-LDOM"]
    rows = [header]
    if migrating(info):
        rows.append(["migration", info.get("progress", ""), info.get("peer", ""),
                     info.get("peer-ldom", "")])
    lines = []
    for row in rows:
        text = "".join(c.ljust(w) for c, w in zip(row, STATUS_WIDTHS)) + row[-1]
        lines.append("    " + text.rstrip())
    return "STATUS", lines


def migration_section(info: dict[str, str]) -> Section | None:
    """The MIGRATION block of ``-l -o status``: every known statistic, human units."""
    lines = [f"        {label:<20}{human_stat(info[key], unit)}"
             for label, key, unit in MIGRATION_LINES if info.get(key)]
    return ("    MIGRATION", lines) if lines else None


def parseable_status(info: dict[str, str], long: bool = False) -> list[str]:
    """``STATUS`` and its ``|op=migration|...`` line for ``-p`` (``-l``: every statistic)."""
    if not migrating(info):
        return ["STATUS"]
    fields = [("op", "migration"), ("progress", info.get("progress", "").rstrip("%")),
              ("role", info.get("role", "")), ("peer", info.get("peer", "")),
              ("peer-ldom", info.get("peer-ldom", ""))]
    if long:
        fields += [(k, info[k].rstrip("%")) for k in STATISTICS if info.get(k)]
    return ["STATUS", "".join(f"|{k}={v}" for k, v in fields)]


# -- resource blocks (list -l, list -o, list-bindings, list-constraints) ------------------------

def grid(headers: list[str], rows: list[list[str]], indent: str = "    ") -> list[str]:
    """Left-aligned columns separated by at least two spaces."""
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    return [(indent + "  ".join(c.ljust(w) for c, w in zip(r, widths))).rstrip()
            for r in [headers, *rows]]


def cpuset(text: str) -> str:
    return "(" + ", ".join(text.split(",")) + ")" if text else ""


def _of(items: list[model.Item], rtype: str) -> list[model.Item]:
    return [it for it in items if it.rtype == rtype]


def _bound(it: model.Item, key: str) -> str:
    return (it.bindings[0].get(key) if it.bindings else "") or ""


def _at(service: str, ldom: str) -> str:
    return f"{service}@{ldom}" if service and ldom else service


def core_rows(items: list[model.Item]) -> tuple[list[str], list[list[str]]]:
    cores: dict[str, list[str]] = {}
    for it in _of(items, "cpu"):
        for b in it.bindings:
            cores.setdefault(b.get("cid") or "", []).append(b.get("pid") or "")
    if cores:
        return ["CID", "CPUSET"], [[c, cpuset(",".join(p))] for c, p in cores.items()]
    whole = [it.get("wcore") for it in _of(items, "cpu") if (it.get("wcore") or "0") != "0"]
    return ["COUNT"], [[w] for w in whole]


def vcpu_rows(items: list[model.Item]) -> tuple[list[str], list[list[str]]]:
    bound = [b for it in _of(items, "cpu") for b in it.bindings]
    if bound:
        return (["VID", "PID", "CID", "UTIL"],
                [[b.get("vid") or "", b.get("pid") or "", b.get("cid") or "",
                  f"{b.get('util')}%" if b.get("util") else ""] for b in bound])
    return ["COUNT"], [[it.get("rasd:AllocationUnits") or ""] for it in _of(items, "cpu")]


def mau_rows(items: list[model.Item]) -> tuple[list[str], list[list[str]]]:
    bound = [b for it in _of(items, "mau") for b in it.bindings]
    if bound:
        return ["ID", "CPUSET"], [[b.get("id") or "", cpuset(b.get("cpuset") or "")] for b in bound]
    return ["COUNT"], [[it.get("rasd:AllocationUnits") or ""] for it in _of(items, "mau")]


def memory_rows(items: list[model.Item]) -> tuple[list[str], list[list[str]]]:
    bound = [b for it in _of(items, "memory") for b in it.bindings]
    if bound:
        return (["RA", "PA", "SIZE"],
                [[b.get("ra") or "", b.get("pa") or "", b.get("size") or ""] for b in bound])
    return ["SIZE"], [[it.get("rasd:AllocationUnits") or ""] for it in _of(items, "memory")]


def io_rows(items: list[model.Item]) -> tuple[list[str], list[list[str]]]:
    return (["DEVICE", "PSEUDONYM", "TYPE"],
            [[it.get("device") or "", it.get("name") or "", it.get("type") or ""]
             for it in _of(items, "physio_device")])


def vcc_rows(items: list[model.Item]) -> tuple[list[str], list[list[str]]]:
    return (["NAME", "PORT-RANGE"],
            [[it.get("service_name") or "", f"{it.get('min_port')}-{it.get('max_port')}"]
             for it in _of(items, "vcc")])


def vsw_rows(items: list[model.Item]) -> tuple[list[str], list[list[str]]]:
    keys = ("service_name", "rasd:Address", "dev_path", "id", "device", "linkprop",
            "default-vlan-id", "pvid", "vid", "mtu", "mode", "inter_vnet_link")
    return (["NAME", "MAC", "NET-DEV", "ID", "DEVICE", "LINKPROP", "DEFAULT-VLAN-ID", "PVID", "VID",
             "MTU", "MODE", "INTER-VNET-LINK"],
            [[it.get(k) or "" for k in keys] for it in _of(items, "vsw")])


def vds_rows(items: list[model.Item]) -> tuple[list[str], list[list[str]]]:
    rows = []
    for vds in _of(items, "vds"):
        name = vds.get("service_name") or ""
        volumes = [v for v in _of(items, "vds_volume") if v.get("service_name") == name]
        rows.append([name, "", "", "", ""])
        rows += [["", v.get("vol_name") or "", v.get("vol_opts") or "", v.get("mpgroup") or "",
                  v.get("block_dev") or ""] for v in volumes]
    return ["NAME", "VOLUME", "OPTIONS", "MPGROUP", "DEVICE"], rows


def network_rows(items: list[model.Item]) -> tuple[list[str], list[list[str]]]:
    return (["NAME", "SERVICE", "ID", "DEVICE", "MAC", "MODE", "PVID", "VID", "MTU", "LINKPROP"],
            [[it.get("vnet_name") or "", _at(it.get("service_name") or "", _bound(it, "ldom")),
              it.get("id") or "", it.get("device") or "", it.get("rasd:Address") or "",
              it.get("mode") or "", it.get("pvid") or "", it.get("vid") or "",
              it.get("mtu") or "", it.get("linkprop") or ""] for it in _of(items, "network")])


def disk_rows(items: list[model.Item]) -> tuple[list[str], list[list[str]]]:
    return (["NAME", "VOLUME", "TOUT", "ID", "DEVICE", "SERVER"],
            [[it.get("vdisk_name") or "", _at(it.get("vol_name") or "", it.get("service_name") or ""),
              it.get("timeout") or "", it.get("id") or "", it.get("device") or "",
              _bound(it, "ldom")] for it in _of(items, "disk")])


def vcons_rows(items: list[model.Item]) -> tuple[list[str], list[list[str]]]:
    return (["NAME", "SERVICE", "PORT", "LOGGING"],
            [[it.get("group") or "", _at(it.get("service_name") or "", _bound(it, "ldom")),
              it.get("port") or "", it.get("enable-log") or ""] for it in _of(items, "console")])


RowsFn = Callable[[list[model.Item]], tuple[list[str], list[list[str]]]]
RESOURCE_BLOCKS: tuple[tuple[str, RowsFn], ...] = (
    ("CORE", core_rows), ("VCPU", vcpu_rows), ("MAU", mau_rows), ("MEMORY", memory_rows),
    ("IO", io_rows), ("VCC", vcc_rows), ("VSW", vsw_rows), ("VDS", vds_rows),
    ("NETWORK", network_rows), ("DISK", disk_rows), ("VCONS", vcons_rows))

# `ldm list -o` words and the blocks each selects.
OUTPUT_WORDS = {
    "domain": ("UUID", "MAC", "HOSTID", "CONTROL", "DEPENDENCY", "VARIABLES"),
    "cpu": ("CORE", "VCPU"), "crypto": ("MAU",), "memory": ("MEMORY",), "physio": ("IO",),
    "network": ("MAC", "VSW", "NETWORK"), "disk": ("VDS", "DISK"), "console": ("VCC", "VCONS"),
    "status": ("STATUS",),
}


def domain_blocks(content: model.Content) -> dict[str, Section]:
    """Every block of one domain by title (blocks with nothing to show are left out)."""
    info = ldom_info(content)
    items = [it for it in content.items() if it.rtype != "ldom_info"]
    blocks: dict[str, Section] = {}
    for title, key in (("UUID", "uuid"), ("MAC", "rasd:Address")):
        if info.get(key):
            blocks[title] = (title, ["    " + info[key]])
    if info.get("hostid"):
        blocks["HOSTID"] = ("HOSTID", ["    0x" + info["hostid"]])
    control = [f"    {k}={info[k]}" for k in ("failure-policy", "extended-mapin-space", "cpu-arch",
                                               "rc-add-policy", "perf-counters") if k in info]
    if control:
        blocks["CONTROL"] = ("CONTROL", control)
    if "master" in info:
        blocks["DEPENDENCY"] = ("DEPENDENCY", [f"    master={info['master']}"])
    for title, rows_fn in RESOURCE_BLOCKS:
        headers, rows = rows_fn(items)
        if rows:
            blocks[title] = (title, grid(headers, rows))
        if title == "MEMORY":  # variables come after memory, as in ldm
            variables = [f"    {v.get('name')}={v.get('value')}" for v in _of(items, "var")]
            if variables:
                blocks["VARIABLES"] = ("VARIABLES", variables)
    blocks["STATUS"] = status_section(info)
    return blocks


def render_blocks(blocks: Iterable[Section]) -> list[str]:
    out: list[str] = []
    for title, lines in blocks:
        out += [title, *lines, ""]
    return out


def render_long(contents: list[model.Content], words: list[str] | None = None,
                long: bool = False) -> str:
    """``ldm list -l`` (table row then every block) or ``ldm list -o WORD,...`` (the name then
    the selected blocks; with ``-l`` also the MIGRATION block of ``-o status``)."""
    out: list[str] = []
    for n, content in enumerate(contents):
        if n:
            out.append(SEPARATOR)
        blocks = domain_blocks(content)
        if words is None:
            out += [table_line(h for h, _ in TABLE), table_row(content.name, ldom_info(content)), ""]
            chosen = [b for t, b in blocks.items() if t != "STATUS" or migrating(ldom_info(content))]
        else:
            out += ["NAME", content.name, ""]
            titles = [t for w in words for t in OUTPUT_WORDS[w]]
            chosen = [blocks[t] for t in dict.fromkeys(titles) if t in blocks]
            if long and "status" in words:
                extra = migration_section(ldom_info(content))
                chosen += [extra] if extra else []
        out += render_blocks(chosen)
    return "\n".join(out).rstrip("\n")


def render_parseable(contents: list[model.Content], long: bool = False,
                     status: bool = False) -> str:
    """``ldm list -p`` (``-o status``: each domain followed by its STATUS lines)."""
    out = [PARSEABLE_VERSION]
    for content in contents:
        info = ldom_info(content)
        out.append(parseable_row(content.name, info, long))
        if status:
            out += parseable_status(info, long)
    return "\n".join(out)


def render_constraints(contents: list[model.Content]) -> str:
    """``ldm list-constraints``: per domain its name and its blocks."""
    out: list[str] = []
    for content in contents:
        out += ["DOMAIN", content.name, ""]
        blocks = domain_blocks(content)
        out += render_blocks(b for t, b in blocks.items() if t != "STATUS")
    return "\n".join(out).rstrip("\n")


# -- the other lists ----------------------------------------------------------------------------

def render_services(contents: list[model.Content]) -> str:
    """``ldm list-services``: VCC, VSW and VDS blocks across domains, with an LDOM column."""
    out: list[str] = []
    for title, rows_fn in (("VCC", vcc_rows), ("VSW", vsw_rows), ("VDS", vds_rows)):
        headers: list[str] = []
        rows: list[list[str]] = []
        for content in contents:
            headers, mine = rows_fn(content.items())
            rows += [[r[0], content.name if r[0] else "", *r[1:]] for r in mine]
        if rows:
            out += [title, *grid([headers[0], "LDOM", *headers[1:]], rows), ""]
    return "\n".join(out).rstrip("\n")


DEVICE_BLOCKS = {
    "core": ("CORE", [("ID", "cid"), ("%FREE", "free"), ("CPUSET", "cpuset"), ("STATUS", "status")]),
    "cpu": ("VCPU", [("PID", "pid"), ("BOUND", "bound")]),
    "mau": ("MAU", [("ID", "id"), ("CPUSET", "cpuset"), ("BOUND", "bound")]),
    "memory": ("MEMORY", [("PA", "pa"), ("SIZE", "size"), ("BOUND", "bound"), ("STATUS", "status")]),
    "physio_device": ("IO", [("DEVICE", "device"), ("PSEUDONYM", "name"), ("TYPE", "type"),
                             ("BOUND", "bound"), ("IOV", "iov")]),
}


def render_devices(answer: Answer) -> str:
    """``ldm list-devices``: one block per device class answered."""
    out: list[str] = []
    for result in answer.results:
        items = result.items()
        if not result.ok or not items or items[0].rtype not in DEVICE_BLOCKS:
            continue
        title, columns = DEVICE_BLOCKS[items[0].rtype]
        columns = [(h, k) for h, k in columns if any(it.get(k) is not None for it in items)]
        rows = [[cpuset(it.get(k) or "") if k == "cpuset" else it.get(k) or "" for _, k in columns]
                for it in items]
        out += [title, *grid([h for h, _ in columns], rows), ""]
    return "\n".join(out).rstrip("\n")


def render_variables(contents: list[model.Content]) -> str:
    """``ldm list-variable``: ``name=value`` lines (per domain when several)."""
    out: list[str] = []
    for content in contents:
        lines = [f"{v.get('name')}={v.get('value')}" for v in content.items() if v.rtype == "var"]
        if len(contents) > 1:
            out += ["DOMAIN", content.name, *("    " + line for line in lines), ""]
        else:
            out += lines
    return "\n".join(out).rstrip("\n")


SPCONFIG_STATUS = {"current": "[current]", "next": "[next poweron]", "degraded": "[degraded]",
                   "newer": "[newer]"}


def render_spconfigs(answer: Answer) -> str:
    """``ldm list-spconfig``: one name per line with its status in brackets."""
    lines = []
    for result in answer.results:
        for it in result.items():
            if it.rtype == "spconfig":
                status = SPCONFIG_STATUS.get(it.get("spconfig_status") or "", "")
                lines.append(f"{it.get('spconfig_name')} {status}".rstrip())
    return "\n".join(lines)


def render_event(action: str, envelope: model.Envelope) -> str:
    """One line for an event: action, domain, then each Item's type and properties."""
    parts = [action]
    for part in envelope.parts:
        items = part.items() if isinstance(part, model.Content) else part.items
        if isinstance(part, model.Content):
            parts.append(part.name)
        for it in items:
            if it.rtype != "ldom_info":
                parts.append(it.rtype)
            parts += [f"{k.removeprefix('rasd:')}={v}" for k, v in it.props]
    return " ".join(parts)
