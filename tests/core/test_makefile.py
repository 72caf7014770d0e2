"""`make translations` stops on a broken catalogue instead of hiding the error."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent

GOOD = """msgid ""
msgstr ""
"Content-Type: text/plain; charset=UTF-8\\n"
"Language: hy\\n"

#, python-format
msgid "%(n)d codes left"
msgstr "%(n)d կոդ է մնացել"
"""
# The translation names a placeholder the English text does not have: formatting it would fail at run time.
BROKEN = GOOD.replace('msgstr "%(n)d', 'msgstr "%(count)d')


def make_translations(tmp_path: Path, catalogue: str) -> subprocess.CompletedProcess[str]:
    """Run the real Makefile's `translations` target in a scratch copy, with this virtualenv as its own."""
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    shutil.copyfile(ROOT / "Makefile", tmp_path / "Makefile")
    (tmp_path / "pyproject.toml").write_text("", encoding="utf-8")
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for tool in ("python", "pybabel"):
        (bin_dir / tool).symlink_to(VENV_BIN / tool)
    installed = tmp_path / ".venv" / ".installed"
    installed.touch()
    os.utime(tmp_path / "pyproject.toml", (1_000_000_000, 1_000_000_000))  # older than .installed: no reinstall
    messages = tmp_path / "intake" / "translations" / "hy" / "LC_MESSAGES"
    messages.mkdir(parents=True)
    (messages / "messages.po").write_text(catalogue, encoding="utf-8")
    return subprocess.run([make, "--no-print-directory", "translations"], cwd=tmp_path,  # noqa: S603
                          capture_output=True, text=True, timeout=60, check=False)


def test_make_translations_compiles_the_catalogues(tmp_path: Path) -> None:
    result = make_translations(tmp_path, GOOD)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "intake" / "translations" / "hy" / "LC_MESSAGES" / "messages.mo").stat().st_size > 0


def test_make_translations_fails_on_a_broken_catalogue_and_says_where(tmp_path: Path) -> None:
    result = make_translations(tmp_path, BROKEN)
    assert result.returncode != 0, result.stdout + result.stderr
    assert "messages.po" in result.stderr and "count" in result.stderr
