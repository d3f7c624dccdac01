"""What an evaluation leaves behind: the seed's table in Markdown, CSV and JSON detail.

`summary.json` is also what a later run names as its baseline (`--baseline`), so the
table's delta column says whether a model or an update moved J&F. Scores are written as
fractions in the files and as percentages (one decimal, as the papers print) in the table.
"""

from __future__ import annotations

import csv
import json
import math
import os
from typing import Any, Iterable, Sequence

from rotobridge.errors import DatasetError

from ..mattes import atomic_file
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


def write(out: str, data: dict[str, Any], sequences: Sequence[SequenceScores], baseline: dict[str, Any] | None) -> str:
    """Write summary.json, report.md, objects.csv and frames.csv under `out`; returns the table."""
    os.makedirs(out, exist_ok=True)
    if baseline is not None:
        data = {**data, "baseline_jf": float(baseline["jf"])}
    _write_text(os.path.join(out, "summary.json"), json.dumps(data, indent=2) + "\n")
    table = markdown([data], baseline)
    _write_text(os.path.join(out, "report.md"), table)
    objects: list[list[object]] = [["sequence", "object", "J", "F", "J&F"]]
    frames: list[list[object]] = [["sequence", "frame", "object", "J", "F"]]
    for seq in sequences:
        for obj, (j, f) in seq.per_object().items():
            objects.append([seq.name, obj, j, f, (j + f) / 2])
        frames.extend([seq.name, s.frame, s.obj, s.j, s.f] for s in seq.frames)
    _write_text(os.path.join(out, "objects.csv"), _csv(objects))
    _write_text(os.path.join(out, "frames.csv"), _csv(frames))
    return table
