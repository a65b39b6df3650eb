"""qtseg: train, export, verify and benchmark QTSeg segmentation models.

Stable Python API::

    import qtseg
    model, spec = qtseg.load()                # bundled default checkpoint, eval, CPU
    x = spec.preprocess(image)                # HxWx3 uint8 RGB (or path) -> (N, 3, H, W) float32
    logits = model(torch.from_numpy(x))       # (N, num_classes, H, W)
    mask = spec.postprocess(logits, image.shape[:2])   # label map at the original size
"""

from __future__ import annotations

from pathlib import Path

__version__ = "0.1.0"

ASSETS_DIR = Path(__file__).resolve().parent / "assets"
DEFAULT_CHECKPOINT = ASSETS_DIR / "qtseg-v2-kvasir"
SAMPLES_DIR = ASSETS_DIR / "samples"


def load(path: str | Path | None = None, *, device: str = "cpu", verify_hashes: bool = True):
    """Load a checkpoint directory (default: the bundled QTSeg v2 Kvasir-SEG model).

    Args:
        path: a checkpoint folder, or a ``qtseg-train`` output folder (its
            ``best/`` checkpoint is used); default: the bundled model.
        device: where to put the model.
        verify_hashes: check the weights against the SHA-256 recorded in
            ``checkpoint.json`` (explicit opt-out; every other check runs).

    Returns:
        ``(model, spec)``: the model in eval mode on ``device`` and its
        :class:`~qtseg.preprocess.PreprocessSpec`.

    Raises:
        qtseg.checkpoint.CheckpointError: one line naming what is wrong.
    """
    from qtseg.checkpoint import load_checkpoint

    model, spec, _ = load_checkpoint(
        DEFAULT_CHECKPOINT if path is None else path, device=device, verify_hashes=verify_hashes
    )
    return model, spec


__all__ = ["ASSETS_DIR", "DEFAULT_CHECKPOINT", "SAMPLES_DIR", "__version__", "load"]
