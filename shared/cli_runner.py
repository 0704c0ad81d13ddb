"""What every CLI adapter does around a stage call: logging, exit codes, the result line, --outputs-dir."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path

import typer

from deep_lulc.shared.contract import StageResult, write_outputs_dir
from deep_lulc.shared.errors import DeepLulcError, ExitCode
from deep_lulc.shared.logs import configure_logging, redact_text

log = logging.getLogger("deep_lulc")

DEBUG_OPTION = typer.Option(False, "--debug", help="Show tracebacks and debug logs.")
OVERWRITE_OPTION = typer.Option(
    False, "--overwrite", help="Redo the work even when --out already holds this exact run (default: a no-op)."
)
OUTPUTS_DIR_OPTION = typer.Option(
    None,
    "--outputs-dir",
    help="Also write the result JSON to DIR/result.json and each key to DIR/<key> (Argo outputs).",
    file_okay=False,
)


def execute(stage: str, call: Callable[[], StageResult], *, debug: bool, outputs_dir: Path | None) -> None:
    """Run a stage call and leave through the contract's exit codes; prints the JSON line on success."""
    configure_logging(debug=debug)
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
    except Exception as exc:
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
    print(result.to_json_line(), flush=True)
