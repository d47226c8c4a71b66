"""The API process's garbage-collector settings (app/infra/gc_tuning.py)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from app.infra import gc_tuning
from tests.support import make_settings, running_app


@pytest.fixture
def pristine_collector(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Python's thresholds and nothing frozen while the test runs; restored after it."""
    thresholds = gc.get_threshold()
    gc.unfreeze()
    monkeypatch.setattr(gc_tuning, "_frozen", False)
    gc.set_threshold(700, 10, 10)
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("pristine_collector")
async def test_the_app_raises_the_thresholds_and_freezes_its_startup_heap(sqlite_url: str) -> None:
    async with running_app(make_settings(sqlite_url, gc_thresholds="12000,40,90")) as (_, client):
        assert gc.get_threshold() == (12000, 40, 90)
        frozen = gc.get_freeze_count()
        assert frozen > 10_000  # the imported modules and the app are out of every later collection
        assert (await client.get("/health")).status_code == 200


@pytest.mark.usefixtures("pristine_collector")
async def test_the_heap_is_frozen_once_per_process() -> None:
    await gc_tuning.freeze_startup_heap()
    frozen = gc.get_freeze_count()
    garbage_later = [[n] for n in range(1000)]
    await gc_tuning.freeze_startup_heap()  # a second app in the same process
    assert gc.get_freeze_count() == frozen
    assert len(garbage_later) == 1000


@pytest.mark.usefixtures("pristine_collector")
async def test_empty_thresholds_keep_pythons_defaults(sqlite_url: str) -> None:
    async with running_app(make_settings(sqlite_url, gc_thresholds="")) as (_, client):
        assert gc.get_threshold() == (700, 10, 10)
        assert gc.get_freeze_count() == 0
        assert (await client.get("/health")).status_code == 200
