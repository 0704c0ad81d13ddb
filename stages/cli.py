"""The `deep-lulc` command: one subcommand per stage, each built by the stage runtime from its declaration."""

from __future__ import annotations

import sys

import typer

# typer 0.29 vendors click and raises its own copies of click's exceptions; it exports only Abort and Exit.
from typer._click.exceptions import NoArgsIsHelpError, UsageError

from deep_lulc.shared.errors import ExitCode
from deep_lulc.shared.stage.runtime import Stage, register
from deep_lulc.shared.version import SOFTWARE_NAME, __version__
from deep_lulc.stages.area.cli import COMMAND as AREA
from deep_lulc.stages.change.cli import COMMAND as CHANGE
from deep_lulc.stages.chips.cli import COMMAND as CHIPS
from deep_lulc.stages.cube.cli import COMMAND as CUBE
from deep_lulc.stages.demo.cli import COMMAND as DEMO
from deep_lulc.stages.evaluate.cli import COMMAND as EVALUATE
from deep_lulc.stages.features.cli import COMMAND as FEATURES
from deep_lulc.stages.merge.cli import COMMAND as MERGE
from deep_lulc.stages.predict.cli import COMMAND as PREDICT
from deep_lulc.stages.predict.cli import PLAN_COMMAND as PLAN_TILES
from deep_lulc.stages.run.cli import COMMAND as RUN
from deep_lulc.stages.sample.cli import COMMAND as SAMPLE
from deep_lulc.stages.search.cli import COMMAND as SEARCH
from deep_lulc.stages.synth.cli import COMMAND as SYNTH
from deep_lulc.stages.train.cli import COMMAND as TRAIN

COMMANDS: tuple[Stage, ...] = (
    SYNTH,
    SEARCH,
    CUBE,
    FEATURES,
    CHIPS,
    TRAIN,
    PLAN_TILES,
    PREDICT,
    MERGE,
    CHANGE,
    SAMPLE,
    AREA,
    EVALUATE,
    RUN,
    DEMO,
)

app = typer.Typer(
    name="deep-lulc",
    help="Land use / land cover mapping from Sentinel-2 time series, as STAC-native stages. "
    "Each stage prints one JSON line on stdout; logs go to stderr.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        print(f"deep-lulc {__version__}")
        raise typer.Exit(0)


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Deep LULC."""


register(app, list(COMMANDS))


def main() -> None:
    """Run the command; a usage error (unknown option, missing value) is one line and exit 2, like every
    other error of the contract, not click's framed box."""
    try:
        code = app(standalone_mode=False)
    except NoArgsIsHelpError as exc:  # `deep-lulc` alone: the help, as click shows it
        exc.show()
        sys.exit(exc.exit_code)
    except UsageError as exc:
        command = exc.ctx.command_path if exc.ctx is not None else SOFTWARE_NAME
        message = " ".join(exc.format_message().split()).rstrip(".")
        print(f"{command}: error: {message}; fix: see `{command} --help`", file=sys.stderr)
        sys.exit(int(ExitCode.BAD_INPUT))
    except typer.Abort:
        print(f"{SOFTWARE_NAME}: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":  # `python -m deep_lulc.stages.cli`, where no deep-lulc script is installed
    main()
