"""Lab hosts have no mirror: every package a role installs must be baked into the image."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]


def image_packages() -> set[str]:
    lines = (ROOT / "lab" / "image-packages.txt").read_text().splitlines()
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


def test_base_packages_are_in_the_lab_image() -> None:
    defaults = yaml.safe_load((ROOT / "roles" / "base" / "defaults" / "main.yml").read_text())
    assert set(defaults["base_packages"]) <= image_packages()


def test_base_packages_default_matches_its_argument_spec() -> None:
    defaults = yaml.safe_load((ROOT / "roles" / "base" / "defaults" / "main.yml").read_text())
    spec = yaml.safe_load((ROOT / "roles" / "base" / "meta" / "argument_specs.yml").read_text())
    assert spec["argument_specs"]["main"]["options"]["base_packages"]["default"] == (
        defaults["base_packages"])
