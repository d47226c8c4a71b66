from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from app.domain.notifications.model import NotificationKind
from app.domain.notifications.service import NotificationService
from app.domain.shared.errors import DomainError
from tests.fakes.notifications import InMemoryNotifications

NOW = datetime(2026, 6, 1, tzinfo=UTC)
ADA = uuid.uuid4()
BOB = uuid.uuid4()


class _Clock:
    def now(self) -> datetime:
        return NOW + timedelta(hours=1)


class _Uow:
    def __init__(self) -> None:
        self.commits = 0

    async def commit(self) -> None:
        self.commits += 1

    async def rollback(self) -> None:
        pass


async def _inbox() -> tuple[InMemoryNotifications, NotificationService, _Uow]:
    store = InMemoryNotifications(NOW)
    for minutes, user, kind in (
        (0, ADA, NotificationKind.TASK_TAKEN),
        (1, BOB, NotificationKind.TASK_COMPLETED),
        (2, ADA, NotificationKind.TASK_EXPIRED),
        (3, ADA, NotificationKind.TASK_CANCEL_CONSENTED),
    ):
        store.now = NOW + timedelta(minutes=minutes)
        await store.notify(user, kind, {"task_id": str(uuid.uuid4()), "title": "t"})
    uow = _Uow()
    return store, NotificationService(store, uow, _Clock()), uow


async def test_lists_the_users_own_newest_first_with_the_unread_count() -> None:
    _, service, _ = await _inbox()
    page = await service.list_mine(ADA, False, 2, 0)
    assert [item.kind for item in page.items] == [
        NotificationKind.TASK_CANCEL_CONSENTED,
        NotificationKind.TASK_EXPIRED,
    ]
    assert (page.total, page.unread_count) == (3, 3)
    assert [item.kind for item in (await service.list_mine(ADA, False, 2, 2)).items] == [NotificationKind.TASK_TAKEN]


async def test_mark_read_unread_filter_and_read_all() -> None:
    _, service, uow = await _inbox()
    newest = (await service.list_mine(ADA, False, 1, 0)).items[0]
    await service.mark_read(ADA, newest.id)
    await service.mark_read(ADA, newest.id)  # idempotent
    unread = await service.list_mine(ADA, True, 10, 0)
    assert (unread.total, unread.unread_count) == (2, 2)
    assert newest.id not in {item.id for item in unread.items}
    assert (await service.list_mine(ADA, False, 10, 0)).items[0].read_at == NOW + timedelta(hours=1)
    assert await service.mark_all_read(ADA) == 2
    assert (await service.list_mine(ADA, False, 10, 0)).unread_count == 0
    assert (await service.list_mine(BOB, False, 10, 0)).unread_count == 1
    assert uow.commits == 3


async def test_another_users_notification_is_not_found() -> None:
    _, service, uow = await _inbox()
    bobs = (await service.list_mine(BOB, False, 1, 0)).items[0]
    for notification_id in (bobs.id, uuid.uuid4()):
        with pytest.raises(DomainError) as raised:
            await service.mark_read(ADA, notification_id)
        assert raised.value.code == "notification_not_found"
    assert (await service.list_mine(BOB, False, 1, 0)).unread_count == 1
    assert uow.commits == 0
