"""Make this Python refuse the packages the lent GPU machines' image lacks (the list in the device tool's KINDS.md
as of 2026-11-17), to check before a device call that a command needs nothing more than that image + pydantic:

    PYTHONPATH=scripts/gpu_image_sim:src python -m ferbench.cli.main sweep STUDY --out OUT --max-parallel 2

``sitecustomize`` runs in every Python process started with this PYTHONPATH, the sweep's spawned workers too.
Add ``pydantic`` to MISSING with ``FERBENCH_SIM_NO_PYDANTIC=1`` to see that it is needed (the image lacks it).
"""

import importlib.abc
import os
import sys

MISSING = {"fastapi", "fastapi_offline", "starlette", "uvicorn", "multipart", "python_multipart", "pytorch_grad_cam",
           "captum", "ai_edge_litert", "ai_edge_torch", "litert_torch", "onnxscript", "ray", "mediapipe",
           "facenet_pytorch"}
if os.environ.get("FERBENCH_SIM_NO_PYDANTIC"):
    MISSING |= {"pydantic", "pydantic_core"}


class _NotOnTheImage(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):  # type: ignore[no-untyped-def]
        if name.split(".")[0] in MISSING:
            raise ModuleNotFoundError(f"No module named {name!r} (not on the GPU image)", name=name)
        return None


sys.meta_path.insert(0, _NotOnTheImage())
