"""pip-audit over the installed environment: no known vulnerability without a triage note.

Known findings that were looked at and accepted go in ``AUDIT_TRIAGE`` (README, "Dependency
audit"). Where the vulnerability service can't be reached, the test is skipped with the
reason instead of pretending the audit passed: the one skip CI=true keeps, since no rule of
this project lets a test need the network (pip-audit itself missing fails under CI=true).
"""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ..conftest import missing_prerequisite

pytestmark = pytest.mark.slow

# vulnerability id -> why it does not affect parkinglot (keep in sync with the README)
AUDIT_TRIAGE: dict[str, str] = {}


def test_no_untriaged_known_vulnerabilities():
    exe = Path(sys.executable).with_name("pip-audit")
    if not exe.exists() and not shutil.which("pip-audit"):
        missing_prerequisite("pip-audit is not installed (it is one of the test extras)", needed_for="the dependency audit")
    proc = subprocess.run([str(exe) if exe.exists() else "pip-audit", "-f", "json", "--progress-spinner", "off"],
                          capture_output=True, text=True, timeout=600)
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        pytest.skip(f"pip-audit gave no report: {proc.stderr.strip()[-300:]}")
    deps = report["dependencies"]
    audited = [d for d in deps if not d.get("skip_reason")]
    if not audited:
        pytest.skip(f"the vulnerability service could not audit any of {len(deps)} packages here "
                    f"(e.g. {deps[0].get('skip_reason') if deps else 'none'}); the audit runs where PyPI's JSON API is reachable")
    findings = [(d["name"], d["version"], v["id"]) for d in audited for v in d.get("vulns", [])]
    untriaged = [f for f in findings if f[2] not in AUDIT_TRIAGE]
    assert not untriaged, f"known vulnerabilities without a triage note: {untriaged}"
