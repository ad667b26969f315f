"""The Client's calls on custom code: prototype a function or a package on a dataset's mock table
(`run_on_mock`), submit it for review, review it, and run it once approved. What runs is a function's
exact source or a package folder's deterministic archive."""

from __future__ import annotations

import base64
import inspect
import os
import re
import textwrap
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, get_args

from custos.computations.custom.code_package import build_code_package, verify_code_package
from custos.core.errors import InvalidInput
from custos.core.refs import parse_dataset_ref
from custos.core.wire import (
    CodeOutput,
    CodeRequestCreate,
    CodeRequestDetail,
    CodeRequestPublic,
    CodeReviewCreate,
    CodeSource,
    DatasetInfo,
    JobPublic,
    MockOutput,
    MockRun,
    MockTable,
)
from custos.data.ipc import table_from_ipc_b64
from custos.sdk.job import Job
from custos.sdk.jobs import JobsMixin
from custos.sdk.responses import decode, decode_list

if TYPE_CHECKING:
    from custos.data.table_reader import TableDalReader

_CODE_ID = re.compile(r"code_[0-9a-f]{16}")
# What runs: a function, a module's source (with its function's name), or a package folder.
CodeArg = Callable[..., Any] | str | os.PathLike[str]


class CodeMixin(JobsMixin):
    """Custom code: run on mock tables, submit, review, run; needs the job calls for results."""

    def run_on_mock(
        self,
        fn: CodeArg,
        datasets: Sequence[str],
        params: Mapping[str, Any] | None = None,
        *,
        function: str | None = None,
        output: str | None = None,
    ) -> dict[str, Any]:
        """Run `fn` (a function, a module's source with `function=`, or a package folder as a `Path`)
        on each dataset's mock table, locally, exactly as a gateway runs it on the data:
        `fn(dal, [name], params)` reading through a DAL reader with the same projection, filters and
        refusals (the columns your grant to model `custom` gives, when the policy has one), and its
        output checked as the gateway checks it, against `output` as `submit` takes it (a package's
        manifest declares it; left out, the type returned). Returns {gateway/dataset: DataFrame, dict
        or bytes}. An error raises with its full traceback: there is no real data here."""
        from custos.computations.custom.wire import decode_output

        prepared = _prepare(fn, function, output, params)
        readers = self._mock_readers(datasets)
        return {ref: decode_output(prepared.run(reader, name)) for ref, reader, name in readers}

    def mock_run(
        self,
        fn: CodeArg,
        datasets: Sequence[str],
        params: Mapping[str, Any] | None = None,
        *,
        function: str | None = None,
        output: str | None = None,
    ) -> MockRun:
        """Run `fn` on each dataset's mock table as `run_on_mock` does, and keep what happened as a code
        request carries it for its reviewers (`submit(..., mock_run=...)`): each dataset's output as its
        type renders it (a table's rows, a JSON value's text, a file's type, size and SHA-256), or the
        error it raised (the frames of your code and the exception), cut to fit
        `MAX_MOCK_RUN_CHARS`. A failure of the code is recorded, not raised; a bad argument raises."""
        from custos.computations.custom.mock_run import failed, fit, rendered
        from custos.computations.failures import submitted_sources

        prepared = _prepare(fn, function, output, params)
        sources = submitted_sources(prepared.runnable.code, prepared.runnable.function)
        outputs: list[MockOutput] = []
        for ref, reader, name in self._mock_readers(datasets):
            try:
                outputs.append(rendered(ref, prepared.run(reader, name)))
            except (Exception, SystemExit) as exc:  # the code's own failure: the reviewers read it
                outputs.append(failed(ref, exc, sources))
        return fit(MockRun(digest=prepared.runnable.code.computed_digest(), outputs=outputs))

    def _mock_readers(self, datasets: Sequence[str]) -> Iterator[tuple[str, TableDalReader, str]]:
        """For each dataset: its reference, a DAL reader over its mock table (with the columns your
        grant to model `custom` gives, when its policy has one), and its name at the site."""
        from custos.data.table_reader import TableDalReader
        from custos.policy.asset import load_policy
        from custos.policy.checks import granted_columns

        me = self.me()
        for ref in datasets:
            parsed = parse_dataset_ref(ref)
            info = decode(self._send("GET", f"/datasets/{parsed.gateway}/{parsed.dataset}"), DatasetInfo)
            path = f"/datasets/{parsed.gateway}/{parsed.dataset}/mock"
            table = table_from_ipc_b64(decode(self._send("GET", path), MockTable).mock_arrow_b64)
            granted = None
            if info.policy_yaml:
                columns = granted_columns(load_policy(info.policy_yaml), me.name, me.org, "custom", "1.0.0")
                granted = {parsed.dataset: columns} if columns else None
            yield str(parsed), TableDalReader({parsed.dataset: table}, granted=granted), parsed.dataset

    def submit(
        self,
        fn: CodeArg,
        datasets: Sequence[str],
        params: Mapping[str, Any] | None = None,
        *,
        function: str | None = None,
        output: str | None = None,
        mock_run: bool | MockRun = False,
    ) -> CodeRequestDetail:
        """Submit `fn`'s exact source (imports inside the function, or a module's source with
        `function=`) for review by the custodians of `datasets`; or a package folder (a `Path` to a
        folder with `custos-model.toml`) as its deterministic archive, whose manifest names the
        entrypoint, parameters and output. `output` is what a function returns: `table` (the default,
        a DataFrame), `json` (a dict) or `file:TYPE` (the bytes of a csv, json, parquet, pdf or png
        file, e.g. `file:png`). Refused for a dataset whose policy does not accept custom code.
        `mock_run=True` first runs the code here on the datasets' mock tables (`mock_run`) and attaches
        what it printed, which the reviewers read beside the code as your word (nothing checks it);
        or pass a `MockRun` of this exact code."""
        runnable = _code_to_run(fn, function)
        for ref in datasets:
            parse_dataset_ref(ref)
        attached = mock_run if isinstance(mock_run, MockRun) else None
        if mock_run is True:
            attached = self.mock_run(fn, datasets, params, function=function, output=output)
        package = runnable.code.package_b64 is not None
        body = CodeRequestCreate(
            function=None if package else runnable.function, source=runnable.code.source,
            package_b64=runnable.code.package_b64, datasets=list(datasets), params=dict(params or {}),
            output=_declared_output(output), mock_run=attached,
        )  # fmt: skip
        return decode(self._send("POST", "/code", body=body.model_dump(mode="json")), CodeRequestDetail)

    def code_requests(self) -> list[CodeRequestPublic]:
        """Your code requests and those you may review, oldest first."""
        return decode_list(self._send("GET", "/code"), CodeRequestPublic)

    def code_request(self, request_id: str) -> CodeRequestDetail:
        """A code request with its exact source, parameters, datasets and decisions."""
        return decode(self._send("GET", f"/code/{_code_id(request_id)}"), CodeRequestDetail)

    def approve_code(self, request_id: str, reason: str = "") -> CodeRequestDetail:
        """Approve for your org: the approval, signed with your kit's key, binds the digest of the
        source you were shown (recomputed here), its function, parameters, datasets and author."""
        from custos.core.clock import utcnow
        from custos.policy.code_approval import approval_for, sign_code_approval

        if self._kit is None:
            raise InvalidInput("approving code signs it with your kit's key: connect with Client.from_kit")
        request = self.code_request(request_id)
        signed = sign_code_approval(
            approval_for(request, utcnow()), key=self._kit.private_key, certificate=self._kit.certificate
        )
        body = CodeReviewCreate(reason=reason, approval=signed).model_dump(mode="json")
        return decode(self._send("POST", f"/code/{request.id}/approve", body=body), CodeRequestDetail)

    def deny_code(self, request_id: str, reason: str) -> CodeRequestDetail:
        """Deny with `reason`, which the researcher reads."""
        if not reason.strip():
            raise InvalidInput("reason is required to deny a code request: tell the researcher why")
        body = CodeReviewCreate(reason=reason).model_dump(mode="json")
        return decode(self._send("POST", f"/code/{_code_id(request_id)}/deny", body=body), CodeRequestDetail)

    def run_code(self, request_id: str) -> Job:
        """Run approved code as a job; `job.wait()` for it. Its result is held for release review."""
        return Job.bound(decode(self._send("POST", f"/code/{_code_id(request_id)}/run"), JobPublic), self)

    def code_result(self, job_id: str) -> dict[str, Any]:
        """A released custom code job's outputs: {gateway/dataset: DataFrame, dict or a file's bytes}."""
        from custos.computations.custom.wire import decode_output

        result = self.job_result(job_id).data
        return {ref: decode_output(output) for ref, output in result.get("sites", {}).items()}


