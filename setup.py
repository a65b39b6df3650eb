"""Package discovery for the qtseg namespace.

The repository keeps ``export/``, ``bench/`` and ``calibration/`` at the top
level, but they install as ``qtseg.export``, ``qtseg.bench`` and
``qtseg.calibration``; no bare top-level ``export`` module is ever installed.
"""

from setuptools import find_packages, setup

MAPPED_DIRS = {"qtseg.export": "export", "qtseg.bench": "bench", "qtseg.calibration": "calibration"}


def _packages() -> tuple[list[str], dict[str, str]]:
    packages = ["qtseg"] + [f"qtseg.{p}" for p in find_packages("qtseg")]
    package_dir = {"qtseg": "qtseg"}
    for name, folder in MAPPED_DIRS.items():
        packages.append(name)
        package_dir[name] = folder
        for sub in find_packages(folder):
            packages.append(f"{name}.{sub}")
    return packages, package_dir


PACKAGES, PACKAGE_DIR = _packages()
setup(packages=PACKAGES, package_dir=PACKAGE_DIR)
