"""Voice messages (StartRecording, StopRecording, CancelRecording,
RecordingLevel, RecordingStopped, Recording): imd records from a real,
private PipeWire graph (harness.pipewire: pipewire + WirePlumber +
pw-loopback making the virtual microphone virt_mic), into which espeak-ng's
speech is played with pw-cat. What was recorded reaches a real slixmpp peer
as an XEP-0363 upload (OOB URL + XEP-0446 metadata), and is checked the way
a listener would: it downloads, decodes as Ogg Opus (opusinfo, opusdec), has
the right length, and is speech, not silence (sox).

One PipeWire graph serves the whole module; every test gets its microphone
back (and nothing playing into it) before it starts.
"""

import hashlib
import os
import re
import signal
import subprocess
import time

import pytest
from gi.repository import Gio, GLib

from conftest import _failed
from harness.asserts import raises_im_error
from harness.bus import IM_ERROR
from harness.peer import Peer
from harness.pipewire import MIC

QUIET = 2.0             # how long "nothing arrives" is watched for
# RMS (full scale 1.0) above which a decoded recording is not silence.
# Calibrated: digital silence through Opus (24 kbit/s) and opusdec (dithered
# 16-bit) measures ~0.0001; espeak-ng's speech through virt_mic ~0.09-0.10.
# test_maximum_length_sends_by_itself records silence and checks it stays
# below this.
SILENCE_RMS = 0.01
SPEECH = ("Hello, this is a voice message. The quick brown fox jumps over the "
          "lazy dog, one two three four five.")
NO_PIPEWIRE = {"PIPEWIRE_RUNTIME_DIR": None, "PIPEWIRE_REMOTE": None}   # + imd's own XDG_RUNTIME_DIR


# -- the PipeWire graph and imd's environment ------------------------------------------------

@pytest.fixture
def graph(pipewire, request):
    """The module's graph, with its microphone (the default source) and
    nothing playing into it."""
    pw = pipewire
    pw.stop_playing()
    if not pw.running:
        pytest.fail("the module's PipeWire graph died:\n" + pw.log_tail(), pytrace=False)
    pw.ensure_mic()
    assert pw.default_source() == MIC
    yield pw
    pw.stop_playing()
    if _failed(request):
        print("\n----- pipewire -----\n" + pw.log_tail(15))


@pytest.fixture
def voice_conf():
    """imd.conf's [voice] group for the test (parametrize to change it)."""
    return {}


@pytest.fixture
def media_conf():
    """imd.conf's [media] group for the test (parametrize to change it)."""
    return {}


@pytest.fixture
def imd_env(graph, voice_conf, media_conf, tmp_path):
    """conftest's imd runs with the graph's environment, and an imd.conf
    holding voice_conf and media_conf when there are any."""
    env = graph.env()
    if voice_conf or media_conf:
        conf = tmp_path / "voice-config"
        (conf / "imd").mkdir(parents=True)
        (conf / "imd" / "imd.conf").write_text(
            "[voice]\n" + "".join("%s=%s\n" % kv for kv in voice_conf.items()) +
            "[media]\n" + "".join("%s=%s\n" % kv for kv in media_conf.items()))
        env["XDG_CONFIG_HOME"] = str(conf)
    return env


# -- helpers -----------------------------------------------------------------------------------

def signals(client, member, start):
    client.pump()
    return [tuple(s.args) for s in client.signals[start:]
            if s.interface == client.iface and s.member == member]


def levels(client, start):
    return [a[0] for a in signals(client, "RecordingLevel", start)]


def wait_stopped(client, start, timeout=10):
    """The next RecordingStopped: (conversation, id, reason)."""
    return tuple(client.wait_signal("RecordingStopped", start=start, timeout=timeout).args)


def recording(client):
    return client.get_property("Recording")


def from_me(peer, me):
    with peer._cond:
        return [m for m in peer.messages if (m["from"] or "").split("/")[0] == me]


def no_message_for(peer, me, seconds=QUIET):
    time.sleep(seconds)
    got = from_me(peer, me)
    assert got == [], "the peer got: %r" % [m["xml"] for m in got]


