"""core.ids: UUIDv7 in creation order, unique, and different in a forked child."""

from __future__ import annotations

import os
import time
import uuid

import pytest

from core import ids
from core.ids import new_id


def test_ids_are_version_7_in_creation_order_and_unique() -> None:
    ids = [new_id() for _ in range(20_000)]
    assert all(i.version == 7 and i.variant == uuid.RFC_4122 for i in ids)
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_the_time_of_an_id_is_now(monkeypatch: pytest.MonkeyPatch) -> None:
    # The last millisecond handed out (a test that travelled in time leaves it ahead: ids stay in order).
    monkeypatch.setattr(ids, "_last_ms", 0)
    before = time.time_ns() // 1_000_000
    made = new_id().int >> 80
    assert before <= made <= time.time_ns() // 1_000_000


def test_a_forked_child_does_not_reuse_the_parents_random_bits() -> None:
    new_id()  # the parent holds unread random bytes
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write, new_id().bytes)
        os._exit(0)
    os.waitpid(pid, 0)
    child = uuid.UUID(bytes=os.read(read, 16))
    parent = new_id()
    assert (child.int & ((1 << 76) - 1)) != (parent.int & ((1 << 76) - 1))