def _declared_output(output: str | None) -> CodeOutput | None:
    accepted: tuple[CodeOutput, ...] = get_args(CodeOutput)
    for value in accepted:
        if output == value:
            return value
    if output is None:
        return None
    raise InvalidInput(f"output {output!r} is not one of {', '.join(accepted)}")


def _code_id(request_id: str) -> str:
    if not _CODE_ID.fullmatch(request_id):
        raise InvalidInput(f"{request_id!r} is not a code request id; `custos code list` shows yours")
    return request_id


class _Runnable(NamedTuple):
    code: CodeSource
    function: str  # a function's name, or a package's entrypoint


@dataclass(frozen=True)
class _Prepared:
    """Code ready to run on mock tables: what runs, the output it declares, its parameters."""

    runnable: _Runnable
    declared: CodeOutput | None
    params: dict[str, Any]

    def run(self, reader: TableDalReader, name: str) -> dict[str, Any]:
        """The encoded output of the code on one dataset, checked as the gateway checks it."""
        from custos.computations.custom.disclosure import check_output
        from custos.computations.custom.site import run_code

        code, function = self.runnable
        encoded = run_code(code, function, reader, [name], dict(self.params), self.declared)
        check_output(encoded, self.declared or str(encoded.get("type")))
        return encoded


