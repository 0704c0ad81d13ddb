"""Area estimates: what `area` publishes (area.json, area.csv, report.html and an item) from a labelled sample.

area.json is the interface analysts and other tools read::

    {"classes": {NAME: {"value", "mapped_ha", "estimated_ha", "ci95_ha", "users_accuracy", "users_ci95",
                        "producers_accuracy", "producers_ci95", "sample_count"}},
     "overall_accuracy", "overall_ci95", "total_ha",
     "transitions": {...same shape, change maps only...}, "error_matrix": {...}, ...}

`ci95_*` are half-widths: the interval is the estimate +- the value. An accuracy is null where it is
undefined (a user's accuracy of a class the map never shows, a producer's of one the sample never found).
"""

from __future__ import annotations

import csv
import html
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pystac

from deep_lulc.shared.io.stac import stamp_provenance
from deep_lulc.shared.lulc.estimation import Z95, Estimate, SampleEstimates
from deep_lulc.shared.products.strata import StrataMap

AREA_JSON_FILE, AREA_CSV_FILE, REPORT_FILE = "area.json", "area.csv", "report.html"
AREA_JSON_ASSET, AREA_CSV_ASSET, REPORT_ASSET = "area_json", "area_csv", "report"
METHOD = (
    "stratified estimators of Olofsson et al. (2014), Remote Sensing of Environment 148:42-57; strata: the map's "
    "classes (a change map's transitions); 95 % intervals: estimate +- 1.96 standard errors"
)
_SUMMARY_PROPERTY = "deep-lulc:area"
CSV_COLUMNS = (
    "kind",
    "name",
    "value",
    "mapped_ha",
    "estimated_ha",
    "ci95_ha",
    "users_accuracy",
    "users_ci95",
    "producers_accuracy",
    "producers_ci95",
    "sample_count",
)


@dataclass(frozen=True)
class Category:
    """A reporting category: its name and the value the map (or a change map's code) gives it."""

    name: str
    value: int


def _number(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(float(value), digits)


def _accuracy(estimate: Estimate | None) -> tuple[float | None, float | None]:
    if estimate is None:
        return None, None
    return _number(estimate.value), _number(estimate.ci95)


def category_table(
    categories: Sequence[Category], estimates: SampleEstimates, *, total_ha: float
) -> dict[str, dict[str, Any]]:
    """The per-category records of area.json, for the categories the map shows or the sample found."""
    table: dict[str, dict[str, Any]] = {}
    found = estimates.counts.sum(axis=0)
    for index, (category, row) in enumerate(zip(categories, estimates.categories, strict=True)):
        if row.mapped_share == 0 and found[index] == 0:
            continue
        users, users_ci = _accuracy(row.users)
        producers, producers_ci = _accuracy(row.producers)
        table[category.name] = {
            "value": category.value,
            "mapped_ha": _number(row.mapped_share * total_ha),
            "estimated_ha": _number(row.share.value * total_ha),
            "ci95_ha": _number(row.share.ci95 * total_ha),
            "users_accuracy": users,
            "users_ci95": users_ci,
            "producers_accuracy": producers,
            "producers_ci95": producers_ci,
            "sample_count": row.sample_count,
        }
    return table


def error_matrix(categories: Sequence[Category], estimates: SampleEstimates) -> dict[str, Any]:
    """The error matrix in estimated area proportions (and in sample units), over the categories shown."""
    keep = [
        index
        for index, row in enumerate(estimates.categories)
        if row.mapped_share > 0 or estimates.counts[:, index].sum() > 0
    ]
    selected = np.ix_(keep, keep)
    return {
        "rows": "map",
        "columns": "reference",
        "names": [categories[index].name for index in keep],
        "proportions": np.round(estimates.proportions[selected], 8).tolist(),
        "counts": estimates.counts[selected].astype(int).tolist(),
    }


def area_document(
    strata: StrataMap,
    *,
    sample_href: str,
    total_ha: float,
    classes: tuple[Sequence[Category], SampleEstimates],
    transitions: tuple[Sequence[Category], SampleEstimates] | None,
    labelled: int,
    unlabelled: int,
) -> dict[str, Any]:
    """area.json: classes (a change map's later period), overall accuracy, total, and for a change map its
    transitions; the error matrix is of the strata (classes, or transitions)."""
    class_categories, class_estimates = classes
    overall = (transitions or classes)[1].overall
    document: dict[str, Any] = {
        "classes": category_table(class_categories, class_estimates, total_ha=total_ha),
        "overall_accuracy": _number(overall.value),
        "overall_ci95": _number(overall.ci95),
        "total_ha": _number(total_ha),
    }
    if transitions is not None:
        document["transitions"] = category_table(transitions[0], transitions[1], total_ha=total_ha)
    document["error_matrix"] = error_matrix(*(transitions or classes))
    document["map"] = strata.identifier
    document["map_kind"] = strata.kind
    document["sample"] = sample_href
    document["sample_size"] = {"labelled": labelled, "unlabelled": unlabelled}
    document["pixel_area_m2"] = strata.pixel_area_m2
    document["method"] = METHOD
    document["z"] = Z95
    if strata.kind == "transitions":
        document["classes_note"] = "classes: areas of the later period, estimated from the transition sample"
    return document


def write_area_files(folder: Path, document: dict[str, Any]) -> None:
    """area.json, area.csv (one row per class and transition) and report.html."""
    (folder / AREA_JSON_FILE).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    with (folder / AREA_CSV_FILE).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for kind in ("classes", "transitions"):
            for name, record in document.get(kind, {}).items():
                writer.writerow([kind, name, *(_cell(record[column]) for column in CSV_COLUMNS[2:])])
    (folder / REPORT_FILE).write_text(report_html(document), encoding="utf-8")


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def _pm(value: float | None, half: float | None, *, digits: int) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f} &plusmn; {half or 0:,.{digits}f}"


