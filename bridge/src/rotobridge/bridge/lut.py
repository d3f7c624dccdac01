"""An OCIO display/view baked into a shaper + 3D LUT, applied in torch on any device, by OCIO on the CPU.

The exact OCIO CPU processor costs ~0.5 s per 1024² frame for an ACES 2.0 view: fifty
times a small model's GPU frame. The same transform as a 3D LUT is a few gathers per
pixel: nothing on the model's GPU, about a third of the exact cost on a CPU.

How it is baked (measured choices, benchmarks/colour_lut.py and docs/colour.md):

- **Shaper.** The cube's grid is uniform in a shaper space. Scene-linear plates use
  ``asinh(x / 2⁻⁷)``: logarithmic above ~0.01 (even spacing in stops up to 128, so
  highlights keep their rolloff), linear through zero, with 0 on a node. When the
  processor's first step clamps its input from below (ACES views of ACEScg clamp at 0)
  the grid starts there; otherwise it reaches down to −1. A leading matrix (Linear
  Rec.709 → AP1) is applied to the pixels in torch first (elementwise, so every device
  rounds it alike), so the cube starts where the view clamps and wide-gamut colours held
  as negatives need no grid of their own. Log plates (ACEScct, ARRI LogC4, camera logs)
  are already perceptually spaced: the grid spans code values [0, 1] directly.
- **Nodes** are the OCIO processor's own output at the shaper's nodes, taken *before*
  the processor's final clamp to [0, 1] when the clamp is the last non-trivial step (ACES
  2.0 views end in RangeTransform [0, 1] then a monotonic display encoding): a cube
  cannot bend at that clamp, so it interpolates the smooth values and clamps afterwards,
  which is exact wherever the processor clamps. The bake checks that identity on every
  node and otherwise keeps the clamped processor.
- **Interpolation** is tetrahedral (OCIO's ``INTERP_TETRAHEDRAL``) over 129³ nodes:
  neutrals lie on the tetrahedra's shared diagonal, so greys and speculars stay grey.
  Trilinear (torch's fused ``grid_sample``, ~2× cheaper on a CPU) missed the plate goal
  on saturated highlights, where ACES 2.0's gamut mapping is least LUT-friendly (ACEScg
  plates p99.9 1.66/255 against 0.97 tetrahedral, same 129³ grid reaching 1024).

The cube is also an OCIO ``Lut3DTransform`` (`BakedLut.transform`), so OCIO can evaluate
it as the reference for the torch interpolation, and on the CPU it runs the whole chain.

**Half precision.** Scene-linear values are rounded to half (what EXR plates store) before
the asinh shaper, on every device. On the CPU, OCIO then applies shaper and cube in one
processor: the shaper as a half-domain ``Lut1DTransform`` (one entry per half value, so
looked up, not interpolated), the cube after it, neither resampled into the other: about
3x cheaper than torch's log and sqrt before OCIO's cube (benchmarks/colour_lut.py, a
1024² ACEScg frame's model_input, 37 -> 13 CPU ms on one thread). Rounding on every
device keeps the CPU and the device paths equal; the rounding itself moves display
values by at most 0.11/255 (mean 0.005/255), and float32 plates lose nothing a 1/255
goal can see.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np
import PyOpenColorIO as ocio
import torch

#: Nodes per axis. Dense-grid p99 for ACEScg (grid reaching 1024): 65³ 5.9/255, 97³ 1.9/255;
#: the plate goal (p99.9 <= 1/255 on saturated highlights) needs 129³.
CUBE_SIZE = 129
#: The asinh shaper's linear width: spends the grid's nodes from ~2⁻⁷ upwards in stops.
LINEAR_SOFTNESS = 2.0**-7
#: Scene-linear range the grid spans (from 0 where the view clamps there): speculars to 128
#: keep their rolloff; above, the display is near white and values take the last node.
LINEAR_RANGE = (-1.0, 128.0)
#: Code value range for log encodings.
LOG_RANGE = (0.0, 1.0)

#: Per-channel OCIO steps that may follow the cube's last cross-channel step.
_PER_CHANNEL = (
    ocio.RangeTransform,
    ocio.ExponentTransform,
    ocio.ExponentWithLinearTransform,
    ocio.LogTransform,
    ocio.LogAffineTransform,
    ocio.LogCameraTransform,
    ocio.Lut1DTransform,
)


@dataclass(frozen=True)
class Shaper:
    """Plate value → position in [0, 1] along one axis of the cube.

    ``softness`` set: ``asinh(x / softness)`` mapped linearly from [lo, hi]; else x itself.
    """

    lo: float
    hi: float
    softness: float | None = None

    @classmethod
    def for_encoding(cls, encoding: str, size: int, floor: float | None = None) -> Shaper:
        """asinh for scene-linear (and unknown) encodings, identity for log ones; 0 on a node.

        floor: where the processor clamps its input from below, if it does (ACES views of
        ACEScg clamp at 0): the grid starts there and spends nothing on values it cannot tell apart.
        """
        if encoding == "log":
            return cls(*LOG_RANGE)
        s = LINEAR_SOFTNESS
        hi = float(np.arcsinh(LINEAR_RANGE[1] / s))
        lo = float(np.arcsinh(max(LINEAR_RANGE[0], floor if floor is not None else LINEAR_RANGE[0]) / s))
        if lo >= 0.0:
            return cls(lo=lo, hi=hi, softness=s)
        zero_node = round((size - 1) * -lo / (hi - lo))
        return cls(lo=-hi * zero_node / (size - 1 - zero_node), hi=hi, softness=s)

    def inverse(self, position: np.ndarray) -> np.ndarray:
        """The plate values at shaper positions (float64): where the cube's nodes lie."""
        value = self.lo + position * (self.hi - self.lo)
        return np.sinh(value) * self.softness if self.softness else value

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        """Positions in [0, 1] (clamped: values beyond the range take the edge nodes).

        Scene-linear values are taken at half precision first: the CPU's half-domain table
        (`half_table`) holds exactly these positions, so every device computes the same.
        """
        if self.softness:
            # asinh(v) = sign(v)·ln(|v| + √(v² + 1)), in cheap steps (torch.asinh is ~20× a log on CPUs)
            scaled = values.to(torch.float16).to(values.dtype) * (1.0 / self.softness)
            magnitude = scaled.abs()
            values = torch.copysign(torch.log(magnitude + torch.sqrt(magnitude * magnitude + 1.0)), scaled)
        return ((values - self.lo) * (1.0 / (self.hi - self.lo))).clamp_(0.0, 1.0)

    def half_table(self) -> np.ndarray:
        """(65536,) float32 `forward` of every half value, indexed by its bits: the shaper as
        OCIO's half-domain Lut1D. NaNs take 0's position, as `BakedLut.apply` reads NaN as 0."""
        halves = torch.arange(1 << 16, dtype=torch.int32).to(torch.int16).view(torch.float16).float()
        return self.forward(torch.nan_to_num(halves, nan=0.0, posinf=float("inf"), neginf=-float("inf"))).numpy()


