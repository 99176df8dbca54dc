"""The tool agent, which runs a model's function calls, and the loop that calls it."""
