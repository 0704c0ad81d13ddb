"""The stage runtime: a stage declares its inputs, params model and `run` function once, and the runtime
turns that declaration into a `deep-lulc` subcommand.

Options are generated from the params model, so a default or a help text exists in one place (the pydantic
field) and the CLI cannot drift from what `run` validates. The runtime owns what every stage does around
its pure function: validation before any I/O, the exit codes of the contract, the one-line JSON result,
`--outputs-dir` for Argo; idempotent reruns and atomic publication wrap `run` itself (`reruns.idempotent`,
`publish.staged_output`) so that tests calling `run` get them too.
"""

from __future__ import annotations

import datetime as dt
import errno
import importlib
import inspect
import json
import logging
import os
import shutil
import signal
import sys
import threading
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import typer
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from deep_lulc.shared.errors import BadInputError, DeepLulcError, ExitCode
from deep_lulc.shared.io.storage import LOCAL_ROOTS_VARIABLE
from deep_lulc.shared.stage.contract import StageInputs, StageParams, StageResult, validate_params, write_outputs_dir
from deep_lulc.shared.stage.logs import configure_logging, redact_text

log = logging.getLogger("deep_lulc")

_LOCAL_ROOT_HELP = (
    "A local folder that STAC inputs may reference files under, besides each catalog's own folder "
    f"(repeatable; also {LOCAL_ROOTS_VARIABLE})."
)
_OUTPUTS_DIR_HELP = "Also write the result JSON to DIR/result.json and each key to DIR/<key> (Argo outputs)."


@dataclass(frozen=True)
class Hrefs:
    """Any number of positional hrefs (or JSON arrays of them, as Argo passes a fan-in), passed to `run` as
    the tuple field `field` of the stage's Inputs model; `required=False` lets a stage take its inputs from
    options instead (then an empty tuple)."""

    metavar: str
    help: str
    field: str
    required: bool = True


@dataclass(frozen=True)
class Stage:
    """What a stage declares; `command(stage)` builds the typer command from it."""

    name: str
    inputs: type[StageInputs]
    params: type[StageParams]
    # "module:function", imported only when the command runs (torch loads only where needed); default: the
    # `run` of the `stage` module beside the params module
    run: str | None = None
    hrefs: Hrefs | None = None
    out_help: str = "Output directory or s3:// prefix."
    out_default: str | None = None
    epilog: str = ""
    hidden: frozenset[str] = field(default_factory=frozenset)  # params fields kept off the command line
    report: Callable[[StageResult], None] | None = None  # extra human output on stderr after success

    @property
    def help(self) -> str:
        """The command's help: the params model's docstring, so what a stage does is said once."""
        return inspect.cleandoc(self.params.__doc__ or "")

    @property
    def target(self) -> str:
        return self.run or self.params.__module__.rpartition(".")[0] + ".stage:run"


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that every `finally` (staging folders, locks) runs before the exit.

    A BaseException, as KeyboardInterrupt is: stage code that handles `Exception` must not swallow it.
    """


SIGTERM_EXIT = 128 + signal.SIGTERM  # 143, what Kubernetes and Argo expect of a process that honoured it


def _raise_terminated(signum: int, _frame: types.FrameType | None) -> None:
    raise Terminated(signum)


def _full_disk(exc: BaseException) -> DeepLulcError | None:
    """Bad input when a full disk (or quota) lies anywhere in `exc`'s chain: the README promises exit 2 for it
    whichever library hit it (safetensors, GDAL and torch word it their own way)."""
    seen: BaseException | None = exc
    while seen is not None:
        if (isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT)) or NO_SPACE in str(seen):
            lines = [line.strip() for line in redact_text(str(seen)).splitlines() if line.strip()]
            said = next((line for line in lines if NO_SPACE in line), lines[0] if lines else NO_SPACE)
            return BadInputError(
                f"no space left on the device ({said[:160]})", fix="free space or choose another --out"
            )
        seen = seen.__cause__ or seen.__context__
    return None


NO_SPACE = "No space left on device"
NEARLY_FULL_BYTES = 1024 * 1024  # a filesystem with less free space than this failed the write, whatever was said


def _full_filesystem(output: str | None) -> DeepLulcError | None:
    """Bad input when the local --out's filesystem is full: libtiff and GDAL report a failed write as "IO error
    writing tag data" and the like, without the errno."""
    if output is None or "://" in output:
        return None
    path = Path(output).expanduser().absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        free = shutil.disk_usage(path).free
    except OSError:
        return None
    if free >= NEARLY_FULL_BYTES:
        return None
    return BadInputError(
        f"no space left on the device holding {output} ({free} bytes free)", fix="free space or choose another --out"
    )


