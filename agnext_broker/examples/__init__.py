"""Example applications; each module has a ``register(runtime)`` function that sets it up."""
