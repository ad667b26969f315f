"""What is checked of custom code before a custodian is asked to read it: that it would run at all.

A function's source must parse and define, at its top level, the function the request names, taking
the three arguments it is called with (`fn(dal, datasets, params)`). A package's every `.py` file must
parse, and its entrypoint's module must define the entrypoint's function the same way. Nothing is
executed: this reads the syntax tree only (a name bound by an assignment or an import is taken on
trust, as the reviewer will read it). Each refusal is a ContentRefused (the API's 422: the request
is as its description allows, but the code it carries could not run) naming the file, the line and
what is wrong.
"""

from __future__ import annotations

import ast

from custos.computations.custom.code_package import CodePackage, module_files
from custos.core.errors import ContentRefused

CALL_ARGUMENTS = ("dal", "datasets", "params")


def parse_source(source: str, where: str) -> ast.Module:
    """The syntax tree of `source`; ContentRefused with the line and the parser's message if it has none."""
    try:
        return ast.parse(source, filename=where)
    except SyntaxError as exc:
        at = f"line {exc.lineno}" + (f", column {exc.offset}" if exc.offset else "")
        raise ContentRefused(f"{where} does not parse: {exc.msg} ({at})") from None
    except ValueError as exc:  # a NUL byte in the source
        raise ContentRefused(f"{where} does not parse: {exc}") from None


def _accepts_call(node: ast.FunctionDef) -> bool:
    args = node.args
    positional = len(args.posonlyargs) + len(args.args)
    if args.vararg is None and positional < len(CALL_ARGUMENTS):
        return False
    # Parameters after the three it is given must have defaults; keyword-only ones too.
    required = positional - len(args.defaults)
    required_kw = sum(1 for d in args.kw_defaults if d is None)
    return required <= len(CALL_ARGUMENTS) and required_kw == 0


def _bound_names(tree: ast.Module) -> set[str]:
    """Names an assignment or import binds at the top level."""
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign | ast.AugAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


def check_defines(tree: ast.Module, function: str, where: str) -> None:
    """ContentRefused unless `tree` defines `function` at its top level, callable as fn(dal, datasets,
    params)."""
    defined = [n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)]
    last = next((n for n in reversed(defined) if n.name == function), None)
    if isinstance(last, ast.AsyncFunctionDef):
        raise ContentRefused(
            f"{where}: {function} is async (line {last.lineno}); Custos calls a plain function"
        )
    if isinstance(last, ast.FunctionDef) and not _accepts_call(last):
        raise ContentRefused(
            f"{where}: {function} (line {last.lineno}) cannot be called as "
            f"{function}({', '.join(CALL_ARGUMENTS)}): it must take exactly those three arguments"
        )
    if last is not None or function in _bound_names(tree):
        return
    functions = sorted({n.name for n in defined if isinstance(n, ast.FunctionDef)})
    raise ContentRefused(
        f"{where} defines no function named {function} at its top level"
        + (f"; it defines: {', '.join(functions)}" if functions else "")
    )


def check_source(source: str, function: str) -> None:
    """Refuse a function's source that does not parse or does not define `function`."""
    check_defines(parse_source(source, "the code"), function, "the code")


def check_package_code(package: CodePackage) -> None:
    """Refuse a package a `.py` file of which does not parse, or whose entrypoint's module does not
    define its function."""
    sources = package.python_sources()
    trees = {path: parse_source(text, path) for path, text in sorted(sources.items())}
    module, function = package.entrypoint.split(":")
    path = next(p for p in module_files(package.entrypoint) if p in trees)
    check_defines(trees[path], function, f"{path} (the entrypoint's module {module})")
