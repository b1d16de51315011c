"""imctl record CONV --duration SECONDS end to end: a real imd records from a
private PipeWire graph (harness.pipewire), into whose virtual microphone
espeak-ng's speech plays, and a real slixmpp peer receives the voice message
whose id imctl printed. Exit codes: 0 sent (id on stdout), 1 nothing sent
(TooShort and other daemon errors, on stderr), 2 usage (no terminal and no
--duration), without touching imd.

The terminal mode (raw keys, the level line) needs a pty and is not covered
here.
"""

import pytest



@pytest.fixture
def imd_env(pipewire):
    """conftest's imd records from this module's graph."""
    return pipewire.env()


def test_imctl_record_duration(imctl, client, logged_in, peer, pipewire):
    pipewire.play_speech(seconds=8)
    pipewire.wait_playing()
    try:
        start = client.mark()
        r = imctl.run("record", peer.jid, "--duration", "2.5", check=0)
        mid = r.stdout.strip()
        assert mid and "\n" not in mid, r.stdout
        assert tuple(client.wait_signal("RecordingStopped", start=start).args) == (
            peer.jid, mid, "sent")
        m = peer.wait_for_message(lambda m: m["origin_id"] == mid, timeout=30)
        f = m["file"] or {}
        assert f.get("media-type") == "audio/ogg", m["xml"]
        assert f.get("length", "").isdigit() and abs(int(f["length"]) - 2500) <= 400, m["xml"]

        # shorter than imd's minimum (1 s): the daemon's TooShort, nothing sent
        start = client.mark()
        r = imctl.run("record", peer.jid, "--duration", "0.3", check=1)
        assert r.stdout == "" and "TooShort" in r.stderr, (r.stdout, r.stderr)
        assert tuple(client.wait_signal("RecordingStopped", start=start).args) == (
            peer.jid, "", "too-short")
    finally:
        pipewire.stop_playing()

    # no terminal (the harness gives imctl pipes) and no --duration: a usage
    # error before anything reaches imd
    start = client.mark()
    r = imctl.run("record", peer.jid, check=2)
    assert r.stdout == "" and "--duration" in r.stderr, r.stderr
    assert client.get_property("Recording") is False
    client.pump()
    assert [s for s in client.signals[start:] if s.member.startswith("Recording")] == []
