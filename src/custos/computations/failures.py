"""What a failure on real data tells the researcher: failure text is output.

An exception's message is whatever the failing code put in it, rows included (digits spelled as
words pass any filter of digits), and the same approved code can be run again and again. So a
message never leaves a site on its own; what leaves is

- a fixed category: `limit hit`, `policy refusal`, `data error` or `code error`;
- the exception's class, when it is a built-in, pyarrow or Custos exception or a class the submitted
  code defines (a class named at run time could spell data: it becomes `Exception`);
- for code the researcher submitted (custom code, a package): where it failed in that code, as file,
  line number and the line's text taken from the code the gateway holds, never from the sandbox
  (which the code controls); the deepest frame in the submitted code names the line;
- for a broken limit, the sandbox's sentence naming the limit (the gateway's words and settings).

The message and traceback stay in the gateway's log (`custos.gateway.code_logs`) until a custodian
releases them (`custos gateway log release`). A built-in model's own Custos errors are its sentences,
which quote no data, and leave whole; any other error of a built-in model (numpy, pyarrow, DuckDB:
their messages quote values) leaves as the categories above. On mock data everything is shown: the
SDK's `run_on_mock` raises the error itself.
"""

from __future__ import annotations

import ast
import builtins
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from custos.core import errors

if TYPE_CHECKING:
    from custos.core.wire import CodeSource

MAX_LINE_CHARS = 200
MAX_BUILTIN_MESSAGE_CHARS = 2000
KEPT = "(the message is in the gateway's log; a custodian may release it)"


class Category(StrEnum):
    LIMIT = "limit hit"
    POLICY = "policy refusal"
    DATA = "data error"
    CODE = "code error"


def _subclass_names(base: type[BaseException]) -> set[str]:
    names = {base.__name__}
    for sub in base.__subclasses__():
        names |= _subclass_names(sub)
    return names


_CUSTOS = _subclass_names(errors.CustosError)
_BUILTIN = {
    name
    for name, value in vars(builtins).items()
    if isinstance(value, type) and issubclass(value, BaseException)
}
_ARROW = {
    "ArrowException", "ArrowInvalid", "ArrowTypeError", "ArrowKeyError", "ArrowIndexError",
    "ArrowNotImplementedError", "ArrowCapacityError", "ArrowMemoryError", "ArrowSerializationError",
}  # fmt: skip
_CATEGORIES: dict[str, Category] = {
    "LimitExceeded": Category.LIMIT,
    "MemoryError": Category.LIMIT,
    "PermissionDenied": Category.POLICY,
    "PolicyDenied": Category.POLICY,
    "AuthenticationFailed": Category.POLICY,
    "InvalidInput": Category.DATA,  # the DAL's refusal of a read (a filter's value, a column's type)
    "CustosError": Category.DATA,  # the DAL failed to read
} | dict.fromkeys(_ARROW, Category.DATA)


def category_of(kind: str) -> Category:
    return _CATEGORIES.get(kind, Category.CODE)


@dataclass(frozen=True)
class CodeLine:
    """A line of the submitted code: its file as the traceback names it, its number and its text."""

    file: str
    line: int
    text: str


@dataclass(frozen=True)
class FailureReport:
    """What the researcher sees of one failure on real data."""

    category: Category
    kind: str
    where: CodeLine | None = None
    detail: str | None = None  # the gateway's own sentence, fixed or naming a limit
    kept: bool = True  # whether the message is in the gateway's log, and not said here

    def text(self) -> str:
        """`category: Class at FILE line N: TEXT (…)`, e.g. `code error: ValueError at
        <custom:leak> line 4: raise ValueError(words) (the message is in the gateway's log; …)`."""
        head = f"{self.category.value}: {self.kind}"
        if self.where is not None:
            head += f" at {self.where.file} line {self.where.line}: {self.where.text}"
        if self.detail is not None:
            head += f": {self.detail}"
        return f"{head} {KEPT}" if self.kept else head


def submitted_sources(code: CodeSource, function: str) -> dict[str, str]:
    """The files of submitted code by the name its tracebacks give them: `<custom:FUNCTION>` for a
    function's source, `<package>/PATH` for each module of a package."""
    if code.package_b64 is None:
        return {f"<custom:{function}>": code.source}
    return package_sources(code.archive())


def package_sources(archive: bytes) -> dict[str, str]:
    """The Python modules of a verified package archive, as `<package>/PATH` (see `importer`)."""
    from custos.computations.custom.code_package import verify_code_package
    from custos.computations.custom.importer import ORIGIN

    package = verify_code_package(archive)
    return {
        f"{ORIGIN}/{f.path}": f.data.decode("utf-8", errors="replace")
        for f in package.files
        if f.path.endswith(".py")
    }


def _defined_classes(sources: Mapping[str, str]) -> set[str]:
    names: set[str] = set()
    for source in sources.values():
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError):
            continue
        names |= {node.name for node in ast.walk(tree) if isinstance(node, ast.ClassDef)}
    return names


def _kind(reply: Mapping[str, Any], defined: AbstractSet[str] = frozenset()) -> str:
    kind = reply.get("type")
    known = _BUILTIN | _CUSTOS | _ARROW | defined
    return kind if isinstance(kind, str) and kind in known else "Exception"


def _code_line(reply: Mapping[str, Any], sources: Mapping[str, str]) -> CodeLine | None:
    """The line the sandbox names, checked against the code the gateway holds; None when it names
    no line of it."""
    where = reply.get("where")
    if not isinstance(where, Mapping):
        return None
    file, number = where.get("file"), where.get("line")
    if not isinstance(file, str) or type(number) is not int or file not in sources:
        return None
    lines = sources[file].splitlines()
    if not 1 <= number <= len(lines):
        return None
    text = " ".join(lines[number - 1].split())
    if len(text) > MAX_LINE_CHARS:
        text = text[:MAX_LINE_CHARS] + "…"
    return CodeLine(file, number, text)


def describe_code_failure(reply: Mapping[str, Any], sources: Mapping[str, str]) -> FailureReport:
    """The report of submitted code's failure, from the sandbox's `reply` (which the code may have
    forged: only its class, checked, and its line, checked against `sources`, are used)."""
    kind = _kind(reply, _defined_classes(sources))
    return FailureReport(category_of(kind), kind, _code_line(reply, sources))


def describe_sandbox_failure(exc: errors.SandboxError) -> FailureReport:
    """A sandbox that ended: a broken limit is named (the gateway's sentence); anything else, which
    may quote what the code printed last, is a code error whose text stays in the log."""
    if isinstance(exc, errors.LimitExceeded):
        return FailureReport(Category.LIMIT, "LimitExceeded", detail=exc.message, kept=False)
    return FailureReport(Category.CODE, "SandboxError")


def describe_output_refusal() -> FailureReport:
    """An output the gateway refused: why (a count of rows, a column's name) depends on the output,
    which the code chose, so the reason stays in the log."""
    return FailureReport(Category.POLICY, "PolicyDenied", detail="the output is refused")


def describe_builtin_failure(reply: Mapping[str, Any]) -> tuple[str, bool]:
    """What the researcher sees of a built-in model's failure, and whether its message stayed at
    the gateway. A Custos error is the model's own sentence and leaves whole."""
    kind = _kind(reply)
    if kind in _CUSTOS:
        return f"{kind}: {reply.get('message', '')}"[:MAX_BUILTIN_MESSAGE_CHARS], False
    return FailureReport(category_of(kind), kind).text(), True
