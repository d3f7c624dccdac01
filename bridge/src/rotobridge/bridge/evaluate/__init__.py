"""`rotobridge evaluate`: J&F of rotobridge (or any tool) on DAVIS, MOSE, YouTube-VOS, SA-V and studio shots.

datasets (the benchmark layouts) · masks (their PNG files) · predictions (a prediction
folder) · tracker (the Engine the protocols drive) · semisupervised (the protocol) ·
scores (J, F, conventions) · runs (resumable runs) · report (tables and files) · command (CLI).
"""
