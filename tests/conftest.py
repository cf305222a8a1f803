"""Suite-wide fixtures.

``xmlschema_request`` is the combined request schema as an ``xmlschema`` object, built when
this file is imported, i.e. before any test module imports Twisted's testing helpers. Those
import ``zope.interface.common.collections``, which puts a ``__provides__`` descriptor on
``abc.ABCMeta``; xmlschema (4.x) then fails to build any new schema (AttributeError:
__provides__), while a schema built before keeps working.
"""

import pytest
import xmlschema

from agent.paths import schemas_dir

_REQUEST_SCHEMA = xmlschema.XMLSchema10(str(schemas_dir() / "combined-v3.xsd"))


@pytest.fixture(scope="session")
def xmlschema_request():
    """The xmlschema view of combined-v3.xsd (diagnostics and readable paths)."""
    return _REQUEST_SCHEMA
