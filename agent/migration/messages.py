"""Every operator-visible text of migration phase 1 and of the migrate-domain request.

Texts tagged [P] are the product's, byte for byte; [O] are ours, verbatim from
migration.md (§5.4, §5.6, §6, Appendix A). Functions take the placeholders; nothing else in
the migration room spells these sentences. Sizes and addresses arrive as ints and are written
in the CLI convention (``6G``, ``0x400000000``).
"""

from __future__ import annotations

from agent.ldm.sizes import format_size

WARNING = "Warning: "
NOTICE = "Notice: "


def addr(value: int) -> str:
    return f"0x{value:x}"


# -- summaries and intake (Appendix A) ------------------------------------------------------

def failed(ldom: str) -> str:  # [P]
    return f"Domain Migration of LDom {ldom} failed"


def would_fail(ldom: str) -> str:  # [P]
    return f"Domain Migration of LDom {ldom} would fail if attempted"


# -- the XML request (§5.6) and the operand syntax (§5.4) --------------------------------------

CERT_WITH_CREDENTIALS = "Option -c cannot be used with a user name or password"
PASSWORD_REQUIRED = "A target password is required"
# Layout errors of ldm-xml §7.1 (C165); the spec fixes the condition, not the wording.
TWO_CONTENTS = "migrate-domain takes exactly two Contents: the source domain, then the target"
SOURCE_HAS_SECTION = ("The first Content of migrate-domain names the source domain and has no "
                      "Section")
NO_TARGET_INFO = "The second Content of migrate-domain must hold one ldom_info Item"
NO_TARGET = "migrate-domain requires property target of resource ldom_info"


def bad_credential(key: str) -> str:  # never echoes the value (§4.6)
    return f"Property {key} of resource ldom_info is not valid base64 of UTF-8 text"


def duplicate_credential(key: str) -> str:
    return f"Property {key} is given more than once for resource ldom_info"


def invalid_target(spec: str) -> str:
    return f"Invalid target specification {spec}"


def invalid_operand_value(name: str, value: str) -> str:
    return f"Invalid value for {name}: {value}"


def core_twice(core: int) -> str:
    return f"Core {core} appears more than once in cidmap"


def address_twice(pa: int) -> str:
    return f"Address {addr(pa)} appears more than once in mblockmap"


# -- K01 version, firmware, guest OS (§6.15) ---------------------------------------------------

def protocol_mismatch(host: str, tver: str, sver: str) -> str:
    return (f"The Logical Domains Manager on {host} (version {tver}) is not compatible with "
            f"the version on this machine ({sver})")


def cpu_arch_unsupported(host: str, value: str) -> str:
    return f"Target machine {host} does not support cpu-arch={value}"


def firmware_no_migration(hostname: str) -> str:
    return f"The system firmware on {hostname} does not support domain migration"


def firmware_too_old(fw: str, hostname: str, minimum: str, cpu_type: str) -> str:
    return (f"System firmware version {fw} on {hostname} is older than {minimum}, "
            f"the minimum for live migration on {cpu_type}")


def firmware_pair(sfw: str, tfw: str) -> str:
    return f"Live migration between system firmware {sfw} and {tfw} is not supported"


def firmware_features(ldom: str) -> tuple[str, str]:  # [P]
    return (f"Domain {ldom} is using features of the system firmware that are not supported in",
            "the version of the firmware running on the target machine.")


def api_group(group: int, version: str) -> tuple[str, str]:  # [P]
    return (f"API group 0x{group:03x} v{version} is not supported in the version of the firmware",
            " running on the target machine.")


def os_no_live_migration(ldom: str) -> str:
    return f"Domain {ldom} is running an operating system that does not support live migration"


def efi_label(vdisk: str, ldom: str, host: str) -> str:
    return (f"Virtual disk {vdisk} of domain {ldom} has an EFI label, which the system firmware "
            f"on {host} does not support")


# -- K02 target name and identity (§6.13) ------------------------------------------------------