def files(imd):
    """Every file imd keeps (data and cache dirs, relative), but its database
    and its logs."""
    out = set()
    for root in (imd.data_dir, imd.cache_dir):
        for base, _, names in os.walk(root):
            for n in names:
                if re.search(r"\.(db|sqlite3?)(-wal|-shm|-journal)?$", n):
                    continue
                out.add(os.path.relpath(os.path.join(base, n), imd.workdir))
    return out


def run(*argv):
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=30)


def analyse(data, tmp_path, name="voice"):
    """What a listener gets out of the bytes: checks that they are Ogg Opus
    and returns {"channels", "opus_length", "length", "rms"} (seconds,
    full scale 1.0) of the decoded sound."""
    ogg = tmp_path / (name + ".ogg")
    wav = tmp_path / (name + ".wav")
    ogg.write_bytes(data)
    assert data[:4] == b"OggS", "not an Ogg file: %r" % data[:16]
    info = run("opusinfo", str(ogg))
    assert info.returncode == 0 and "Opus stream" in info.stdout, info.stdout + info.stderr
    m = re.search(r"Playback length:\s*(\d+)m:([\d.]+)s", info.stdout)
    ch = re.search(r"Channels:\s*(\d+)", info.stdout)
    assert m and ch, info.stdout
    dec = run("opusdec", "--quiet", "--rate", "48000", str(ogg), str(wav))
    assert dec.returncode == 0, dec.stderr
    stat = run("sox", str(wav), "-n", "stat").stderr
    length = re.search(r"Length \(seconds\):\s*([\d.]+)", stat)
    rms = re.search(r"RMS\s+amplitude:\s*([\d.]+)", stat)
    assert length and rms, stat
    return {"channels": int(ch.group(1)),
            "opus_length": int(m.group(1)) * 60 + float(m.group(2)),
            "length": float(length.group(1)), "rms": float(rms.group(1))}


def near(value, expected, tolerance=0.10):
    """Within ±tolerance (relative), and at least ±0.1 s for short ones."""
    return abs(value - expected) <= max(tolerance * expected, 0.1)


def stored(client, conv, mid):
    msgs, _ = client.call("GetMessages", "ssu", (conv, "", 200))
    found = [m for m in msgs if m["id"] == mid]
    assert len(found) == 1, "message %s %d times in the history: %r" % (mid, len(found), msgs)
    return found[0]


def received_voice(client, peer, me, mid, seconds, tmp_path, timeout=30):
    """The peer got one message, mid, an Ogg Opus voice message of about
    `seconds` (decoded, ±10 %, at least ±0.1 s) whose metadata and imd's own
    record agree with it (±10 %);
    returns (analysis, the peer's record, imd's record)."""
    m = peer.wait_for_message(lambda m: m["origin_id"] == mid, timeout=timeout)
    url = m["oob_url"]
    assert url and url.startswith("http") and m["body"] == url, m["xml"]
    f = m["file"] or {}
    assert f.get("media-type") == "audio/ogg", m["xml"]
    data = peer.download(url)
    assert f.get("size") == str(len(data)), m["xml"]
    a = analyse(data, tmp_path, "voice-" + mid[:8])
    assert a["channels"] == 1, a
    assert near(a["length"], seconds) and near(a["opus_length"], seconds), (
        "recorded %.2fs (opusinfo %.2fs), expected %.1fs ±10%%" % (a["length"], a["opus_length"],
                                                                  seconds))
    assert f.get("length", "").isdigit(), "no duration (<length/>) in the metadata: " + m["xml"]
    assert near(int(f["length"]) / 1000, a["length"]), (f["length"], a)
    own = stored(client, peer.jid, mid)
    assert (own["direction"], own["type"], own["mime"]) == ("out", "audio", "audio/ogg"), own
    assert own["url"] == url and own["status"] in ("sent", "delivered"), own
    assert near(own["duration_ms"] / 1000, a["length"]), (own["duration_ms"], a)
    with open(own["path"], "rb") as fh:
        assert hashlib.sha256(fh.read()).digest() == hashlib.sha256(data).digest(), \
            "the peer downloaded other bytes than imd's own copy"
    assert [x["origin_id"] for x in from_me(peer, me)] == [mid], \
        [x["xml"] for x in from_me(peer, me)]
    return a, m, own


