"""Benchmark folders read as sequences: frames rotobridge can open, truth masks by frame.

Layouts (the published ones; a malformed tree is a DatasetError naming the file):

- ``davis``: `JPEGImages/480p/<seq>/*.jpg`, palette PNGs in `Annotations/480p/<seq>/`,
  the split's sequence list in `ImageSets/2017/<split>.txt`;
- ``mose``: `JPEGImages/<seq>/`, `Annotations/<seq>/` (DAVIS's format, no resolution level
  or split lists; the validation set has first-frame annotations only);
- ``youtube`` (YouTube-VOS 2019, one split's folder): `JPEGImages/<vid>/`,
  `Annotations/<vid>/` (every 5th frame; objects may first appear later), `meta.json`;
- ``sav``: `JPEGImages_24fps/<vid>/`, one folder of 0/1 PNGs per object in
  `Annotations_6fps/<vid>/<obj>/` (every 4th frame);
- ``studio``: `<shot>/shot.json` naming any plate rotobridge reads (with its colourspace)
  and one truth matte sequence per object (alpha, or the only channel, > 0.5)::

    {"plate": "plate/sh010.####.exr", "frames": "1001-1024", "colourspace": "ACEScg",
     "objects": {"1": {"name": "car", "truth": "truth/car.####.exr"}},
     "truth_frames": "1001-1024x4"}

JPEG datasets are read as plates in the colourspace `JPEG_COLOURSPACE` (an 8-bit sRGB
JPEG reaches the model bit-identically to sam2's own loader, docs/engine.md); frame
numbers are the files' numeric names (YouTube-VOS: 0, 5, 10, ...), and the model sees the
files in order, as sam2's tools do.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping

import numpy as np

from rotobridge.errors import DatasetError

from . import masks as maskfiles

if TYPE_CHECKING:
    import OpenImageIO as oiio

# OpenImageIO, fileseq and the plate reader (which brings pyzmq and asyncio) are imported
# where a dataset is read, not here: scoring processes unpickle sequences, which imports
# this module, and start ~2x faster without them.

FORMATS = ("davis", "mose", "youtube", "sav", "studio")
#: the `truth_files` key of a frame's label PNG (not an object id: SA-V numbers objects from 0)
LABELS = -1
JPEG_COLOURSPACE = "sRGB Encoded Rec.709 (sRGB)"
_DIGITS = re.compile(r"^\d+$")


@dataclass
class VideoSequence:
    """One video of a dataset: where its frames are and what its truth says.

    `frames` are plate frame numbers in order, `stems` the file name (without extension)
    each frame's prediction gets, `truth_files` the truth of each annotated frame: one
    label PNG (key LABELS) or one file per object id. `starts` holds each object's first
    annotated frame, where the semi-supervised protocol prompts it. `truth_format`:
    "labels" (palette PNGs; predictions are written the same way), "objects" (0/1 PNGs
    per object, SA-V) or "mattes" (studio truth mattes); predictions of the last two are
    per-object PNGs.
    """

    name: str
    plate: str
    frames: tuple[int, ...]
    stems: dict[int, str]
    colourspace: str
    shape: tuple[int, int]  # (height, width)
    truth_files: dict[int, dict[int, str]]
    starts: dict[int, int]
    truth_format: str = "labels"
    palette: list[int] | None = None
    layer: str | None = None
    config: str | None = None
    frame_range: str | None = None
    #: the dataset's objects may first appear after the first frame (YouTube-VOS, SA-V):
    #: sam2 evaluates them with --track_object_appearing_later_in_video
    late_objects: bool = False

    @property
    def per_object(self) -> bool:
        return self.truth_format != "labels"

    @property
    def annotated(self) -> list[int]:
        return sorted(self.truth_files)

    @property
    def objects(self) -> tuple[int, ...]:
        """Every object id this sequence's truth may hold."""
        return tuple(sorted(self.starts))

    def truth(self, frame: int) -> dict[int, np.ndarray]:
        """Object id → boolean mask of an annotated frame; ids outside `objects` are refused."""
        files = self.truth_files[frame]
        if LABELS in files:
            masks = maskfiles.split(maskfiles.read_labels(files[LABELS], self.shape))
        else:
            read = read_matte if self.truth_format == "mattes" else _read_object
            masks = {obj: read(path, self.shape) for obj, path in files.items()}
        return masks

    def first_masks(self) -> dict[int, tuple[int, np.ndarray]]:
        """Object id → (its first annotated frame, its mask there): the semi-supervised prompts."""
        out = {}
        for obj, frame in self.starts.items():
            mask = self.truth(frame).get(obj)
            path = next(iter(self.truth_files[frame].values()))
            if mask is None or not mask.any():
                raise DatasetError(f"{path}: object {obj} should first appear on this frame but is not in it")
            out[obj] = (frame, mask)
        return out


