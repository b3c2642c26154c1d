"""Where a cluster pod keeps what is large: its scratch volume, and the caches pointed into it.

Without this, step folders, pulled checkpoints and the HF/vLLM/Triton caches land in the container's writable
layer on the node's disk, and a 7B run is evicted for disk pressure.
"""

from __future__ import annotations

# The mount of a pipeline pod's scratch volume, and the variable telling emtune's steps it is there.
SCRATCH_DIR = "/scratch"
SCRATCH_ENV = "EMTUNE_SCRATCH"


def cache_env(root: str) -> dict[str, str]:
    """Environment that sends every cache and temporary file of the pod's tools under `root`."""
    return {
        "HF_HOME": f"{root}/hf",
        "VLLM_CACHE_ROOT": f"{root}/vllm",
        "TRITON_CACHE_DIR": f"{root}/triton",
        "TORCHINDUCTOR_CACHE_DIR": f"{root}/inductor",
        "TORCH_EXTENSIONS_DIR": f"{root}/torch-extensions",
        "EMTUNE_CACHE": f"{root}/emtune",
        "TMPDIR": root,  # tempfile's pulls of checkpoints (an existing folder, or Python falls back to /tmp)
    }
