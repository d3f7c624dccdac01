"""Model registry: friendly model names -> sam2 config + official checkpoint file.

Checkpoints are the files Meta publishes (URLs as in facebookresearch/sam2
`checkpoints/download_ckpts.sh`), checked by sha256 so a truncated download, a
corrupted copy or a different file served by a mirror is never loaded.
Stdlib only (urllib), so the download script runs before torch is even installed.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from rotobridge.errors import CheckpointDownloadError, ModelError

_CHUNK = 1 << 20

SAM2_1_BASE_URL = "https://dl.fbaipublicfiles.com/segment_anything_2/092824"
SAM2_BASE_URL = "https://dl.fbaipublicfiles.com/segment_anything_2/072824"


@dataclass(frozen=True)
class ModelSpec:
    """One official SAM 2 / 2.1 model: how to build it and which file holds its weights."""

    name: str
    #: config name as sam2's `build_sam2` / `build_sam2_video_predictor` takes it
    config: str
    filename: str
    url: str
    #: sha256 of the official checkpoint file
    sha256: str


# sha256 sources (Hugging Face shows the Git LFS sha256 of each file on its file page):
# - sam2.1 tiny / small: Meta's own model repos facebook/sam2.1-hiera-tiny and
#   facebook/sam2.1-hiera-small (file pages of sam2.1_hiera_{tiny,small}.pt).
# - sam2.1 base+ / large: Hugging Face mirrors of the 092824 files (camenduru/sam2-1-hiera,
#   Mar2Ding/SAM2Long-Demo, wondervictor/Mask-Adapter agree); the same values are pinned
#   against the dl.fbaipublicfiles.com URLs by micro-sam's SAM 2 loader (pooch known_hash).
# - sam2 tiny / small / base+: Meta's model repos facebook/sam2-hiera-{tiny,small,base-plus}
#   (uploads by Meta's Haitham Khedr); 3D Slicer's SegmentWithSAM extension checks the
#   tiny and base+ values when downloading from the 072824 URLs.
# - sam2 large: merve/sam2-hiera-large (Hugging Face staff mirror) and 3D Slicer's
#   SegmentWithSAM extension, which verifies it against the 072824 URL.
_SPECS = (
    ModelSpec(
        "sam2.1-hiera-tiny",
        "configs/sam2.1/sam2.1_hiera_t.yaml",
        "sam2.1_hiera_tiny.pt",
        f"{SAM2_1_BASE_URL}/sam2.1_hiera_tiny.pt",
        "7402e0d864fa82708a20fbd15bc84245c2f26dff0eb43a4b5b93452deb34be69",
    ),
    ModelSpec(
        "sam2.1-hiera-small",
        "configs/sam2.1/sam2.1_hiera_s.yaml",
        "sam2.1_hiera_small.pt",
        f"{SAM2_1_BASE_URL}/sam2.1_hiera_small.pt",
        "6d1aa6f30de5c92224f8172114de081d104bbd23dd9dc5c58996f0cad5dc4d38",
    ),
    ModelSpec(
        "sam2.1-hiera-base-plus",
        "configs/sam2.1/sam2.1_hiera_b+.yaml",
        "sam2.1_hiera_base_plus.pt",
        f"{SAM2_1_BASE_URL}/sam2.1_hiera_base_plus.pt",
        "a2345aede8715ab1d5d31b4a509fb160c5a4af1970f199d9054ccfb746c004c5",
    ),
    ModelSpec(
        "sam2.1-hiera-large",
        "configs/sam2.1/sam2.1_hiera_l.yaml",
        "sam2.1_hiera_large.pt",
        f"{SAM2_1_BASE_URL}/sam2.1_hiera_large.pt",
        "2647878d5dfa5098f2f8649825738a9345572bae2d4350a2468587ece47dd318",
    ),
    ModelSpec(
        "sam2-hiera-tiny",
        "configs/sam2/sam2_hiera_t.yaml",
        "sam2_hiera_tiny.pt",
        f"{SAM2_BASE_URL}/sam2_hiera_tiny.pt",
        "65b50056e05bcb13694174f51bb6da89c894b57b75ccdf0ba6352c597c5d1125",
    ),
    ModelSpec(
        "sam2-hiera-small",
        "configs/sam2/sam2_hiera_s.yaml",
        "sam2_hiera_small.pt",
        f"{SAM2_BASE_URL}/sam2_hiera_small.pt",
        "95949964d4e548409021d47b22712d5f1abf2564cc0c3c765ba599a24ac7dce3",
    ),
    ModelSpec(
        "sam2-hiera-base-plus",
        "configs/sam2/sam2_hiera_b+.yaml",
        "sam2_hiera_base_plus.pt",
        f"{SAM2_BASE_URL}/sam2_hiera_base_plus.pt",
        "d0bb7f236400a49669ffdd1be617959a8b1d1065081789d7bbff88eded3a8071",
    ),
    ModelSpec(
        "sam2-hiera-large",
        "configs/sam2/sam2_hiera_l.yaml",
        "sam2_hiera_large.pt",
        f"{SAM2_BASE_URL}/sam2_hiera_large.pt",
        "7442e4e9b732a508f80e141e7c2913437a3610ee0c77381a66658c3a445df87b",
    ),
)

MODELS: Mapping[str, ModelSpec] = MappingProxyType({spec.name: spec for spec in _SPECS})

#: called as progress(bytes_done, bytes_total_or_None) while a download streams
Progress = Callable[[int, int | None], None]


def get(name: str) -> ModelSpec:
    """The spec for `name`; an unknown name is a ModelError that lists the known ones."""
    try:
        return MODELS[name]
    except KeyError:
        raise ModelError(
            f"unknown model {name!r}; known models: {', '.join(MODELS)}"
        ) from None


def checkpoints_dir() -> Path:
    """Where checkpoint files live.

    `$ROTOBRIDGE_CHECKPOINTS` when set: weights are large and studios keep one shared copy
    on fast storage, and an installed (non-checkout) bridge or a read-only farm image has no
    writable `checkpoints/` of its own. Otherwise the checkout's top-level `checkpoints/`
    folder (next to `bridge/`), where the download script puts them, so a fresh checkout
    works with no configuration.
    """
    override = os.environ.get("ROTOBRIDGE_CHECKPOINTS")
    if override:
        return Path(override).expanduser()
    return Path(__file__).resolve().parents[4] / "checkpoints"  # bridge/src/rotobridge/bridge/registry.py


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in chunks (checkpoints are up to ~900 MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _by_hand(spec: ModelSpec, dest_dir: Path) -> str:
    default = dest_dir.resolve() == checkpoints_dir().resolve()
    verify_cmd = "python checkpoints/download.py --verify" + ("" if default else f" --dir {dest_dir}")
    return f"copy {spec.filename} (from {spec.url}) into {dest_dir} by hand, then run `{verify_cmd}`"


def verify(spec: ModelSpec, dest_dir: Path) -> Path:
    """Path of `spec`'s file in `dest_dir`, checked against its sha256.

    CheckpointDownloadError when the file is missing or differs: never load unverified weights.
    """
    path = Path(dest_dir) / spec.filename
    if not path.is_file():
        raise CheckpointDownloadError(
            f"{spec.name}: {path} is missing; run `python checkpoints/download.py {spec.name}` "
            f"or {_by_hand(spec, Path(dest_dir))}"
        )
    got = sha256_file(path)
    if got != spec.sha256:
        raise CheckpointDownloadError(
            f"{spec.name}: {path} has sha256 {got}, expected {spec.sha256} "
            "(corrupted or not the official file); delete it and download again"
        )
    return path


def download(
    spec: ModelSpec,
    dest_dir: Path,
    *,
    timeout: float = 30,
    progress: Progress | None = None,
) -> Path:
    """Fetch `spec`'s checkpoint into `dest_dir`, verified, and return its path.

    A final file that already has the right hash is kept (no network). Otherwise the file
    streams to `<filename>.part` while its sha256 is computed, and only a verified file is
    renamed (atomically) to the final name, so a reader never sees a partial or wrong file
    and an existing file is only replaced by a verified one. `timeout` applies to the
    connection and to each read.
    """
    dest_dir = Path(dest_dir)
    final = dest_dir / spec.filename
    if final.is_file() and sha256_file(final) == spec.sha256:
        return final
    dest_dir.mkdir(parents=True, exist_ok=True)
    part = dest_dir / f"{spec.filename}.part"
    digest = hashlib.sha256()
    try:
        try:
            with urllib.request.urlopen(spec.url, timeout=timeout) as response, open(part, "wb") as out:
                length = response.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
                done = 0
                while chunk := response.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, total)
                out.flush()
                os.fsync(out.fileno())
        except urllib.error.HTTPError as exc:
            raise CheckpointDownloadError(
                f"cannot download {spec.name}: {spec.url} failed with HTTP {exc.code} {exc.reason}; "
                f"check the URL or mirror, or {_by_hand(spec, dest_dir)}"
            ) from exc
        except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError) as exc:
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            raise CheckpointDownloadError(
                f"cannot download {spec.name}: {spec.url} is unreachable ({reason}); we are offline "
                f"or the URL failed; {_by_hand(spec, dest_dir)}"
            ) from exc
        except OSError as exc:
            raise CheckpointDownloadError(
                f"cannot write {part} while downloading {spec.name}: {exc}"
            ) from exc
        got = digest.hexdigest()
        if got != spec.sha256:
            raise CheckpointDownloadError(
                f"{spec.name}: the file downloaded from {spec.url} has sha256 {got}, expected "
                f"{spec.sha256}; it was deleted. Retry, use another mirror, or {_by_hand(spec, dest_dir)}"
            )
        os.replace(part, final)
    finally:
        part.unlink(missing_ok=True)
    return final
