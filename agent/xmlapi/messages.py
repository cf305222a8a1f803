"""Every operator-visible message text of the XML interface, in one place (spec ldm-xml §3.6).

Fixed texts are compared by tests and by clients; the others follow the recommended wording.
Functions take the variable parts; nothing else in the agent spells these sentences.
"""

from __future__ import annotations

SUPPORTED_VERSIONS = ("1.0", "1.1", "1.2", "1.3", "1.4", "1.5", "1.6", "1.7")
_VERSION_LIST = ", ".join(SUPPORTED_VERSIONS)

WARNING_PREFIX = "Warning: "
NOTICE_PREFIX = "Notice: "


# -- fixed texts ---------------------------------------------------------------------------

def xml_parse_error(description: str) -> str:
    return f"XML parse error: {description}"


def unsupported_version(version: str) -> str:
    return f'Unsupported LDM_interface version "{version}"; supported versions are {_VERSION_LIST}'


MISSING_VERSION = f"Missing LDM_interface version; supported versions are {_VERSION_LIST}"


def not_supported_on_platform(action: str) -> str:
    return f"{action}: not supported on this platform"


def not_authorized(action: str, authorization: str) -> str:
    return f"Not authorized to perform {action} (requires the {authorization} authorization)"


def warning(text: str) -> str:
    return WARNING_PREFIX + text


def notice(text: str) -> str:
    return NOTICE_PREFIX + text


# -- recommended texts ---------------------------------------------------------------------

def unexpected_element(name: str) -> str:
    return f"Unexpected element {name}; expected LDM_interface"


NO_CMD = "LDM_interface contains no cmd"


def invalid_request(path: str, reason: str) -> str:
    return f"Invalid request at {path}: {reason}"


def unknown_action(name: str) -> str:
    return f'Unknown action "{name}"'


NO_ACTION = "cmd has no action"
REPEATED_ACTION = "cmd has more than one action"


def invalid_option(token: str, action: str) -> str:
    return f'Invalid option "{token}" for {action}'


def invalid_argument(token: str, action: str) -> str:
    return f'Invalid argument "{token}" for {action}'


def unsupported_data_version(version: str) -> str:
    return f'Unsupported data version "{version}"; expected 3.0'


def unknown_domain(name: str) -> str:
    return f"Domain {name} does not exist"


def domain_required(action: str) -> str:
    return f"{action} requires a domain"


def wrong_resource(rtype: str, action: str) -> str:
    return f"Resource type {rtype} is not valid for {action}"


def unknown_property(key: str, rtype: str) -> str:
    return f"Unknown property {key} for resource {rtype}"


def invalid_value(value: str, key: str) -> str:
    return f'Invalid value "{value}" for {key}'


def wrong_state(name: str, state: str, action: str, required: str) -> str:
    return f"Domain {name} is {state}; {action} requires it to be {required}"


def not_available_yet(action: str) -> str:
    """Placeholder failure for table actions whose handler has not been written yet."""
    return f"{action}: this action is not available yet in this version of ldmx"


def operation_word_required(action: str, words: tuple[str, ...]) -> str:
    return f"{action} requires exactly one of {', '.join(words)}"


def combined_flags(token: str, action: str) -> str:
    return f'Invalid option "{token}" for {action}: give each flag separately'


def flag_argument_missing(flag: str, action: str) -> str:
    return f'Invalid option "{flag}" for {action}: it needs an argument'


# -- Item-level request rules (§2.6) --------------------------------------------------------

def unknown_resource(rtype: str) -> str:
    return f"Unknown resource type {rtype}"


def duplicate_property(key: str, rtype: str) -> str:
    return f"Property {key} is given more than once for resource {rtype}"


def property_not_for_action(key: str, rtype: str, action: str) -> str:
    return f"Property {key} of resource {rtype} is not valid for {action}"


NO_RESOURCE_TYPE = "Item has no rasd:OtherResourceType"
REPEATED_RESOURCE_TYPE = "Item has more than one rasd:OtherResourceType"


# -- action handlers (§3.7, §5) -------------------------------------------------------------

def unknown_spconfig(name: str) -> str:
    return f"SP configuration {name} does not exist"


def resource_required(rtype: str, action: str) -> str:
    return f"{action} requires a {rtype} Item"


def property_required(key: str, rtype: str, action: str) -> str:
    return f"{action} requires property {key} of resource {rtype}"


def all_with_names(action: str) -> str:
    return f"{action}: -a cannot be combined with named domains"


def no_migration_in_progress(name: str) -> str:
    return f"No migration is in progress for domain {name}"


def not_owned_by(what: str, name: str, domain: str) -> str:
    return f"{what} {name} does not belong to domain {domain}"


def one_domain_per_data(action: str) -> str:
    return f"{action} takes exactly one domain (Content) per data"
