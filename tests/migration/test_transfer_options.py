"""The data plane's per-run options from the agent defaults and the tuning operands
(M50, §5.3, Appendix B: migration_compression, migration_max_bandwidth,
migration_parallel_streams)."""

from agent.migration.sourcerun import stream_count, transfer_options


def test_agent_defaults_apply_when_no_operand_is_given():
    data = {"tuning": {}, "data-defaults": {"streams": 4, "compression": "zlib",
                                            "max-bandwidth": 1 << 20}}
    options = transfer_options(data)
    assert options.compression == "zlib"
    assert options.precopy.max_bandwidth == 1 << 20
    assert stream_count(data) == 4


def test_operands_override_the_defaults_for_this_run_only():
    defaults = {"streams": 2, "compression": "zlib", "max-bandwidth": 0}
    data = {"tuning": {"compression": "none", "max-bandwidth": "4096"},
            "data-defaults": defaults}
    options = transfer_options(data)
    assert (options.compression, options.precopy.max_bandwidth) == ("none", 4096)
    assert transfer_options({"tuning": {}, "data-defaults": defaults}).compression == "zlib"


def test_a_record_without_defaults_uses_one_uncompressed_uncapped_stream():
    options = transfer_options({"tuning": {}})
    assert (options.compression, options.precopy.max_bandwidth) == ("none", 0)
    assert stream_count({}) == 1