def execute(
    stage: str, call: Callable[[], StageResult], *, debug: bool, outputs_dir: Path | None, output: str | None = None
) -> None:
    """Run a stage call and leave through the contract's exit codes; prints the JSON line on success.
    `output`: the --out, whose filesystem is looked at when a failure might be a full disk."""
    configure_logging(debug=debug)
    main_thread = threading.current_thread() is threading.main_thread()  # only it may set signal handlers
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if main_thread else None
    try:
        result = call()
        if outputs_dir is not None:
            write_outputs_dir(result, outputs_dir)
    except DeepLulcError as exc:
        if debug:
            log.exception("stage %s failed", stage)
        print(redact_text(f"deep-lulc {stage}: error: {exc.one_line()}"), file=sys.stderr)
        raise typer.Exit(int(exc.exit_code)) from None
    except KeyboardInterrupt:
        print(f"deep-lulc {stage}: interrupted", file=sys.stderr)
        raise typer.Exit(130) from None
    except Terminated:
        print(
            f"deep-lulc {stage}: error: terminated by SIGTERM before it finished, nothing published; "
            "fix: rerun the same command (outputs are published whole or not at all)",
            file=sys.stderr,
        )
        raise typer.Exit(SIGTERM_EXIT) from None
    except Exception as exc:
        full = _full_disk(exc) or _full_filesystem(output)
        if full is not None:  # raised where no stage code classified it (a library writing a file)
            print(redact_text(f"deep-lulc {stage}: error: {full.one_line()}"), file=sys.stderr)
            raise typer.Exit(int(full.exit_code)) from None
        if debug:
            raise
        print(
            redact_text(
                f"deep-lulc {stage}: internal error: {type(exc).__name__}: {exc}; "
                "fix: rerun with --debug and report the traceback"
            ),
            file=sys.stderr,
        )
        raise typer.Exit(int(ExitCode.FAILURE)) from None
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
    print(result.to_json_line(), flush=True)


def expand_hrefs(arguments: list[str] | None) -> list[str]:
    """Positional hrefs, with JSON arrays of hrefs flattened into them (none given: empty)."""
    hrefs: list[str] = []
    for argument in arguments or []:
        if not argument.lstrip().startswith("["):
            hrefs.append(argument)
            continue
        try:
            values = json.loads(argument)
        except json.JSONDecodeError as exc:
            raise BadInputError(
                f"argument {argument[:60]!r} looks like JSON but is not ({exc})",
                fix="pass hrefs, or one JSON array of hrefs",
            ) from exc
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise BadInputError(f"argument {argument[:60]!r} is not a JSON array of hrefs", fix="pass hrefs")
        hrefs.extend(values)
    return hrefs


# ------------------------------------------------------------------ options from pydantic fields


@dataclass(frozen=True)
class _Option:
    """How one params field appears on the command line."""

    name: str
    annotation: Any
    default: Any
    decls: tuple[str, ...]
    help: str
    metavar: str | None
    parse: Callable[[Any], Any]


def _as_given(value: Any) -> Any:
    return value


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _members(annotation: Any) -> list[Any]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [member for member in typing.get_args(annotation) if member is not type(None)]
    return [annotation]


def _literals(members: list[Any]) -> list[str]:
    return [str(value) for member in members if typing.get_origin(member) is Literal for value in member.__args__]


def _comma_list(flag: str, element: type) -> Callable[[Any], Any]:
    def parse(text: Any) -> Any:
        if not isinstance(text, str):
            return text
        try:
            return [element(part) for part in text.split(",") if part.strip()]
        except ValueError as exc:
            raise BadInputError(
                f"{flag} {text!r} is not a comma-separated list of {element.__name__}s", fix="write e.g. 4,5,6,7,11"
            ) from exc

    return parse