def start_recording(client, conv, timeout=15):
    """StartRecording; returns when it was called (time.monotonic()): the
    button was pressed then, and the recording runs from about then (imd
    replies once the microphone delivers, up to ~0.1 s later)."""
    t = time.monotonic()
    client.call("StartRecording", "s", (conv,), timeout=timeout)
    return t


# -- a voice message -------------------------------------------------------------------------

def test_speech_becomes_a_voice_message(client, imd, logged_in, peer, graph, tmp_path):
    graph.play_speech(SPEECH, seconds=6)
    graph.wait_playing()
    assert recording(client) is False
    before = files(imd)
    start = client.mark()
    pressed = start_recording(client, peer.jid)
    assert recording(client) is True
    client.wait_property("Recording", lambda v: v is True, start=start, timeout=2)
    streams = graph.capture_streams()
    assert [s["from_mic"] for s in streams] == [True], \
        "not one capture stream from %s: %r" % (MIC, streams)
    time.sleep(3.0)
    held = time.monotonic() - pressed
    mid = client.call("StopRecording", timeout=30)
    assert isinstance(mid, str) and mid
    assert recording(client) is False
    assert wait_stopped(client, start) == (peer.jid, mid, "sent")
    client.wait_property("Recording", lambda v: v is False, start=start, timeout=2)
    graph.wait_capture_stream(present=False)        # the microphone is released

    peaks = levels(client, start)
    assert 20 <= len(peaks) <= 40, "%d RecordingLevel in 3 s (about 10/s expected)" % len(peaks)
    assert all(0.0 <= p <= 1.0 for p in peaks), peaks
    assert max(peaks) > 0.05, "no level above 0.05 while speech played: %r" % peaks

    a, _, own = received_voice(client, peer, logged_in.jid, mid, held, tmp_path)
    assert near(a["length"], 3.0), a
    assert a["rms"] > SILENCE_RMS, "the voice message is silence (RMS %.5f)" % a["rms"]
    # the one file more is the sent message's own copy (its "path"), nothing
    # else of the recording stays
    new = files(imd) - before
    assert new == {os.path.relpath(own["path"], imd.workdir)}, (new, own["path"])


def test_too_short_is_not_sent(client, imd, logged_in, peer, graph):
    graph.play_speech(SPEECH, seconds=4)
    before = files(imd)
    start = client.mark()
    start_recording(client, peer.jid)
    time.sleep(0.3)
    with raises_im_error("TooShort"):
        client.call("StopRecording")
    assert wait_stopped(client, start) == (peer.jid, "", "too-short")
    assert recording(client) is False
    no_message_for(peer, logged_in.jid)
    assert files(imd) == before, "left behind: %r" % (files(imd) - before)
    msgs, _ = client.call("GetMessages", "ssu", (peer.jid, "", 10))
    assert msgs == []
    with raises_im_error("NotFound"):
        client.call("StopRecording")


@pytest.mark.parametrize("voice_conf", [{"min_duration": "0.5"}], ids=["min0.5"])
def test_min_duration_is_configurable(client, imd, logged_in, peer, graph, tmp_path, voice_conf):
    """[voice] min_duration=0.5: 0.3 s is too short, 0.8 s (too short by
    default) goes out."""
    start = client.mark()
    start_recording(client, peer.jid)
    time.sleep(0.3)
    with raises_im_error("TooShort"):
        client.call("StopRecording")
    assert wait_stopped(client, start)[2] == "too-short"
    graph.play_speech(SPEECH, seconds=3)
    start = client.mark()
    pressed = start_recording(client, peer.jid)
    time.sleep(0.8)
    held = time.monotonic() - pressed
    mid = client.call("StopRecording", timeout=30)
    assert wait_stopped(client, start) == (peer.jid, mid, "sent")
    received_voice(client, peer, logged_in.jid, mid, held, tmp_path)


# -- cancelling, and whose recording it is ---------------------------------------------------

