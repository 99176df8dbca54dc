"""Code executors: run model-written code blocks locally or in a Docker container."""