def name_exists(tldom: str, host: str) -> str:
    return f"Domain {tldom} already exists on target machine {host}"


def uuid_exists(uuid: str, host: str) -> str:
    return f"A domain with UUID {uuid} already exists on target machine {host}"


def target_is_self(host: str) -> str:
    return (f"Target machine {host} is this machine; a domain cannot be migrated to the machine "
            f"it is on")


def name_reserved(tldom: str) -> str:
    return f"Domain name {tldom} is reserved by an incoming migration"


# -- K03 domain state (§6.16) ------------------------------------------------------------------

def control_domain(ldom: str) -> str:
    return f"Domain {ldom} is the control domain and cannot be migrated"


def being_migrated(ldom: str) -> str:
    return f"Domain {ldom} is already being migrated"


def unresolved(ldom: str) -> str:
    return (f"Domain {ldom} has an unresolved migration; resolve it before migrating the "
            f"domain again")


def transitioning(ldom: str) -> str:
    return f"Domain {ldom} is starting or stopping and cannot be migrated now"


def memdr(ldom: str) -> str:
    return f"Domain {ldom} has a memory dynamic reconfiguration in progress"


# -- K04 delayed reconfiguration (§6.7) --------------------------------------------------------

def reconf_source(cdom: str) -> str:
    return (f"Domain migration is not possible while a delayed reconfiguration is pending on "
            f"domain {cdom}")


def reconf_target(cdom: str, host: str) -> str:
    return (f"Domain migration is not possible while a delayed reconfiguration is pending on "
            f"domain {cdom} of target machine {host}")


# -- K05 elastic policy (§6.8) -----------------------------------------------------------------

def elastic(hostname: str) -> str:
    return (f"Domain migration is not possible while the elastic power management policy is in "
            f"effect on {hostname}")


def elastic_deferred(hostname: str, ldom: str) -> str:
    return (f"{NOTICE}The power management policy change on {hostname} will take effect when "
            f"the migration of domain {ldom} ends")


# -- K06 OpenBoot / kernel debugger (§6.9) -----------------------------------------------------

def legacy_os(ldom: str) -> tuple[str, str]:  # [P], printed without "Notice: " by the CLI
    return (f"Domain {ldom} is not running an operating system that is",
            "compatible with the latest migration functionality.")


# -- K07 physical I/O, K08 endpoints (§6.3, §6.10) ---------------------------------------------

def owns_bus(ldom: str, bus: str) -> str:
    return f"Domain {ldom} owns PCIe bus {bus} and cannot be migrated"


def has_vf(ldom: str, vf: str) -> str:
    return f"Domain {ldom} has virtual function {vf} and cannot be migrated"


def io_constraints(ldom: str, host: str) -> str:
    return (f"{WARNING}Domain {ldom} has physical I/O constraints that target machine {host} "
            f"must satisfy when the domain is bound")


def has_endpoint(ldom: str, path: str) -> str:
    return f"Domain {ldom} has PCIe endpoint device {path} and cannot be migrated"


# -- K09 CPU (§6.1) ----------------------------------------------------------------------------

def native_arch(ldom: str, stype: str, ttype: str) -> str:
    return (f"Domain {ldom} has cpu-arch=native and cannot be migrated from a {stype} machine "
            f"to a {ttype} machine")


def not_in_class(ttype: str, arch: str, ldom: str) -> str:
    return f"Target CPU type {ttype} is not in the {arch} migration class of domain {ldom}"


def excluded_cpu_pair(stype: str, ttype: str) -> str:
    return f"Live migration between {stype} and {ttype} machines is not supported"


def frequency(tf: int, sf: int) -> str:
    return f"Target CPU frequency {tf} MHz differs from source CPU frequency {sf} MHz"


def perf_counters(ldom: str, counters: list[str], ttype: str) -> str:
    return (f"Domain {ldom} uses perf-counters={','.join(counters)}, which a {ttype} machine "
            f"may not support")