def _numbered(folder: str, ext: tuple[str, ...]) -> dict[int, str]:
    """Frame number → file stem of the numerically named files of a folder (any of `ext`)."""
    if not os.path.isdir(folder):
        raise DatasetError(f"missing folder: {folder}")
    out: dict[int, str] = {}
    for name in os.listdir(folder):
        stem, extension = os.path.splitext(name)
        if extension.lower() not in ext or name.startswith("."):
            continue
        if not _DIGITS.match(stem):
            raise DatasetError(f"{os.path.join(folder, name)}: frame files must be named by number, e.g. 00000{extension}")
        out[int(stem)] = stem
    return dict(sorted(out.items()))


def _jpeg_frames(folder: str) -> tuple[str, dict[int, str], tuple[int, int]]:
    """A folder of numbered JPEGs as a plate pattern, frame → stem, and (height, width)."""
    stems = _numbered(folder, (".jpg", ".jpeg"))
    if not stems:
        raise DatasetError(f"no numbered JPEG frames in {folder}")
    widths = {len(s) for s in stems.values()}
    exts = {os.path.splitext(n)[1] for n in os.listdir(folder) if os.path.splitext(n)[0] in stems.values()}
    if len(widths) != 1 or len(exts) != 1:
        raise DatasetError(f"{folder}: frame names must all have the same number of digits and extension")
    first = os.path.join(folder, next(iter(stems.values())) + exts.pop())
    spec = _spec(first)
    pattern = os.path.join(folder, "#" * widths.pop() + os.path.splitext(first)[1])
    return pattern, stems, (spec.full_height, spec.full_width)


def _spec(path: str) -> oiio.ImageSpec:
    import OpenImageIO as oiio

    image = oiio.ImageInput.open(path)
    if image is None:
        raise DatasetError(f"cannot read {path}: {oiio.geterror()}")
    try:
        return image.spec()
    finally:
        image.close()


def _label_truth(folder: str, stems: Mapping[int, str]) -> dict[int, dict[int, str]]:
    """Annotated frame → {LABELS: its label PNG}; a PNG with no frame of the video is refused."""
    out = {}
    for frame, stem in _numbered(folder, (".png",)).items():
        path = os.path.join(folder, f"{stem}.png")
        if frame not in stems:
            raise DatasetError(f"{path}: annotation for a frame the video does not have")
        out[frame] = {LABELS: path}
    if not out:
        raise DatasetError(f"missing annotations: no PNG in {folder}")
    return out


def _check_palette(files: Mapping[int, Mapping[int, str]]) -> list[int] | None:
    first = files[min(files)][LABELS]
    try:
        return maskfiles.read_palette(first)
    except OSError as exc:
        raise DatasetError(f"cannot read mask {first}: {exc}") from None


def _labelled(name: str, images: str, annotations: str, *, first_only: bool) -> VideoSequence:
    """A DAVIS-format video: objects from the first annotation, or from every annotation."""
    pattern, stems, shape = _jpeg_frames(images)
    truth = _label_truth(annotations, stems)
    starts: dict[int, int] = {}
    for frame in sorted(truth)[: 1 if first_only else None]:
        labels = maskfiles.read_labels(truth[frame][LABELS], shape)
        for obj in np.unique(labels).tolist():
            if obj != 0:
                starts.setdefault(int(obj), frame)
    return VideoSequence(name, pattern, tuple(stems), stems, JPEG_COLOURSPACE, shape, truth, starts, "labels", _check_palette(truth))


