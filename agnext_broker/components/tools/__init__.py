"""Tools a model can call: the Tool interface, FunctionTool, and workbenches."""