def test_cancel_and_other_clients(client, client_factory, imd, logged_in, peer, graph):
    other = client_factory()
    graph.play_speech(SPEECH, seconds=5)
    before = files(imd)
    start = client.mark()
    ostart = other.mark()
    start_recording(client, peer.jid)
    time.sleep(0.5)
    with raises_im_error("NotAllowed"):
        other.call("StopRecording")
    with raises_im_error("NotAllowed"):
        other.call("CancelRecording")
    with raises_im_error("Busy"):
        other.call("StartRecording", "s", (peer.jid,))
    with raises_im_error("Busy"):
        client.call("StartRecording", "s", (peer.jid,))
    assert recording(client) is True and recording(other) is True
    time.sleep(0.7)                     # long enough to be sent, were it stopped
    client.call("CancelRecording")
    assert wait_stopped(client, start) == (peer.jid, "", "cancelled")
    assert wait_stopped(other, ostart) == (peer.jid, "", "cancelled")   # everyone hears it
    assert recording(client) is False
    assert levels(other, ostart), "RecordingLevel only reached the owner"
    with raises_im_error("NotFound"):
        client.call("CancelRecording")
    with raises_im_error("NotFound"):
        client.call("StopRecording")
    no_message_for(peer, logged_in.jid, 1.5)
    assert files(imd) == before, "left behind: %r" % (files(imd) - before)
    msgs, _ = client.call("GetMessages", "ssu", (peer.jid, "", 10))
    assert msgs == []


def test_owner_leaving_the_bus_cancels(client, client_factory, imd, logged_in, peer, graph):
    owner = client_factory()
    graph.play_speech(SPEECH, seconds=5)
    before = files(imd)
    start = client.mark()
    start_recording(owner, peer.jid)
    client.wait_property("Recording", lambda v: v is True, start=start, timeout=5)
    time.sleep(1.2)                     # long enough to be sent
    owner.close()
    assert wait_stopped(client, start, timeout=5) == (peer.jid, "", "owner-left")
    assert recording(client) is False
    graph.wait_capture_stream(present=False)
    no_message_for(peer, logged_in.jid, 1.5)
    assert files(imd) == before, "left behind: %r" % (files(imd) - before)
    # a new recording may start (and is this client's)
    start_recording(client, peer.jid)
    client.call("CancelRecording")


def imd_resource(prosody, jid):
    """The resource imd's session of jid is bound to (Prosody's log)."""
    found = None
    with open(prosody.log_path, errors="replace") as f:
        for line in f:
            m = re.search(r"Resource bound: %s/(\S+)" % re.escape(jid), line)
            found = m.group(1) if m else found
    assert found, "cannot find imd's resource for %s in the Prosody log" % jid
    return found


@pytest.mark.parametrize("end", ["kicked-out", "logout"])
def test_session_ending_cancels_the_recording(end, client, imd, logged_in, peer, graph, prosody,
                                              new_account):
    """The session ends while a recording runs (another login takes imd's
    resource, or Logout): the recording is cancelled at once, Recording
    goes false, and nothing is sent, neither by that account nor by the
    account that logs in next (which must not inherit it: its Stop finds
    nothing)."""
    graph.play_speech(SPEECH, seconds=8)
    before = files(imd)
    start = client.mark()
    start_recording(client, peer.jid)
    client.wait_property("Recording", lambda v: v is True, start=start, timeout=5)
    time.sleep(1.3)                     # long enough to be sent
    thief = None
    try:
        if end == "kicked-out":
            thief = Peer(logged_in.jid, logged_in.password, "127.0.0.1", prosody.c2s_port,
                         resource=imd_resource(prosody, logged_in.jid))
            thief.start()
            client.wait_signal("KickedOut", lambda a: a[0] == "conflict", start=start, timeout=10)
        else:
            client.call("Logout")
        assert wait_stopped(client, start, timeout=5) == (peer.jid, "", "cancelled")
        client.wait_property("Recording", lambda v: v is False, start=start, timeout=2)
        assert recording(client) is False
        graph.wait_capture_stream(present=False)        # the microphone is released
        with raises_im_error("NotFound"):
            client.call("StopRecording")
    finally:
        if thief:
            thief.stop()
    other = new_account("carol")
    client.login_account(other)
    assert recording(client) is False
    with raises_im_error("NotFound"):
        client.call("StopRecording")
    no_message_for(peer, logged_in.jid, 1.5)
    assert from_me(peer, other.jid) == []
    assert files(imd) == before, "left behind: %r" % (files(imd) - before)
    assert client.call("GetConversations") == []


