"""Assertion helpers for the integration tests."""

import contextlib

import pytest

from .bus import DBusCallError, IM_ERROR


@contextlib.contextmanager
def raises_im_error(*names):
    """Expect a D-Bus call to fail with org.example.IM.Error.<one of names>."""
    with pytest.raises(DBusCallError) as ei:
        yield ei
    full = [IM_ERROR + n for n in names]
    assert ei.value.name in full, (
        "expected %s, got %s (%s)" % (" or ".join(full), ei.value.name, ei.value.message))
    assert ei.value.message, "the error %s carries no message" % ei.value.name


def find_conversation(convs, jid):
    for c in convs:
        if c.get("id") == jid:
            return c
    return None
