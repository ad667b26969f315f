"""The entry point inside the sandbox.

`python -m custos.computations.runtime --serve SOCKET [--warm]` is how a gateway runs a job: one
sandboxed process for all of the job's rounds (docs/architecture.md, "The sandboxed runtime"). `--warm`
(the gateway's spare runtime, started ahead of need) also imports the differential privacy module and
OpenDP before the first round, so that a DP job's first round does not pay for it. It connects to the
gateway's socket and answers one frame per round — {"ok": true, "result": ...} or {"ok": false, "type",
"message"} — until the gateway closes the stream. The DAL reader is opened once and kept.

`python -m custos.computations.runtime INPUT_JSON OUTPUT_DIR` runs a single round:

INPUT_JSON holds {"model": "stats@1.0.0", "dataset", "params", "round_input", "dal_socket",
"dal_token"}. The runtime runs one round of the model at this site, reading rows only through the DAL,
and writes OUTPUT_DIR/result.json (canonical JSON). On any failure it writes OUTPUT_DIR/error.json with
only the exception's type and message, and exits 1. The gateway, not this code, filters the result.

In both, a broken limit (`custos.sandbox.bootstrap.breach_code`: memory, processes, /output or /tmp
full) is not answered: it ends the process, and the bootstrap's exit code names the limit.

Start-up time counts: this path imports numpy and pyarrow but never pandas.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from custos.computations.base import DalReader
from custos.computations.registry import get_model
from custos.core.digest import canonical_json
from custos.core.errors import InvalidInput, PayloadTooLarge
from custos.core.refs import parse_model_ref
from custos.sandbox.bootstrap import breach_code

MAX_INPUT_BYTES = 16 * 1024 * 1024
MAX_MESSAGE_CHARS = 4000
MAX_LOG_CHARS = 32_000
USAGE = "usage: python -m custos.computations.runtime (INPUT_JSON OUTPUT_DIR | --serve SOCKET [--warm])"


class RuntimeInput(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str
    dataset: str
    params: dict[str, Any]
    round_input: dict[str, Any]
    dal_socket: str
    dal_token: str = Field(max_length=256)


def load_input(path: Path) -> RuntimeInput:
    if path.stat().st_size > MAX_INPUT_BYTES:
        raise PayloadTooLarge(f"the task input is larger than {MAX_INPUT_BYTES} bytes")
    try:
        return RuntimeInput.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        # Name the field only: the input's values include the DAL token.
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "input"
        raise InvalidInput(f"the task input is malformed at {field}: {first['msg']}") from None


def _write(path: Path, data: bytes) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    os.replace(partial, path)


def run(input_path: Path, output_dir: Path, reader: DalReader | None = None) -> int:
    """Run one round at this site. Returns the process exit code: 0 with result.json written, 1 with
    error.json written."""
    closer: Any = None
    try:
        task = load_input(input_path)
        ref = parse_model_ref(task.model)
        model = get_model(ref.name, ref.version)
        if reader is None:
            from custos.computations.dal_client import FlightDalReader

            reader = closer = FlightDalReader(task.dal_socket, task.dal_token)
        result = model.compute_site(reader, task.dataset, task.params, task.round_input)
        _write(output_dir / "result.json", canonical_json(result))
        return 0
    except Exception as exc:
        if breach_code(exc) is not None:
            raise
        error = {"type": type(exc).__name__, "message": str(exc)[:MAX_MESSAGE_CHARS]}
        _write(output_dir / "error.json", canonical_json(error))
        return 1
    finally:
        if closer is not None:
            with contextlib.suppress(Exception):
                closer.close()


# Custos's own source folder: its frames are left out of a log, which shows the user's code only.
_CUSTOS_SOURCE = str(Path(__file__).resolve().parents[1])


def _user_traceback(exc: BaseException) -> str:
    """The traceback of the code that failed, without the frames of Custos's runtime above it: a log a
    custodian may release names the researcher's code, not where the gateway is installed."""
    frames = traceback.extract_tb(exc.__traceback__)
    kept = traceback.StackSummary.from_list(
        [f for f in frames if not f.filename.startswith(_CUSTOS_SOURCE)] or frames[-1:]
    )
    return (
        "Traceback (most recent call last):\n"
        + "".join(kept.format())
        + "".join(traceback.format_exception_only(exc))
    )


