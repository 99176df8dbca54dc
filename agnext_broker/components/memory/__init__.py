"""Memory for agents; public as :mod:`agnext_broker.memory`."""
