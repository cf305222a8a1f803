"""Hostile inputs for the agent: grammar-aware and byte-level mutations of the sample requests.

Every generator takes a :class:`random.Random` and returns a :class:`Case`: the chunks to write
(one write per chunk) and the phase of the session they are written in. Cases are plain data,
so a failing one can be printed, saved and replayed.

Phases: ``ready`` (an authenticated session; the chunks are top-level elements or garbage),
``header`` (the very first bytes of a connection), ``plain`` (after the client header, before
TLS), ``tls`` (after STARTTLS and the restarted header, before SASL).

``migrate-domain`` and ``start-domain`` never appear: a management session really executes what
it sends, and those two would wait on a network peer or start guest processes with real RAM.
"""

from __future__ import annotations

import base64
import random
import re
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from agent.actions.table import ACTIONS

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "requests"
EXCLUDED_ACTIONS = ("migrate-domain", "start-domain")
FUZZ_ACTIONS = tuple(a for a in ACTIONS if a not in EXCLUDED_ACTIONS)

STREAM_HEADER = (b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
                 b"xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>")
MINIMAL_HEADER = b"<?xml version='1.0'?><stream:stream xml:lang=\"en\" version=\"1.0\" id=\"xmpp\">"
STARTTLS = b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"

BILLION_LAUGHS = (
    b'<!DOCTYPE LDM_interface [<!ENTITY lol "lol">'
    + b"".join(b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
               for i in range(1, 10))
    + b"]>"
)
ENTITY_TRICKS = (
    BILLION_LAUGHS,
    b'<!DOCTYPE LDM_interface [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>',
    b'<!DOCTYPE LDM_interface [<!ENTITY % pe SYSTEM "http://127.0.0.1:1/x.dtd"> %pe;]>',
    b'<!DOCTYPE LDM_interface SYSTEM "http://127.0.0.1:1/x.dtd">',
    b'<!ENTITY lol "lol">',
    b"<?xml-stylesheet href='x'?>",
    b"<?evil?>",
)
ENTITY_REFS = (b"&lol9;", b"&xxe;", b"%pe;", b"&#0;", b"&#xD800;", b"&#x110000;", b"&#65;",
               b"&amp;", b"&;", b"&#;", b"&#x;", b"&lt", b"&amp")
ODD_TEXT = ("", " ", "-1", "0", "18446744073709551616", "1e9999", "NaN", "\u202e", "\U0001f600",
            "a" * 300, "16G", "0x10", "ldg1", "primary", "<>&\"'", "\t\n", "-a", "-f -n -c",
            "\u0000".replace("\u0000", ""), "3.0", "99.9", "..", "/etc/passwd")
ODD_NAMES = ("foo", "ovf:Bogus", "zz:undeclared", "xsi:type", "LDM_event", "stream:stream",
             "iq", "presence", "message", "auth", "starttls", "cmd", "data", "Item", "a-b.c", "_")
INVALID_UTF8 = (b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\x80",
                b"\xe2\x82", b"\xf4\x90\x80\x80")
CONTROL_BYTES = (b"\x00", b"\x01", b"\x0b", b"\x1f", b"\x7f")


@dataclass
class Case:
    """One fuzz input: what to write, one write per chunk, in which phase of a session."""

    kind: str
    phase: str
    chunks: list[bytes]

    @property
    def data(self) -> bytes:
        return b"".join(self.chunks)


def load_corpus() -> dict[str, bytes]:
    """The sample requests by file stem, without the excluded actions."""
    corpus = {}
    for path in sorted(SAMPLES.glob("*.xml")):
        if not path.stem.startswith(EXCLUDED_ACTIONS):
            corpus[path.stem] = path.read_bytes()
    return corpus


CORPUS = load_corpus()
CORPUS_NAMES = tuple(CORPUS)


# -- grammar-aware mutations (on the lxml tree of a sample) ---------------------------------

