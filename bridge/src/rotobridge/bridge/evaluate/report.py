"""What an evaluation leaves behind: the seed's table in Markdown, CSV and JSON detail.

`summary.json` is also what a later run names as its baseline (`--baseline`), so the
table's delta column says whether a model or an update moved J&F. Scores are written as
fractions in the files and as percentages (one decimal, as the papers print) in the table.
Plots (matplotlib, Agg): per-sequence J&F bars, and for the interactive protocol J&F
against the number of annotated frames (the paper's fig. 5).
"""

from __future__ import annotations

import csv
import json
import math
import os
from typing import Any, Callable, Iterable, Sequence

from rotobridge.errors import DatasetError

from ..atomic import atomic_file
from .scores import Reappearance, SequenceScores, Summary, reappearance, summarise


def _pct(value: float) -> str:
    return "—" if math.isnan(value) else f"{100 * value:.1f}"


def summary(
    dataset: str, sequences: Sequence[SequenceScores], *, convention: str, min_absent: int = 1, **extra: Any
) -> dict[str, Any]:
    """The JSON summary of one dataset's scores."""
    total: Summary = summarise(sequences)
    back: Reappearance = reappearance(sequences, min_absent)
    return {
        "dataset": dataset,
        "convention": convention,
        "jf": total.jf,
        "j": total.j,
        "f": total.f,
        "objects": total.objects,
        "sequences": {
            s.name: {"jf": t.jf, "j": t.j, "f": t.f} for s in sequences for t in [summarise([s])]
        },
        "reappearance": {
            "min_absent": min_absent,
            "tracks": back.tracks,
            "with_disappearance": back.with_disappearance,
            "share_with_disappearance": back.share,
            "reappearances": back.reappearances,
            "jf_after_reappearance": back.jf,
        },
        **extra,
    }


def load_summary(path: str) -> dict[str, Any]:
    try:
        with open(path) as f:
            data = json.load(f)
        float(data["jf"])
    except FileNotFoundError:
        raise DatasetError(f"missing baseline summary: {path}") from None
    except (ValueError, KeyError, TypeError):
        raise DatasetError(f"{path} is not an evaluation summary.json (no 'jf')") from None
    assert isinstance(data, dict)
    return data


def markdown(rows: Iterable[dict[str, Any]], baseline: dict[str, Any] | None = None) -> str:
    """The seed's table: dataset, J&F, J, F, and the J&F delta against a baseline run."""
    lines = ["| dataset | J&F | J | F | Δ J&F |", "|---|---:|---:|---:|---:|"]
    for row in rows:
        delta = "—"
        if baseline is not None and not math.isnan(row["jf"]):
            delta = f"{100 * (row['jf'] - float(baseline['jf'])):+.1f}"
        lines.append(f"| {row['dataset']} | {_pct(row['jf'])} | {_pct(row['j'])} | {_pct(row['f'])} | {delta} |")
    return "\n".join(lines) + "\n"


def _write_text(path: str, text: str) -> None:
    with atomic_file(path) as tmp, open(tmp, "w", newline="") as f:
        f.write(text)


def _csv(rows: Iterable[Sequence[object]]) -> str:
    import io

    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def _plot(path: str, draw: Callable[[Any], None]) -> None:
    """Draw on a fresh Axes and write the PNG atomically (no pyplot: no global state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4), dpi=100, layout="tight")
    FigureCanvasAgg(figure)
    draw(figure.add_subplot())
    with atomic_file(path) as tmp:
        figure.savefig(tmp, format="png")


def plot_sequences(path: str, data: dict[str, Any]) -> None:
    """J&F per sequence as bars, the dataset's J&F as a line."""
    names = list(data["sequences"])
    values = [100 * data["sequences"][n]["jf"] for n in names]

    def draw(ax: Any) -> None:
        ax.bar(range(len(names)), values, color="#4477aa")
        ax.axhline(100 * data["jf"], color="#cc3311", label=f"{data['dataset']}: J&F {_pct(data['jf'])}")
        ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
        ax.set_ylim(0, 100)
        ax.set_ylabel("J&F")
        ax.legend(loc="lower right")

    _plot(path, draw)


def plot_curve(path: str, points: Sequence[dict[str, float]], label: str) -> None:
    """J&F against the number of annotated frames (interactive protocol)."""

    def draw(ax: Any) -> None:
        ax.plot([p["k"] for p in points], [100 * p["jf"] for p in points], marker="o", label=label)
        ax.set_xlabel("annotated frames (3 clicks each)")
        ax.set_ylabel("J&F")
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")

    _plot(path, draw)


def write_interactive(out: str, data: dict[str, Any]) -> str:
    """Write summary.json, report.md, curve.csv and curve.png for the interactive protocol."""
    os.makedirs(out, exist_ok=True)
    points = data["curve"]
    _write_text(os.path.join(out, "summary.json"), json.dumps(data, indent=2) + "\n")
    lines = ["| annotated frames | J&F | J | F |", "|---:|---:|---:|---:|"]
    lines += [f"| {int(p['k'])} | {_pct(p['jf'])} | {_pct(p['j'])} | {_pct(p['f'])} |" for p in points]
    table = f"{data['dataset']} ({data['mode']}, 3 clicks per frame)\n\n" + "\n".join(lines) + "\n"
    _write_text(os.path.join(out, "report.md"), table)
    _write_text(os.path.join(out, "curve.csv"), _csv([["k", "J&F", "J", "F"]] + [[int(p["k"]), p["jf"], p["j"], p["f"]] for p in points]))
    plot_curve(os.path.join(out, "curve.png"), points, f"{data['dataset']} ({data['mode']})")
    return table


def write(out: str, data: dict[str, Any], sequences: Sequence[SequenceScores], baseline: dict[str, Any] | None) -> str:
    """Write summary.json, report.md, objects.csv, frames.csv and sequences.png under `out`;
    returns the table."""
    os.makedirs(out, exist_ok=True)
    if baseline is not None:
        data = {**data, "baseline_jf": float(baseline["jf"])}
    _write_text(os.path.join(out, "summary.json"), json.dumps(data, indent=2) + "\n")
    back = data["reappearance"]
    table = markdown([data], baseline) + (
        f"\nTracks with a disappearance: {_pct(back['share_with_disappearance'])}% "
        f"({back['with_disappearance']} of {back['tracks']}); J&F after a reappearance "
        f"(>= {back['min_absent']} absent frames): {_pct(back['jf_after_reappearance'])} "
        f"({back['reappearances']} reappearances)\n"
    )
    _write_text(os.path.join(out, "report.md"), table)
    objects: list[list[object]] = [["sequence", "object", "J", "F", "J&F"]]
    frames: list[list[object]] = [["sequence", "frame", "object", "J", "F"]]
    for seq in sequences:
        for obj, (j, f) in seq.per_object().items():
            objects.append([seq.name, obj, j, f, (j + f) / 2])
        frames.extend([seq.name, s.frame, s.obj, s.j, s.f] for s in seq.frames)
    _write_text(os.path.join(out, "objects.csv"), _csv(objects))
    _write_text(os.path.join(out, "frames.csv"), _csv(frames))
    if data["sequences"]:
        plot_sequences(os.path.join(out, "sequences.png"), data)
    return table
