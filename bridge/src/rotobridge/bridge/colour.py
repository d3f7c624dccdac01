"""Plate pixels → SAM 2 model input, through OpenColorIO.

SAM 2 was trained on display-encoded video frames, so scene-linear and log plates are viewed
through the host's OCIO display/view first, exactly as the artist sees them. Plates that
are already display-referred video (OCIO encoding ``sdr-video``, e.g. an sRGB JPEG) go to
the model untouched, and an 8-bit one bit-identically to sam2's own JPEG loader.

A config named by a request is held to the bridge's roots like any other path: only the
exact `ocio://` built-in names load without a file, a config file must really lie inside
the roots, and so must every file it can make OCIO read (its search paths and each
FileTransform's LUT), checked before OCIO builds anything. A config that does not load is
reported without OCIO's message, which can quote the file.

Scene-referred plates go through the view as a baked shaper + 3D LUT (`lut.py`) on the
device the caller names (torch there, OCIO on the CPU): the exact OCIO CPU processor
costs ~0.5 s per 1024² frame, fifty times a small model's GPU frame. `exact=True` (recipe
`colour.exact`) keeps the exact processor, the reference the LUT is measured against.
"""

from __future__ import annotations

import difflib
import functools
import logging
import os
from collections.abc import Iterator, Sequence

import cv2
import numpy as np
import PyOpenColorIO as ocio
import torch
from PIL import Image

from rotobridge.errors import ColourError, PathNotAllowedError
from rotobridge.fields import shown

from .lut import BakedLut, baked
from .security import allowed_path

log = logging.getLogger(__name__)

DEFAULT_CONFIG = "ocio://studio-config-latest"
BUILTIN_PREFIX = "ocio://"
#: Largest config file read: real configs are YAML of a few hundred KiB; parsing a huge
#: file named as one would hold the (GIL-holding) OCIO parser for seconds.
MAX_CONFIG_BYTES = 16 << 20

#: sam2's normalisation (`load_video_frames` defaults), float32 (3, 1, 1) as sam2 builds them.
_IMG_MEAN = torch.tensor((0.485, 0.456, 0.406), dtype=torch.float32)[:, None, None]
_IMG_STD = torch.tensor((0.229, 0.224, 0.225), dtype=torch.float32)[:, None, None]

#: how many valid names an error message lists before it says "… and N more"
_MAX_LISTED = 12


def _choices(name: str, options: Sequence[str]) -> str:
    """Close matches first, then a trimmed list, so a long config does not flood the message."""
    close = difflib.get_close_matches(name, options, n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(repr(c) for c in close)}? " if close else ""
    shown = ", ".join(repr(o) for o in options[:_MAX_LISTED])
    more = f" … and {len(options) - _MAX_LISTED} more" if len(options) > _MAX_LISTED else ""
    return f"{hint}valid: {shown}{more}"


def resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize with OpenCV per axis: area averaging when shrinking (no aliasing), cubic when enlarging.

    Mixed cases (one axis shrinks, the other grows, as when squashing to sam2's square) run
    as two passes so each axis gets the right filter.
    """

    def interpolation(src: int, dst: int) -> int:
        return cv2.INTER_AREA if dst <= src else cv2.INTER_CUBIC

    h, w = image.shape[:2]
    if (w, h) == (width, height):
        return image
    along_x, along_y = interpolation(w, width), interpolation(h, height)
    if along_x != along_y:
        image = cv2.resize(image, (width, h), interpolation=along_x)
    return cv2.resize(image, (width, height), interpolation=along_y)


@functools.lru_cache(maxsize=8)
def _builtin(name: str) -> ocio.Config:
    """A built-in config, parsed once: they never change, and parsing one costs ~40 ms that
    every session opened would otherwise spend on the device worker's clock. OCIO configs
    are safe to share between threads, and keep their processors cached."""
    return ocio.Config.CreateFromFile(name)


@functools.lru_cache(maxsize=1)
def builtin_configs() -> tuple[str, ...]:
    """The `ocio://` names this OpenColorIO has built in (versioned names and their aliases)."""
    names = [entry[0] for entry in ocio.BuiltinConfigRegistry().getBuiltinConfigs()]
    return tuple(BUILTIN_PREFIX + n for n in ("default", "cg-config-latest", "studio-config-latest", *names))


def config_file(config: str, roots: Sequence[str]) -> str:
    """What to load for a config a request or recipe names: a built-in's exact name, else the
    config file's real path inside `roots` (no roots: the path as given). Opens nothing."""
    if config.startswith(BUILTIN_PREFIX):
        if config not in builtin_configs():
            raise ColourError(
                f"{shown(config)} is not one of OpenColorIO's built-in configs "
                f"(e.g. {DEFAULT_CONFIG}); name a config file by its path instead"
            )
        return config
    return allowed_path(config, roots, "OCIO config") if roots else config


def _transforms(cfg: ocio.Config) -> Iterator[ocio.Transform]:
    """Every transform in the config, group members included: what a processor may be built from."""
    todo: list[ocio.Transform | None] = []
    for space in cfg.getColorSpaces(ocio.SEARCH_REFERENCE_SPACE_ALL, ocio.COLORSPACE_ALL):
        todo += [space.getTransform(ocio.COLORSPACE_DIR_TO_REFERENCE), space.getTransform(ocio.COLORSPACE_DIR_FROM_REFERENCE)]
    for look in cfg.getLooks():
        todo += [look.getTransform(), look.getInverseTransform()]
    for view in cfg.getViewTransforms():
        todo += [view.getTransform(ocio.VIEWTRANSFORM_DIR_TO_REFERENCE), view.getTransform(ocio.VIEWTRANSFORM_DIR_FROM_REFERENCE)]
    for named in cfg.getNamedTransforms(ocio.NAMEDTRANSFORM_ALL):
        todo += [named.getTransform(ocio.TRANSFORM_DIR_FORWARD), named.getTransform(ocio.TRANSFORM_DIR_INVERSE)]
    while todo:
        transform = todo.pop()
        if isinstance(transform, ocio.GroupTransform):
            todo += list(transform)
        elif transform is not None:
            yield transform


def check_config_files(cfg: ocio.Config, name: str, roots: Sequence[str]) -> None:
    """Refuse a config that could make OCIO read a file outside `roots`: a search path or a
    FileTransform's file that lies (or might, through an unresolved variable) outside them."""
    context = cfg.getCurrentContext()
    base = cfg.getWorkingDir() or os.path.dirname(name)

    def resolved(text: str, what: str) -> str:
        out = context.resolveStringVar(text)
        if "$" in out:
            raise PathNotAllowedError(f"OCIO config {name}: {what} {shown(text)} uses a variable the bridge cannot resolve")
        return os.path.join(base, out)

    folders = [allowed_path(resolved(p, "search path"), roots, f"OCIO config {name}: search path") for p in cfg.getSearchPaths()]
    for transform in _transforms(cfg):
        if isinstance(transform, ocio.FileTransform):
            src = transform.getSrc()
            where = f"OCIO config {name}: the file of a FileTransform,"
            if os.path.isabs(context.resolveStringVar(src)):
                allowed_path(resolved(src, "file"), roots, where)
            for folder in folders or [base]:
                allowed_path(os.path.join(folder, context.resolveStringVar(src)), roots, where)


def _load_config(config: str | None, roots: Sequence[str] = ()) -> tuple[str, ocio.Config]:
    """`config` → `$OCIO` → DEFAULT_CONFIG, as hosts and OCIO tools resolve it.

    A `config` given (by a request or a recipe) is held to `roots`; `$OCIO` and the
    default are the bridge owner's own choice.
    """
    if config:
        name, origin = config, "given"
        path = config_file(config, roots)
    elif os.environ.get("OCIO"):
        name, origin = os.environ["OCIO"], "from $OCIO"
        path = name
    else:
        name, origin = DEFAULT_CONFIG, "default"
        path = name
    try:
        if path.startswith(BUILTIN_PREFIX):
            cfg = _builtin(path)
        else:
            if os.path.isfile(path) and os.path.getsize(path) > MAX_CONFIG_BYTES:
                raise ColourError(f"OCIO config {name!r} ({origin}) is over {MAX_CONFIG_BYTES >> 20} MiB: not a config")
            cfg = ocio.Config.CreateFromFile(path)
    except ColourError:
        raise
    except Exception as exc:  # OCIO raises its own Exception/ExceptionMissingFile types
        if path.startswith(BUILTIN_PREFIX):
            raise ColourError(f"cannot load OCIO config {name!r} ({origin}): {exc}") from exc
        log.info("OpenColorIO cannot load %s: %s", path, exc)
        why = "not a valid OCIO config (OpenColorIO's message is in the log)" if os.path.isfile(path) else "no such file"
        raise ColourError(f"cannot load OCIO config {name!r} ({origin}): {why}") from None
    if config and roots and not path.startswith(BUILTIN_PREFIX):
        check_config_files(cfg, path, roots)
    return name, cfg


class ColourPipeline:
    """One plate's colour handling: validated names, the view as a LUT (or exact), thread-safe use."""

    def __init__(
        self,
        colourspace: str,
        config: str | None = None,
        display: str | None = None,
        view: str | None = None,
        roots: Sequence[str] = (),
        *,
        exact: bool = False,
    ) -> None:
        """roots: folders a `config` file, and every file it makes OCIO read, must lie in (none: no limit).

        exact: apply OCIO's CPU processor to every pixel instead of the baked LUT (slow; the reference).
        """
        self.config_name, cfg = _load_config(config, roots)
        self.exact = exact

        space = cfg.getColorSpace(colourspace)  # accepts aliases and roles
        if space is None:
            names = list(cfg.getColorSpaceNames())
            raise ColourError(
                f"unknown plate colourspace {colourspace!r} in {self.config_name}; "
                + _choices(colourspace, names)
            )
        if space.isData() or space.getEncoding() == "data":
            raise ColourError(
                f"plate colourspace {colourspace!r} is a data colourspace ({space.getName()}): "
                "a plate must be a picture; choose the colourspace the plate was shot or "
                "rendered in (e.g. ACEScg, an sRGB or log camera space)"
            )
        self.colourspace: str = space.getName()

        displays = list(cfg.getDisplays())
        self.display: str = display or cfg.getDefaultDisplay()
        if self.display not in displays:
            raise ColourError(
                f"unknown OCIO display {self.display!r} in {self.config_name}; "
                + _choices(self.display, displays)
            )
        views = list(cfg.getViews(self.display))
        self.view: str = view or cfg.getDefaultView(self.display)
        if self.view not in views:
            raise ColourError(
                f"unknown OCIO view {self.view!r} for display {self.display!r}; "
                + _choices(self.view, views)
            )

        data = cfg.getColorSpace(ocio.ROLE_DATA) or next(
            (cs for cs in cfg.getColorSpaces() if cs.isData()), None
        )
        self.data_colourspace: str = data.getName() if data is not None else "Raw"

        self.passthrough: bool = space.getEncoding() == "sdr-video"
        self._config = cfg
        self._encoding: str = space.getEncoding()
        self._processor: ocio.CPUProcessor | None = None
        if not self.passthrough:
            transform = ocio.DisplayViewTransform(
                src=self.colourspace, display=self.display, view=self.view
            )
            try:
                self._processor = cfg.getProcessor(transform).getDefaultCPUProcessor()
            except Exception as exc:
                raise ColourError(
                    f"OCIO cannot build {self.colourspace!r} → {self.display!r}/{self.view!r}: {exc}"
                ) from exc

    @property
    def lut(self) -> BakedLut | None:
        """The baked view (baked on first use, once per process), or None when the exact
        processor or pass-through applies."""
        if self.passthrough or self.exact:
            return None
        return baked(self._config, self.colourspace, self.display, self.view, self._encoding)

    def _resized(self, pixels: np.ndarray, width: int, height: int) -> np.ndarray:
        """float32 (height, width, 3) in [0, 1] for uint8, as stored for float; never the caller's array."""
        if pixels.ndim != 3 or pixels.shape[2] != 3:
            raise ValueError(f"expected (H, W, 3) pixels, got shape {pixels.shape}")
        if pixels.dtype == np.uint8:
            return resize(pixels, width, height).astype(np.float32) / np.float32(255.0)
        if not np.issubdtype(pixels.dtype, np.floating):
            raise TypeError(f"expected uint8 or float pixels, got {pixels.dtype}")
        rgb = resize(pixels.astype(np.float32, copy=False), width, height)
        if np.shares_memory(rgb, pixels):  # OCIO and clip work in place: never on the caller's
            rgb = rgb.copy()
        return np.ascontiguousarray(rgb)

    def to_display(self, pixels: np.ndarray, width: int, height: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """(3, height, width) float32 display values in [0, 1] on `device`: resized first, so
        the view runs at output size, then through the LUT on `device` (or OCIO exactly)."""
        device = torch.device(device)
        lut = self.lut
        if lut is None:
            return torch.from_numpy(self._display_float(pixels, width, height)).permute(2, 0, 1).to(device)
        # a planar view of the packed pixels: OCIO reads them packed on the CPU, torch copies as it needs
        planar = torch.from_numpy(self._resized(pixels, width, height)).to(device).permute(2, 0, 1)
        return lut.apply(planar)

    def _display_float(self, pixels: np.ndarray, width: int, height: int) -> np.ndarray:
        """Resize first, then OCIO's exact display/view processor, so it runs at output size."""
        rgb = self._resized(pixels, width, height)
        if self._processor is not None:
            self._processor.apply(ocio.PackedImageDesc(rgb, width, height, 3))
        # EXR renders can hold NaN/inf; one NaN would poison SAM 2's memory for the whole shot.
        np.nan_to_num(rgb, copy=False, nan=0.0, posinf=1.0, neginf=0.0)
        return np.clip(rgb, 0.0, 1.0, out=rgb)

    def model_input(self, pixels: np.ndarray, size: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """(3, size, size) float32 on `device`, normalised as sam2's loader does (aspect squashed
        to square). The view's LUT runs on `device`: name the model's to keep it off the CPU."""
        device = torch.device(device)
        if self.passthrough and pixels.dtype == np.uint8:
            # sam2's `_load_img_as_tensor`: PIL resize (default filter = bicubic), /255 in float64.
            resized = np.array(
                Image.fromarray(pixels).resize((size, size), Image.Resampling.BICUBIC)
            )
            image = torch.from_numpy(resized / 255.0).permute(2, 0, 1).float().contiguous().to(device)
        else:
            image = self.to_display(pixels, size, size, device).contiguous()
        # sam2 normalises in place, in float32, subtracting then dividing.
        image -= _IMG_MEAN.to(device)
        image /= _IMG_STD.to(device)
        return image

    def display_rgb(self, pixels: np.ndarray, width: int, height: int) -> np.ndarray:
        """uint8 (height, width, 3) display values, the picture the artist sees, for QC sheets."""
        rgb = self.to_display(pixels, width, height).permute(1, 2, 0).numpy()
        return np.rint(rgb * 255.0).astype(np.uint8)
