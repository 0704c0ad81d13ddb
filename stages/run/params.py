"""Parameters of `deep-lulc run`."""

from __future__ import annotations

from pydantic import Field, field_validator

from deep_lulc.shared.stage.contract import StageInputs, StageParams


class RunInputs(StageInputs):
    """The run config, given as the one positional argument."""

    config: tuple[str, ...] = ()

    @field_validator("config")
    @classmethod
    def _one(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(value) != 1:
            raise ValueError(f"takes one config file, got {len(value)}")
        return value


class RunParams(StageParams):
    """Run argo/pipeline.yaml's DAG on this machine from one config file: every stage a `deep-lulc` process, as
    in Argo's containers, independent steps side by side. A rerun reuses the steps that finished and redoes the
    rest, so an interrupted or failed run is resumed by running the same command again."""

    jobs: int = Field(2, ge=1, le=256, description="Steps run at once, each a deep-lulc process.")
    override: tuple[str, ...] = Field(
        (), description="Config values to replace, as dotted KEY=VALUE pairs (YAML values), comma-separated."
    )
    dry_run: bool = Field(False, description="Validate the config and print the workflow parameters; run nothing.")

    @field_validator("override")
    @classmethod
    def _pairs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pair in value:
            key, equals, _ = pair.partition("=")
            if not equals or not key.strip():
                raise ValueError(f"{pair!r} is not KEY=VALUE (e.g. chips.count=48)")
        return value
