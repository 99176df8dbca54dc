"""Functions that executors make importable to the code they run, with what they need.

A function is written into a module in the executor's work directory (``functions.py`` by
default), preceded by the imports its :func:`with_requirements` declares; its packages are
installed with pip before the first code block runs.
"""

from __future__ import annotations

import ast
import functools
import inspect
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Generic, ParamSpec, TypeVar

T = TypeVar("T")
P = ParamSpec("P")


@dataclass(frozen=True)
class Alias:
    """``import name as alias``, or ``name as alias`` inside :class:`ImportFromModule`."""

    name: str
    alias: str


@dataclass(frozen=True, init=False)
class ImportFromModule:
    """``from module import a, b as c``."""

    module: str
    imports: tuple[str | Alias, ...]

    def __init__(self, module: str, imports: Sequence[str | Alias]) -> None:
        # Frozen with a tuple, so that imports can be deduplicated; lists are accepted as in
        # autogen-core.
        object.__setattr__(self, "module", module)
        object.__setattr__(self, "imports", tuple(imports))


Import = str | ImportFromModule | Alias


def import_to_str(im: Import) -> str:
    """The import statement ``im`` stands for."""
    if isinstance(im, str):
        return f"import {im}"
    if isinstance(im, Alias):
        return f"import {im.name} as {im.alias}"
    names = ", ".join(i if isinstance(i, str) else f"{i.name} as {i.alias}" for i in im.imports)
    return f"from {im.module} import {names}"


@dataclass
class FunctionWithRequirements(Generic[T, P]):
    """A function, the pip packages it needs and the imports its module must make."""

    func: Callable[P, T]
    python_packages: Sequence[str] = field(default_factory=list)
    global_imports: Sequence[Import] = field(default_factory=list)

    @classmethod
    def from_callable(
        cls,
        func: Callable[P, T],
        python_packages: Sequence[str] = (),
        global_imports: Sequence[Import] = (),
    ) -> FunctionWithRequirements[T, P]:
        return cls(func=func, python_packages=python_packages, global_imports=global_imports)

    @staticmethod
    def from_str(
        func: str, python_packages: Sequence[str] = (), global_imports: Sequence[Import] = ()
    ) -> FunctionWithRequirementsStr:
        return FunctionWithRequirementsStr(func, python_packages, global_imports)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> T:
        return self.func(*args, **kwargs)


class FunctionWithRequirementsStr:
    """A function given as source text: exactly one ``def`` (compiled here to check it and to
    read its signature; the text is the application's, never a message's)."""

    def __init__(
        self,
        func: str,
        python_packages: Sequence[str] = (),
        global_imports: Sequence[Import] = (),
    ) -> None:
        self.func = func
        self.python_packages = python_packages
        self.global_imports = global_imports
        module = ModuleType("func_module")
        try:
            exec(compile(func, "<function source>", "exec"), module.__dict__)
        except Exception as e:
            raise ValueError(f"Could not compile function: {e}") from e
        functions = inspect.getmembers(module, inspect.isfunction)
        if len(functions) != 1:
            raise ValueError("The string must contain exactly one function")
        self._func_name, self.compiled_func = functions[0]

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError(
            "String based function with requirement objects are not directly callable"
        )


def with_requirements(
    python_packages: Sequence[str] = (), global_imports: Sequence[Import] = ()
) -> Callable[[Callable[P, T]], FunctionWithRequirements[T, P]]:
    """Declare the pip packages and imports a function needs.

    Example::

        @with_requirements(python_packages=["pandas"], global_imports=["pandas"])
        def load_data() -> pandas.DataFrame:
            return pandas.DataFrame({"name": ["John"], "age": [30]})
    """

    def wrapper(func: Callable[P, T]) -> FunctionWithRequirements[T, P]:
        with_reqs = FunctionWithRequirements(
            func=func, python_packages=python_packages, global_imports=global_imports
        )
        functools.update_wrapper(with_reqs, func)
        return with_reqs

    return wrapper


AnyFunction = FunctionWithRequirements[Any, Any] | Callable[..., Any] | FunctionWithRequirementsStr


def to_code(func: AnyFunction) -> str:
    """The source of ``func`` without its decorators, dedented."""
    if isinstance(func, FunctionWithRequirementsStr):
        return func.func
    target = func.func if isinstance(func, FunctionWithRequirements) else func
    source = textwrap.dedent(inspect.getsource(target))
    definition = ast.parse(source).body[0]
    if not isinstance(definition, ast.FunctionDef | ast.AsyncFunctionDef):
        raise ValueError(f"{target!r} is not defined by a def statement")
    # Decorators (with_requirements among them) come before the def line and are dropped.
    lines = source.splitlines(keepends=True)
    return "".join(lines[definition.lineno - 1 :])


def build_python_functions_file(funcs: Sequence[AnyFunction]) -> str:
    """The module that makes ``funcs`` importable: every declared import once, then each
    function's source."""
    imports: dict[Import, None] = {}
    for func in funcs:
        if isinstance(func, FunctionWithRequirements | FunctionWithRequirementsStr):
            imports.update(dict.fromkeys(func.global_imports))
    content = "\n".join(import_to_str(im) for im in imports) + "\n\n"
    for func in funcs:
        content += to_code(func) + "\n\n"
    return content


def required_packages(funcs: Sequence[AnyFunction]) -> list[str]:
    """The pip packages ``funcs`` declare, each once, in order."""
    packages: dict[str, None] = {}
    for func in funcs:
        if isinstance(func, FunctionWithRequirements | FunctionWithRequirementsStr):
            packages.update(dict.fromkeys(func.python_packages))
    return list(packages)


def to_stub(func: Callable[..., Any] | FunctionWithRequirementsStr) -> str:
    """``def name(signature):`` with the docstring and ``...``, to show a model."""
    if isinstance(func, FunctionWithRequirementsStr):
        return to_stub(func.compiled_func)
    target = func.func if isinstance(func, FunctionWithRequirements) else func
    content = f"def {target.__name__}{inspect.signature(target)}:\n"
    if target.__doc__:
        docstring = '"""' + textwrap.dedent(target.__doc__) + '"""'
        content += textwrap.indent(docstring, "    ") + "\n"
    return content + "    ..."
