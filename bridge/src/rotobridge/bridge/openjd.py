"""Open Job Description job templates (AWS Deadline Cloud, `openjd run`) for recipes.

One step per farm task (farm.py): a chunk's step depends on the previous chunk of its
chain, which OpenJD can only say between steps (its tasks within a step may run in
parallel). The job parameters are what a TD changes per submission without regenerating
the job: the device, the `rotobridge` command on the workers and the checkpoint interval;
the frames and chunk size shape the steps, so they are given when the template is made.
Every template is validated with `openjd-model` before it is written.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

from openjd.model import DecodeValidationError, decode_job_template

from rotobridge.errors import FarmError

from .farm import Task

SPECIFICATION = "jobtemplate-2023-09"
DEVICES = ("auto", "cuda", "mps", "cpu")


def job_template(tasks: Sequence[Task], *, name: str, device: str = "auto", gpu: bool = False) -> dict[str, Any]:
    """The template as a JSON-ready dict, validated; `gpu` asks for hosts with a GPU."""
    if device not in DEVICES:
        raise FarmError(f"device {device!r} is not one of {', '.join(DEVICES)}")
    steps = []
    for task in tasks:
        command = task.command("{{Param.Rotobridge}}", "{{Param.Device}}", 0)
        command[-1] = "{{Param.CheckpointEvery}}"
        step: dict[str, Any] = {
            "name": task.name,
            "script": {"actions": {"onRun": {"command": command[0], "args": command[1:]}}},
        }
        if task.after:
            step["dependencies"] = [{"dependsOn": task.after}]
        if gpu:
            step["hostRequirements"] = {"amounts": [{"name": "amount.worker.gpu", "min": 1}]}
        steps.append(step)
    template: dict[str, Any] = {
        "specificationVersion": SPECIFICATION,
        "name": name,
        "parameterDefinitions": [
            {"name": "Device", "type": "STRING", "default": device, "allowedValues": list(DEVICES),
             "description": "Where SAM 2 runs"},
            {"name": "Rotobridge", "type": "STRING", "default": "rotobridge",
             "description": "The rotobridge command on the workers (a path if it is not on PATH)"},
            {"name": "CheckpointEvery", "type": "INT", "default": 10, "minValue": 1,
             "description": "Frames between tracking checkpoints"},
        ],
        "steps": steps,
    }
    validate(template)
    return template


def validate(template: dict[str, Any]) -> None:
    """FarmError naming the problem unless openjd-model accepts the template."""
    try:
        decode_job_template(template=template)
    except DecodeValidationError as exc:
        raise FarmError(f"the OpenJD job template is not valid: {exc}") from None


def dumps(template: dict[str, Any]) -> str:
    return json.dumps(template, indent=2) + "\n"
