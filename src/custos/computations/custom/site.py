"""Running a custom function at a site, inside the sandbox: a function's source executed as a fresh
module, or a code package's entrypoint imported from its archive in memory
(`custos.computations.custom.importer`), and what it returns encoded as the output its request
declares (`custos.computations.custom.wire`).

A custom function (or the entrypoint of a custom code package) has the signature

    def fn(dal: DalReader, datasets: list[str], params: dict) -> pandas.DataFrame | dict | bytes

and reads rows only with `dal.read(dataset, columns, filters)`.
"""

from __future__ import annotations

import linecache
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from custos.computations.base import DalReader, Json
from custos.computations.custom.wire import encode_output
from custos.core.errors import InvalidInput

if TYPE_CHECKING:
    from custos.core.wire import CodeSource

CustomFunction = Callable[[DalReader, list[str], dict[str, Any]], Any]


def load_function(source: str, function: str, *, origin: str = "custom") -> CustomFunction:
    """Execute `source` as a fresh module and return its `function`. Tracebacks show its lines."""
    filename = f"<{origin}:{function}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace: dict[str, Any] = {"__name__": f"custos_custom_{function}"}
    exec(compile(source, filename, "exec"), namespace)  # noqa: S102 - reviewed code, in the sandbox
    fn = namespace.get(function)
    if not callable(fn):
        raise InvalidInput(f"the code defines no function named {function}")
    return fn  # type: ignore[no-any-return]


def run_function(
    source: str,
    function: str,
    dal: DalReader,
    datasets: list[str],
    params: Mapping[str, Any],
    output: str | None = None,
) -> Json:
    """Run `function` of `source` and encode what it returns as the `output` declared (see
    `encode_output`)."""
    fn = load_function(source, function)
    return encode_output(fn(dal, list(datasets), dict(params)), output)


def run_code(
    code: CodeSource,
    function: str,
    dal: DalReader,
    datasets: list[str],
    params: Mapping[str, Any],
    output: str | None = None,
) -> Json:
    """Run a function's source, or a package's entrypoint imported from its archive in memory
    (`custos.computations.custom.importer`), and encode what it returns."""
    if code.package_b64 is None:
        return run_function(code.source, function, dal, datasets, params, output)
    from custos.computations.custom.importer import package_function

    with package_function(code.archive(), function) as fn:
        return encode_output(fn(dal, list(datasets), dict(params)), output)