def _rows(table: dict[str, dict[str, Any]]) -> str:
    lines = []
    for name, r in table.items():
        lines.append(
            "<tr>"
            f"<td>{html.escape(name)}</td><td>{r['mapped_ha']:,.1f}</td>"
            f"<td>{_pm(r['estimated_ha'], r['ci95_ha'], digits=1)}</td>"
            f"<td>{_pm(r['users_accuracy'], r['users_ci95'], digits=3)}</td>"
            f"<td>{_pm(r['producers_accuracy'], r['producers_ci95'], digits=3)}</td>"
            f"<td>{r['sample_count']}</td></tr>"
        )
    return "\n".join(lines)


def _table(title: str, table: dict[str, dict[str, Any]]) -> str:
    return (
        f"<h2>{html.escape(title)}</h2>\n<table>\n<tr><th>category</th><th>pixel-counted ha</th>"
        "<th>error-adjusted ha (95 % CI)</th><th>user's accuracy</th><th>producer's accuracy</th>"
        f"<th>sample points</th></tr>\n{_rows(table)}\n</table>"
    )


def _matrix(matrix: dict[str, Any]) -> str:
    names = [html.escape(name) for name in matrix["names"]]
    head = "".join(f"<th>{name}</th>" for name in names)
    body = "\n".join(
        f"<tr><th>{name}</th>" + "".join(f"<td>{value:.4f}</td>" for value in row) + "</tr>"
        for name, row in zip(names, matrix["proportions"], strict=True)
    )
    return (
        "<h2>Error matrix in estimated area proportions (rows: map, columns: reference)</h2>\n"
        f"<table>\n<tr><th></th>{head}</tr>\n{body}\n</table>"
    )


def report_html(document: dict[str, Any]) -> str:
    """The tables side by side with the pixel counts, readable without any script or network."""
    parts = [
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>",
        f"<title>Area estimates: {html.escape(str(document['map']))}</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:2em}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th:first-child{text-align:left}</style>",
        "</head><body>",
        f"<h1>Error-adjusted areas of {html.escape(str(document['map']))}</h1>",
        f"<p>Total mapped area {document['total_ha']:,.1f} ha; overall accuracy "
        f"{_pm(document['overall_accuracy'], document['overall_ci95'], digits=3)} (95 % CI); "
        f"{document['sample_size']['labelled']} labelled sample points.</p>",
        f"<p>Method: {html.escape(document['method'])}. Pixel counts are biased by the map's errors; the "
        "error-adjusted areas are not, and their intervals say how sure they are.</p>",
    ]
    if "transitions" in document:
        parts.append(_table("Transitions", document["transitions"]))
        parts.append(_table("Classes of the later period", document["classes"]))
    else:
        parts.append(_table("Classes", document["classes"]))
    parts.append(_matrix(document["error_matrix"]))
    parts.append("</body></html>\n")
    return "\n".join(parts)


def area_item(
    identifier: str, *, folder: Path, strata: StrataMap, document: dict[str, Any], derived_from: list[str]
) -> pystac.Item:
    """The estimate's item: the map's footprint and period, the headline numbers, the three files."""
    summary = {
        "overall_accuracy": document["overall_accuracy"],
        "overall_ci95": document["overall_ci95"],
        "total_ha": document["total_ha"],
        "sample_size": document["sample_size"]["labelled"],
        "method": METHOD,
    }
    item = strata.product_item(identifier, {_SUMMARY_PROPERTY: summary})
    files = (
        (
            AREA_JSON_ASSET,
            AREA_JSON_FILE,
            "Error-adjusted areas and accuracies with 95 % intervals",
            pystac.MediaType.JSON,
        ),
        (AREA_CSV_ASSET, AREA_CSV_FILE, "The same table as CSV", "text/csv"),
        (REPORT_ASSET, REPORT_FILE, "Report: estimates beside pixel counts, error matrix", pystac.MediaType.HTML),
    )
    for key, name, title, media_type in files:
        item.add_asset(key, pystac.Asset(str(folder / name), title=title, media_type=media_type, roles=["data"]))
    stamp_provenance(item, derived_from=derived_from)
    return item