def _names(path: str) -> list[str]:
    try:
        with open(path) as f:
            return [line.strip() for line in f if line.strip()]
    except FileNotFoundError:
        raise DatasetError(f"missing sequence list: {path}") from None


def _folders(path: str) -> list[str]:
    if not os.path.isdir(path):
        raise DatasetError(f"missing folder: {path}")
    return sorted(n for n in os.listdir(path) if os.path.isdir(os.path.join(path, n)) and not n.startswith("."))


def davis(root: str, split: str = "val", resolution: str = "480p") -> list[VideoSequence]:
    names = _names(os.path.join(root, "ImageSets", "2017", f"{split}.txt"))
    return [
        _labelled(n, os.path.join(root, "JPEGImages", resolution, n), os.path.join(root, "Annotations", resolution, n), first_only=True)
        for n in names
    ]


def mose(root: str) -> list[VideoSequence]:
    return [
        _labelled(n, os.path.join(root, "JPEGImages", n), os.path.join(root, "Annotations", n), first_only=True)
        for n in _folders(os.path.join(root, "Annotations"))
    ]


def youtube(root: str) -> list[VideoSequence]:
    meta_path = os.path.join(root, "meta.json")
    try:
        with open(meta_path) as f:
            videos = json.load(f)["videos"]
        assert isinstance(videos, dict)
    except FileNotFoundError:
        raise DatasetError(f"missing {meta_path}") from None
    except (ValueError, KeyError, TypeError, AssertionError):
        raise DatasetError(f"{meta_path}: expected {{\"videos\": {{<video>: {{\"objects\": ...}}}}}}") from None
    out = []
    for name in sorted(videos):
        seq = _labelled(name, os.path.join(root, "JPEGImages", name), os.path.join(root, "Annotations", name), first_only=False)
        try:
            objects = {int(k): int(v["frames"][0]) for k, v in videos[name]["objects"].items()}
        except (KeyError, TypeError, ValueError, IndexError):
            raise DatasetError(f"{meta_path}: video {name!r} needs objects with their frames") from None
        unknown = set(seq.starts) - set(objects)
        if unknown:
            frame = seq.starts[min(unknown)]
            raise DatasetError(f"{seq.truth_files[frame][LABELS]}: object {min(unknown)} is not in {meta_path}")
        for obj, frame in objects.items():
            if frame not in seq.truth_files:
                raise DatasetError(
                    f"missing annotation: {os.path.join(root, 'Annotations', name, seq.stems.get(frame, str(frame)) + '.png')} "
                    f"(object {obj} first appears there per {meta_path})"
                )
        seq.starts = objects
        seq.late_objects = True
        out.append(seq)
    return out


def sav(root: str) -> list[VideoSequence]:
    out = []
    for name in _folders(os.path.join(root, "Annotations_6fps")):
        pattern, stems, shape = _jpeg_frames(os.path.join(root, "JPEGImages_24fps", name))
        folder = os.path.join(root, "Annotations_6fps", name)
        truth: dict[int, dict[int, str]] = {}
        starts: dict[int, int] = {}
        for obj_name in _folders(folder):
            if not _DIGITS.match(obj_name):
                raise DatasetError(f"{os.path.join(folder, obj_name)}: object folders are named by number, e.g. 000")
            obj = int(obj_name)
            for frame, stem in _numbered(os.path.join(folder, obj_name), (".png",)).items():
                path = os.path.join(folder, obj_name, f"{stem}.png")
                if frame not in stems:
                    raise DatasetError(f"{path}: annotation for a frame the video does not have")
                truth.setdefault(frame, {})[obj] = path
        for frame in sorted(truth):
            for obj, path in truth[frame].items():
                if obj not in starts and maskfiles.read_labels(path, shape).any():
                    starts[obj] = frame
        if not truth:
            raise DatasetError(f"missing annotations: no object folder with PNGs in {folder}")
        out.append(
            VideoSequence(name, pattern, tuple(stems), stems, JPEG_COLOURSPACE, shape, truth, starts, "objects", late_objects=True)
        )
    return out


def _read_object(path: str, shape: tuple[int, int]) -> np.ndarray:
    return np.asarray(maskfiles.read_labels(path, shape) > 0)