def test_kill_9_while_recording_leaves_nothing(client, imd, logged_in, peer, graph):
    """The file being recorded has no name (it is unlinked at once): a kill
    -9 mid-recording leaves no partial .ogg in imd's directories, and the
    next run sends nothing and can record."""
    graph.play_speech(SPEECH, seconds=5)
    before = files(imd)
    start = client.mark()
    start_recording(client, peer.jid)
    client.wait_property("Recording", lambda v: v is True, start=start, timeout=5)
    time.sleep(1.2)                     # long enough to be sent
    assert files(imd) == before, "named while recording: %r" % (files(imd) - before)
    imd.kill()
    graph.wait_capture_stream(present=False)
    assert files(imd) == before, "left behind: %r" % (files(imd) - before)
    imd.start()
    client.login_account(logged_in)
    assert recording(client) is False
    no_message_for(peer, logged_in.jid, 1.5)
    msgs, _ = client.call("GetMessages", "ssu", (peer.jid, "", 10))
    assert msgs == []
    start_recording(client, peer.jid)
    client.call("CancelRecording")
    assert files(imd) == before, "left behind: %r" % (files(imd) - before)


# -- by itself ----------------------------------------------------------------------------------

@pytest.mark.parametrize("voice_conf", [{"max_duration": "2"}], ids=["max2"])
def test_maximum_length_sends_by_itself(client, imd, logged_in, peer, graph, tmp_path,
                                        voice_conf):
    """Reaching [voice] max_duration sends it. Nothing plays here: the
    recording is silence, which also checks SILENCE_RMS and the levels."""
    start = client.mark()
    start_recording(client, peer.jid)
    conv, mid, reason = wait_stopped(client, start, timeout=8)
    assert (conv, reason) == (peer.jid, "maximum") and mid, (conv, mid, reason)
    assert recording(client) is False
    # the owner letting go at that moment gets that message, once
    assert client.call("StopRecording") == mid
    with raises_im_error("NotFound"):
        client.call("StopRecording")
    a, _, _ = received_voice(client, peer, logged_in.jid, mid, 2.0, tmp_path)
    assert a["rms"] < SILENCE_RMS, "silence decoded with RMS %.5f" % a["rms"]
    peaks = levels(client, start)
    assert peaks and max(peaks) < 0.01, peaks


# -- failures -----------------------------------------------------------------------------------

@pytest.mark.parametrize("voice_conf,media_conf", [({"max_duration": "2"}, {"max_outbox": "1000"})],
                         ids=["outbox1000"])
def test_a_voice_message_the_outbox_has_no_room_for(client, imd, logged_in, peer, graph, voice_conf,
                                                    media_conf):
    """[media] max_outbox bounds voice messages as it bounds SendFile: the
    owner's StopRecording gets TooLarge (it got Failed), and one that went
    by itself at its maximum raises an Error saying why (nothing did)."""
    graph.play_speech(SPEECH, seconds=8)
    start = client.mark()
    start_recording(client, peer.jid)
    time.sleep(1.3)
    with raises_im_error("TooLarge") as ei:
        client.call("StopRecording", timeout=30)
    assert "max_outbox" in ei.value.message, ei.value.message
    assert wait_stopped(client, start) == (peer.jid, "", "failed")

    start = client.mark()
    start_recording(client, peer.jid)
    assert wait_stopped(client, start, timeout=8) == (peer.jid, "", "failed")
    err = client.wait_signal("Error", start=start, timeout=5).args
    assert err[0] == IM_ERROR + "TooLarge" and "max_outbox" in err[1], err
    assert recording(client) is False
    no_message_for(peer, logged_in.jid)
    msgs, _ = client.call("GetMessages", "ssu", (peer.jid, "", 10))
    assert msgs == []