def _random_text(rng: random.Random) -> str:
    if rng.random() < 0.2:
        return "".join(chr(rng.choice((rng.randrange(32, 127), rng.randrange(160, 0xD7FF))))
                       for _ in range(rng.randrange(0, 40)))
    return rng.choice(ODD_TEXT)


def _tree_mutation(rng: random.Random, root: etree._Element) -> None:
    elements = list(root.iter())
    target = rng.choice(elements)
    op = rng.randrange(12)
    if op == 0:  # another action, or nonsense
        for action in root.iter("action"):
            action.text = rng.choice(FUZZ_ACTIONS) if rng.random() < 0.7 else _random_text(rng)
    elif op == 1 and target is not root:  # delete an element
        target.getparent().remove(target)
    elif op == 2 and target is not root:  # duplicate an element, up to 50 times
        parent = target.getparent()
        for _ in range(rng.choice((1, 2, 5, 50))):
            parent.insert(parent.index(target), _copy(target))
    elif op == 3:  # text value
        target.text = _random_text(rng)
    elif op == 4:  # an attribute, maybe a huge one
        name = rng.choice(("version", "key", "id", "xsi:type", "ovf:id", "bogus", "xmlns:zz"))
        value = _random_text(rng) if rng.random() < 0.9 else "A" * rng.choice((70_000, 300_000))
        qname = _qualify(root, name)
        if qname:
            target.set(qname, value)
    elif op == 5:  # rename an element
        qname = _qualify(root, rng.choice(ODD_NAMES))
        if qname and "stream" not in qname:
            target.tag = qname
    elif op == 6 and len(target):  # shuffle children
        children = list(target)
        rng.shuffle(children)
        target[:] = children
    elif op == 7:  # move an element somewhere else
        if target is not root and len(elements) > 2:
            dest = rng.choice([e for e in elements if e is not target and target not in e.iterancestors()])
            if dest is not target and target not in dest.iterancestors():
                target.getparent().remove(target)
                dest.append(target)
    elif op == 8:  # version of the root or of data
        (root if rng.random() < 0.5 else target).set("version", rng.choice(
            ("1.0", "1.1", "1.3", "1.7", "1.8", "2.0", "3.0", "", " 1.3 ", "x")))
    elif op == 9:  # many commands
        cmds = root.findall("cmd")
        if cmds:
            for _ in range(rng.choice((2, 10, 64))):
                root.append(_copy(rng.choice(cmds)))
    elif op == 10:  # remove every attribute of an element
        for name in list(target.attrib):
            del target.attrib[name]
    else:  # children that should not be there
        child = etree.SubElement(target, rng.choice(("cmd", "data", "Item", "options", "arguments",
                                                      "Envelope", "Section", "x")))
        child.text = _random_text(rng)


def _copy(element: etree._Element) -> etree._Element:
    return etree.fromstring(etree.tostring(element))


def _qualify(root: etree._Element, name: str) -> str | None:
    prefix, _, local = name.rpartition(":")
    if not prefix:
        return local
    uri = root.nsmap.get(prefix)
    return f"{{{uri}}}{local}" if uri else None


def grammar_mutation(rng: random.Random) -> Case:
    """1-4 structural mutations of one sample, serialised by lxml (so still well-formed)."""
    name = rng.choice(CORPUS_NAMES)
    root = etree.fromstring(CORPUS[name])
    for _ in range(rng.randrange(1, 5)):
        _tree_mutation(rng, root)
    raw = etree.tostring(root)
    if rng.random() < 0.2:  # drop namespace declarations: undeclared prefixes
        raw = re.sub(rb'\sxmlns:(\w+)="[^"]*"', b"", raw, count=rng.randrange(1, 7))
    return Case("grammar", "ready", [raw])


# -- textual and byte-level mutations ---------------------------------------------------------

def _sample(rng: random.Random) -> bytes:
    return CORPUS[rng.choice(CORPUS_NAMES)]


