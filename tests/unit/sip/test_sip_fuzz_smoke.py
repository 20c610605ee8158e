"""The standalone fuzzer (tests/fuzz/fuzz_parser.py) runs and holds its invariants briefly."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "fuzz" / "fuzz_parser.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sip_fuzz_parser", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fuzzer_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    fuzz = _load()
    assert fuzz.main(["--count", "3000", "--seconds", "60", "--seed", "7"]) == 0
    out = capsys.readouterr().out
    assert "inputs: 3000" in out and "parse request" in out and "reject 400" in out


def test_fuzzer_reports_a_violation(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fuzz = _load()

    def broken(data: bytes, limits: object = None) -> object:
        raise IndexError("simulated parser bug")

    monkeypatch.setattr(fuzz, "parse_datagram", broken)
    assert fuzz.main(["--count", "10", "--save-dir", str(tmp_path)]) == 1
    assert list(tmp_path.glob("crash-*.bin"))
    assert "simulated parser bug" in capsys.readouterr().err
