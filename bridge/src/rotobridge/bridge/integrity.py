"""Check that the installed `sam2` is the exact code rotobridge was verified against.

The `sam2` 1.1.0 on the package index is an sdist uploaded by a third party (not Meta),
built on the user's machine. Its files are byte-identical to facebookresearch/sam2 at
2b90b9f, which is what rotobridge's engine is tested with, and the engine relies on sam2
internals (the inference-state dict, memory handling). So the bridge checks, before it
builds a model, that every file it relies on still has the recorded sha256: a changed
upload, a local edit or another version stops with an actionable error instead of
producing different mattes. `python -m rotobridge.bridge.integrity` runs the same check
for install scripts (exit 0 = OK).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import sys
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from rotobridge.bridge.registry import sha256_file
from rotobridge.errors import IntegrityError

SAM2_VERSION = "1.1.0"

#: how to get the verified copy back (run with the bridge environment's python)
REINSTALL = (
    "SAM2_BUILD_CUDA=0 python -m pip install --no-build-isolation --no-deps "
    f"--force-reinstall --no-cache-dir sam2=={SAM2_VERSION}"
)

# Computed from the installed sam2 1.1.0 (files byte-identical to upstream 2b90b9f);
# the sam2.1 tiny and large config hashes also match ones other projects publish for upstream sam2.
SAM2_FILES: Mapping[str, str] = MappingProxyType({
    "__init__.py": "b87ca1e95cd54b81766e8c74acf0e937952639529e40d2b4088693286f49419e",
    "build_sam.py": "856d64d71e44407401297b551884fb4cd1aba8082de0ff5fc60fac3dd42f094d",
    "sam2_video_predictor.py": "912555920a77f72ded07839efa33fcceecc79f3523abbec783f0be46ee2c55c2",
    "modeling/__init__.py": "34bd8069c54764e7b8d73a78905dbe6467140a2f73170875128f6ca4d8cdd0aa",
    "modeling/sam2_base.py": "69a46b44e8625f509791352bd09beaafe589cd7d872721384e63d37f9fdc6e41",
    "modeling/sam2_utils.py": "e35bbf13bc2e544a0272cd3f9539af38a752676ac3cd744be31cd8220afee804",
    "modeling/memory_attention.py": "07358cb7f58ec3788e88ff4e6415f8a9d628a3963529d6e2c915494a5347c8e2",
    "modeling/memory_encoder.py": "73f7089ae5fdacdfcaaf3deca1ca6d9f84d89e7deb9cf97589622a9ef17ba42f",
    "modeling/position_encoding.py": "b51404718c0d38f381293c8e5e00a15d129651b7f09b1158002d8974a30967b5",
    "modeling/sam/__init__.py": "34bd8069c54764e7b8d73a78905dbe6467140a2f73170875128f6ca4d8cdd0aa",
    "modeling/sam/mask_decoder.py": "ca3523c58365574faddf1bfb54f374e4b4beba05127185ea2b17d22b916e099a",
    "modeling/sam/prompt_encoder.py": "4965ccb4a4504aa4d7246b2ad66ffeacd2626415c86a261dc1c65ffd8ae1d40d",
    "modeling/sam/transformer.py": "cda19052331e775190ce8b1159efcb828a4632d931a6d8bd4d47109f121782f1",
    "modeling/backbones/__init__.py": "34bd8069c54764e7b8d73a78905dbe6467140a2f73170875128f6ca4d8cdd0aa",
    "modeling/backbones/hieradet.py": "03785581ca304d0451ae0df7a08ee0bf1e1dbe66fad285066e6b9ffc0d88d64f",
    "modeling/backbones/image_encoder.py": "16eaad232220386f510ca8dfab8655e63699977149a4daf9ce9c6f374e6777a9",
    "modeling/backbones/utils.py": "c4a0657db2a92bda2a7ff116cd4017f6b1c59af6408093d8874eb08a0df476ad",
    "utils/__init__.py": "34bd8069c54764e7b8d73a78905dbe6467140a2f73170875128f6ca4d8cdd0aa",
    "utils/misc.py": "01600c01c161cd079d7106fb1d4da845cf91aa31ab2bcecaf8cb151b6d6d20a2",
    "utils/transforms.py": "ba3a64f4600c62f209206a6df3b40e3fcf133edae32fad658831bb0c2a6d1146",
    "configs/sam2/sam2_hiera_t.yaml": "33399c73cd13bbc3d0c1cea843fa2fc255fdb20139fe07f042743e046ac46b6b",
    "configs/sam2/sam2_hiera_s.yaml": "20e0ade957a4ab5e8138c93c346a8d8965c0b00d1a05fa0e79ce477985904188",
    "configs/sam2/sam2_hiera_b+.yaml": "644d1a9aaa7e14183802246dee4f43627e067d77dd89f1f40d83657db18d038b",
    "configs/sam2/sam2_hiera_l.yaml": "0ee9f2037fd98489212bb0b78a56f33ac82eb177cf5e52c88be3714cb84eea26",
    "configs/sam2.1/sam2.1_hiera_t.yaml": "f932eac1c6241e910031b2f000a81cd9f8a8d4896e2277ab5ffb721f378b188d",
    "configs/sam2.1/sam2.1_hiera_s.yaml": "0f36b91e86e58d06c87e42997166212468b88b98b60e4d816d5e4d4d088b6f55",
    "configs/sam2.1/sam2.1_hiera_b+.yaml": "37d6c56b07a7f8d08baaa314315c60dc3aabe2edc66cd92bac6d1ed50038e788",
    "configs/sam2.1/sam2.1_hiera_l.yaml": "1dbd6cb6dfebeaf588c7006ee222c6efbfa9049a7ad472a3cdfb2f5d919e8107",
})


def sam2_root() -> Path:
    """Folder of the `sam2` package Python would import, found without importing it."""
    spec = importlib.util.find_spec("sam2")
    if spec is None or not spec.submodule_search_locations:
        raise IntegrityError(f"sam2 is not installed; install the verified version: {REINSTALL}")
    return Path(next(iter(spec.submodule_search_locations)))


def installed_version() -> str | None:
    """`sam2`'s version from its installed metadata (None when there is none)."""
    try:
        return importlib.metadata.version("sam2")
    except importlib.metadata.PackageNotFoundError:
        return None


def verify_sam2() -> None:
    """Raise IntegrityError unless every file in SAM2_FILES matches and the version is SAM2_VERSION."""
    root = sam2_root()
    version = installed_version()
    versions = f"installed sam2 {version or 'without metadata'} at {root}, verified: {SAM2_VERSION}"
    for rel, expected in SAM2_FILES.items():
        path = root / rel
        if not path.is_file():
            problem = f"sam2 file {rel} is missing"
        else:
            got = sha256_file(path)
            if got == expected:
                continue
            problem = f"sam2 file {rel} differs from the verified copy (sha256 {got}, expected {expected})"
        raise IntegrityError(f"{problem}; {versions}. Fix: {REINSTALL}")
    if version != SAM2_VERSION:
        raise IntegrityError(f"sam2 version mismatch ({versions}). Fix: {REINSTALL}")


def main() -> int:
    """Print OK or the problem; exit status 0 or 1 (for install scripts)."""
    try:
        verify_sam2()
    except IntegrityError as exc:
        print(f"sam2 integrity: {exc}", file=sys.stderr)
        return 1
    print(f"sam2 integrity: OK (sam2 {SAM2_VERSION}, {len(SAM2_FILES)} files verified)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