def _insert_at_tag(rng: random.Random, raw: bytes, what: bytes) -> bytes:
    """Insert ``what`` just after a random '>' inside the document (between markup)."""
    spots = [m.end() for m in re.finditer(rb">", raw)][:-1]
    at = rng.choice(spots) if spots else len(raw)
    return raw[:at] + what + raw[at:]


def byte_mutation(rng: random.Random) -> Case:
    """Flip, insert, delete or duplicate bytes of a sample (may break the stream)."""
    raw = bytearray(_sample(rng))
    for _ in range(rng.randrange(1, 6)):
        op = rng.randrange(6)
        at = rng.randrange(len(raw))
        if op == 0:
            raw[at] = rng.randrange(256)
        elif op == 1:
            raw[at:at] = bytes([rng.randrange(256)])
        elif op == 2:
            del raw[at:at + rng.randrange(1, 64)]
        elif op == 3:
            raw[at:at] = raw[at:at + rng.randrange(1, 200)]
        elif op == 4:
            raw[at:at] = rng.choice((b"<", b">", b"&", b'"', b"'", b"/", b"=", b"]]>", b"<!--", b"-->",
                                     b"<![CDATA[", b"</", b"/>"))
        else:
            raw[at:at] = rng.choice(INVALID_UTF8 + CONTROL_BYTES)
    return Case("bytes", "ready", [bytes(raw)])


def truncation(rng: random.Random) -> Case:
    """A prefix of a sample: the agent must wait for the rest (or fail the stream)."""
    raw = _sample(rng)
    return Case("truncation", "ready", [raw[:rng.randrange(1, len(raw))]])


