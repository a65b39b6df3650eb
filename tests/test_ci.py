"""CI plumbing: the documented apt line is .ci/setup's, and a missing C++ toolchain fails under CI=true."""

from __future__ import annotations

import re

import pytest

from tests.conftest import REPO, in_ci
from tests.cpp.helpers import require_tool


def test_docs_apt_line_is_the_one_setup_runs():
    setup = (REPO / ".ci" / "setup").read_text()
    packages = re.search(r'^APT_PACKAGES="([^"]+)"$', setup, re.MULTILINE).group(1)
    assert "apt-get install -y -qq --no-install-recommends $APT_PACKAGES" in setup
    docs = (REPO / "docs" / "cpp.md").read_text()
    line = f"apt-get update && apt-get install -y --no-install-recommends {packages}\n"
    assert line in docs, f"docs/cpp.md must show: {line}"


@pytest.mark.parametrize(("ci", "expected"), [("true", "fail"), ("TRUE", "fail"), ("false", "skip"), (None, "skip")])
def test_missing_tool_fails_only_in_ci(monkeypatch, ci, expected):
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    assert in_ci() is (expected == "fail")
    outcome = pytest.fail.Exception if expected == "fail" else pytest.skip.Exception
    with pytest.raises(outcome, match="qtseg-no-such-tool not found"):
        require_tool("qtseg-no-such-tool")
    assert require_tool("sh")  # a tool that exists is returned, whatever CI says
