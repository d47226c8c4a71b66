from __future__ import annotations

import msgspec

from app.config import SETTINGS_DOC, Settings
from tests.support import ROOT


def _default(value: object) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{getattr(value, 'value', value)}`"


def test_readme_documents_every_setting_with_its_default() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    fields = msgspec.structs.fields(Settings)
    assert set(SETTINGS_DOC) == {field.name for field in fields}
    for field in fields:
        row = f"| `{field.name.upper()}` | {_default(field.default)} | {SETTINGS_DOC[field.name]} |"
        assert row in readme, f"README settings table is missing or outdated for {field.name.upper()}"


def test_readme_opens_with_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    opening = readme.split("```sh", 1)[1].split("```", 1)[0]
    assert [line.split()[:2] for line in opening.strip().splitlines()] == [["make", "run"], ["make", "test"]]
