"""The demo's `report.html`: one static page beside the root catalog, pictures first, built from STAC assets.

Every picture is an asset some stage already published (previews, the confusion matrix, the loss curve),
linked by a relative path, so the page works from a folder, a bucket website or a zip file, with no server.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from typing import Any

from deep_lulc.shared.io import storage
from deep_lulc.shared.io.publish import write_file_atomically
from deep_lulc.shared.io.stac import items_of, read_stac
from deep_lulc.shared.stage.contract import StageResult

REPORT_NAME = "report.html"

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#1d2530}
h1{margin-bottom:.2rem}h2{margin-top:2.2rem;border-bottom:1px solid #dde3ea;padding-bottom:.3rem}
.muted{color:#5c6b7a}.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(320px,1fr));gap:1.2rem;align-items:start}
figure{margin:0;background:#f6f8fa;border:1px solid #e3e8ee;border-radius:8px;padding:.6rem}
figure img{width:100%;height:auto;image-rendering:pixelated}
figcaption{font-size:.9rem;color:#3b4a59;margin-top:.3rem}
table{border-collapse:collapse;margin:.6rem 0;font-size:.92rem}
th,td{padding:.25rem .7rem;border-bottom:1px solid #e3e8ee}
th{text-align:left;background:#f6f8fa}td.num{text-align:right;font-variant-numeric:tabular-nums}
.bar{display:inline-block;height:.7rem;background:#2f81f7;border-radius:2px;vertical-align:middle}
.triple{display:grid;grid-template-columns:repeat(3,1fr);gap:.8rem;align-items:start;margin-bottom:1rem}
"""


def _asset(output: str, catalog: str, key: str) -> str | None:
    """The asset `key` of the first item under `catalog`, as a path relative to the demo's root folder."""
    for item in items_of(read_stac(catalog)):
        if key in item.assets:
            href = storage.normalize_href(item.assets[key].get_absolute_href() or "")
            base = storage.normalize_href(output).rstrip("/") + "/"
            return href.removeprefix(base) if href.startswith(base) else href
    return None


def _figure(src: str | None, caption: str) -> str:
    if src is None:
        return ""
    return (
        f'<figure><a href="{html.escape(src)}"><img src="{html.escape(src)}" alt="{html.escape(caption)}" '
        f'loading="lazy"></a><figcaption>{html.escape(caption)}</figcaption></figure>'
    )


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(value: Any) -> str:
        if isinstance(value, float):
            bar = (
                f'<span class="bar" style="width:{max(0.0, min(value, 1.0)) * 60:.0f}px"></span> ' if value <= 1 else ""
            )
            return f'<td class="num">{bar}{value:.3f}</td>'
        if value is None:
            return '<td class="num">-</td>'
        return f"<td>{html.escape(str(value))}</td>"

    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(cell(v) for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def side_by_side(output: str, results: Mapping[str, StageResult], years: Sequence[int]) -> str:
    """Labels | prediction | errors for each year, so a reader sees where the map goes wrong."""
    rows = []
    for year in years:
        evaluation = results[f"evaluate-{year}"].catalog
        figures = [
            _figure(_asset(output, evaluation, "labels_preview"), f"Reference labels, {year}"),
            _figure(_asset(output, results[f"predict-{year}"].catalog, "thumbnail"), f"Predicted land cover, {year}"),
            _figure(
                _asset(output, evaluation, "errors_preview"),
                f"Errors, {year}: green right, red wrong, grey labelled but not mapped",
            ),
        ]
        rows.append(f"<h3>{year}</h3>" + '<div class="triple">' + "".join(figures) + "</div>")
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
    pictures = [
        _figure(
            _asset(output, results[f"features-{last}"].catalog, "thumbnail"),
            f"True colour, prediction AOI, {last} (interpolated features)",
        ),
        _figure(_asset(output, results[f"predict-{first}"].catalog, "thumbnail"), f"Predicted land cover, {first}"),
        _figure(_asset(output, results[f"predict-{last}"].catalog, "thumbnail"), f"Predicted land cover, {last}"),
        _figure(_asset(output, change.catalog, "thumbnail"), f"Change {first} -> {last}"),
    ]
    diagnostics = [
        _figure(
            _asset(output, results[f"evaluate-{last}"].catalog, "confusion_matrix"),
            f"Confusion matrix of the {last} map against its labels (rows: truth)",
        ),
        _figure(_asset(output, train.catalog, "loss"), "Training and validation loss per epoch"),
        _figure(_asset(output, train.catalog, "confusion_matrix"), "Validation confusion matrix of the U-Net"),
    ]
    timing_rows = [[name, f"{seconds:.1f}"] for name, seconds in timings.items()]
    sections = [
        "<h1>Deep LULC demo</h1>",
        '<p class="muted">Synthetic Sentinel-2 L2A time series &rarr; cube &rarr; features &rarr; chips &rarr; '
        "U-Net &rarr; maps of an unseen AOI for two years &rarr; change &rarr; accuracy. Every picture below is "
        'a STAC asset; <a href="catalog.json">catalog.json</a> is the root of all outputs.</p>',
        '<h2>Maps</h2><div class="grid">' + "".join(pictures) + "</div>",
        "<h2>Labels, prediction and errors on the unseen AOI</h2>" + side_by_side(output, results, years),
        "<h2>Map accuracy on the unseen AOI: U-Net vs LightGBM as maps (IoU per class)</h2>"
        + model_comparison(results, years, timings),
        "<h2>U-Net vs LightGBM pixel classifier (validation chips, IoU)</h2>"
        + _table(["class", "U-Net", "LightGBM"], comparison),
        f"<h2>Change {first} &rarr; {last}</h2>"
        + _table(["", ""], change_rows(change, change_scores))
        + _table(["from", "to", "hectares"], transitions),
        '<h2>Diagnostics</h2><div class="grid">' + "".join(diagnostics) + "</div>",
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