def _cube_processor(steps: list[ocio.Transform]) -> tuple[ocio.CPUProcessor, bool]:
    """The processor to sample at the nodes, and whether it is `steps` less their final clamp."""
    raw = ocio.Config.CreateRaw()
    crossing = [i for i, step in enumerate(steps) if not isinstance(step, _PER_CHANNEL)]
    tail = steps[crossing[-1] + 1 :] if crossing else []
    if not any(isinstance(step, ocio.RangeTransform) for step in tail):
        return raw.getProcessor(ocio.GroupTransform(steps)).getDefaultCPUProcessor(), False
    kept = steps[: len(steps) - len(tail)] + [step for step in tail if not isinstance(step, ocio.RangeTransform)]
    return raw.getProcessor(ocio.GroupTransform(kept)).getDefaultCPUProcessor(), True


def _leading_matrix(steps: list[ocio.Transform]) -> tuple[torch.Tensor | None, list[ocio.Transform]]:
    """OCIO's first step when it is a matrix, as (3, 4) [matrix | offset], and the steps after it.

    Applied to the pixels before the shaper, it puts the cube in the space where the
    processor clamps (Linear Rec.709's wide-gamut colours are negatives until converted).
    """
    first = steps[0] if steps else None
    if not isinstance(first, ocio.MatrixTransform) or first.getDirection() != ocio.TRANSFORM_DIR_FORWARD:
        return None, steps
    matrix = np.array(first.getMatrix(), np.float64).reshape(4, 4)[:3, :3]
    offset = np.array(first.getOffset(), np.float64)[:3, None]
    return torch.from_numpy(np.hstack([matrix, offset]).astype(np.float32)), steps[1:]


def _apply(processor: ocio.CPUProcessor, rgb: np.ndarray) -> np.ndarray:
    out = np.ascontiguousarray(rgb, dtype=np.float32).copy()
    processor.applyRGB(out.reshape(-1))
    return out