def test_source_vanishing_fails_the_recording(client, imd, logged_in, peer, graph):
    graph.play_speech(SPEECH, seconds=5)
    before = files(imd)
    start = client.mark()
    start_recording(client, peer.jid)
    time.sleep(1.2)
    graph.remove_mic()
    assert wait_stopped(client, start, timeout=5) == (peer.jid, "", "failed")
    errs = signals(client, "Error", start)
    assert errs and all(n.startswith(IM_ERROR) and msg for n, msg in errs), errs
    assert recording(client) is False
    with raises_im_error("NotFound"):
        client.call("StopRecording")
    no_message_for(peer, logged_in.jid)
    assert files(imd) == before, "left behind: %r" % (files(imd) - before)
    client.call("SendText", "ss", (peer.jid, "still here"))
    peer.wait_for_body("still here")


@pytest.mark.parametrize("imd_env", [NO_PIPEWIRE], ids=["no-pipewire"])
def test_without_pipewire_not_supported(client, imd, logged_in, peer, imd_env):
    """imd's XDG_RUNTIME_DIR holds no PipeWire socket."""
    t = time.monotonic()
    with raises_im_error("NotSupported") as ei:
        client.call("StartRecording", "s", (peer.jid,))
    assert time.monotonic() - t < 3.0
    assert "pipewire" in ei.value.message.lower(), ei.value.message
    assert recording(client) is False
    client.call("SendText", "ss", (peer.jid, "text still works"))
    peer.wait_for_body("text still works")


def test_no_source_not_found(client, imd, logged_in, peer, graph):
    graph.remove_mic()
    start = client.mark()
    t = time.monotonic()
    with raises_im_error("NotFound"):
        client.call("StartRecording", "s", (peer.jid,))
    assert time.monotonic() - t < 4.5
    assert recording(client) is False
    # (a recording that never started needs no RecordingStopped; if one
    # comes, it says failed and that nothing was sent)
    assert all(a[1:] == ("", "failed") for a in signals(client, "RecordingStopped", start))
    # the microphone is back: recording works again
    graph.add_mic()
    start_recording(client, peer.jid)
    client.call("CancelRecording")
    assert from_me(peer, logged_in.jid) == []


@pytest.mark.parametrize("end", ["cancel", "logout"])
def test_start_overtaken_is_cancelled(end, client, imd, logged_in, peer, graph):
    """StartRecording waits for the microphone (which is there, but stopped:
    pw-loopback gets SIGSTOP); the recording is cancelled meanwhile
    (CancelRecording, or Logout): the start fails with Cancelled, not as if
    the network had failed."""
    start = client.mark()
    os.kill(graph.loopback.pid, signal.SIGSTOP)
    try:
        pending = client.call_async("StartRecording", "s", (peer.jid,), timeout=15)
        time.sleep(0.5)
        assert not pending.poll(), "StartRecording answered while the microphone delivers nothing"
        if end == "cancel":
            assert client.call("CancelRecording") is None
        else:
            client.call("Logout")
        with raises_im_error("Cancelled") as ei:
            pending.result(2)
    finally:
        os.kill(graph.loopback.pid, signal.SIGCONT)
    assert "cancelled" in ei.value.message, ei.value.message
    assert wait_stopped(client, start) == (peer.jid, "", "cancelled")
    assert recording(client) is False
    graph.wait_capture_stream(present=False)
    assert from_me(peer, logged_in.jid) == []
    # the microphone delivers again: recording works
    if end == "logout":
        client.login_account(logged_in)
    start_recording(client, peer.jid)
    client.call("CancelRecording")


@pytest.mark.parametrize("voice_conf", [{"source": "no-such-node"}], ids=["source"])
def test_configured_source_missing_not_found(client, imd, logged_in, peer, graph, voice_conf):
    """virt_mic exists (and is the default), but imd.conf names another
    node: no falling back to a microphone the user did not choose."""
    assert graph.node(MIC) is not None
    t = time.monotonic()
    with raises_im_error("NotFound"):
        client.call("StartRecording", "s", (peer.jid,))
    assert time.monotonic() - t < 4.5
    assert recording(client) is False
    assert graph.capture_streams() == []