def no_named_cores(ldom: str) -> str:
    return f"Domain {ldom} has no named cores, so cidmap cannot be used"


def not_named_core(core: int, ldom: str) -> str:
    return f"Core {core} in cidmap is not a named core of domain {ldom}"


def named_needs_native(ldom: str) -> str:
    return (f"Domain {ldom} uses named resources and must have cpu-arch=native and the "
            f"whole-core constraint to be migrated")


def core_missing(core: int, host: str) -> str:
    return f"Core {core} does not exist on target machine {host}"


def core_busy(core: int, host: str) -> str:
    return f"Core {core} is not free on target machine {host}"


def whole_cores(host: str, free: int, ldom: str, need: int) -> str:
    return f"Target machine {host} has {free} free whole cores; domain {ldom} needs {need}"


def vcpus(host: str, free: int, ldom: str, need: int) -> str:
    return f"Target machine {host} has {free} free virtual CPUs; domain {ldom} needs {need}"


def arch_unbindable(ldom: str, arch: str, ttype: str) -> str:
    return f"Domain {ldom} with cpu-arch={arch} cannot be bound on a {ttype} machine"


# -- K10 memory (§6.2) -------------------------------------------------------------------------

def free_memory(host: str, free: int, ldom: str, size: int) -> str:
    return (f"Target machine {host} has {format_size(free)} of free memory; domain {ldom} "
            f"needs {format_size(size)}")


def congruency(pa: int, ra: int, size: int) -> str:  # [P]
    return (f"Free memory layout and congruency requirements prevent binding the memory block "
            f"with PA {addr(pa)}, RA {addr(ra)}, and size {format_size(size)}")


def unable_to_bind(size: int, ra: int) -> str:  # [P]
    return f"Unable to bind {format_size(size)} memory region at real address {addr(ra)}"


def no_named_blocks(ldom: str) -> str:
    return f"Domain {ldom} has no named memory blocks, so mblockmap cannot be used"


def not_named_block(pa: int, ldom: str) -> str:
    return (f"Address {addr(pa)} in mblockmap is not the start of a named memory block of "
            f"domain {ldom}")


def range_not_free(pa: int, host: str) -> str:
    return f"Memory range at {addr(pa)} named in mblockmap is not free on target machine {host}"


def ranges_overlap(pa: int) -> str:
    return f"Target ranges in mblockmap overlap at {addr(pa)}"


# -- K11 crypto units (§6.6) -------------------------------------------------------------------

def crypto_no_dr(ldom: str) -> str:
    return (f"Domain {ldom} has cryptographic units but its operating system cannot reconfigure "
            f"them dynamically")


def crypto_shortage(host: str, n: int, m: int, ldom: str) -> str:
    return (f"{WARNING}Target machine {host} can provide {n} of the {m} cryptographic units "
            f"of domain {ldom}")


# -- K12 virtual I/O (§6.4) --------------------------------------------------------------------

def volume_missing(vol: str, vds: str, vdisk: str, host: str) -> str:
    return (f"Volume {vol}@{vds} used by virtual disk {vdisk} does not exist on target "
            f"machine {host}")


def service_inactive(svc: str, host: str, sdom: str) -> str:
    return f"Service {svc} on target machine {host} belongs to domain {sdom}, which is not active"


def volume_options(vol: str, vds: str, topts: str, host: str, sopts: str) -> str:
    return (f"Volume {vol}@{vds} has options {topts} on target machine {host} but {sopts} on "
            f"this machine")


def volume_mpgroup(vol: str, vds: str, host: str, group: str) -> str:
    return f"Volume {vol}@{vds} on target machine {host} is not in mpgroup {group}"


def volume_storage(vol: str, vds: str, host: str) -> str:
    return (f"{WARNING}Volume {vol}@{vds} on target machine {host} may not refer to the same "
            f"storage as on this machine")


def switch_missing(vsw: str, vnet: str, host: str) -> str:
    return (f"Virtual switch {vsw} used by virtual network device {vnet} does not exist on "
            f"target machine {host}")


