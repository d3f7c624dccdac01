"""The bridge process: everything that needs torch, sam2, OpenImageIO or OpenColorIO."""
