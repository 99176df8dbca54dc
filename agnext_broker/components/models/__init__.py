"""Model client interface and LLM message types; public as :mod:`agnext_broker.models`."""