@pytest.mark.parametrize("voice_conf", [{"source": MIC}], ids=["source"])
def test_configured_source(client, imd, logged_in, peer, graph, voice_conf):
    graph.play_speech(SPEECH, seconds=3)
    start = client.mark()
    start_recording(client, peer.jid)
    assert [s["from_mic"] for s in graph.capture_streams()] == [True]
    time.sleep(0.5)
    client.call("CancelRecording")
    assert wait_stopped(client, start) == (peer.jid, "", "cancelled")
    assert max(levels(client, start) or [0]) > 0.05


def test_start_recording_errors(client, imd, alice, peer, graph):
    with raises_im_error("NotLoggedIn"):
        client.call("StartRecording", "s", (peer.jid,))
    assert graph.capture_streams() == []
    client.login_account(alice)
    for conv in ("not a jid", "", alice.jid + "/resource"):
        with raises_im_error("InvalidArgument"):
            client.call("StartRecording", "s", (conv,))
    with raises_im_error("NotFound"):
        client.call("StopRecording")
    with raises_im_error("NotFound"):
        client.call("CancelRecording")
    assert recording(client) is False


# -- whose recording it is, when events come late or callers leave early -----------------------

@pytest.mark.parametrize("end", ["stop", "cancel", "leave"])
def test_late_stop_of_an_earlier_recording_keeps_the_next_owner(end, client, client_factory, imd,
                                                                logged_in, peer, graph, prosody):
    """A stops its recording while the server hangs: the voice message waits
    for the upload service, and its RecordingStopped "sent" comes only once
    B's recording runs. That late event is A's recording's: B's stays B's,
    so B may stop it or cancel it, and B leaving the bus cancels it."""
    graph.play_speech(SPEECH, seconds=12)
    b = client_factory()
    start = client.mark()
    start_recording(client, peer.jid)
    time.sleep(1.3)                     # long enough to be sent
    prosody.pause()
    try:
        a_stop = client.call_async("StopRecording", timeout=60)
        client.wait_property("Recording", lambda v: v is False, start=start, timeout=5)
        bstart = b.mark()
        pressed = start_recording(b, peer.jid)
        assert recording(b) is True
        # (what this test is about: A's recording is not over yet for imd)
        assert not a_stop.poll(), "A's StopRecording answered while the server hangs"
        assert signals(client, "RecordingStopped", start) == []
    finally:
        prosody.resume()
    mid_a = a_stop.result(30)
    assert isinstance(mid_a, str) and mid_a
    assert wait_stopped(client, start) == (peer.jid, mid_a, "sent")
    assert wait_stopped(b, bstart) == (peer.jid, mid_a, "sent")     # B heard the late one
    assert recording(b) is True
    # the late event gave the recording to no one else either
    with raises_im_error("NotAllowed"):
        client.call("CancelRecording")
    mark = client.mark()
    if end == "stop":
        time.sleep(max(0.0, pressed + 1.5 - time.monotonic()))
        mid_b = b.call("StopRecording", timeout=30)
        assert isinstance(mid_b, str) and mid_b and mid_b != mid_a
        assert wait_stopped(client, mark) == (peer.jid, mid_b, "sent")
        expected = [mid_a, mid_b]
    elif end == "cancel":
        assert b.call("CancelRecording") is None
        assert wait_stopped(client, mark) == (peer.jid, "", "cancelled")
        expected = [mid_a]
    else:
        b.close()
        assert wait_stopped(client, mark, timeout=5) == (peer.jid, "", "owner-left")
        expected = [mid_a]
    assert recording(client) is False
    graph.wait_capture_stream(present=False)
    for mid in expected:
        peer.wait_for_message(lambda m, mid=mid: m["origin_id"] == mid, timeout=20)
    time.sleep(1.0)
    assert sorted(m["origin_id"] for m in from_me(peer, logged_in.jid)) == sorted(expected), \
        [m["xml"] for m in from_me(peer, logged_in.jid)]