def read_matte(path: str, shape: tuple[int, int]) -> np.ndarray:
    """A truth matte: alpha (or the only channel) over the display window, > 0.5."""
    from ..mattes import read_alpha  # here: scoring processes need not import torch
    from ..plate import crop_to_display

    try:
        pixels, data, display = read_alpha(path)
    except OSError as exc:
        raise DatasetError(f"cannot read truth matte {path}: {exc}") from None
    if (display.height, display.width) != shape:
        raise DatasetError(f"{path}: matte is {display.width}x{display.height}, the plate is {shape[1]}x{shape[0]}")
    return np.asarray(crop_to_display(pixels[:, :, None], data, display)[:, :, 0] > 0.5)


def _frames(text: str, where: str) -> tuple[int, ...]:
    from fileseq.frameset import FrameSet

    from ..plate import FILESEQ_ERRORS

    try:
        return tuple(sorted({int(f) for f in FrameSet(text)}))
    except FILESEQ_ERRORS:
        raise DatasetError(f"{where}: {text!r} is not a frame range such as 1001-1024") from None


def studio(root: str) -> list[VideoSequence]:
    """Shots under `root`, each `<shot>/shot.json` (see the module's docstring)."""
    from ..plate import open_plate

    out = []
    for name in _folders(root):
        manifest = os.path.join(root, name, "shot.json")
        if not os.path.isfile(manifest):
            continue
        try:
            with open(manifest) as f:
                shot = json.load(f)
            plate_path = os.path.join(root, name, shot["plate"])
            colourspace = str(shot["colourspace"])
            objects = {int(k): os.path.join(root, name, v["truth"]) for k, v in shot["objects"].items()}
        except FileNotFoundError:
            raise DatasetError(f"missing {manifest}") from None
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise DatasetError(f"{manifest}: needs plate, colourspace and objects {{id: {{truth}}}} ({exc})") from None
        if not objects or any(not 0 < obj < 256 for obj in objects):
            raise DatasetError(f"{manifest}: object ids must be 1-255")
        with open_plate(plate_path, shot.get("frames"), layer=shot.get("layer")) as plate:
            frames, display = plate.info.frames, plate.info.display
        wanted = _frames(shot["truth_frames"], manifest) if "truth_frames" in shot else frames
        outside = [f for f in wanted if f not in frames]
        if outside:
            raise DatasetError(f"{manifest}: truth frame {outside[0]} is not a plate frame")
        from fileseq.constants import PAD_STYLE_HASH1
        from fileseq.filesequence import FileSequence

        truth: dict[int, dict[int, str]] = {}
        for obj, pattern in objects.items():
            sequence = FileSequence(pattern, pad_style=PAD_STYLE_HASH1)
            for frame in wanted:
                path = sequence.frame(frame)
                if not os.path.isfile(path):
                    raise DatasetError(f"missing truth matte: {path} (object {obj}, frame {frame})")
                truth.setdefault(frame, {})[obj] = path
        shape = (display.height, display.width)
        seq = VideoSequence(
            name, plate_path, frames, {f: str(f) for f in frames}, colourspace, shape, truth, {}, "mattes",
            layer=shot.get("layer"), config=shot.get("config"), frame_range=shot.get("frames"),
        )
        for frame in sorted(truth):
            masks = seq.truth(frame)
            for obj, mask in masks.items():
                if obj not in seq.starts and mask.any():
                    seq.starts[obj] = frame
        out.append(seq)
    if not out:
        raise DatasetError(f"no shot folders with a shot.json under {root}")
    return out


def load(kind: str, root: str, *, split: str = "val") -> list[VideoSequence]:
    """The sequences of a dataset folder of one of FORMATS."""
    if not os.path.isdir(root):
        raise DatasetError(f"missing dataset folder: {root}")
    if kind == "davis":
        return davis(root, split)
    if kind == "mose":
        return mose(root)
    if kind == "youtube":
        return youtube(root)
    if kind == "sav":
        return sav(root)
    if kind == "studio":
        return studio(root)
    raise DatasetError(f"unknown dataset format {kind!r}: use one of {', '.join(FORMATS)}")
