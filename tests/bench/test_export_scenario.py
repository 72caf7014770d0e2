"""The export bench: its generated attachments are what the service accepts, and the whole harness runs on a few
records, writing a report whose bundle verified and held every record and attachment (no timing is asserted)."""

from __future__ import annotations

import json
import random
from pathlib import Path

from bench import export
from intake.testimonies.operations import ACCEPTED_MEDIA, sniff_media_type

RECORDS = 20
ATTACHMENT_BYTES = 2 * 1024 * 1024


def test_the_planned_attachments_add_up_and_are_sniffed_as_their_medium() -> None:
    planned = export.plan_attachments(RECORDS, ATTACHMENT_BYTES, random.Random(1))
    assert sum(p.size for p in planned) == ATTACHMENT_BYTES
    assert {p.record for p in planned} == set(range(RECORDS))
    assert {p.medium for p in planned} == {"document", "photo"}
    for item in planned[:10]:
        media_type = sniff_media_type(export.attachment_bytes(item.medium, item.size)[:8192])
        assert media_type is not None and ACCEPTED_MEDIA[media_type].value == item.medium


def test_the_export_bench_writes_its_report_and_the_bundle_verifies(tmp_path: Path) -> None:
    results = tmp_path / "results"
    status = export.main(["--db", "sqlite", "--records", str(RECORDS), "--attachment-bytes", str(ATTACHMENT_BYTES),
                          "--work-dir", str(tmp_path), "--results-dir", str(results)])
    assert status == export.EXIT_OK  # on SQLite the targets are reported, not judged
    (markdown,) = results.glob("export-*.md")
    (data,) = results.glob("export-*.json")
    text = markdown.read_text(encoding="utf-8")
    for scenario in ("export build", "export build peak memory", "verify bundle"):
        assert f"| {scenario} | sqlite |" in text
    report = json.loads(data.read_text(encoding="utf-8"))
    assert [r["scenario"] for r in report["results"]] == ["export build", "export build peak memory",
                                                          "verify bundle"]
    figures = report["figures"]
    assert figures["verify"]["ok"] is True
    assert figures["counts"]["records"] == RECORDS and figures["counts"]["attachment_bytes"] == ATTACHMENT_BYTES
    # Every record went, with every one of its attachments: nothing was withheld at `pseudonymous`.
    assert figures["build"]["records"] == RECORDS
    assert figures["kinds"]["attachments"] == {"files": figures["counts"]["attachments"], "bytes": ATTACHMENT_BYTES}
    assert figures["kinds"]["custody.json"]["files"] == RECORDS
    assert figures["build"]["plaintext_bytes"] > ATTACHMENT_BYTES
    assert len(figures["build"]["raw_seconds"]) == export.RAW_REPEATS
    assert not list(tmp_path.glob("bench-export-*"))  # the temporary folder is gone