@pytest.mark.parametrize("voice_conf", [{"max_duration": "4"}], ids=["max4"])
def test_caller_gone_before_its_start_is_handled_cancels(client, client_factory, imd, logged_in,
                                                         peer, graph, voice_conf):
    """A client sends StartRecording (expecting no reply) and leaves the bus at
    once, before imd handled the call: the recording is cancelled as
    "owner-left" at once, not left to run (and be sent) by itself."""
    graph.play_speech(SPEECH, seconds=8)
    before = files(imd)
    start = client.mark()
    gone = client_factory()
    msg = Gio.DBusMessage.new_method_call(gone.name, gone.path, gone.iface, "StartRecording")
    msg.set_body(GLib.Variant("(s)", (peer.jid,)))
    msg.set_flags(Gio.DBusMessageFlags.NO_REPLY_EXPECTED)
    gone.conn.send_message(msg, Gio.DBusSendMessageFlags.NONE)
    gone.conn.flush_sync(None)
    gone.close()
    t = time.monotonic()
    # ([voice] max_duration=4: a recording nobody ends stops as "maximum" after 4 s)
    assert wait_stopped(client, start, timeout=8) == (peer.jid, "", "owner-left")
    assert time.monotonic() - t < 3.0
    assert recording(client) is False
    graph.wait_capture_stream(present=False)
    no_message_for(peer, logged_in.jid, 2.0)
    assert files(imd) == before, "left behind: %r" % (files(imd) - before)
    msgs, _ = client.call("GetMessages", "ssu", (peer.jid, "", 10))
    assert msgs == []
    # the microphone is free for the next one
    start_recording(client, peer.jid)
    client.call("CancelRecording")


@pytest.mark.parametrize("voice_conf", [{"max_duration": "1", "min_duration": "0.5"}], ids=["max1"])
def test_imctl_record_for_exactly_the_maximum_sends(imctl, client, imd, logged_in, peer, graph,
                                                    voice_conf):
    """imctl record --duration equal to [voice] max_duration: its
    StopRecording comes about when the last samples reach the maximum (they
    may be those its own flush brings in). Whichever wins, the recording is
    sent once and imctl prints its id and exits 0; never NotFound. (A race:
    several times.)"""
    graph.play_speech(SPEECH, seconds=30)
    graph.wait_playing()
    results = []
    for _ in range(6):
        start = client.mark()
        r = imctl.run("record", peer.jid, "--duration", "1")
        _, mid, reason = wait_stopped(client, start)
        results.append((r.returncode, r.stdout.strip(), r.stderr.strip(), mid, reason))
    bad = [x for x in results if x[0] != 0 or x[1] != x[3] or not x[1] or x[4] not in ("maximum", "sent")]
    assert bad == [], "imctl record --duration = the maximum (code, stdout, stderr, id, reason): %r" % bad
    ids = [x[1] for x in results]
    for mid in ids:
        peer.wait_for_message(lambda m, mid=mid: m["origin_id"] == mid, timeout=20)
    assert sorted(m["origin_id"] for m in from_me(peer, logged_in.jid)) == sorted(ids)


@pytest.mark.parametrize("voice_conf", [{"max_duration": "1", "min_duration": "0.5"}], ids=["max1"])
def test_stop_crossing_the_maximum_gets_that_message(client, imd, logged_in, peer, graph, voice_conf):
    """StopRecording sent just before, at or just after the moment the
    recording reaches its maximum and goes by itself: the owner always gets
    the id of the one message sent, never NotFound (a race: offsets around
    the maximum)."""
    graph.play_speech(SPEECH, seconds=40)
    graph.wait_playing()
    results = []
    for offset in (0.90, 0.95, 1.0, 1.02, 1.05, 1.08, 1.1, 1.15, 1.25, 1.4):
        start = client.mark()
        t0 = time.monotonic()
        client.call("StartRecording", "s", (peer.jid,))
        time.sleep(max(0.0, offset - (time.monotonic() - t0)))
        try:
            mid = client.call("StopRecording", timeout=30)
        except Exception as e:      # noqa: BLE001 - reported below
            mid = "error: %s" % e
        _, sent, reason = wait_stopped(client, start)
        results.append((offset, mid, sent, reason))
    bad = [r for r in results if r[1] != r[2] or not r[2]]
    assert bad == [], "(offset, StopRecording's answer, RecordingStopped's id, reason): %r" % bad
    ids = [r[2] for r in results]
    for mid in ids:
        peer.wait_for_message(lambda m, mid=mid: m["origin_id"] == mid, timeout=20)
    assert sorted(m["origin_id"] for m in from_me(peer, logged_in.jid)) == sorted(ids)
