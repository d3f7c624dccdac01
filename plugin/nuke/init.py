# rotobridge for Nuke: runs in every session, GUI or not (`nuke -t`, farm renders `nuke -x`).
# Path set-up only: scripts with RotoBridge nodes render without the bridge, the GUI or
# pyzmq, because the node's Read reads the EXR mattes from disk.
import rotobridge_nuke  # noqa: F401  (makes rotobridge and the vendored pyzmq importable)
