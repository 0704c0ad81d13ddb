"""The demo's `report.html`: one static page beside the root catalog, pictures first, built from STAC assets.

The maps are drawn for the page from the COGs the stages published (into `report-maps/` beside it) rather than
shown as the items' thumbnails: those carry their legend baked in, a few pixels high once a thumbnail is
shrunk into a card. Each map card instead has its legend as text (from the item's classification classes), a
scale bar sized in per cent of the drawn map, so it stays true at any window width, and the map's CRS and
extent. The other pictures (true colour, confusion matrices, loss) are the assets the stages published. Every
link is relative, so the page works from a folder, a bucket website or a zip file, with no server.
"""

from __future__ import annotations

import html
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pystac
from affine import Affine
from PIL import Image

from deep_lulc.shared.geo.geometry import bounds_to_wgs84
from deep_lulc.shared.geo.grids import GeoBox, epsg_of, geobox_of
from deep_lulc.shared.io import storage
from deep_lulc.shared.io.publish import write_file_atomically
from deep_lulc.shared.io.stac import items_of, read_stac
from deep_lulc.shared.lulc.classes import LulcClass
from deep_lulc.shared.lulc.labels import load_class_map, rasterize_labels, read_labels
from deep_lulc.shared.products.class_map import class_map_of, decimated
from deep_lulc.shared.products.evaluation import open_scored_map
from deep_lulc.shared.stage.contract import PARAMS_NAME, StageResult

