"""The `deep-lulc` command: one subcommand per stage, each a thin adapter over the stage's `run`."""

from __future__ import annotations

import typer

from deep_lulc.shared.version import __version__
from deep_lulc.stages.change import cli as change_cli
from deep_lulc.stages.chips import cli as chips_cli
from deep_lulc.stages.cube import cli as cube_cli
from deep_lulc.stages.demo import cli as demo_cli
from deep_lulc.stages.evaluate import cli as evaluate_cli
from deep_lulc.stages.features import cli as features_cli
from deep_lulc.stages.merge import cli as merge_cli
from deep_lulc.stages.predict import cli as predict_cli
from deep_lulc.stages.search import cli as search_cli
from deep_lulc.stages.synth import cli as synth_cli
from deep_lulc.stages.train import cli as train_cli

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


app.command("synth", epilog=synth_cli.EPILOG)(synth_cli.synth)
app.command("search", epilog=search_cli.EPILOG)(search_cli.search)
app.command("cube", epilog=cube_cli.EPILOG)(cube_cli.cube)
app.command("features", epilog=features_cli.EPILOG)(features_cli.features)
app.command("chips", epilog=chips_cli.EPILOG)(chips_cli.chips)
app.command("train", epilog=train_cli.EPILOG)(train_cli.train)
app.command("plan-tiles", epilog=predict_cli.PLAN_EPILOG)(predict_cli.plan_tiles)
app.command("predict", epilog=predict_cli.PREDICT_EPILOG)(predict_cli.predict)
app.command("merge", epilog=merge_cli.EPILOG)(merge_cli.merge)
app.command("change", epilog=change_cli.EPILOG)(change_cli.change)
app.command("evaluate", epilog=evaluate_cli.EPILOG)(evaluate_cli.evaluate)
app.command("demo", epilog=demo_cli.EPILOG)(demo_cli.demo)


def main() -> None:
    app()
