"""House rule 1: every public role variable is declared in the role's argument spec."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROLES = sorted((Path(__file__).resolve().parents[2] / "roles").iterdir())


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_defaults_and_argument_spec_declare_the_same_variables(role: Path) -> None:
    defaults = yaml.safe_load((role / "defaults" / "main.yml").read_text()) or {}
    spec = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())
    options = spec["argument_specs"]["main"]["options"]
    own = {name for name in options if name.startswith(f"{role.name}_")}
    assert set(defaults) == own
    assert all("description" in option for option in options.values())
