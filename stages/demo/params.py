"""Parameters of `deep-lulc demo`."""

from __future__ import annotations

from pydantic import Field

from deep_lulc.shared.stage.contract import StageParams


class DemoParams(StageParams):
    """Run the whole chain on the embedded synthetic catalog (no network needed): configs/demo.yaml run by
    `deep-lulc run`, plus LightGBM and the change map's labelled sample."""

    seed: int = Field(0, ge=0, description="Seed of the synthetic catalog.")
    size: int = Field(512, ge=128, le=4096, description="Synthetic scene size in 10 m pixels.")
    dates: int = Field(24, ge=4, le=73, description="Acquisitions per year.")
    epochs: int | None = Field(
        None, ge=1, le=200, description="Training epochs of the deep model; default: configs/demo.yaml's."
    )
    jobs: int = Field(2, ge=1, le=64, description="Pipeline steps run at once, each a deep-lulc process.")
