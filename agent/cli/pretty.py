"""Human-readable rendering of LDM documents for the CLI and the demo."""

from __future__ import annotations

from lxml import etree


def indent_xml(document: bytes) -> str:
    """Pretty-print a document the agent sent (compact on the wire) for a terminal."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, remove_blank_text=True)
    try:
        root = etree.fromstring(document, parser)
    except etree.XMLSyntaxError:
        return document.decode("utf-8", "replace")
    etree.indent(root, space="  ")
    return etree.tostring(root, encoding="unicode")