def encoding_trick(rng: random.Random) -> Case:
    """UTF-16 with or without BOM, BOMs in the stream, declarations naming other encodings,
    invalid UTF-8 in text, attribute values and names."""
    raw = _sample(rng)
    op = rng.randrange(6)
    if op == 0:
        codec = rng.choice(("utf-16", "utf-16-le", "utf-16-be"))
        data = raw.decode().encode(codec)
    elif op == 1:
        data = rng.choice((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")) + raw
    elif op == 2:
        enc = rng.choice((b"UTF-16", b"ISO-8859-1", b"EBCDIC", b"utf-8", b"x"))
        data = b"<?xml version='1.0' encoding='" + enc + b"'?>" + raw
    elif op == 3:
        data = raw.replace(b"</action>", rng.choice(INVALID_UTF8) + b"</action>", 1)
    elif op == 4:
        data = raw.replace(b'version="1.3"', b'version="1' + rng.choice(INVALID_UTF8) + b'"', 1)
    else:
        data = raw.replace(b"<cmd>", b"<cm" + rng.choice(INVALID_UTF8) + b"d>", 1).replace(
            b"</cmd>", b"</cm" + rng.choice(INVALID_UTF8) + b"d>", 1)
    return Case("encoding", "ready", [data])


def entity_trick(rng: random.Random) -> Case:
    """Billion laughs, external and parameter entities, DOCTYPEs, PIs and odd references."""
    raw = _sample(rng)
    op = rng.randrange(3)
    if op == 0:
        data = rng.choice(ENTITY_TRICKS) + raw
    elif op == 1:
        data = _insert_at_tag(rng, raw, rng.choice(ENTITY_TRICKS))
    else:
        data = raw.replace(b"</action>", rng.choice(ENTITY_REFS) + b"</action>", 1)
    return Case("entity", "ready", [data])


def nesting(rng: random.Random) -> Case:
    """Nesting around the limit of 32 levels, and far beyond it."""
    depth = rng.choice((30, 31, 32, 33, 40, 1000, 100_000))
    inner = b"<a>" * (depth - 2) + b"</a>" * (depth - 2)
    data = b'<LDM_interface version="1.3"><cmd>' + inner + b"</cmd></LDM_interface>"
    return Case("nesting", "ready", [data])


def huge(rng: random.Random) -> Case:
    """Huge attributes, texts and element counts, around and above the 1 MiB document limit."""
    size = rng.choice((1000, 100_000, (1 << 20) - 300, (1 << 20) + 10, 3 << 20))
    op = rng.randrange(3)
    if op == 0:
        data = b'<LDM_interface version="1.3" big="' + b"A" * size + b'"><cmd/></LDM_interface>'
    elif op == 1:
        data = (b'<LDM_interface version="1.3"><cmd><action>' + b"x" * size
                + b"</action></cmd></LDM_interface>")
    else:
        data = b'<LDM_interface version="1.3">' + b"<cmd/>" * (size // 6) + b"</LDM_interface>"
    return Case("huge", "ready", [data])


def unbalanced(rng: random.Random) -> Case:
    """Mismatched, missing and extra end tags; the vendor-example mistakes of §3.8."""
    raw = _sample(rng).decode()
    op = rng.randrange(5)
    if op == 0:
        data = raw.replace("</cmd>", "</cmdx>", 1)
    elif op == 1:
        data = raw.replace("</data>", "", 1) + "</data>"
    elif op == 2:
        data = raw.replace('<data version="3.0">', '<data version="3.0"/>', 1)
    elif op == 3:
        data = raw.replace("<Envelope>", "<Envelope", 1)
    else:
        data = "</LDM_interface>" + raw
    return Case("unbalanced", "ready", [data.encode()])


def pipelining(rng: random.Random) -> Case:
    """Several documents in one write (beyond the 32-request queue), one-byte writes,
    documents glued to stanzas, comments, declarations and whitespace keep-alives."""
    op = rng.randrange(4)
    docs = [_sample(rng) for _ in range(rng.randrange(2, 6))]
    if op == 0:
        doc = CORPUS["list-variable"] if "list-variable" in CORPUS else docs[0]
        return Case("pipeline-burst", "ready", [doc * rng.choice((5, 33, 64))])
    if op == 1:
        raw = docs[0]
        cut = sorted(rng.sample(range(1, len(raw)), min(len(raw) - 1, rng.randrange(2, 40))))
        return Case("pipeline-split", "ready", [raw[a:b] for a, b in zip([0] + cut, cut + [len(raw)])])
    if op == 2:
        glue = (b" \n ", b"<!-- c -->", b"<?xml version='1.0'?>", b"<presence/>", b"<message><body>x</body></message>",
                b"<iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>",
                b"<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>",
                b"<iq type='get' id='q'><query xmlns='jabber:iq:roster'/></iq>")
        return Case("pipeline-glue", "ready", [b"".join(d + rng.choice(glue) for d in docs)])
    return Case("pipeline-trailing", "ready",
                [docs[0] + rng.choice((b"garbage", b"<", b"</x>", b"\x00", b"<LDM_interface"))])


def stanza(rng: random.Random) -> Case:
    """Stream-level elements in an authenticated session (iq, presence, message, and the
    negotiation elements that are a policy violation there)."""
    data = rng.choice((
        b"<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r</resource></bind></iq>",
        b"<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>",
        b"<iq type='set' id='s1'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>",
        b"<iq type='get'/>", b"<iq type='result' id='r'/>", b"<iq type='bogus' id='x'><a/></iq>",
        b"<iq id='" + b"i" * 5000 + b"' type='get'><x/></iq>",
        b"<presence/>", b"<message to='x'><body>" + b"&amp;" * 100 + b"</body></message>",
        STARTTLS, b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AA==</auth>",
        b"<response/>", b"<abort/>", b"<LDM_event version='1.0'><cmd/></LDM_event>",
        b"<stream:features/>", b"<stream:stream>", b"</stream:stream>",
    ))
    return Case("stanza", "ready", [data])


def random_bytes(rng: random.Random) -> Case:
    """Random bytes, sometimes starting with '<' so they get past the first check."""
    data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))
    if rng.random() < 0.5:
        data = b"<" + data
    return Case("random", "ready", [data])


# -- negotiation ------------------------------------------------------------------------------

def _mutated_header(rng: random.Random) -> bytes:
    header = rng.choice((STREAM_HEADER, MINIMAL_HEADER)).decode()
    op = rng.randrange(9)
    if op == 0:
        header = header.replace("version='1.0'", "version='2.0'").replace('version="1.0" id', 'version="2.0" id')
    elif op == 1:
        header = header.replace("jabber:client", "jabber:server")
    elif op == 2:
        header = header.replace("<?xml version='1.0'?>", "<?xml version='1.0' encoding='UTF-16'?>")
    elif op == 3:
        header = header.replace("stream:stream", "stream:strea")
    elif op == 4:
        header = header.replace("<stream:stream", "<stream:stream x='" + "y" * 20_000 + "'")
    elif op == 5:
        header = header[: rng.randrange(1, len(header))]
    elif op == 6:
        return header.encode("utf-16")
    elif op == 7:
        header = header.replace("<stream:stream", "<stream:stream xmlns:stream='urn:wrong'")
    else:
        raw = bytearray(header.encode())
        raw[rng.randrange(len(raw))] = rng.randrange(256)
        return bytes(raw)
    return header.encode()


def negotiation(rng: random.Random) -> Case:
    """Hostile negotiation: mutated headers, junk before TLS, plaintext pipelined after
    STARTTLS, SASL garbage and LDM documents before authentication."""
    op = rng.randrange(6)
    if op == 0:
        return Case("neg-header", "header", [_mutated_header(rng)])
    if op == 1:
        return Case("neg-random", "header", [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))])
    if op == 2:
        junk = rng.choice((_sample(rng), b"<auth mechanism='PLAIN'>AGEAYg==</auth>", b"<iq type='get' id='1'/>",
                           b"<starttls/>" + _sample(rng), b"<starttls/><auth mechanism='PLAIN'>AGEAYg==</auth>",
                           b"<presence/>", b"garbage", STARTTLS * 2))
        return Case("neg-plain", "plain", [junk])
    if op == 3:
        return Case("neg-tls-header", "tls-header", [_mutated_header(rng)])
    payload = rng.choice((
        b"", b"====", b"!!!", base64.b64encode(b"\0a"), base64.b64encode(b"\0\0\0"),
        base64.b64encode(b"x\0admin\0pw"), base64.b64encode(b"\0admin\0" + b"p" * 10_000),
        base64.b64encode(b"\0\xff\xfe\0pw"), b"A" * 17_000,
    ))
    mech = rng.choice((b"PLAIN", b"PLAIN", b"SCRAM-SHA-1", b"", b"plain"))
    auth = b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='" + mech + b"'>" + payload + b"</auth>"
    if op == 4:
        extra = rng.choice((b"", b"<response/>", b"<abort xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>", _sample(rng)))
        return Case("neg-sasl", "tls", [auth + extra])
    return Case("neg-before-auth", "tls", [rng.choice((_sample(rng), b"<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>",
                                                        b"<presence/>", STARTTLS))])


GENERATORS = (
    (grammar_mutation, 40), (byte_mutation, 15), (truncation, 4), (encoding_trick, 6),
    (entity_trick, 6), (nesting, 3), (huge, 2), (unbalanced, 4), (pipelining, 6), (stanza, 5),
    (random_bytes, 4), (negotiation, 15),
)


def generate(rng: random.Random, phase: str = "any") -> Case:
    """One case, drawn from the generators by weight; ``phase`` "ready" leaves out the
    negotiation cases, "negotiation" gives only those."""
    pairs = [(f, w) for f, w in GENERATORS
             if phase == "any" or (f is negotiation) == (phase == "negotiation")]
    funcs, weights = zip(*pairs)
    return rng.choices(funcs, weights)[0](rng)
