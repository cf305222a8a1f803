"""Fuzzers for the agent's stream negotiation and request codec (project issue 8, item 1).

``mutate`` builds hostile inputs (grammar-aware mutations of ``samples/requests``, byte
mutations, encodings, entity tricks, nesting, pipelining); ``live`` drives them against a
running agent over real TLS sessions; ``campaign`` is the command-line campaign with figures.
"""