REPORT_NAME = "report.html"
MAPS_FOLDER = "report-maps"
MAP_SIDE = 768  # px, the longer side of a drawn map: the size of the stages' own previews
MAP_HEIGHT = 600  # px, the most a map is drawn high, so a tall AOI's map still fits a screen beside its legend
ERRORS_ASSET = "errors"
NO_DATA = "no data"

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;padding:0 1rem;
color:#1d2530}
h1{margin-bottom:.2rem}h2{margin-top:2.2rem;border-bottom:1px solid #dde3ea;padding-bottom:.3rem}
.muted{color:#5c6b7a}
.maps,.charts{display:grid;gap:1rem;align-items:stretch;margin-bottom:1rem}
.maps{grid-template-columns:repeat(var(--columns),minmax(0,1fr))}
.charts{grid-template-columns:repeat(2,minmax(0,1fr))}
@media (max-width:760px){.maps,.charts{grid-template-columns:minmax(0,1fr)}}
figure{margin:0;background:#f6f8fa;border:1px solid #e3e8ee;border-radius:8px;padding:.6rem;display:flex;
flex-direction:column;gap:.35rem}
.frame{display:block;background:#fff;outline:1px solid #d5dce4}
.mapbox{display:flex;flex-direction:column;gap:.35rem;margin:0 auto;max-width:100%}
.frame img{display:block;width:100%;height:100%;object-fit:contain}
.map .frame img{image-rendering:pixelated}
figcaption{font-size:.95rem;font-weight:600;color:#1d2530}
.scale{display:flex;align-items:center;gap:.5rem;font-size:.8rem;color:#1d2530}
.scale .bar{flex:none;box-sizing:border-box;height:.45rem;border:1px solid #1d2530;
background:linear-gradient(90deg,#1d2530 0 25%,#fff 25% 50%,#1d2530 50% 75%,#fff 75% 100%)}
.legend{list-style:none;margin:0;padding:0;display:flex;flex-wrap:wrap;gap:.2rem .9rem;font-size:.85rem}
.legend li{display:flex;align-items:center;gap:.35rem}
.swatch{display:inline-block;width:.95rem;height:.95rem;border:1px solid rgba(0,0,0,.35);border-radius:2px;
flex:none}
.coords{margin:0;font-size:.78rem;color:#4a5968;font-variant-numeric:tabular-nums}
.coords span{white-space:nowrap}
table{border-collapse:collapse;margin:.6rem 0;font-size:.92rem}
th,td{padding:.25rem .7rem;border-bottom:1px solid #e3e8ee}
th{text-align:left;background:#f6f8fa}td.num{text-align:right;font-variant-numeric:tabular-nums}
.bar-value{display:inline-block;height:.7rem;background:#2f81f7;border-radius:2px;vertical-align:middle}
"""


@dataclass(frozen=True)
class LegendEntry:
    name: str
    colour: str  # "#rrggbb"
    description: str


@dataclass(frozen=True)
class MapPicture:
    """A picture of a map: its image (relative to the report), its size in px, the grid it covers whole."""

    src: str
    height: int
    width: int
    grid: GeoBox
    legend: tuple[LegendEntry, ...] = ()
    note: str = ""


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def palette_png(values: np.ndarray, classes: Sequence[LulcClass], *, nodata: int) -> tuple[bytes, list[LulcClass]]:
    """An indexed PNG of `values`, one image pixel per array cell and nodata transparent, and the classes it
    shows. Pillow rather than the matplotlib previews of `class_map.legend_png`: a figure adds margins and a
    title, so its pixels would not cover a known ground distance, which the scale bar needs."""
    present = [c for c in classes if c.value != nodata and bool((values == c.value).any())]
    lookup = np.zeros(max(int(values.max(initial=0)), *(c.value for c in classes)) + 1, dtype=np.uint8)
    palette = [255, 255, 255]  # index 0: transparent (nodata and anything outside the classes)
    for index, cls in enumerate(present, start=1):
        lookup[cls.value] = index
        palette += list(cls.rgb)
    image = Image.fromarray(lookup[np.clip(values, 0, len(lookup) - 1)])
    image.putpalette(palette)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True, transparency=0)
    return buffer.getvalue(), present


class MapPictures:
    """The report's maps, each drawn once from its COG (a prediction shows in two sections) into
    `report-maps/` beside the report."""

    def __init__(self, output: str) -> None:
        self.output = output
        self.drawn: dict[tuple[str, str], MapPicture] = {}

    def _publish(
        self, name: str, values: np.ndarray, classes: Sequence[LulcClass], *, nodata: int, grid: GeoBox, note: str = ""
    ) -> MapPicture:
        data, present = palette_png(values, classes, nodata=nodata)
        write_file_atomically(storage.join_href(self.output, MAPS_FOLDER, name), data)
        legend = [LegendEntry(c.name, _hex(c.rgb), c.description) for c in present]
        if bool((values == nodata).any()):  # drawn transparent over the white frame
            legend.append(LegendEntry(NO_DATA, "#ffffff", "Not mapped or not labelled here"))
        height, width = values.shape
        return MapPicture(f"{MAPS_FOLDER}/{name}", height, width, grid, tuple(legend), note)

    def classes(self, catalog: str) -> MapPicture:
        """A class map (prediction) in its classes' colours."""
        key = (catalog, "classes")
        if key not in self.drawn:
            target, _ = open_scored_map(catalog)
            with target.open() as dataset:
                values = decimated(dataset, max_side=MAP_SIDE)
            scheme = target.scheme
            name = f"{target.item.id}.png"
            self.drawn[key] = self._publish(name, values, scheme.classes, nodata=scheme.nodata, grid=target.grid)
        return self.drawn[key]

    def change(self, catalog: str) -> MapPicture:
        """A change map as its thumbnail draws it: unchanged grey, a change in the colour of the class it became."""
        target, coding = open_scored_map(catalog)
        if coding is None:
            raise ValueError(f"{catalog} holds a class map, not a change map")
        with target.open() as dataset:
            codes = decimated(dataset, max_side=MAP_SIDE)
        values = coding.as_new_class(*coding.decode(codes))
        legend = coding.new_class_legend("The same class in both maps")
        return self._publish(f"{target.item.id}.png", values, legend, nodata=coding.scheme.nodata, grid=target.grid)

    def errors(self, catalog: str) -> MapPicture:
        """An evaluation's error map, in the colours its classification declares."""
        item = _item_with(catalog, ERRORS_ASSET)
        errors = class_map_of(item, key=ERRORS_ASSET)
        with errors.open() as dataset:
            values = decimated(dataset, max_side=MAP_SIDE)
        scheme = errors.scheme
        return self._publish(f"{item.id}-errors.png", values, scheme.classes, nodata=scheme.nodata, grid=errors.grid)

    def labels(self, evaluation: str, prediction: str) -> MapPicture:
        """The labels an evaluation scored the map at `prediction` against, rasterised on the lattice of the
        map's picture. The evaluation publishes them only as a thumbnail with its legend baked in, so they are
        read again as its params.json names them."""
        target = open_scored_map(prediction)[0]
        shown = self.classes(prediction)
        request = storage.read_json(
            storage.join_href(storage.normalize_href(evaluation).rsplit("/", 1)[0], PARAMS_NAME),
            what="the evaluation's params.json",
        )
        params: Mapping[str, Any] = request.get("params", {})
        scheme, grid = target.scheme, target.grid
        labels = read_labels(
            request["inputs"]["labels"],
            class_column=str(params.get("class_column", "lulc")),
            scheme=scheme,
            class_map=load_class_map(params.get("class_map")),
            target_epsg=epsg_of(grid),
        )
        transform = grid.affine * Affine.scale(grid.width / shown.width, grid.height / shown.height)
        values = rasterize_labels(
            labels, shape=(shown.height, shown.width), transform=transform, epsg=epsg_of(grid), nodata=scheme.nodata
        )
        radius = int(params.get("erosion_radius") or 0)
        note = f"as labelled; scored after eroding each class by {radius} px" if radius else ""
        name = f"{_item_with(evaluation, ERRORS_ASSET).id}-labels.png"
        return self._publish(name, values, scheme.classes, nodata=scheme.nodata, grid=grid, note=note)

    def picture(self, catalog: str, key: str, *, note: str = "") -> MapPicture | None:
        """An image asset some stage published over its item's whole grid (the true-colour preview)."""
        items = [item for item in items_of(read_stac(catalog)) if key in item.assets]
        if not items:
            return None
        item = items[0]
        href = storage.normalize_href(items[0].assets[key].get_absolute_href() or "")
        with Image.open(io.BytesIO(storage.read_bytes(href, what=f"the {key} of {item.id}"))) as image:
            width, height = image.size
        return MapPicture(_relative(self.output, href), height, width, geobox_of(item), note=note)


def _item_with(catalog: str, key: str) -> pystac.Item:
    for item in items_of(read_stac(catalog)):
        if key in item.assets:
            return item
    raise ValueError(f"{catalog} holds no item with a '{key}' asset")


def _relative(output: str, href: str) -> str:
    base = storage.normalize_href(output).rstrip("/") + "/"
    return href.removeprefix(base) if href.startswith(base) else href


def scale_length(ground_m: float) -> float:
    """The longest 1, 2 or 5 x 10^k metres within a third of the map's width: a bar long enough to measure
    with, short enough to leave the map readable."""
    target = ground_m / 3
    power = 10.0 ** math.floor(math.log10(target))
    return max(step * power for step in (1, 2, 5) if step * power <= target)


def _distance(metres: float) -> str:
    return f"{metres / 1000:g} km" if metres >= 1000 else f"{metres:g} m"


def _degrees(low: float, high: float, positive: str, negative: str) -> str:
    def one(value: float) -> str:
        return f"{abs(value):.4f}° {positive if value >= 0 else negative}"

    return f"{one(low)} – {one(high)}"


def _scale_bar(grid: GeoBox) -> str:
    """A bar `scale_length` long, as a share of the map's drawn width: the frame is as wide as the drawn map
    (see `_map_row`), so the bar stays true however wide the window makes the picture."""
    if grid.crs is None or grid.crs.geographic:
        return '<div class="scale muted">no scale bar: the grid is in degrees</div>'
    left, _, right, _ = grid.boundingbox
    ground = abs(right - left)
    length = scale_length(ground)
    return (
        f'<div class="scale" data-ground-m="{ground:.3f}"><span class="bar" style="width:{100 * length / ground:.4f}%">'
        f'</span><span class="label">{_distance(length)}</span></div>'
    )


def _coordinates(grid: GeoBox) -> str:
    """The CRS and extent of the map in it, and the same extent in degrees."""
    left, bottom, right, top = (float(v) for v in grid.boundingbox)
    epsg = epsg_of(grid)
    west, south, east, north = bounds_to_wgs84(epsg, (left, bottom, right, top)).bounds
    parts = [
        f"EPSG:{epsg}, {_distance(right - left)} × {_distance(top - bottom)}:",
        f"x {left:.0f} – {right:.0f},",
        f"y {bottom:.0f} – {top:.0f}",
    ]
    degrees = [_degrees(south, north, "N", "S") + ",", _degrees(west, east, "E", "W")]
    line = " ".join(f"<span>{html.escape(part)}</span>" for part in parts)
    return f'<p class="coords">{line}<br>' + " ".join(f"<span>{part}</span>" for part in degrees) + "</p>"


def _legend(entries: Sequence[LegendEntry]) -> str:
    if not entries:
        return ""
    items = "".join(
        f'<li title="{html.escape(e.description)}"><span class="swatch" style="background:{e.colour}"></span>'
        f'<span class="name">{html.escape(e.name)}</span></li>'
        for e in entries
    )
    return f'<ul class="legend">{items}</ul>'


def _map_row(cards: Sequence[tuple[MapPicture | None, str]], *, columns: int) -> str:
    """Map cards side by side, their frames all shaped like the tallest map so they line up, none taller than
    `MAP_HEIGHT` px. A map is contained in its frame, so each fills its frame's width, and the scale bar
    below it is a share of that same width."""
    shown = [(picture, caption) for picture, caption in cards if picture is not None]
    if not shown:
        return ""
    tallest = max((picture for picture, _ in shown), key=lambda p: p.height / p.width)
    width = f"width:min(100%, {MAP_HEIGHT * tallest.width / tallest.height:.1f}px)"
    aspect = f"aspect-ratio:{tallest.width} / {tallest.height}"
    figures = []
    for picture, caption in shown:
        src, alt = html.escape(picture.src), html.escape(caption)
        note = f'<p class="coords">{html.escape(picture.note)}</p>' if picture.note else ""
        figures.append(
            f'<figure class="map"><div class="mapbox" style="{width}"><a class="frame" href="{src}" '
            f'style="{aspect}"><img src="{src}" alt="{alt}" width="{picture.width}" height="{picture.height}"></a>'
            f"{_scale_bar(picture.grid)}</div><figcaption>{alt}</figcaption>{_legend(picture.legend)}{note}"
            f"{_coordinates(picture.grid)}</figure>"
        )
    return f'<div class="maps" style="--columns:{columns}">' + "".join(figures) + "</div>"


def _columns(pictures: Sequence[tuple[MapPicture | None, str]]) -> int:
    """Two maps a row, or all four of them where they are tall strips that two a row would leave half empty."""
    shapes = [picture.height / picture.width for picture, _ in pictures if picture is not None]
    return 4 if shapes and max(shapes) > 1.5 else 2


def _asset(output: str, catalog: str, key: str) -> str | None:
    """The asset `key` of the first item under `catalog`, as a path relative to the demo's root folder."""
    for item in items_of(read_stac(catalog)):
        if key in item.assets:
            return _relative(output, storage.normalize_href(item.assets[key].get_absolute_href() or ""))
    return None


def _chart(src: str | None, caption: str) -> str:
    """A chart some stage published (confusion matrix, loss), in a frame of the same shape as its neighbours'."""
    if src is None:
        return ""
    src, caption = html.escape(src), html.escape(caption)
    return (
        f'<figure><a class="frame" href="{src}" style="aspect-ratio:7 / 6"><img src="{src}" alt="{caption}">'
        f"</a><figcaption>{caption}</figcaption></figure>"
    )


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(value: Any) -> str:
        if isinstance(value, float):
            bar = (
                f'<span class="bar-value" style="width:{max(0.0, min(value, 1.0)) * 60:.0f}px"></span> '
                if value <= 1
                else ""
            )
            return f'<td class="num">{bar}{value:.3f}</td>'
        if value is None:
            return '<td class="num">-</td>'
        return f"<td>{html.escape(str(value))}</td>"

    if not any(name.strip() for name in header):
        raise ValueError("a table needs a header naming its columns")
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(cell(v) for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def side_by_side(maps: MapPictures, results: Mapping[str, StageResult], years: Sequence[int]) -> str:
    """Labels | prediction | errors for each year, so a reader sees where the map goes wrong."""
    rows = []
    for year in years:
        evaluation, prediction = results[f"evaluate-{year}"].catalog, results[f"predict-{year}"].catalog
        cards = [
            (maps.labels(evaluation, prediction), f"Reference labels, {year}"),
            (maps.classes(prediction), f"Predicted land cover, {year}"),
            (maps.errors(evaluation), f"Errors of the {year} map"),
        ]
        rows.append(f"<h3>{year}</h3>" + _map_row(cards, columns=3))
    return "".join(rows)


def model_comparison(results: Mapping[str, StageResult], years: Sequence[int], timings: Mapping[str, float]) -> str:
    """The U-Net's maps beside the LightGBM baseline's maps, scored by the same evaluate stage against the
    same labels of the unseen AOI; without LightGBM maps, the U-Net's columns alone and a note."""
    deep = {year: results[f"evaluate-{year}"].extra for year in years}
    lightgbm = {
        year: results[f"evaluate-lightgbm-{year}"].extra for year in years if f"evaluate-lightgbm-{year}" in results
    }
    header = ["class"]
    for year in years:
        header.append(f"U-Net {year}")
        if year in lightgbm:
            header.append(f"LightGBM {year}")

    def row(label: str, key: str, name: str | None = None) -> list[Any]:
        """`extra[key]` (or `extra[key][name]`) of each map, U-Net then LightGBM per year."""
        cells: list[Any] = [label]
        for year in years:
            for scores in (deep[year], lightgbm.get(year)):
                if scores is not None:
                    cells.append(scores.get(key) if name is None else (scores.get(key) or {}).get(name))
        return cells

    names = sorted({name for scores in [*deep.values(), *lightgbm.values()] for name in scores.get("iou", {})})
    rows = [row(name, "iou", name) for name in names]
    rows.append(row("mIoU", "miou"))
    rows.append(row("overall accuracy", "overall_accuracy"))
    if not lightgbm:
        return _table(header, rows) + '<p class="muted">No LightGBM maps in this run: the U-Net\'s maps alone.</p>'
    if "train" in timings and "train-lightgbm" in timings:
        seconds = ["training (s)"]
        for year in years:
            seconds.append(f"{timings['train']:.1f}")
            if year in lightgbm:
                seconds.append(f"{timings['train-lightgbm']:.1f}")
        rows.append(seconds)
    return _table(header, rows)


def change_rows(change: StageResult, change_scores: StageResult) -> list[list[Any]]:
    extra, scores = change.extra, change_scores.extra
    rows: list[list[Any]] = [
        ["changed area (ha)", f"{extra['changed_ha']:.1f}"],
        ["changed share of the map", f"{100 * extra['changed_fraction']:.1f} %"],
    ]
    if extra.get("method") is not None:
        rows.append(["decision", str(extra["method"])])
    if extra.get("raw_changed_ha") is not None and extra.get("method") != "raw":
        rows.append(["pixel-by-pixel comparison would say (ha)", f"{extra['raw_changed_ha']:.1f}"])
    rows += [
        ["change precision vs labels", scores.get("change_precision")],
        ["change recall vs labels", scores.get("change_recall")],
        ["change F1 vs labels", scores.get("change_f1")],
        ["change IoU vs labels", scores.get("change_iou")],
        ["from->to right on truly changed pixels", scores.get("transition_accuracy")],
    ]
    return rows


def _model_metrics(result: StageResult) -> dict[str, Any]:
    """A model item's metrics.json (chip- and map-level validation scores)."""
    href = storage.join_href(storage.normalize_href(result.catalog).rsplit("/", 1)[0], result.items[0], "metrics.json")
    metrics: dict[str, Any] = json.loads(storage.read_bytes(href, what="model metrics"))
    return metrics


def render(
    output: str, results: Mapping[str, StageResult], *, years: tuple[int, int], timings: Mapping[str, float]
) -> str:
    first, last = years
    train, change, change_scores = results["train"], results["change"], results["evaluate-change"]
    metrics = _model_metrics(train)
    lightgbm = _model_metrics(results["train-lightgbm"]).get("unet", {}) if "train-lightgbm" in results else None

    def theirs(row: dict[str, Any]) -> Any:
        if lightgbm is None:
            return row["baseline_iou"]
        return lightgbm.get("per_class", {}).get(row["class"], {}).get("iou")

    comparison = [(row["class"], row["unet_iou"], theirs(row)) for row in metrics.get("comparison", [])]
    transitions = [(t["from"], t["to"], f"{t['ha']:.1f}") for t in change.extra["top_transitions"]]
    maps = MapPictures(output)
    true_colour = maps.picture(
        results[f"features-{last}"].catalog, "thumbnail", note="Sentinel-2 B4, B3, B2; reflectance 0 to 0.3"
    )
    pictures = [
        (true_colour, f"True colour, prediction AOI, {last} (interpolated features)"),
        (maps.change(change.catalog), f"Change {first} → {last}"),
        (maps.classes(results[f"predict-{first}"].catalog), f"Predicted land cover, {first}"),
        (maps.classes(results[f"predict-{last}"].catalog), f"Predicted land cover, {last}"),
    ]
    diagnostics = [
        _chart(
            _asset(output, results[f"evaluate-{last}"].catalog, "confusion_matrix"),
            f"Confusion matrix of the {last} map against its labels (rows: truth)",
        ),
        _chart(_asset(output, train.catalog, "loss"), "Training and validation loss per epoch"),
        _chart(_asset(output, train.catalog, "confusion_matrix"), "Validation confusion matrix of the U-Net"),
    ]
    timing_rows = [[name, f"{seconds:.1f}"] for name, seconds in timings.items()]
    sections = [
        "<h1>Deep LULC demo</h1>",
        '<p class="muted">Synthetic Sentinel-2 L2A time series &rarr; cube &rarr; features &rarr; chips &rarr; '
        "U-Net &rarr; maps of an unseen AOI for two years &rarr; change &rarr; accuracy. The maps are drawn from "
        'the published COGs; <a href="catalog.json">catalog.json</a> is the root of all outputs.</p>',
        "<h2>Maps</h2>" + _map_row(pictures, columns=_columns(pictures)),
        "<h2>Labels, prediction and errors on the unseen AOI</h2>" + side_by_side(maps, results, years),
        "<h2>Map accuracy on the unseen AOI: U-Net vs LightGBM as maps (IoU per class)</h2>"
        + model_comparison(results, years, timings),
        "<h2>U-Net vs LightGBM pixel classifier (validation chips, IoU)</h2>"
        + _table(["class", "U-Net", "LightGBM"], comparison),
        f"<h2>Change {first} &rarr; {last}</h2>"
        + _table(["measure", "value"], change_rows(change, change_scores))
        + _table(["from", "to", "hectares"], transitions),
        '<h2>Diagnostics</h2><div class="charts">' + "".join(diagnostics) + "</div>",
        "<h2>Time per stage (s)</h2>" + _table(["stage", "seconds"], timing_rows),
    ]
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Deep LULC demo report</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{STYLE}</style></head>'
        f"<body>{''.join(sections)}</body></html>\n"
    )


def write_report(
    output: str, results: Mapping[str, StageResult], *, years: tuple[int, int], timings: Mapping[str, float]
) -> str:
    page = render(output, results, years=years, timings=timings)
    return write_file_atomically(storage.join_href(output, REPORT_NAME), page.encode("utf-8"))
