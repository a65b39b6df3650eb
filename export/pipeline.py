"""Export orchestration: one job, many targets, each staged, gated and verified as a loader sees it.

For every target: build into a staging directory beside the final one, run
the parity gate on the staged files, write ``preprocess.json`` and the typed
``manifest.json`` (every file with its size and SHA-256), read the staged
folder back through :func:`qtseg.manifest.open_artifact` exactly as every
loader will, then move the directory into place. Any failure (build error,
parity failure, interrupt) removes the staging directory, so nothing partial
is ever left at ``<out>/<model>_<target>/``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from qtseg.atomic import staging_dir
from qtseg.backends.base import BackendUnavailable, NotExecutableHere
from qtseg.evaluation import ParityResult
from qtseg.export.job import BuildResult, ExportJob, ParityFailure, TargetOutcome
from qtseg.export.target import Target
from qtseg.manifest import (
    FILENAME,
    ExportSettings,
    Manifest,
    ManifestError,
    ModelInfo,
    RuntimeSpec,
    describe_files,
    open_artifact,
    write_manifest,
)
from qtseg.preprocess import PREPROCESS_FILENAME
from qtseg.provenance import config_hash, git_sha, host_description, package_versions


def export_target(job: ExportJob, target: Target, out_dir: Path) -> TargetOutcome:
    """Build, verify and place one target's artifact directory.

    Returns:
        The outcome; ``failed`` when the gate failed (nothing is left at the
        final path in that case). Build errors propagate as exceptions.
    """
    final = Path(out_dir) / f"{job.model_name}_{target.name}"
    job.progress.prefix = target.name
    start = time.perf_counter()
    parity: list[ParityResult] = []
    try:
        with staging_dir(final) as staging:
            result: BuildResult = target.build(job, staging)
            verified, not_run = [], []
            if job.options.verify:
                for check in result.checks:
                    try:
                        parity.append(job.run_check(check, target.precision))
                        verified.append(check.label)
                    except (NotExecutableHere, BackendUnavailable) as exc:
                        note = f"{check.label}: {exc}"
                        not_run.append(note)
                        job.progress.info(note)
                if any(not r.passed for r in parity):
                    raise ParityFailure(target.name, parity)
            else:
                job.progress.info("WARNING: --no-verify: the artifact was NOT checked against PyTorch")
                not_run.append("parity gate skipped (--no-verify)")
            job.spec.save(staging)
            manifest = build_manifest(job, target, result, staging, parity, verified, not_run)
            write_manifest(staging, manifest)
            open_artifact(staging)  # read back exactly as every loader will
    except ParityFailure as exc:
        return TargetOutcome(target.name, "failed", None, str(exc), parity, time.perf_counter() - start)
    job.progress.info(f"wrote {final}")
    return TargetOutcome(target.name, "ok", final, result.built, parity, time.perf_counter() - start)


def _check_listed(staging: Path, listed: set[str]) -> None:
    """Every file the builder left in the staging folder must be listed (and so hashed)."""
    present = {p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file() or p.is_symlink()}
    stray = sorted(present - listed - {FILENAME})
    if stray:
        raise ManifestError(f"builder left files the manifest would not list: {', '.join(stray)}")


def build_manifest(
    job: ExportJob,
    target: Target,
    result: BuildResult,
    staging: Path,
    parity: list[ParityResult],
    verified: list[str],
    not_run: list[str],
) -> Manifest:
    """The typed manifest of a staged artifact (files hashed as they are now)."""
    roles = {**result.files, "preprocess": PREPROCESS_FILENAME}
    _check_listed(staging, set(roles.values()))
    samples = job.loaded_samples
    summary = [result.built or "artifact written"]
    if verified:
        summary.append("numerics checked with " + "; ".join(verified))
    summary.extend(not_run)
    options = job.options
    details: dict[str, Any] = dict(result.details)
    return Manifest(
        format=target.format,
        target=target.name,
        precision=target.precision,
        runtime=RuntimeSpec(target.runtime, target.device, dict(result.properties)),
        files=describe_files(staging, roles),
        inputs=tuple(result.inputs),
        outputs=tuple(result.outputs),
        preprocess=job.spec,
        model=ModelInfo(
            name=job.model_name,
            config=job.info.config,
            config_hash=config_hash(job.model_name, job.info.config),
            checkpoint=str(Path(job.info.path).resolve()),
            checkpoint_sha256=job.info.weights_sha256,
        ),
        export=ExportSettings(
            batch=None if options.dynamic_batch else options.batch,
            dynamic_batch_max=options.dynamic_batch or None,
            dynamic_hw=options.dynamic_hw,
            opset=options.opset if target.graph is not None else None,
        ),
        versions=package_versions(),
        git_sha=git_sha(),
        calibration=result.calibration,
        parity={
            "verified": options.verify,
            "passed": all(r.passed for r in parity) if parity else None,
            "samples": {"dir": str(options.samples or "bundled"), "names": samples.names if samples else []},
            "results": [r.to_dict() for r in parity],
        },
        execution={
            "built_on": host_description(),
            "verified_with": "; ".join(verified) or None,
            "not_run": "; ".join(not_run) or None,
            "summary": "; ".join(summary),
        },
        details=details,
    )