def _code_frame(exc: BaseException) -> dict[str, Any] | None:
    """Where in submitted code (`<custom:FN>`, `<package>/PATH`) the error was raised: its deepest
    frame there. The gateway checks the file and line against the code it holds."""
    frames = traceback.extract_tb(exc.__traceback__)
    for frame in reversed(frames):
        if frame.filename.startswith("<") and frame.lineno is not None:
            return {"file": frame.filename, "line": frame.lineno}
    return None


def _error(exc: Exception) -> dict[str, Any]:
    # The traceback and message stay at the gateway (it logs them for its custodian); what leaves is
    # the gateway's to decide (`custos.computations.failures`).
    log = _user_traceback(exc)[-MAX_LOG_CHARS:]
    error = {"type": type(exc).__name__, "message": str(exc)[:MAX_MESSAGE_CHARS], "log": log}
    where = _code_frame(exc)
    return error if where is None else error | {"where": where}


def answer(request: dict[str, Any], readers: dict[tuple[str, str], DalReader]) -> dict[str, Any]:
    """One round of a served job. `readers` keeps the DAL connection between rounds."""
    try:
        task = RuntimeInput.model_validate(request)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "input"
        return _error(InvalidInput(f"the round input is malformed at {field}: {first['msg']}")) | {
            "ok": False
        }
    try:
        ref = parse_model_ref(task.model)
        model = get_model(ref.name, ref.version)
        key = (task.dal_socket, task.dal_token)
        if key not in readers:
            from custos.computations.dal_client import FlightDalReader

            readers[key] = FlightDalReader(task.dal_socket, task.dal_token)
        result = model.compute_site(readers[key], task.dataset, task.params, task.round_input)
        return {"ok": True, "result": result}
    except Exception as exc:
        if breach_code(exc) is not None:
            # A broken limit ends the runtime, as it ends any sandboxed run: the bootstrap exits with
            # the limit's code, and the gateway names the limit.
            raise
        return _error(exc) | {"ok": False}


def preload(warm: bool = False) -> None:
    """Import what a job's first round needs, so that no round pays for it: the DAL client and every
    built-in model (the registry itself imports none); with `warm`, differential privacy too. The
    gateway's zygote (custos.sandbox.zygote) calls this once, before it forks any run."""
    import custos.computations.dal_client  # noqa: F401
    from custos.computations.registry import load_all

    load_all()
    if warm:
        importlib.import_module("custos.privacy.dp")


def serve(
    socket_path: str, readers: dict[tuple[str, str], DalReader] | None = None, *, warm: bool = False
) -> int:
    """Answer rounds from the gateway at `socket_path` until it closes the stream."""
    import socket
    import threading

    from custos.core.frames import recv_frame, send_frame

    # Imported before the first round arrives (at once when forked from a zygote that preloaded).
    preload()

    readers = {} if readers is None else readers
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.connect(socket_path)
        if warm:
            # Once connected, so that a job without differential privacy never waits for it; a DP
            # job's first round finds the module imported, or waits on the import lock for the rest.
            threading.Thread(target=importlib.import_module, args=("custos.privacy.dp",), daemon=True).start()
        while (request := recv_frame(conn)) is not None:
            if request.get("attest") is True:  # a confidential package's key pair, made here
                from custos.computations.package.confidential import RUNTIME_KEY

                send_frame(conn, RUNTIME_KEY.attest())
                continue
            send_frame(conn, answer(request, readers))
    for reader in readers.values():
        close = getattr(reader, "close", None)
        if close is not None:
            with contextlib.suppress(Exception):
                close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) in (2, 3) and args[0] == "--serve" and args[2:] in ([], ["--warm"]):
        return serve(args[1], warm=args[2:] == ["--warm"])
    if len(args) != 2:
        print(USAGE, file=sys.stderr)
        return 2
    return run(Path(args[0]), Path(args[1]))


if __name__ == "__main__":
    sys.exit(main())
