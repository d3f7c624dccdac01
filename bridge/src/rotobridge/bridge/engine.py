"""SAM 2 over a streamed, colour-managed plate, in plate frame numbers.

sam2's `init_state` decodes every frame up front (12 MiB each at 1024) and its
`propagate_in_video` upsamples every mask to video size and keeps every frame's memory.
The predictor only needs `state["images"]` to be indexable, so the engine hands it a lazy
`FrameSource` with bounded prefetch, runs its own copy of the propagation loop that yields
low-resolution logits (upsampled where they are written), and drops per-frame memory that
can no longer influence a result. Everything else is sam2's own code, called unchanged.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from rotobridge.errors import CancelledError, RecipeError

from .colour import ColourPipeline
from .model import LoadedModel
from .plate import Plate
from .sizing import Sizing, configure_openimageio, current


class FrameSource:
    """Model-ready frames by index, decoded on demand with bounded read-ahead.

    Decoding, colour and resizing of the next frames run in worker threads (one per core
    unless `sizing` says otherwise) while the model works on the current one. Frames are
    read ahead as far as `sizing`'s memory budget allows (or exactly `prefetch`), and
    `keep` recently used ones are cached (clicks revisit the same frame), so memory does
    not depend on the shot length, nor, past the budget, on the plate's resolution.
    """

    def __init__(
        self,
        plate: Plate,
        colour: ColourPipeline,
        frames: Sequence[int],
        image_size: int,
        *,
        prefetch: int | None = None,
        keep: int = 2,
        workers: int | None = None,
        sizing: Sizing | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        self.plate = plate
        self.colour = colour
        #: where the colour transform runs and model inputs live: the model's device
        self.device = torch.device(device)
        self.frames = tuple(frames)
        self.image_size = image_size
        sizing = sizing if sizing is not None else current()
        workers = workers or sizing.decoders
        display = plate.info.display
        plate_bytes = display.width * display.height * 3 * 4  # float32 RGB, as Plate.read returns it
        frame_bytes = 3 * image_size * image_size * 4  # the model input, float32
        self.prefetch = prefetch if prefetch is not None else sizing.read_ahead(plate_bytes, frame_bytes)
        self.keep = keep
        configure_openimageio()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rotobridge-decode")
        self._lock = threading.Lock()
        self._pending: dict[int, Future[torch.Tensor]] = {}
        self._recent: OrderedDict[int, torch.Tensor] = OrderedDict()
        self._order: list[int] = []
        self._position: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self.frames)

    def _load(self, index: int) -> torch.Tensor:
        pixels = self.plate.read(self.frames[index])
        return self.colour.model_input(pixels, self.image_size, device=self.device)

    def plan(self, order: Sequence[int]) -> None:
        """The indices the model will ask for next, in order; read-ahead follows them."""
        with self._lock:
            self._order = list(order)
            self._position = {idx: pos for pos, idx in enumerate(self._order)}
            stale = [i for i in self._pending if i not in self._position]
            for i in stale:
                self._pending.pop(i).cancel()
            self._read_ahead(-1)

    def _read_ahead(self, after: int) -> None:
        """Queue the next `prefetch` planned frames after position `after` (lock held)."""
        for idx in self._order[after + 1 : after + 1 + self.prefetch]:
            if idx not in self._pending and idx not in self._recent:
                self._pending[idx] = self._pool.submit(self._load, idx)

    def __getitem__(self, index: int) -> torch.Tensor:
        with self._lock:
            if index in self._recent:
                self._recent.move_to_end(index)
                return self._recent[index]
            future = self._pending.pop(index, None)
            if future is None:
                future = self._pool.submit(self._load, index)
            position = self._position.get(index)
            if position is not None:
                self._read_ahead(position)
        image = future.result()
        with self._lock:
            self._recent[index] = image
            while len(self._recent) > self.keep:
                self._recent.popitem(last=False)
        return image

    def close(self) -> None:
        with self._lock:
            for future in self._pending.values():
                future.cancel()
            self._pending.clear()
            self._recent.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)


@dataclass(frozen=True)
class FrameResult:
    """One frame's output: low-resolution SAM 2 logits, one row per object in `obj_ids` order."""

    frame: int
    obj_ids: tuple[int, ...]
    logits: torch.Tensor  # (objects, 1, image_size/4, image_size/4), float32


