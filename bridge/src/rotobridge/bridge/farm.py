"""How a recipe becomes farm tasks: tracking chains of chunks, one chain per propagation direction.

SAM 2 tracks sequentially, so a chunk far from the prompt would re-track from it. Here each
chunk is one `rotobridge render --frames A-B --resume` task that continues from the
checkpoint the previous chunk of its chain saved (checkpoint.py), and depends on it. The
forward chain covers the prompt frame onwards, the backward chain the frames before it in
descending order; the two chains run in parallel. For "both", the first backward chunk
first tracks forward up to the engine's memory reach (16 frames) past the start — or
continues the forward chain's checkpoint when that is already further — because the
backward pass reads those frames' memory; so a shot costs at most 17 extra tracked frames
and every matte equals the one a whole-shot `rotobridge render` writes.

Objects are not split into parallel tasks: sam2 1.1.0 keeps a separate output dict per
object, but `propagate_in_video` still runs all objects frame by frame and shares image
features, and a split would make each task decode and encode every frame again, and need
a merge step; one task per chunk keeps one EXR per frame written once.

Frames a recipe's direction never reaches (before a forward-only start) get empty mattes
in one task of their own, with no dependency.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from typing import Sequence

from fileseq.frameset import FrameSet

from rotobridge import recipe as recipes
from rotobridge.errors import FarmError

from .render import select_frames


@dataclass(frozen=True)
class Task:
    """One farm task: render `frames` of a recipe, after the task named `after` (if any)."""

    shot: str
    recipe: str
    chain: str  # "forward", "backward" or "untracked"
    frames: tuple[int, ...]
    after: str | None = None

    @property
    def frame_range(self) -> str:
        """The frames as a range `rotobridge render --frames` takes, e.g. 1011-1020."""
        return str(FrameSet(list(self.frames)))

    @property
    def name(self) -> str:
        return f"{self.shot}-{self.chain}-{self.frames[0]}-{self.frames[-1]}"

    def command(self, rotobridge: str = "rotobridge", device: str = "auto", checkpoint_every: int = 10) -> list[str]:
        return [
            rotobridge, "render", self.recipe, "--frames", self.frame_range, "--device", device,
            "--resume", "--checkpoint-every", str(checkpoint_every),
        ]


def shot_name(recipe_path: str) -> str:
    """A shot's task name: the recipe file's name without .json (letters, digits, - and _)."""
    stem = os.path.basename(recipe_path)
    stem = stem[:-5] if stem.lower().endswith(".json") else stem
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in stem) or "shot"


def plan(recipe_path: str, *, frames: str | None = None, chunk_size: int = 10) -> list[Task]:
    """The tasks of one recipe, dependencies before dependants."""
    if chunk_size < 1:
        raise FarmError(f"chunk size must be 1 or more, not {chunk_size}")
    recipe = recipes.load(recipe_path)
    plate_frames = [int(f) for f in FrameSet(recipe.plate.frames)]
    wanted = select_frames(plate_frames, frames)
    direction = recipe.propagate.direction
    start = recipe.propagate.start
    if start is None:
        prompted = recipe.prompt_frames()
        start = prompted[-1] if direction == "backward" else prompted[0]
    shot, path = shot_name(recipe_path), os.path.abspath(recipe_path)
    forward = [f for f in wanted if f >= start] if direction in ("both", "forward") else []
    backward = sorted((f for f in wanted if f < start), reverse=True) if direction in ("both", "backward") else []
    if direction == "backward":
        backward = sorted((f for f in wanted if f <= start), reverse=True)
    untracked = sorted(set(wanted) - set(forward) - set(backward))
    tasks: list[Task] = []
    for chain, chain_frames in (("forward", forward), ("backward", backward)):
        after = None
        for at in range(0, len(chain_frames), chunk_size):
            chunk = tuple(sorted(chain_frames[at : at + chunk_size]))
            task = Task(shot, path, chain, chunk, after)
            tasks.append(task)
            after = task.name
    if untracked:
        tasks.append(Task(shot, path, "untracked", tuple(untracked)))
    return tasks


def plan_all(recipe_paths: Sequence[str], *, frames: str | None = None, chunk_size: int = 10) -> list[Task]:
    """Tasks of several recipes (a shot list); shot names must differ."""
    tasks: list[Task] = []
    seen: dict[str, str] = {}
    for path in recipe_paths:
        shot = shot_name(path)
        if shot in seen:
            raise FarmError(f"{path} and {seen[shot]} give the same shot name {shot!r}: rename one recipe file")
        seen[shot] = path
        tasks += plan(path, frames=frames, chunk_size=chunk_size)
    return tasks


def shell(command: Sequence[str]) -> str:
    """A command line for a task's shell, each word quoted."""
    return " ".join(shlex.quote(word) for word in command)
