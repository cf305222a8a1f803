"""ldmx: an agent that speaks the Logical Domains Manager XML interface and migrates domains."""

__version__ = "0.1.0"