@dataclass
class BakedLut:
    """One display/view transform as shaper + cube; thread-safe, device copies cached."""

    shaper: Shaper
    #: (n, n, n, 3) float32 display values at the nodes, indexed [red, green, blue]
    cube: torch.Tensor
    #: (3, 4) OCIO's leading matrix and offset, applied before the shaper (None: no such step)
    matrix: torch.Tensor | None = None
    _on_device: dict[torch.device, torch.Tensor] = field(default_factory=dict, repr=False)
    _cpu: ocio.CPUProcessor | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def bake(cls, processor: ocio.Processor, encoding: str, size: int | None = None) -> BakedLut:
        """Sample `processor` (a plate → display processor) on the shaper's grid (CUBE_SIZE nodes per axis)."""
        size = size or CUBE_SIZE
        steps = list(processor.getOptimizedProcessor(ocio.OPTIMIZATION_DEFAULT).createGroupTransform())
        matrix, steps = _leading_matrix(steps)
        first = steps[0] if steps else None
        floor = first.getMinInValue() if isinstance(first, ocio.RangeTransform) and first.hasMinInValue() else None
        shaper = Shaper.for_encoding(encoding, size, floor)
        axis = shaper.inverse(np.linspace(0.0, 1.0, size))
        nodes = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)
        sampler, unclamped = _cube_processor(steps)
        values = _apply(sampler, nodes)
        if unclamped:
            exact = _apply(ocio.Config.CreateRaw().getProcessor(ocio.GroupTransform(steps)).getDefaultCPUProcessor(), nodes)
            if not np.allclose(np.clip(values, 0.0, 1.0), exact, rtol=0.0, atol=1e-5, equal_nan=True):
                values = exact  # the tail was not a clamp then a monotonic encoding: keep OCIO's own clamp
        np.nan_to_num(values, copy=False, nan=0.0, posinf=1.0, neginf=0.0)
        cube = torch.from_numpy(values.reshape(size, size, size, 3))
        return cls(shaper, cube, matrix)

    @property
    def size(self) -> int:
        return int(self.cube.shape[0])

    def transform(self) -> ocio.Lut3DTransform:
        """The cube as OCIO's own Lut3DTransform (blue fastest, as OCIO stores it), tetrahedral like `lookup`."""
        lut = ocio.Lut3DTransform()
        lut.setGridSize(self.size)
        lut.setInterpolation(ocio.INTERP_TETRAHEDRAL)
        lut.setData(np.ascontiguousarray(self.cube.numpy().reshape(-1)))
        return lut

    def _planes_on(self, device: torch.device) -> torch.Tensor:
        """(3, n³): one contiguous table per output channel, gathered from with index_select."""
        with self._lock:
            planes = self._on_device.get(device)
            if planes is None:
                planes = self.cube.permute(3, 0, 1, 2).reshape(3, -1).contiguous().to(device)
                self._on_device[device] = planes
            return planes

    def lookup(self, positions: torch.Tensor) -> torch.Tensor:
        """Tetrahedral interpolation (OCIO's): (3, ...) shaper positions in [0, 1] → (3, ...) values.

        The cell's corner and the fractions inside it pick one of its six tetrahedra: from
        the corner, one step along the axis with the largest fraction, then along the next,
        then to the far corner; the weights are the sorted fractions' differences.
        """
        n = self.size
        planes = self._planes_on(positions.device)
        scaled = positions.reshape(3, -1) * (n - 1)
        corner = scaled.floor().clamp_(max=n - 2)
        red, green, blue = (scaled - corner).unbind(0)
        index = corner.to(torch.int64)
        base = index[0] * (n * n) + index[1] * n + index[2]
        high = torch.maximum(torch.maximum(red, green), blue)
        low = torch.minimum(torch.minimum(red, green), blue)
        middle = red + green + blue - high - low
        # the axis of the largest fraction (red first on ties) and of the smallest (blue first):
        # distinct whenever it matters, since equal fractions give the step between them no weight
        second = base + torch.where((red >= green) & (red >= blue), n * n, torch.where(green >= blue, n, 1))
        last = base + (n * n + n + 1)
        third = last - torch.where((blue <= green) & (blue <= red), 1, torch.where(green <= red, n, n * n))
        weights = (1.0 - high, high - middle, middle - low, low)
        out = torch.empty_like(scaled)
        for channel, plane in zip(out, planes):
            torch.mul(plane.index_select(0, base), weights[0], out=channel)
            for corner_index, weight in zip((second, third, last), weights[1:]):
                channel.addcmul_(plane.index_select(0, corner_index), weight)
        return out.reshape(positions.shape)

    def _cpu_processor(self) -> ocio.CPUProcessor:
        """OCIO's processor for the CPU. Scene-linear: half in, the shaper's half-domain
        table, the cube, float32 out; log (the shaper is a clamp, applied before): the cube.

        Optimised losslessly so OCIO keeps the Lut1D and the Lut3D apart: composing them
        would resample the shaper on the cube's grid (the test against torch catches it).
        """
        with self._lock:
            if self._cpu is None:
                steps: list[ocio.Transform] = [self.transform()]
                source = ocio.BIT_DEPTH_F32
                if self.shaper.softness:
                    table = ocio.Lut1DTransform()
                    table.setLength(1 << 16)
                    table.setInputHalfDomain(True)
                    table.setData(np.repeat(self.shaper.half_table(), 3))
                    steps.insert(0, table)
                    source = ocio.BIT_DEPTH_F16
                processor = ocio.Config.CreateRaw().getProcessor(ocio.GroupTransform(steps))
                self._cpu = processor.getOptimizedCPUProcessor(source, ocio.BIT_DEPTH_F32, ocio.OPTIMIZATION_LOSSLESS)
            return self._cpu

    def _matrixed(self, channels: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """The leading matrix as (3, ...), by elementwise multiplies and adds rather than a
        matmul: every device and layout rounds them alike, so the half rounding after it
        cannot send one value to different halves on different devices."""
        assert self.matrix is not None
        rows = self.matrix.tolist()
        # inf − inf → NaN: 0, as the NaN it came from
        return torch.stack(
            [torch.nan_to_num(channels[0] * m[0] + channels[1] * m[1] + channels[2] * m[2] + m[3], nan=0.0) for m in rows]
        )

    def _cpu_apply(self, rgb: torch.Tensor) -> torch.Tensor:
        """`apply` by OCIO (`_cpu_processor`) into a new planar tensor. OCIO reads the pixels
        packed: a planar view of packed (..., 3) pixels, as `ColourPipeline` passes, costs no copy."""
        shape = rgb.shape
        rgb = rgb.reshape(3, -1, shape[-1] if rgb.dim() > 2 else rgb[0].numel())
        height, width = int(rgb.shape[1]), int(rgb.shape[2])
        if self.matrix is not None:
            rgb = self._matrixed(torch.nan_to_num(rgb, posinf=3.0e38, neginf=-3.0e38).unbind(0))
        packed = rgb.movedim(0, -1)
        if self.shaper.softness:
            source = packed.to(torch.float16)  # NaN and ±inf have entries of their own in the table
        else:
            source = self.shaper.forward(torch.nan_to_num(packed, nan=0.0, posinf=3.0e38, neginf=-3.0e38))
        source = source.contiguous()
        depth, size = (ocio.BIT_DEPTH_F16, 2) if source.dtype == torch.float16 else (ocio.BIT_DEPTH_F32, 4)
        out = np.empty((3, height, width), np.float32)
        self._cpu_processor().apply(
            ocio.PackedImageDesc(source.numpy(), width, height, 3, depth, size, 3 * size, 3 * size * width),
            ocio.PlanarImageDesc(out[0], out[1], out[2], width, height, ocio.BIT_DEPTH_F32, 4, 4 * width),
        )
        return torch.from_numpy(out).reshape(shape).clamp_(0.0, 1.0)

    def _torch_apply(self, rgb: torch.Tensor) -> torch.Tensor:
        """`apply` in torch, the analytic shaper and `lookup`: for devices OCIO does not run on."""
        rgb = torch.nan_to_num(rgb, nan=0.0, posinf=3.0e38, neginf=-3.0e38)
        if self.matrix is not None:
            rgb = self._matrixed(rgb.unbind(0))
        return self.lookup(self.shaper.forward(rgb)).clamp_(0.0, 1.0)

    def apply(self, rgb: torch.Tensor) -> torch.Tensor:
        """(3, ...) plate values → display values in [0, 1]; NaN reads as 0, ±inf as the range's ends.

        float32 on the CPU: OCIO (`_cpu_apply`); elsewhere torch (`_torch_apply`). The two
        agree within 2e-6: float32 rounding of the shaper's log and of the interpolation's
        weights, 0.0005/255, nothing a picture shows.
        """
        if rgb.device.type == "cpu" and rgb.dtype == torch.float32:
            return self._cpu_apply(rgb)
        return self._torch_apply(rgb)


_baked: dict[tuple[str, str, str, str, int], BakedLut] = {}
_baking = threading.Lock()
#: Bakes kept per process (25 MiB each at 129³): one per (config, colourspace, display, view) in use.
MAX_BAKED = 4


def baked(config: ocio.Config, colourspace: str, display: str, view: str, encoding: str) -> BakedLut:
    """The LUT for one (config, colourspace, display, view), baked once per process.

    Keyed by the config's OCIO cache id (its content), so a config edited on disk is
    baked afresh. Baking 129³ (2.1 M) nodes costs ~1.5 s of one core, less than a session's
    other start-up costs, so nothing is cached on disk.
    """
    key = (config.getCacheID(), colourspace, display, view, CUBE_SIZE)
    with _baking:
        lut = _baked.get(key)
        if lut is None:
            transform = ocio.DisplayViewTransform(src=colourspace, display=display, view=view)
            lut = BakedLut.bake(config.getProcessor(transform), encoding)
            if len(_baked) >= MAX_BAKED:
                _baked.pop(next(iter(_baked)))
            _baked[key] = lut
        return lut