class Engine:
    """One shot's SAM 2 session. Frames are plate frame numbers; coordinates are
    display-window pixels, origin top-left."""

    def __init__(
        self,
        model: LoadedModel,
        plate: Plate,
        colour: ColourPipeline,
        *,
        prefetch: int | None = None,
        sizing: Sizing | None = None,
    ) -> None:
        self.model = model
        self.predictor = model.predictor
        self.frames = plate.info.frames
        self.width = plate.info.display.width
        self.height = plate.info.display.height
        self._index = {frame: i for i, frame in enumerate(self.frames)}
        #: pool sizes and read-ahead memory of this shot's pipeline (also the matte writers')
        self.sizing = sizing if sizing is not None else current()
        self.source = FrameSource(
            plate, colour, self.frames, model.image_size, prefetch=prefetch, sizing=self.sizing, device=model.device
        )
        low_res = model.image_size // 4
        predictor = self.predictor
        # The state init_state would build, minus the eager decode. video_height/width are
        # set to the logits' own size so sam2 never upsamples; clicks are normalised here.
        self.state: dict[str, Any] = {
            "images": self.source,
            "num_frames": len(self.frames),
            "offload_video_to_cpu": False,
            "offload_state_to_cpu": False,
            "video_height": low_res,
            "video_width": low_res,
            "device": model.device,
            "storage_device": model.device,
            "point_inputs_per_obj": {},
            "mask_inputs_per_obj": {},
            "cached_features": {},
            "constants": {},
            "obj_id_to_idx": OrderedDict(),
            "obj_idx_to_id": OrderedDict(),
            "obj_ids": [],
            "output_dict_per_obj": {},
            "temp_output_dict_per_obj": {},
            "frames_tracked_per_obj": {},
        }
        # How far back (in frames) a tracked frame's memory is read: mask memories up to
        # num_maskmem * stride frames, object pointers up to max_obj_ptrs_in_encoder.
        self.memory_reach = max(
            predictor.num_maskmem * predictor.memory_temporal_stride_for_eval,
            predictor.max_obj_ptrs_in_encoder,
        )

    # --- prompts -------------------------------------------------------------------

    def index(self, frame: int, field: str = "frame") -> int:
        try:
            return self._index[frame]
        except KeyError:
            raise RecipeError(field, f"frame {frame} is not in the plate ({self.frames[0]}-{self.frames[-1]})") from None

    def next_frame(self, frame: int, reverse: bool = False) -> int | None:
        """The plate frame after `frame` in a pass's direction; None past the plate's end."""
        at = self.index(frame) + (-1 if reverse else 1)
        return self.frames[at] if 0 <= at < len(self.frames) else None

    def _normalise(self, xy: torch.Tensor) -> torch.Tensor:
        # The same float ops sam2 applies with normalize_coords=True (it then scales by image_size).
        return xy / torch.tensor([self.width, self.height])

    def add_points(
        self,
        frame: int,
        obj_id: int,
        points: Sequence[Sequence[float]] = (),
        labels: Sequence[int] = (),
        box: Sequence[float] | None = None,
    ) -> FrameResult:
        """Replace an object's clicks on a frame; returns every object's logits there (the preview)."""
        idx = self.index(frame)
        pts = self._normalise(torch.tensor(points, dtype=torch.float32).reshape(-1, 2)) if len(points) else None
        lbl = torch.tensor(labels, dtype=torch.int32) if len(points) else None
        bx = self._normalise(torch.tensor(box, dtype=torch.float32).reshape(2, 2)) if box is not None else None
        self.source.plan([idx])
        with self.model.compute():
            _, obj_ids, logits = self.predictor.add_new_points_or_box(
                self.state, idx, obj_id, points=pts, labels=lbl, box=bx, clear_old_points=True, normalize_coords=False
            )
        return FrameResult(frame, tuple(obj_ids), logits.float())

    def add_mask(self, frame: int, obj_id: int, mask: np.ndarray) -> FrameResult:
        """Use a (display height, display width) boolean mask as the object's prompt on a frame."""
        if mask.shape != (self.height, self.width):
            raise RecipeError("mask", f"mask is {mask.shape[1]}x{mask.shape[0]}, the plate is {self.width}x{self.height}")
        idx = self.index(frame)
        self.source.plan([idx])
        with self.model.compute():
            _, obj_ids, logits = self.predictor.add_new_mask(self.state, idx, obj_id, torch.from_numpy(mask.astype(bool)))
        return FrameResult(frame, tuple(obj_ids), logits.float())

    def clear_prompts(self, frame: int, obj_id: int) -> None:
        if obj_id in self.state["obj_id_to_idx"]:
            with self.model.compute():
                self.predictor.clear_all_prompts_in_frame(self.state, self.index(frame), obj_id, need_output=False)

    def remove_object(self, obj_id: int) -> None:
        with self.model.compute():
            self.predictor.remove_object(self.state, obj_id, need_output=False)

    @property
    def obj_ids(self) -> tuple[int, ...]:
        return tuple(self.state["obj_ids"])

    def prompted_frames(self) -> list[int]:
        """Frames holding a prompt for any object (its conditioning frames)."""
        idxs = {
            t
            for out in self.state["output_dict_per_obj"].values()
            for t in out["cond_frame_outputs"]
        } | {t for out in self.state["temp_output_dict_per_obj"].values() for t in out["cond_frame_outputs"]}
        return sorted(self.frames[i] for i in idxs)

    def logits_at(self, frame: int) -> FrameResult:
        """Every object's logits sam2 holds for a prompted frame: what `add_points` returned there.

        sam2's own consolidation (the one behind `add_new_points_or_box`'s output), so a
        preview asked for later equals the one a click returned; absent objects are -1024.
        """
        with self.model.compute():
            out = self.predictor._consolidate_temp_output_across_obj(self.state, self.index(frame), is_cond=True)
        return FrameResult(frame, self.obj_ids, out["pred_masks"].float())

    # --- propagation ---------------------------------------------------------------

    def propagate(
        self,
        start: int,
        end: int,
        *,
        cancel: threading.Event | None = None,
    ) -> Iterator[FrameResult]:
        """Track every object from `start` to `end` inclusive (backward when end < start).

        Mirrors sam2's `propagate_in_video` step for step (so results are identical), but
        yields low-resolution logits and drops memory no later frame of this pass, nor a
        later pass from a prompted frame or from this start, can read. Checks `cancel`
        between frames.
        """
        return (out for out in self.propagate_steps(start, end, cancel=cancel) if out is not None)

    def propagate_steps(
        self,
        start: int,
        end: int,
        *,
        cancel: threading.Event | None = None,
        begin: int | None = None,
        reverse: bool | None = None,
    ) -> Iterator[FrameResult | None]:
        """`propagate`, yielding None after each object of a frame but the last: the points
        where a caller may do other work (the bridge's device worker serves other artists'
        clicks there, so a frame of many objects does not hold them up).

        `begin`: continue the pass from `start` at this frame (after `restore`), keeping the
        same memory a pass from `start` keeps. `reverse` gives the direction when start ==
        end, where it cannot be told from them (default forward)."""
        predictor = self.predictor
        state = self.state
        first, last = self.index(start, "start"), self.index(end, "end")
        if reverse is None:
            reverse = last < first
        at = first if begin is None else self.index(begin, "begin")
        order = list(range(at, last - 1, -1) if reverse else range(at, last + 1))
        yield from self._preflight()
        self.source.plan(order)
        keep = self._protected(first)
        step = -1 if reverse else 1
        for frame_idx in order:
            if cancel is not None and cancel.is_set():
                raise CancelledError(f"cancelled before frame {self.frames[frame_idx]}")
            masks = []
            objects = len(state["obj_ids"])
            for obj_idx in range(objects):
                with self.model.compute():
                    outputs = state["output_dict_per_obj"][obj_idx]
                    if frame_idx in outputs["cond_frame_outputs"]:
                        pred = outputs["cond_frame_outputs"][frame_idx]["pred_masks"].to(state["device"])
                    else:
                        current, pred = predictor._run_single_frame_inference(
                            inference_state=state,
                            output_dict=outputs,
                            frame_idx=frame_idx,
                            batch_size=1,
                            is_init_cond_frame=False,
                            point_inputs=None,
                            mask_inputs=None,
                            reverse=reverse,
                            run_mem_encoder=True,
                        )
                        outputs["non_cond_frame_outputs"][frame_idx] = current
                    state["frames_tracked_per_obj"][obj_idx][frame_idx] = {"reverse": reverse}
                    masks.append(pred)
                    stale = frame_idx - step * (self.memory_reach + 1)
                    if stale not in keep:
                        outputs["non_cond_frame_outputs"].pop(stale, None)
                if obj_idx < objects - 1:
                    yield None
            logits = torch.cat(masks, dim=0) if masks else torch.empty(0)
            yield FrameResult(self.frames[frame_idx], tuple(state["obj_ids"]), logits.float())

    #: The parts of sam2's inference state that tracking builds (the rest are caches and the frames).
    TRACKING_STATE = (
        "obj_id_to_idx",
        "obj_idx_to_id",
        "obj_ids",
        "point_inputs_per_obj",
        "mask_inputs_per_obj",
        "output_dict_per_obj",
        "frames_tracked_per_obj",
    )

    def snapshot(self) -> dict[str, Any]:
        """What tracking needs to continue, between frames of a pass: sam2's per-object
        outputs the engine still holds (prompted frames, and the frames within memory reach,
        dropped beyond it) and its object and prompt bookkeeping. References, not copies:
        serialise it before tracking goes on."""
        state = self.state
        if any(out[key] for out in state["temp_output_dict_per_obj"].values() for key in out):
            raise RuntimeError("snapshot between propagation frames only: prompts are not yet consolidated")
        return {key: state[key] for key in self.TRACKING_STATE}

    def restore(self, snapshot: dict[str, Any]) -> None:
        """Put a `snapshot` (e.g. loaded from a checkpoint) back: tracking continues as if it had never stopped."""
        self.state.update({key: snapshot[key] for key in self.TRACKING_STATE})
        self.state["temp_output_dict_per_obj"] = {
            idx: {"cond_frame_outputs": {}, "non_cond_frame_outputs": {}} for idx in snapshot["obj_idx_to_id"]
        }

    def _preflight(self) -> Iterator[None]:
        """sam2's `propagate_in_video_preflight`, with the memory encoding of each new prompt
        run first, one at a time, yielding None after each.

        The preflight encodes every object's new prompts into memory in one go: with many
        objects that is many model passes in one step. The same `_run_memory_encoder` calls,
        in the same order, made here first leave it only its bookkeeping (it skips outputs
        whose memory is already encoded), so results are unchanged.
        """
        predictor, state = self.predictor, self.state
        for obj_idx in range(len(state["obj_ids"])):
            temp = state["temp_output_dict_per_obj"][obj_idx]
            for key in ("non_cond_frame_outputs", "cond_frame_outputs"):  # sam2's order: is_cond False, then True
                for frame_idx, out in temp[key].items():
                    if out["maskmem_features"] is not None:
                        continue
                    with self.model.compute():
                        high_res_masks = torch.nn.functional.interpolate(
                            out["pred_masks"].to(state["device"]),
                            size=(predictor.image_size, predictor.image_size),
                            mode="bilinear",
                            align_corners=False,
                        )
                        features, position = predictor._run_memory_encoder(
                            inference_state=state,
                            frame_idx=frame_idx,
                            batch_size=1,
                            high_res_masks=high_res_masks,
                            object_score_logits=out["object_score_logits"],
                            is_mask_from_pts=True,
                        )
                    out["maskmem_features"], out["maskmem_pos_enc"] = features, position
                    yield None
        with self.model.compute():
            predictor.propagate_in_video_preflight(state)

    def _protected(self, start_idx: int) -> set[int]:
        """Frame indices whose memory is kept: near a prompt or near this pass's start, where
        a later pass (corrections, the other direction of "both") will read it."""
        reach = self.memory_reach
        anchors = {start_idx} | {self._index[f] for f in self.prompted_frames()}
        return {i for a in anchors for i in range(a - reach, a + reach + 1)}

    def close(self) -> None:
        self.source.close()
        self.state.clear()
