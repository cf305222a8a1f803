"""Load and fault harnesses that run against real agent processes (project issue 8)."""