def vcc_missing(vcc: str, host: str) -> str:
    return f"Virtual console concentrator {vcc} does not exist on target machine {host}"


def no_free_console(host: str) -> str:
    return f"No virtual console concentrator with a free port exists on target machine {host}"


def console_port(p: int, host: str, tldom: str, q: int) -> str:
    return (f"{WARNING}Console port {p} is not free on target machine {host}; domain {tldom} "
            f"will use port {q}")


def provides_service(ldom: str, svc: str) -> str:
    return f"Domain {ldom} provides service {svc} to other domains and cannot be migrated"


# -- K13 NIU hybrid I/O (§6.5) -----------------------------------------------------------------

def hybrid(vnet: str, host: str) -> str:
    return (f"{WARNING}NIU hybrid mode of virtual network device {vnet} cannot be provided on "
            f"target machine {host}; the constraint is kept but not met")


# -- K14 MAC and host ID (§6.14) ---------------------------------------------------------------

def mac_of_domain(ldom: str) -> str:
    return f"domain {ldom}"


def mac_of_vnet(vnet: str, ldom: str) -> str:
    return f"virtual network device {vnet} of domain {ldom}"


def mac_user_service(vsw: str) -> str:
    return f"service {vsw}"


def mac_used(mac: str, what: str, other: str, host: str) -> str:
    return f"MAC address {mac} of {what} is already used by domain {other} on target machine {host}"


def hostid_used(hostid: str, ldom: str, other: str, host: str) -> str:
    return (f"Host ID 0x{hostid} of domain {ldom} is already used by domain {other} on target "
            f"machine {host}")


# Configuration and concurrency (§2.13, §4.3) ------------------------------------------------
def concurrency_limit(limit: int, hostname: str) -> str:
    return f"The limit of {limit} concurrent domain migrations on {hostname} has been reached"


def incoming_disabled(host: str) -> str:
    return f"Incoming domain migrations are disabled on {host}"


OUTGOING_DISABLED = "Outgoing domain migrations are disabled on this machine"


# -- the data plane's failures (Appendix A, §9.5 F12, F15, F16, F22) --------------------------

def data_lost(host: str) -> str:
    return f"Lost the data connection to target machine {host}"


def guest_stopped(ldom: str) -> str:
    return f"Domain {ldom} stopped or was reset during the migration"


def suspend_failed(ldom: str) -> str:
    return f"Domain {ldom} could not be suspended"


# The reason a target gives (ERROR frame) when the §10.7 digests differ; the source knows
# the failure by it and shows ``verification_failed``.
DIGEST_MISMATCH = "memory digest mismatch"


def digest_mismatch(source: str, target: str, vcpu_source: str, vcpu_target: str) -> str:
    return (f"{DIGEST_MISMATCH}: memory {target} on the target, {source} on the source; "
            f"vCPU state {vcpu_target} on the target, {vcpu_source} on the source")


def transfer_failure(error: str, ldom: str, host: str, guest_running: bool,
                     tldom: str = "", target_name: str = "") -> str:
    """The operator's line for a failed transfer: a guest that stopped, a suspend that failed,
    a migration that did not converge and a failed memory verification say so; anything
    else lost the data connection. The verification line names the target machine as it
    names itself (``target_name``, from its ``mig-hello`` answer), like the target's own
    lines do."""
    if DIGEST_MISMATCH in error:
        return verification_failed(tldom or ldom, target_name or host)
    if not guest_running:
        return guest_stopped(ldom)
    if error in (suspend_failed(ldom),) or error.startswith(f"Migration of domain {ldom} did "
                                                            f"not converge: "):
        return error
    return data_lost(host)


# -- the control channel (§2.3, §9.1) ----------------------------------------------------------

def connect_failed(host: str) -> str:
    return (f"Failed to establish a connection with the Logical Domains Manager on target "
            f"machine {host}")


