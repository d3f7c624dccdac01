"""SAM 2 predictors built from sam2 configs and standard checkpoint files.

sam2's own loader fails with a bare RuntimeError on a mismatched file; here every failure
names the file, the config and what did not fit. Random checkpoints exist because no
machine here can download weights: they prove the plumbing, never the quality.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch

from rotobridge import recipe as recipes
from rotobridge.errors import ModelError

from . import holes, registry
from .config import COMPILE_ENV, COMPILE_MODES

log = logging.getLogger(__name__)

#: Key added next to "model" in checkpoints made by `make_random_checkpoint`.
UNTRAINED_KEY = "rotobridge_untrained"
#: Random weights make the object-score head say "absent" on every frame (all-zero mattes,
#: NOTES.md); this bias makes random objects "present" so tests see mattes that vary.
_OBJ_SCORE_BIAS = ("sam_mask_decoder.pred_obj_score_head.layers.2.bias", 8.0)


@dataclass(frozen=True)
class LoadedModel:
    predictor: Any  # sam2.sam2_video_predictor.SAM2VideoPredictor
    name: str
    config: str
    checkpoint: Path
    sha256: str
    untrained: bool
    device: torch.device
    #: sam2's `fill_hole_area` (the builder's 8 unless overridden), filled by holes.py
    fill_hole_area: int
    #: the torch.compile mode it was built with (COMPILE_MODES)
    compile: str = "off"

    @property
    def image_size(self) -> int:
        return int(self.predictor.image_size)

    @contextlib.contextmanager
    def compute(self) -> Iterator[None]:
        """The numeric context of every model call: bf16 autocast on CUDA, as the official code runs."""
        with torch.inference_mode():
            if self.device.type == "cuda":
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    yield
            else:
                yield


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name not in ("cuda", "mps", "cpu"):
        raise ModelError(f"unknown device {name!r}: use auto, cuda, mps or cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ModelError("device cuda was asked for but torch sees no CUDA device; use --device cpu or auto")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ModelError("device mps was asked for but is not available on this machine; use --device cpu or auto")
    return torch.device(name)


def compile_mode(mode: str | None = None) -> str:
    """`mode`, else $ROTOBRIDGE_COMPILE, else "off"; ModelError naming the choices otherwise
    (config.COMPILE_MODES says what each does)."""
    chosen = mode or os.environ.get(COMPILE_ENV) or "off"
    if chosen not in COMPILE_MODES:
        where = "compile" if mode else f"${COMPILE_ENV}"
        raise ModelError(f"{where}: {chosen!r} is not one of {', '.join(COMPILE_MODES)}")
    return chosen


def enable_tf32(device: torch.device) -> None:
    """TensorFloat-32 matmuls and convolutions on CUDA GPUs that have them (Ampere and
    later), as sam2's own notebooks set: the float32 matmuls bf16 autocast leaves run on
    tensor cores with a 10-bit mantissa; docs/performance.md gives the tolerance."""
    if device.type == "cuda" and torch.cuda.get_device_properties(device).major >= 8:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def _instantiate(config: str, overrides: Sequence[str], compile: str = "off") -> Any:
    """Build an untrained predictor exactly as sam2's builder does (its post-processing
    included); `compile` selects sam2's own torch.compile options (COMPILE_MODES)."""
    from sam2.build_sam import build_sam2_video_predictor

    extra = list(overrides)
    if compile == "image-encoder":
        extra.append("++model.compile_image_encoder=true")
    try:
        predictor = build_sam2_video_predictor(
            config, ckpt_path=None, device="cpu", hydra_overrides_extra=extra, vos_optimized=compile == "vos"
        )
    except Exception as exc:  # hydra raises many types for bad names/overrides
        raise ModelError(f"cannot build SAM 2 from config {config!r} with overrides {list(overrides)}: {exc}") from None
    return predictor


