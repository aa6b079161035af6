"""FHIR through the installed command: ``sync --patients bundle.json``."""

from __future__ import annotations

import json
import shutil

from tests.acceptance.conftest import REPO, Cli
from tests.integration.test_fhir_import import EXPECTED_PROBLEMS, malformed

BEFORE_ANY = "2026-11-15T12:00:00Z"


def test_sync_from_a_bundle_then_a_malformed_one_reports_each_entry_and_changes_nothing(
    cli: Cli,
) -> None:
    """``sync --patients bundle.json`` enrols the sample; a malformed bundle exits 1 with one
    line per bad entry on stderr (entry and element named, no traceback) and every timeline
    stays as it was."""
    bundle = cli.folder / "patients-fhir.json"
    shutil.copy(REPO / "patients-fhir.json", bundle)
    report = cli("sync", "--patients", str(bundle), "--now", BEFORE_ANY, "--json").json()
    assert sorted(report["enrolled"]) == ["P-1001", "P-1002", "P-1003", "P-1004", "P-1005"]
    before = {pid: cli.timeline(pid) for pid in report["enrolled"]}
    bad = cli.folder / "bad.json"
    bad.write_text(json.dumps(malformed()), encoding="utf-8")
    result = cli("sync", "--patients", str(bad), "--now", BEFORE_ANY, expect=1)
    lines = [line for line in result.stderr.splitlines() if str(bad) in line]
    assert len(lines) == len(EXPECTED_PROBLEMS), str(result)
    for line, (record, element, _) in zip(lines, EXPECTED_PROBLEMS, strict=True):
        assert f"{bad}: {record}: {element}: " in line
    assert "0 enrolled, 0 updated, 0 paused, 0 withdrawn" in result.stdout
    assert {pid: cli.timeline(pid) for pid in before} == before
