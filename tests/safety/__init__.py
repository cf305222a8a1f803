"""Safety tests: fuzzing, the authorization matrix, crash durability (project issue 8)."""
