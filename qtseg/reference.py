"""Which checkpoint an artifact was exported from: the PyTorch reference of its results.

Export records the checkpoint's path and the SHA-256 of its weights in the
manifest (``model.checkpoint``, ``model.checkpoint_sha256``). A checkpoint
is accepted as an artifact's reference only when its weights still hash to
the recorded value, so a retrained model in the same folder is never
silently compared against. Used by ``qtseg-bench`` and ``qtseg-val``.
"""

from __future__ import annotations

from pathlib import Path

from qtseg.manifest import Manifest
from qtseg.provenance import file_sha256

WEIGHTS = "weights.safetensors"


class WeightHashes:
    """SHA-256 of checkpoint weights, each file hashed once."""

    def __init__(self) -> None:
        self._cache: dict[Path, str] = {}

    def weights_sha(self, checkpoint: Path) -> str | None:
        """SHA-256 of ``checkpoint/weights.safetensors``; ``None`` when there is none."""
        file = Path(checkpoint) / WEIGHTS
        if not file.is_file():
            return None
        key = file.resolve()
        if key not in self._cache:
            self._cache[key] = file_sha256(file)
        return self._cache[key]


def resolve_checkpoint(
    manifest: Manifest,
    artifact: Path,
    override: Path | None,
    hashes: WeightHashes | None = None,
    *,
    override_flag: str = "--checkpoint",
) -> tuple[Path | None, str]:
    """The checkpoint an artifact was exported from, verified by its SHA-256.

    Tried in order: ``override`` (only it, when given), the manifest's path
    (as written, then relative to the artifact directory), the bundled default.

    Args:
        override_flag: the command-line option that sets ``override`` (named
            in the note when nothing was found).

    Returns:
        ``(checkpoint, note)``: the checkpoint and how it was found, or
        ``(None, why not)``.
    """
    import qtseg

    hashes = hashes or WeightHashes()
    want = manifest.model.checkpoint_sha256
    recorded = manifest.model.checkpoint
    if override is not None:
        named = [Path(override)]
    else:
        named = [Path(recorded), Path(artifact) / recorded] if recorded else []
    candidates = named if override is not None else [*named, qtseg.DEFAULT_CHECKPOINT]
    mismatched = []
    for cand in candidates:
        got = hashes.weights_sha(cand)
        if got is None:
            continue
        if want and got != want:
            mismatched.append(str(cand))
            continue
        note = "verified" if want else "not recorded in the manifest"
        return cand, f"{cand} (weights sha256 {note})"
    problems = []
    if not named:
        problems.append("the manifest names no checkpoint")
    elif not any(str(c) in mismatched for c in named):
        problems.append(f"reference checkpoint not found: {named[0]}")
    if mismatched:
        problems.append(
            f"weights at {', '.join(mismatched)} differ from the ones the artifact was exported "
            f"from (sha256 {str(want)[:12]}...)"
        )
    return None, "; ".join(problems) + f"; pass {override_flag} DIR"