def _option(name: str, info: FieldInfo) -> _Option:
    """Map a field onto a typer option: numbers, strings and flags keep their type (so typer checks them);
    choices, dates and unions stay strings that pydantic validates, with its message naming the option."""
    annotation = info.annotation
    members = _members(annotation)
    optional = type(None) in typing.get_args(annotation) or info.default is None
    required = info.default is PydanticUndefined and info.default_factory is None
    default: Any = ... if required else info.get_default(call_default_factory=True)
    flag = _flag(name)
    help_text = info.description or ""
    choices = _literals(members)
    metavar = None
    parse: Callable[[Any], Any] = _as_given
    if choices and all(typing.get_origin(m) is Literal for m in members):
        cli_type: Any = str
        metavar = "[" + "|".join(choices) + "]"
    elif members == [bool]:
        cli_type = bool
        if default is None:
            flag = f"{flag}/--no-{name.replace('_', '-')}"
    elif len(members) == 1 and members[0] in (int, float, str):
        cli_type = members[0]
    elif len(members) == 1 and typing.get_origin(members[0]) in (tuple, list):
        element = typing.get_args(members[0])[0]
        cli_type = str
        parse = _comma_list(flag, element)
        if isinstance(default, tuple | list):
            default = ",".join(str(v) for v in default)
    elif members in ([dt.date], [dt.datetime]):
        cli_type = str
        metavar = "YYYY-MM-DD"
    else:  # a number or a word (`int | "auto"`): pydantic tells them apart
        cli_type = str
        bare = [typing.get_args(m)[0] if typing.get_origin(m) is typing.Annotated else m for m in members]
        kinds = [m.__name__.upper() for m in bare if m in (int, float)]
        if kinds and choices:
            metavar = "[" + "|".join(kinds + choices) + "]"
    return _Option(
        name=name,
        annotation=cli_type | None if optional else cli_type,
        default=default,
        decls=(flag,),
        help=help_text,
        metavar=metavar,
        parse=parse,
    )


def _options(model: type[BaseModel], hidden: frozenset[str] = frozenset()) -> list[_Option]:
    return [_option(name, info) for name, info in model.model_fields.items() if name not in hidden]


def _load(target: str) -> Callable[..., StageResult]:
    module, _, function = target.partition(":")
    run: Callable[..., StageResult] = getattr(importlib.import_module(module), function)
    return run


def command(stage: Stage) -> Callable[..., None]:
    """The typer command of `stage`: one keyword parameter per input, output and params field."""
    options = _options(stage.params, stage.hidden)
    sources = _options(stage.inputs, frozenset({stage.hrefs.field}) if stage.hrefs else frozenset())
    taken = {option.name for option in options}
    clashes = taken & ({s.name for s in sources} | {"out", "debug", "outputs_dir", "hrefs", "allow_local_root"})
    if clashes:
        raise RuntimeError(f"stage {stage.name}: params fields {sorted(clashes)} clash with runtime options")
    parameters: list[inspect.Parameter] = []

    def add(name: str, annotation: Any, default: Any) -> None:
        parameters.append(
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
        )

    if stage.hrefs is not None:
        required = stage.hrefs.required
        argument = typer.Argument(... if required else None, metavar=stage.hrefs.metavar, help=stage.hrefs.help)
        add("hrefs", list[str] if required else list[str] | None, argument)
    for option in [*sources, None, *options]:
        if option is None:
            out_default = ... if stage.out_default is None else stage.out_default
            add("out", str, typer.Option(out_default, "--out", help=stage.out_help))
            continue
        add(
            option.name,
            option.annotation,
            typer.Option(option.default, *option.decls, help=option.help, metavar=option.metavar),
        )
    add("debug", bool, typer.Option(False, "--debug", help="Show tracebacks and debug logs."))
    add("allow_local_root", list[Path], typer.Option([], "--allow-local-root", help=_LOCAL_ROOT_HELP, file_okay=False))
    add("outputs_dir", Path | None, typer.Option(None, "--outputs-dir", help=_OUTPUTS_DIR_HELP, file_okay=False))

    def invoke(**values: Any) -> None:
        def call() -> StageResult:
            raw: dict[str, Any] = {o.name: values[o.name] for o in sources}
            if stage.hrefs is not None:
                raw[stage.hrefs.field] = tuple(expand_hrefs(values["hrefs"]))
            inputs = validate_params(stage.inputs, raw)
            params = validate_params(stage.params, {o.name: o.parse(values[o.name]) for o in options})
            result = _load(stage.target)(inputs=inputs, output=values["out"], params=params)
            if stage.report is not None:
                stage.report(result)
            return result

        if values["allow_local_root"]:  # read where hrefs are resolved, in this process and its dask workers
            roots = [str(root) for root in values["allow_local_root"]]
            existing = [part for part in os.environ.get(LOCAL_ROOTS_VARIABLE, "").split(os.pathsep) if part]
            os.environ[LOCAL_ROOTS_VARIABLE] = os.pathsep.join([*existing, *roots])
        execute(stage.name, call, debug=values["debug"], outputs_dir=values["outputs_dir"], output=values.get("out"))

    invoke.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    invoke.__annotations__ = {p.name: p.annotation for p in parameters} | {"return": None}
    invoke.__doc__ = stage.help
    invoke.__name__ = invoke.__qualname__ = stage.name.replace("-", "_")
    return invoke


def register(app: typer.Typer, stages: Mapping[str, Stage] | list[Stage]) -> None:
    for stage in stages.values() if isinstance(stages, Mapping) else stages:
        app.command(stage.name, epilog=stage.epilog)(command(stage))
