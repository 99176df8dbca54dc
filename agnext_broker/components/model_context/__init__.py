"""Chat completion contexts; public as :mod:`agnext_broker.model_context`."""