def auth_failed(host: str) -> str:
    return f"Authentication to the Logical Domains Manager on {host} failed"


def lost(host: str) -> str:
    return f"Lost connection to the Logical Domains Manager on target machine {host}"


# -- certificates (§4.1, §4.4) -----------------------------------------------------------------

def certificate_unverified(host: str) -> str:
    return f"The certificate of {host} could not be verified"


def certificate_not_trusted_by(host: str) -> str:
    return f"The certificate of this machine is not trusted by {host}"


def certificate_changed(host: str) -> str:
    return f"The certificate of {host} has changed since the last migration to it"


NO_OWN_CERTIFICATE = ("Certificate mode (-c) needs this machine's certificate, and the agent "
                      "was started without one")


LOCAL_LOST = "Lost connection to the Logical Domains Manager on this machine"


def target_user_unauthorized(user: str, host: str) -> str:
    return f"User {user} is not authorized to migrate domains to {host}"


def resume_failed(tldom: str, host: str) -> str:
    return f"Domain {tldom} could not be resumed on target machine {host}"


def verification_failed(tldom: str, host: str) -> str:
    return f"Memory verification of domain {tldom} failed on target machine {host}"


def not_created(tldom: str, error: object) -> str:
    return f"Domain {tldom} could not be created on the target machine: {error}"


def unexpected_message(message: str) -> str:
    return f"Unexpected control message {message}"


def already_prepared(mid: str) -> str:
    return f"Migration {mid} is already prepared"


# -- cancel (§8.1, §8.4) -----------------------------------------------------------------------

def cancel_on_target(tldom: str) -> str:
    return f"The migration of domain {tldom} can be cancelled only on the source machine"


def no_migration(ldom: str) -> str:
    return f"No migration is in progress for domain {ldom}"


def cancelled(ldom: str) -> str:
    return f"Migration of domain {ldom} was cancelled"


def past_pnr(ldom: str) -> str:
    return (f"The migration of domain {ldom} has passed the point of no return and can no "
            f"longer be cancelled")


FORCE_ONLY_UNRESOLVED = "Option -f is valid only for a migration with an unresolved outcome"


def cancel_found_completed(ldom: str, host: str) -> str:
    return (f"The migration of domain {ldom} completed on target machine {host}; the copy on "
            f"this machine has been removed")


def cancel_found_aborted(ldom: str, host: str) -> str:
    return (f"The migration of domain {ldom} did not complete on target machine {host}; "
            f"domain {ldom} has been restored on this machine")


def forced_restore(ldom: str, host: str) -> str:
    return f"Warning: Domain {ldom} was restored without confirmation from target machine {host}"


def cancel_unreachable(ldom: str, tldom: str, host: str) -> list[str]:
    return [f"Target machine {host} cannot be reached, so the outcome of the migration of "
            f"domain {ldom} is unknown",
            f"Use cancel-operation -f only after checking that domain {tldom} is not running "
            f"on {host}"]


# -- the ambiguous window (§9.3) ---------------------------------------------------------------

def restored(ldom: str) -> str:
    return f"The migration did not complete; domain {ldom} has been restored on this machine"


def lost_contact(host: str) -> str:
    return f"Lost contact with target machine {host}"


def unresolved_lines(ldom: str, host: str) -> list[str]:
    return [f"Lost contact with target machine {host} after handing over domain {ldom}",
            f"The outcome is not known yet; it will be settled automatically when {host} can "
            f"be reached"]


# -- split brain (§9.4) -----------------------------------------------------------------------

def split_brain(ldom: str, host: str, tldom: str) -> str:
    return (f"Domain {ldom} was restored on this machine by a forced cancel, but target machine "
            f"{host} reports that domain {tldom} also resumed there")


def split_brain_target(tldom: str, peer: str, ldom: str) -> str:
    # Ours, the target's view of the same fact (§9.4: both agents log it at critical).
    return (f"Domain {tldom} resumed on this machine, but source machine {peer} restored "
            f"domain {ldom} by a forced cancel")
