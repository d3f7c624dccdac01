"""Small benchmark folders written at test time, and a model test double that follows prompts.

Each scene is flat-coloured discs moving over a grey background; an `Obj` says where each
object is on each frame (absent frames included), so the truth is known exactly and
written with Pillow / OpenImageIO directly (not through the code under test).
`ColourKeyTrackerDouble` is a TEST DOUBLE of the model, never a default: it tracks an
object by the plate colour under its prompt, so on these scenes it follows its prompts
perfectly and J&F is known (1) without a trained model.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import OpenImageIO as oiio
import torch
from PIL import Image

from rotobridge.bridge.engine import FrameResult
from rotobridge.bridge.evaluate.datasets import VideoSequence
from rotobridge.bridge.plate import open_plate

WIDTH, HEIGHT = 64, 48
BACKGROUND = (0.5, 0.5, 0.5)
COLOURS = {1: (0.95, 0.1, 0.1), 2: (0.1, 0.9, 0.1), 3: (0.1, 0.1, 0.95)}
RECOLOUR = (0.95, 0.9, 0.1)
#: DAVIS's first palette entries (PASCAL VOC): index 0..3
PALETTE = [0, 0, 0, 128, 0, 0, 0, 128, 0, 128, 128, 0] + [0] * (256 * 3 - 12)


@dataclass(frozen=True)
class Obj:
    id: int
    x0: float
    y0: float
    dx: float
    radius: float
    absent: tuple[int, ...] = ()  # frame indices without the object
    recolour: int | None = None  # from this frame index on, the object is RECOLOUR

    def mask(self, index: int) -> np.ndarray:
        ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH]
        if index in self.absent:
            return np.zeros((HEIGHT, WIDTH), bool)
        cx = self.x0 + self.dx * index
        return (xs - cx) ** 2 + (ys - self.y0) ** 2 <= self.radius**2


def labels(objects: Sequence[Obj], index: int) -> np.ndarray:
    out = np.zeros((HEIGHT, WIDTH), np.uint8)
    for obj in objects:
        out[obj.mask(index)] = obj.id
    return out


def picture(objects: Sequence[Obj], index: int) -> np.ndarray:
    """float32 (H, W, 3) in [0, 1]."""
    rgb = np.empty((HEIGHT, WIDTH, 3), np.float32)
    rgb[:] = BACKGROUND
    for obj in objects:
        changed = obj.recolour is not None and index >= obj.recolour
        rgb[obj.mask(index)] = RECOLOUR if changed else COLOURS[obj.id]
    return rgb


def _jpeg(path: str, rgb: np.ndarray) -> None:
    Image.fromarray(np.round(rgb * 255).astype(np.uint8)).save(path, quality=100, subsampling=0)


def _png(path: str, lab: np.ndarray) -> None:
    image = Image.fromarray(lab)
    image.putpalette(PALETTE)
    image.save(path)


#: two DAVIS-like videos: two objects from frame 0, one of them leaving and coming back
SCENES: dict[str, list[Obj]] = {
    "bear": [Obj(1, 12, 14, 2, 7), Obj(2, 40, 32, -2, 8, absent=(2, 3))],
    "car": [Obj(1, 20, 24, 3, 9)],
}
#: a YouTube-VOS-like video: object 2 first appears on the third annotated frame
LATE = {"vid": [Obj(1, 14, 16, 1, 7), Obj(2, 44, 30, -1, 7, absent=(0, 1))]}


def write_davis(root: str, frames: int = 6, scenes: dict[str, list[Obj]] = SCENES, *, resolution: bool = True) -> str:
    """DAVIS 2017 (or, without the 480p level and lists, MOSE) under `root`."""
    level = "480p" if resolution else ""
    for name, objects in scenes.items():
        images = os.path.join(root, "JPEGImages", level, name)
        annotations = os.path.join(root, "Annotations", level, name)
        os.makedirs(images, exist_ok=True)
        os.makedirs(annotations, exist_ok=True)
        for i in range(frames):
            _jpeg(os.path.join(images, f"{i:05d}.jpg"), picture(objects, i))
            _png(os.path.join(annotations, f"{i:05d}.png"), labels(objects, i))
    if resolution:
        os.makedirs(os.path.join(root, "ImageSets", "2017"), exist_ok=True)
        with open(os.path.join(root, "ImageSets", "2017", "val.txt"), "w") as f:
            f.write("".join(f"{n}\n" for n in scenes))
    return root


def write_youtube(root: str, frames: int = 6, scenes: dict[str, list[Obj]] = LATE) -> str:
    """YouTube-VOS 2019: JPEGs 00000, 00005, ...; annotations on them; meta.json."""
    meta: dict[str, dict[str, object]] = {}
    for name, objects in scenes.items():
        images = os.path.join(root, "JPEGImages", name)
        annotations = os.path.join(root, "Annotations", name)
        os.makedirs(images, exist_ok=True)
        os.makedirs(annotations, exist_ok=True)
        for i in range(frames):
            _jpeg(os.path.join(images, f"{5 * i:05d}.jpg"), picture(objects, i))
            _png(os.path.join(annotations, f"{5 * i:05d}.png"), labels(objects, i))
        meta[name] = {
            "objects": {
                str(o.id): {"category": "thing", "frames": [f"{5 * i:05d}" for i in range(frames) if i not in o.absent]}
                for o in objects
            }
        }
    with open(os.path.join(root, "meta.json"), "w") as f:
        json.dump({"videos": meta}, f)
    return root


def write_sav(root: str, frames: int = 8, scenes: dict[str, list[Obj]] = LATE) -> str:
    """SA-V: 24 fps JPEGs, per-object 0/1 PNGs on every 4th frame, objects numbered from 000."""
    for name, objects in scenes.items():
        images = os.path.join(root, "JPEGImages_24fps", name)
        os.makedirs(images, exist_ok=True)
        for i in range(frames):
            _jpeg(os.path.join(images, f"{i:05d}.jpg"), picture(objects, i))
        for obj in objects:
            folder = os.path.join(root, "Annotations_6fps", name, f"{obj.id - 1:03d}")  # SA-V counts from 000
            os.makedirs(folder, exist_ok=True)
            for i in range(0, frames, 4):
                _png(os.path.join(folder, f"{i:05d}.png"), obj.mask(i).astype(np.uint8))
    return root


def _exr(path: str, pixels: np.ndarray, channels: tuple[str, ...]) -> None:
    spec = oiio.ImageSpec(WIDTH, HEIGHT, len(channels), oiio.HALF)
    spec.channelnames = channels
    out = oiio.ImageOutput.create(path)
    assert out is not None and out.open(path, spec) and out.write_image(pixels)
    out.close()


def write_studio(root: str, frames: int = 5, objects: Sequence[Obj] = SCENES["bear"], first: int = 1001) -> str:
    """One shot: an ACEScg half EXR plate and one EXR truth matte sequence per object."""
    shot = os.path.join(root, "sh010")
    os.makedirs(os.path.join(shot, "plate"), exist_ok=True)
    os.makedirs(os.path.join(shot, "truth"), exist_ok=True)
    for i in range(frames):
        _exr(os.path.join(shot, "plate", f"sh010.{first + i}.exr"), picture(objects, i), ("R", "G", "B"))
        for obj in objects:
            _exr(os.path.join(shot, "truth", f"obj{obj.id}.{first + i}.exr"), obj.mask(i).astype(np.float32)[:, :, None], ("A",))
    manifest = {
        "plate": "plate/sh010.####.exr",
        "frames": f"{first}-{first + frames - 1}",
        "colourspace": "ACEScg",
        "objects": {str(o.id): {"name": f"obj{o.id}", "truth": f"truth/obj{o.id}.####.exr"} for o in objects},
    }
    with open(os.path.join(shot, "shot.json"), "w") as f:
        json.dump(manifest, f)
    return root


class ColourKeyTrackerDouble:
    """TEST DOUBLE of the model (never a default): an object is every pixel whose plate colour
    is within `tolerance` of the colour under its prompt (the mask's median, or the first
    positive click) on the latest prompted frame at or before the frame tracked (the
    earliest prompt before that). Logits are ±10 at plate size."""

    def __init__(self, sequence: VideoSequence, tolerance: float = 0.15) -> None:
        self.plate = open_plate(sequence.plate, sequence.frame_range, layer=sequence.layer)
        self.frames = self.plate.info.frames
        self.tolerance = tolerance
        self.colours: dict[int, dict[int, np.ndarray]] = {}  # object → prompted frame → colour
        self.start: dict[int, int] = {}

    def _pixels(self, frame: int) -> np.ndarray:
        pixels = self.plate.read(frame)
        return pixels.astype(np.float32) / 255 if pixels.dtype == np.uint8 else pixels

    def _result(self, frame: int) -> FrameResult:
        pixels = self._pixels(frame)
        ids = tuple(sorted(self.colours))
        rows = []
        for i in ids:
            prompted = sorted(self.colours[i])
            key = max((f for f in prompted if f <= frame), default=prompted[0])
            rows.append(np.linalg.norm(pixels - self.colours[i][key], axis=2) < self.tolerance)
        logits = torch.from_numpy(np.stack(rows)[:, None].astype(np.float32) * 20 - 10)
        return FrameResult(frame, ids, logits)

    def add_mask(self, frame: int, obj_id: int, mask: np.ndarray) -> FrameResult:
        self.colours.setdefault(obj_id, {})[frame] = np.median(self._pixels(frame)[mask], axis=0)
        self.start.setdefault(obj_id, frame)
        return self._result(frame)

    def add_points(
        self, frame: int, obj_id: int, points: Sequence[Sequence[float]] = (), labels: Sequence[int] = (),
        box: Sequence[float] | None = None,
    ) -> FrameResult:
        positive = [p for p, label in zip(points, labels) if label == 1]
        if positive:
            x, y = positive[0]
            self.colours.setdefault(obj_id, {})[frame] = self._pixels(frame)[int(y), int(x)]
            self.start.setdefault(obj_id, frame)
        return self._result(frame)

    def propagate(self, start: int, end: int) -> Iterator[FrameResult]:
        first, last = self.frames.index(start), self.frames.index(end)
        step = 1 if last >= first else -1
        for index in range(first, last + step, step):
            yield self._result(self.frames[index])

    def close(self) -> None:
        self.plate.close()