def _prepare(
    fn: CodeArg, function: str | None, output: str | None, params: Mapping[str, Any] | None
) -> _Prepared:
    """What runs, and for a package the output and parameters its manifest declares and fills in
    (as the orchestrator does); a mismatch raises InvalidInput."""
    runnable = _code_to_run(fn, function)
    declared = _declared_output(output)
    checked = dict(params or {})
    if runnable.code.package_b64 is not None:
        package = verify_code_package(runnable.code.archive())
        checked = package.manifest.check_params(checked)
        if declared is not None and declared != package.output:
            raise InvalidInput(f"output is {declared}, but the package's manifest declares {package.output}")
        declared = package.output
    return _Prepared(runnable, declared, checked)


def _code_to_run(fn: CodeArg, function: str | None) -> _Runnable:
    """A package folder's archive and entrypoint, or a function's exact source and name."""
    folder = Path(fn) if isinstance(fn, os.PathLike) else None
    if isinstance(fn, str) and "\n" not in fn and fn.strip() and Path(fn).is_dir():
        folder = Path(fn)
    if folder is None:
        source, name = _function_source(fn, function)  # type: ignore[arg-type]
        return _Runnable(CodeSource(source=source), name)
    if function is not None:
        raise InvalidInput(
            f"{folder} is a package: it runs its manifest's entrypoint; leave out function (--function)"
        )
    built = build_code_package(folder)
    archive = base64.b64encode(built.data).decode("ascii")
    return _Runnable(CodeSource(package_b64=archive), built.manifest.entrypoint)


def _function_source(fn: Callable[..., Any] | str, function: str | None) -> tuple[str, str]:
    """The exact source to run and the name of the function to call."""
    if isinstance(fn, str):
        if not function:
            raise InvalidInput("give function= with a module's source: the name of the function to call")
        return fn, function
    try:
        source = textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError) as exc:
        raise InvalidInput(f"the source of {fn!r} is not available ({exc}); pass the source text") from None
    return source, function or fn.__name__