def _read_checkpoint(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ModelError(
            f"checkpoint {path} does not exist; download it with `python checkpoints/download.py` "
            "or make a test one with `rotobridge checkpoint random`"
        )
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelError(f"{path} is not a readable PyTorch checkpoint: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
        raise ModelError(f"{path} is not a SAM 2 checkpoint: expected a dict with a 'model' state dict")
    return data


def build(
    config: str,
    checkpoint: str | Path,
    *,
    device: str | torch.device = "auto",
    overrides: Sequence[str] = (),
    name: str | None = None,
    compile: str | None = None,
) -> LoadedModel:
    """A ready predictor on `device`; raises ModelError when the file does not fit the config.
    `compile`: one of COMPILE_MODES (None: $ROTOBRIDGE_COMPILE, else off)."""
    path = Path(checkpoint)
    data = _read_checkpoint(path)
    mode = compile_mode(compile)
    predictor = _instantiate(config, overrides, mode)
    state = data["model"]
    expected = predictor.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(state) & set(expected) if tuple(state[k].shape) != tuple(expected[k].shape))
    if missing or unexpected or wrong:
        details = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
            if keys:
                details.append(f"{len(keys)} {label} (e.g. {', '.join(keys[:3])})")
        raise ModelError(
            f"checkpoint {path} does not fit config {config}: {'; '.join(details)}. "
            "Is it a SAM 2 checkpoint used with a SAM 2.1 config (or another size)?"
        )
    predictor.load_state_dict(state)
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    predictor = predictor.to(dev).eval()
    enable_tf32(dev)
    predictor.memory_attention.register_forward_pre_hook(_memory_as_query_dtype, with_kwargs=True)
    # The builder asks for hole filling, which sam2 can only do with its optional CUDA
    # extension (not installed): holes.py does it without, where sam2 would.
    fill_hole_area = int(predictor.fill_hole_area)
    holes.install(predictor, fill_hole_area)
    untrained = bool(data.get(UNTRAINED_KEY, False))
    if untrained:
        log.warning("checkpoint %s is RANDOMLY INITIALISED (untrained): its mattes mean nothing", path)
    return LoadedModel(
        predictor=predictor,
        name=name or Path(config).stem,
        config=config,
        checkpoint=path,
        sha256=registry.sha256_file(path),
        untrained=untrained,
        device=dev,
        fill_hole_area=fill_hole_area,
        compile=mode,
    )


def _memory_as_query_dtype(module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """Fix sam2 1.1.0's crash when tracking towards a prompt without autocast (CPU, MPS).

    sam2 stores mask memory in bfloat16. Normally the object pointers are concatenated with
    it and `torch.cat` promotes the memory to float32; with no pointer yet (tracking towards
    a prompt) the memory stays bfloat16 and attention fails on mixed dtypes. Promoting it
    here is exactly what `torch.cat` does in the working case, so results do not move.
    """
    curr = kwargs.get("curr")
    query = curr[0] if isinstance(curr, list) else curr
    memory = kwargs.get("memory")
    if (
        isinstance(query, torch.Tensor)
        and isinstance(memory, torch.Tensor)
        and memory.dtype == torch.bfloat16
        and query.dtype == torch.float32
    ):
        kwargs["memory"] = memory.float()
    return args, kwargs


def make_random_checkpoint(
    config: str, out: str | Path, *, seed: int = 0, overrides: Sequence[str] = ()
) -> Path:
    """Write a randomly initialised checkpoint in the standard `{"model": state_dict}` format."""
    torch.manual_seed(seed)
    predictor = _instantiate(config, overrides)
    state = predictor.state_dict()
    key, value = _OBJ_SCORE_BIAS
    if key in state:
        state[key] = torch.full_like(state[key], value)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save({"model": state, UNTRAINED_KEY: True}, tmp)
    tmp.replace(path)
    return path


def from_recipe(
    model: recipes.Model, base_resolve: Callable[[str], str], device: str = "auto", compile: str | None = None
) -> LoadedModel:
    """Resolve a recipe's model section (registry name and/or config + checkpoint) and build it."""
    spec = registry.get(model.name) if model.name else None
    # Recipe validation guarantees a config (own or the registry model's) and a checkpoint
    # (own or the registry model's); the ModelErrors only name a section that skipped it.
    config = model.config or (spec.config if spec is not None else None)
    if not config:
        raise ModelError("the model section needs 'config' with 'checkpoint' unless 'name' says which model it is")
    if model.checkpoint:
        checkpoint = Path(base_resolve(model.checkpoint))
    elif spec is not None:
        checkpoint = registry.checkpoints_dir() / spec.filename
    else:
        raise ModelError("the model section needs either 'name' (a registry model) or 'checkpoint' (a checkpoint file)")
    return build(
        config, checkpoint, device=device, overrides=model.overrides, name=model.name or Path(config).stem, compile=compile
    )
