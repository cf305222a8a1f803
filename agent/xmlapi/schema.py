"""The compiled LDM entry schemas and their errors as (path, reason) pairs (spec ldm-xml §8).

``combined-v3.xsd`` and ``event-v3.xsd`` are compiled once, on first use, from the agent's
schema directory (:func:`agent.paths.schemas_dir`) with network access disabled and a resolver
that serves nothing but files of that directory. Errors are reported as :class:`SchemaError`
pairs: the ``getpath()`` path of the offending node in the canonical tree (``/@name`` appended
for an offending attribute, §3.7) and the validator's reason with namespace URIs written as
the canonical prefixes.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import NamedTuple
from urllib.parse import unquote, urlsplit

from lxml import etree

from agent.paths import schemas_dir
from agent.xmlapi.parser import CANONICAL_NAMESPACES

REQUEST_SCHEMA = "combined-v3.xsd"
EVENT_SCHEMA = "event-v3.xsd"

_PREFIX_OF = {uri: prefix for prefix, uri in CANONICAL_NAMESPACES}
# libxml2 prefixes each message with the element, and the attribute when one is at fault.
_SUBJECT = re.compile(r"^Element '([^']*)'(?:, attribute '([^']*)')?: ")
_CLARK = re.compile(r"\{([^}]*)\}([\w.\-]+)")


class SchemaError(NamedTuple):
    """One validation error: where (canonical path) and why (the validator's reason)."""

    path: str
    reason: str


class SchemaLoadError(RuntimeError):
    """The shipped schemas could not be loaded or compiled."""


class _DirectoryResolver(etree.Resolver):
    """Serves schema documents from one directory and refuses every other location."""

    def __init__(self, directory: Path) -> None:
        super().__init__()
        self._directory = directory.resolve()

    def resolve(self, system_url, public_id, context):
        parts = urlsplit(system_url or "")
        if parts.scheme not in ("", "file") or parts.netloc not in ("", "localhost"):
            raise SchemaLoadError(f"schema location {system_url!r} is not a local file")
        path = Path(unquote(parts.path))
        if not path.is_absolute():
            path = self._directory / path.name
        path = path.resolve()
        if path.parent != self._directory or not path.is_file():
            raise SchemaLoadError(f"schema location {system_url!r} is outside {self._directory}")
        return self.resolve_filename(str(path), context)


def load_schema(name: str, directory: Path | None = None) -> etree.XMLSchema:
    """Compile the entry schema ``name`` from ``directory`` (default: the shipped schemas)."""
    directory = (directory or schemas_dir()).resolve()
    parser = etree.XMLParser(no_network=True, resolve_entities=False, load_dtd=False)
    parser.resolvers.add(_DirectoryResolver(directory))
    try:
        document = etree.parse(str(directory / name), parser)
        return etree.XMLSchema(document)
    except (OSError, etree.XMLSyntaxError, etree.XMLSchemaParseError) as exc:
        raise SchemaLoadError(f"cannot load schema {name} from {directory}: {exc}") from exc


@functools.cache
def request_schema() -> etree.XMLSchema:
    """The compiled ``combined-v3.xsd`` (``LDM_interface`` requests and responses)."""
    return load_schema(REQUEST_SCHEMA)


@functools.cache
def event_schema() -> etree.XMLSchema:
    """The compiled ``event-v3.xsd`` (``LDM_event``)."""
    return load_schema(EVENT_SCHEMA)


def validate_request(root: etree._Element) -> list[SchemaError]:
    """Errors of a canonical ``LDM_interface`` tree against ``combined-v3.xsd`` (empty if valid)."""
    return validation_errors(request_schema(), root)


def validate_event(root: etree._Element) -> list[SchemaError]:
    """Errors of a canonical ``LDM_event`` tree against ``event-v3.xsd`` (empty if valid)."""
    return validation_errors(event_schema(), root)


def validation_errors(schema: etree.XMLSchema, root: etree._Element) -> list[SchemaError]:
    """Validate ``root`` and return its errors in document order."""
    if schema.validate(root):
        return []
    return [_to_error(entry) for entry in schema.error_log]


def _to_error(entry: etree._LogEntry) -> SchemaError:
    path = entry.path or "/"
    reason = entry.message
    match = _SUBJECT.match(reason)
    if match:
        reason = reason[match.end():]
        if match.group(2):
            path = f"{path}/@{_prefixed(match.group(2))}"
    return SchemaError(path, _CLARK.sub(_prefixed_match, reason))


def _prefixed(name: str) -> str:
    """``{uri}local`` as ``prefix:local`` for the canonical URIs; other names unchanged."""
    match = _CLARK.fullmatch(name)
    return _prefixed_match(match) if match else name


def _prefixed_match(match: re.Match) -> str:
    prefix = _PREFIX_OF.get(match.group(1))
    return f"{prefix}:{match.group(2)}" if prefix else match.group(0)
