"""Sending files (SendFile, ResendMessage, TransferProgress): image, video and
any file reach a real slixmpp peer through a real Prosody's XEP-0363 upload
service (100 MiB limit), byte for byte, with their XEP-0446 metadata; a file
over the limit is refused; a failed upload never sends a message with a dead
URL and can be tried again; an accepted file survives kill -9 of imd.

Uploads (and the peer's downloads) go through a TcpProxy in front of Prosody's
HTTP port (Prosody(upload_proxy=True)), so that a test can refuse, cut or
throttle them while the XMPP connection goes on untouched.
"""

import hashlib
import os
import random
import shutil
import socket
import sqlite3
import struct
import subprocess
import threading
import time
import uuid
import zlib

import pytest
from gi.repository import GLib

from conftest import Account, proxied_prosody, write_config
from harness.asserts import raises_im_error
from harness.bus import IM_ERROR, DBusCallError
from harness.imd import Imd
from harness.peer import Peer, http_get
from harness.prosody import Prosody
from harness.wsserver import WsXmppServer

MiB = 1024 * 1024
QUIET = 1.5         # how long "nothing arrives" is watched for


# -- a Prosody of this module, its uploads through a proxy ---------------------------------

@pytest.fixture
def prosody(upload_prosody, request):
    """Overrides conftest's: the accounts and peers of this module live on the
    Prosody whose uploads go through a proxy, back to plain forwarding for
    every test."""
    yield from proxied_prosody(upload_prosody, request)


@pytest.fixture
def proxy(prosody):
    return prosody.upload_proxy


# -- helpers ----------------------------------------------------------------------------------

def sha(data):
    return hashlib.sha256(data).hexdigest()


def make_png(width, height, seed=1):
    """A real PNG (8-bit RGB, random pixels)."""
    rnd = random.Random(seed)
    rows = b"".join(b"\x00" + bytes(rnd.randrange(256) for _ in range(width * 3))
                    for _ in range(height))

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def write_file(tmp_path, data, name="upload.dat"):
    path = tmp_path / ("src-%s-%s" % (uuid.uuid4().hex[:6], name))
    path.write_bytes(data)
    return str(path)


def info(**kw):
    """SendFile's a{sv}: str -> s, int -> u, a GLib.Variant as it is."""
    out = {}
    for k, v in kw.items():
        if isinstance(v, GLib.Variant):
            out[k] = v
        elif isinstance(v, str):
            out[k] = GLib.Variant("s", v)
        else:
            out[k] = GLib.Variant("u", v)
    return out


def send_fd(client, conv, fd, timeout=60, **kw):
    return client.call_with_fds("SendFile", "sha{sv}", (conv, 0, info(**kw)), [fd],
                                timeout=timeout)


def send_path(client, conv, path, timeout=60, **kw):
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return send_fd(client, conv, fd, timeout=timeout, **kw)
    finally:
        os.close(fd)


def statuses(client, mid, start):
    client.pump()
    return [s.args[2] for s in client.signals[start:]
            if s.member == "MessageStatusChanged" and s.args[1] == mid]


def wait_status(client, mid, status, start, timeout=30):
    """Wait for MessageStatusChanged(mid, status); fails at once on "failed"
    when waiting for it to go out, and on its going out when waiting for
    "failed"."""
    gone_out = ("sent", "delivered", "read")

    def pred(a):
        if a[1] != mid:
            return False
        if a[2] == "failed" and status != "failed":
            raise AssertionError("message %s failed: %r" % (mid, errors(client, start)))
        if status == "failed" and a[2] in gone_out:
            raise AssertionError("message %s went out (%s) although its upload failed"
                                 % (mid, a[2]))
        return a[2] == status
    client.wait_signal("MessageStatusChanged", pred, start=start, timeout=timeout)


def progress(client, mid, start, conv=None):
    client.pump()
    return [(s.args[2], s.args[3]) for s in client.signals[start:]
            if s.member == "TransferProgress" and s.args[1] == mid
            and (conv is None or s.args[0] == conv)]


def errors(client, start):
    client.pump()
    return [tuple(s.args) for s in client.signals[start:] if s.member == "Error"]


def stored(client, conv, mid):
    msgs, _ = client.call("GetMessages", "ssu", (conv, "", 200))
    found = [m for m in msgs if m["id"] == mid]
    assert len(found) == 1, "message %s %d times in the history: %r" % (mid, len(found), msgs)
    return found[0]


def from_me(peer, me):
    """Every message the peer got from imd's account."""
    with peer._cond:
        return [m for m in peer.messages if (m["from"] or "").split("/")[0] == me]


def check_progress(client, mid, size, start):
    """Progress was reported, never went back, and ended with done == total == size."""
    prog = progress(client, mid, start)
    assert prog, "no TransferProgress for %s" % mid
    assert all(total == size for _, total in prog), prog
    dones = [d for d, _ in prog]
    assert dones == sorted(dones), "progress went back: %r" % prog
    assert prog[-1] == (size, size), prog
    return prog


def received_file(peer, me, mid, data, timeout=20):
    """The peer got exactly one message for mid, a file whose URL gives data;
    returns its record."""
    m = peer.wait_for_message(lambda m: m["origin_id"] == mid, timeout=timeout)
    url = m["oob_url"]
    assert url and url.startswith("http"), m["xml"]
    assert m["type"] == "chat" and m["body"] == url, m["xml"]
    assert m["sfs"] and m["sources"] == [url], m["xml"]
    assert sha(peer.download(url)) == sha(data), "the peer downloaded other bytes"
    assert [x["origin_id"] for x in from_me(peer, me)] == [mid], \
        [x["xml"] for x in from_me(peer, me)]
    return m


def no_message_for(peer, me, seconds=QUIET):
    time.sleep(seconds)
    got = from_me(peer, me)
    assert got == [], "the peer got: %r" % [m["xml"] for m in got]


# -- image, video, file ------------------------------------------------------------------------

def test_image(client, logged_in, peer, tmp_path):
    png = make_png(37, 23)
    path = write_file(tmp_path, png, "x.png")
    start = client.mark()
    mid = send_path(client, peer.jid, path, name="sunset at the lake.png")
    assert isinstance(mid, str) and mid
    # announced at once: pending, without URL, with what imd read in the file
    own = client.wait_signal("MessageReceived", lambda a: a[0]["id"] == mid, start=start).args[0]
    assert own["direction"] == "out" and own["status"] == "pending" and "url" not in own
    assert (own["type"], own["mime"], own["name"], own["size"], own["width"], own["height"]) == (
        "image", "image/png", "sunset at the lake.png", len(png), 37, 23)
    wait_status(client, mid, "sent", start)
    check_progress(client, mid, len(png), start)

    m = received_file(peer, logged_in.jid, mid, png)
    f = m["file"]
    assert f is not None, m["xml"]
    assert (f.get("name"), f.get("media-type"), f.get("size"), f.get("width"), f.get("height")) == (
        "sunset at the lake.png", "image/png", str(len(png)), "37", "23"), m["xml"]
    assert "length" not in f, m["xml"]
    status, headers, _ = http_get(m["oob_url"])
    assert status == 200 and headers.get("Content-Type", "").startswith("image/png"), headers

    got = stored(client, peer.jid, mid)
    assert got["url"] == m["oob_url"] and got["status"] in ("sent", "delivered")
    assert (got["type"], got["mime"], got["size"], got["width"], got["height"]) == (
        "image", "image/png", len(png), 37, 23)
    with open(got["path"], "rb") as fh:
        assert sha(fh.read()) == sha(png), "imd's own copy differs"


def test_video_from_a_memfd(client, logged_in, peer):
    data = os.urandom(300 * 1024)
    fd = os.memfd_create("clip", os.MFD_CLOEXEC)
    try:
        os.write(fd, data)                      # the offset is at the end: imd reads from 0
        start = client.mark()
        mid = send_fd(client, peer.jid, fd, name="clip.mp4", type="video", mime="video/mp4",
                      width=1280, height=720, duration_ms=4321)
    finally:
        os.close(fd)
    wait_status(client, mid, "sent", start)
    check_progress(client, mid, len(data), start)
    m = received_file(peer, logged_in.jid, mid, data)
    f = m["file"] or {}
    assert (f.get("name"), f.get("media-type"), f.get("size"), f.get("width"), f.get("height"),
            f.get("length")) == ("clip.mp4", "video/mp4", str(len(data)), "1280", "720", "4321"), m["xml"]
    got = stored(client, peer.jid, mid)
    assert (got["type"], got["mime"], got["name"], got["size"], got["width"], got["height"],
            got["duration_ms"]) == ("video", "video/mp4", "clip.mp4", len(data), 1280, 720, 4321)
    assert got["url"] == m["oob_url"]


def test_any_file(client, logged_in, peer, tmp_path):
    data = os.urandom(3 * MiB)
    path = write_file(tmp_path, data, "data.bin")
    fd = os.open(path, os.O_RDONLY)
    try:
        os.lseek(fd, 12345, os.SEEK_SET)        # whatever the offset, the whole file
        start = client.mark()
        mid = send_fd(client, peer.jid, fd, name="measurements.bin")
    finally:
        os.close(fd)
    # accepted means imd has its own copy: what the caller does next changes nothing
    with open(path, "r+b") as fh:
        fh.write(b"\0" * 4096)
    os.unlink(path)
    wait_status(client, mid, "sent", start)
    check_progress(client, mid, len(data), start)
    m = received_file(peer, logged_in.jid, mid, data)
    f = m["file"] or {}
    # no mime given, and shared-mime-info knows no *.bin
    assert (f.get("name"), f.get("media-type"), f.get("size")) == (
        "measurements.bin", "application/octet-stream", str(len(data))), m["xml"]
    assert not {"width", "height", "length"} & set(f), m["xml"]
    got = stored(client, peer.jid, mid)
    assert (got["type"], got["mime"], got["size"]) == ("file", "application/octet-stream", len(data))
    assert "width" not in got and "duration_ms" not in got
    with open(got["path"], "rb") as fh:
        assert sha(fh.read()) == sha(data)


def test_send_file_reads_the_descriptor_never_the_path(client, logged_in, peer, tmp_path):
    """imd never opens a path on the caller's behalf: it reads the fd it was
    given, even when the name the fd once had now leads to another file."""
    given = os.urandom(64 * 1024)
    path = write_file(tmp_path, given, "report.bin")
    fd = os.open(path, os.O_RDONLY)
    try:
        os.unlink(path)
        with open(path, "wb") as fh:                    # same name, other bytes
            fh.write(b"not what was given" * 100)
        assert os.readlink("/proc/self/fd/%d" % fd).endswith(" (deleted)")
        start = client.mark()
        mid = send_fd(client, peer.jid, fd, name="report.bin")
    finally:
        os.close(fd)
    wait_status(client, mid, "sent", start)
    received_file(peer, logged_in.jid, mid, given)


# -- refusals ----------------------------------------------------------------------------------

def test_over_the_server_limit_is_too_large(client, imd, logged_in, peer, prosody, proxy, tmp_path):
    path = str(tmp_path / "huge.bin")
    with open(path, "wb") as fh:
        os.truncate(fh.fileno(), prosody.upload_size_limit + 1)     # sparse: 100 MiB + 1
    accepted = proxy.accepted
    start = client.mark()
    with raises_im_error("TooLarge"):
        send_path(client, peer.jid, path, name="huge.bin")
    no_message_for(peer, logged_in.jid, 2.0)
    msgs, _ = client.call("GetMessages", "ssu", (peer.jid, "", 10))
    assert msgs == []
    client.pump()
    assert [s for s in client.signals[start:]
            if s.member in ("MessageReceived", "TransferProgress")] == []
    assert proxy.accepted == accepted, "something was uploaded"
    big = [os.path.join(b, n) for b, _, files in os.walk(imd.workdir) for n in files
           if os.path.getsize(os.path.join(b, n)) > MiB]
    assert big == [], "imd kept a copy of a file it refused: %r" % big


def test_invalid_arguments(client, imd, logged_in, peer, tmp_path):
    good = write_file(tmp_path, b"some bytes", "good.txt")
    empty = write_file(tmp_path, b"", "empty.txt")
    with raises_im_error("InvalidArgument"):
        send_path(client, peer.jid, empty)
    r, w = os.pipe()
    try:
        os.write(w, b"data in a pipe")
        with raises_im_error("InvalidArgument"):
            send_fd(client, peer.jid, r)
    finally:
        os.close(r)
        os.close(w)
    dfd = os.open(str(tmp_path), os.O_RDONLY | os.O_DIRECTORY)
    try:
        with raises_im_error("InvalidArgument"):
            send_fd(client, peer.jid, dfd)
    finally:
        os.close(dfd)
    for bad in ({"colour": "blue"},
                {"name": "../../etc/passwd"}, {"name": "a/b.txt"}, {"name": ""},
                {"name": "x" * 256},
                {"type": "document"},
                {"width": GLib.Variant("s", "37"), "height": 23},
                {"duration_ms": GLib.Variant("x", 5)}):
        with raises_im_error("InvalidArgument"):
            send_path(client, peer.jid, good, **bad)
    for conv in ("not a jid", "", "@localhost", logged_in.jid + "/resource"):
        with raises_im_error("InvalidArgument"):
            send_path(client, conv, good)
    msgs, _ = client.call("GetMessages", "ssu", (peer.jid, "", 10))
    assert msgs == []
    assert from_me(peer, logged_in.jid) == []
    # still alive and well: a good file goes out
    assert imd.running
    start = client.mark()
    mid = send_path(client, peer.jid, good, name="good.txt")
    wait_status(client, mid, "sent", start)
    received_file(peer, logged_in.jid, mid, b"some bytes")


def test_write_only_fd_is_invalid(client, imd, logged_in, peer, tmp_path):
    """"@fd: the file, open for reading": one open for writing only is the
    caller's mistake, InvalidArgument like any other, and nothing is sent."""
    path = write_file(tmp_path, b"not readable through this fd", "wo.txt")
    wfd = os.open(path, os.O_WRONLY)
    try:
        with raises_im_error("InvalidArgument"):
            send_fd(client, peer.jid, wfd)
    finally:
        os.close(wfd)
    msgs, _ = client.call("GetMessages", "ssu", (peer.jid, "", 10))
    assert msgs == []
    assert from_me(peer, logged_in.jid) == []


def test_send_file_needs_a_login(client, imd, tmp_path):
    path = write_file(tmp_path, b"x" * 100)
    with raises_im_error("NotLoggedIn"):
        send_path(client, "bob@localhost", path)


# -- failed uploads and ResendMessage ------------------------------------------------------------

@pytest.mark.parametrize("fault", ["refused", "cut"])
def test_failed_upload_sends_nothing_and_can_be_retried(fault, client, logged_in, peer, proxy,
                                                        tmp_path):
    """refused: the upload's connections are reset at once; cut: reset after
    1 MiB of 3 MiB went through. Either way, after three attempts: "failed"
    (and no other status before it), an Error saying so, no message; then
    ResendMessage uploads it anew and it arrives once."""
    data = os.urandom(3 * MiB)
    if fault == "refused":
        proxy.set(mode="refuse")
    else:
        proxy.set(cut_after=MiB)
    path = write_file(tmp_path, data, "report.bin")
    refused, resets, bytes_up = proxy.refused, proxy.resets, proxy.bytes_up
    start = client.mark()
    mid = send_path(client, peer.jid, path, name="report.bin")
    wait_status(client, mid, "failed", start)
    if fault == "refused":
        assert proxy.refused - refused == 3
    else:
        assert proxy.resets - resets == 3 and proxy.bytes_up - bytes_up >= 3 * MiB
    client.pump(0.5)                            # the Error may follow "failed"
    errs = errors(client, start)
    assert errs, "no Error signal said why the upload failed"
    assert all(n.startswith(IM_ERROR) and msg for n, msg in errs), errs
    assert "3 attempts" in errs[-1][1], errs
    no_message_for(peer, logged_in.jid)
    assert statuses(client, mid, start) == ["failed"]
    got = stored(client, peer.jid, mid)
    assert got["status"] == "failed" and "url" not in got
    with open(got["path"], "rb") as fh:         # kept for the retry
        assert sha(fh.read()) == sha(data)

    proxy.reset()
    start = client.mark()
    client.call("ResendMessage", "ss", (peer.jid, mid))
    wait_status(client, mid, "sent", start)
    assert statuses(client, mid, start) == ["pending", "sent"]
    check_progress(client, mid, len(data), start)
    m = received_file(peer, logged_in.jid, mid, data)
    time.sleep(1.0)
    assert [x["origin_id"] for x in from_me(peer, logged_in.jid)] == [mid]
    got = stored(client, peer.jid, mid)
    assert got["url"] == m["oob_url"] and got["status"] in ("sent", "delivered")

    with raises_im_error("NotAllowed"):
        client.call("ResendMessage", "ss", (peer.jid, mid))
    with raises_im_error("NotFound"):
        client.call("ResendMessage", "ss", (peer.jid, "no-such-message"))
    text_id = client.call("SendText", "ss", (peer.jid, "a text"))
    with raises_im_error("NotAllowed"):
        client.call("ResendMessage", "ss", (peer.jid, text_id))


@pytest.mark.parametrize("fault", ["refused", "cut"])
def test_upload_broken_once_goes_out_by_itself(fault, client, logged_in, peer, proxy, tmp_path):
    """One broken connection (refused at once, or cut after 1 MiB of 3 MiB),
    and the next attempt works: the file goes out without ResendMessage,
    never "failed", and arrives once."""
    data = os.urandom(3 * MiB)
    path = write_file(tmp_path, data, "minutes.bin")
    refused, resets = proxy.refused, proxy.resets
    if fault == "refused":
        proxy.set(mode="refuse", refusals=1)
    else:
        proxy.set(cut_after=MiB, cuts=1)
    start = client.mark()
    mid = send_path(client, peer.jid, path, name="minutes.bin")
    wait_status(client, mid, "sent", start)
    assert "failed" not in statuses(client, mid, start)
    if fault == "refused":
        assert proxy.refused - refused == 1
    else:
        assert proxy.resets - resets == 1
    prog = progress(client, mid, start)
    assert prog and prog[-1] == (len(data), len(data)), prog
    received_file(peer, logged_in.jid, mid, data)
    time.sleep(1.0)
    assert [x["origin_id"] for x in from_me(peer, logged_in.jid)] == [mid]
    got = stored(client, peer.jid, mid)
    assert got["status"] in ("sent", "delivered") and got["url"]


# -- the file survives the daemon -----------------------------------------------------------------

def test_upload_cut_by_kill_9_starts_again(client, imd, logged_in, peer, proxy, tmp_path):
    """A file accepted by SendFile is never lost: imd is killed (-9) while the
    upload runs (throttled to 1 MiB/s); after a restart and login it uploads it
    again by itself, and the peer gets it once."""
    data = os.urandom(6 * MiB)
    path = write_file(tmp_path, data, "movie.bin")
    proxy.set(rate=MiB)
    bytes_up = proxy.bytes_up
    start = client.mark()
    mid = send_path(client, peer.jid, path, name="movie.bin")
    os.unlink(path)
    client.wait_signal("TransferProgress", lambda a: a[1] == mid and 0 < a[2] < a[3],
                       start=start, timeout=15)
    proxy.wait_bytes_up(bytes_up + MiB // 2, timeout=15)
    assert statuses(client, mid, start) == []
    imd.kill()
    assert from_me(peer, logged_in.jid) == []

    proxy.reset()
    imd.start()
    start = client.mark()
    client.login_account(logged_in)
    wait_status(client, mid, "sent", start, timeout=40)
    check_progress(client, mid, len(data), start)
    received_file(peer, logged_in.jid, mid, data)
    time.sleep(1.0)
    assert [x["origin_id"] for x in from_me(peer, logged_in.jid)] == [mid]
    got = stored(client, peer.jid, mid)
    assert got["status"] in ("sent", "delivered") and got["size"] == len(data)


def media_files(imd):
    d = os.path.join(imd.workdir, "cache", "media")
    return sorted(os.path.join(d, n) for n in os.listdir(d)) if os.path.isdir(d) else []


def test_uploaded_copy_is_where_the_history_says(client, logged_in, peer, imd, tmp_path):
    """Once a file went up, the message's path is imd's copy in the cache,
    whole, and nothing of it is left in the outbox."""
    data = os.urandom(200 * 1024)
    start = client.mark()
    mid = send_path(client, peer.jid, write_file(tmp_path, data, "a.bin"), name="a.bin")
    wait_status(client, mid, "sent", start)
    path = stored(client, peer.jid, mid)["path"]
    assert media_files(imd) == [path]
    with open(path, "rb") as fh:
        assert sha(fh.read()) == sha(data)
    assert os.stat(path).st_nlink == 1
    assert outbox_files(imd) == []


def kill_at(pid, function, finish=False):
    """gdb attached to imd, which it kills (SIGKILL) the moment imd calls
    function (finish: once that call has returned). Returns gdb's Popen once
    the breakpoint is set; imd runs on meanwhile."""
    commands = ["set breakpoint pending off", "break " + function, "continue"]
    commands += ["finish"] if finish else []
    commands += ["kill"]
    gdb = subprocess.Popen(["gdb", "-q", "-batch", "-nx", "-p", str(pid)]
                           + [a for c in commands for a in ("-ex", c)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    for line in gdb.stdout:
        seen.append(line)
        if line.startswith("Breakpoint 1 at"):
            return gdb
    gdb.wait()
    pytest.skip("gdb cannot stop imd here: " + "".join(seen[-5:]))


@pytest.mark.skipif(shutil.which("gdb") is None, reason="needs gdb")
@pytest.mark.parametrize("moment", ["before-commit", "after-commit"])
def test_kill_9_while_the_copy_moves_to_the_cache(client, imd, logged_in, peer, tmp_path, moment):
    """imd is killed right as the upload is done: while its copy moves from
    the outbox to the cache, just before the history names the new place
    and just after. Either way the message goes out after the restart (the
    history never names a file that is gone, which made it "failed"), the
    peer gets the file once, and one copy is left: where the history says."""
    data = os.urandom(300 * 1024)
    path = write_file(tmp_path, data, "moving.bin")
    gdb = kill_at(imd.pid, "store_set_uploaded", finish=moment == "after-commit")
    try:
        start = client.mark()
        mid = send_path(client, peer.jid, path, name="moving.bin")
        out, _ = gdb.communicate(timeout=60)
    finally:
        if gdb.poll() is None:
            gdb.kill()
            gdb.wait()
    assert imd.proc.wait(10) == -9, out
    imd.kill()

    imd.start()
    start = client.mark()
    client.login_account(logged_in)
    wait_status(client, mid, "sent", start, timeout=40)
    received_file(peer, logged_in.jid, mid, data)
    time.sleep(1.0)
    assert [x["origin_id"] for x in from_me(peer, logged_in.jid)] == [mid]
    got = stored(client, peer.jid, mid)
    assert media_files(imd) == [got["path"]]
    with open(got["path"], "rb") as fh:
        assert sha(fh.read()) == sha(data), "imd's copy differs"
    assert os.stat(got["path"]).st_nlink == 1
    assert outbox_files(imd) == []


def killed_in_send_file(client, imd, peer, path, function):
    """SendFile of path, imd killed (-9) by gdb the moment it calls function:
    the call never gets an id. Returns what imd left in its outbox."""
    gdb = kill_at(imd.pid, function)
    try:
        with pytest.raises(DBusCallError) as e:
            send_path(client, peer.jid, path, name=os.path.basename(path))
        out, _ = gdb.communicate(timeout=60)
    finally:
        if gdb.poll() is None:
            gdb.kill()
            gdb.wait()
    assert imd.proc.wait(10) == -9, out
    assert e.value.name == "org.freedesktop.DBus.Error.NoReply", e.value
    imd.kill()
    return outbox_files(imd)


def nothing_left_of_it(client, imd, logged_in, peer, proxy, accepted):
    """After a restart and login: no copy in the outbox, no message, nothing
    uploaded or sent."""
    imd.start()
    client.login_account(logged_in)
    assert outbox_files(imd) == []
    msgs, _ = client.call("GetMessages", "ssu", (peer.jid, "", 10))
    assert msgs == []
    assert proxy.accepted == accepted, "something was uploaded"
    no_message_for(peer, logged_in.jid)


@pytest.mark.skipif(shutil.which("gdb") is None, reason="needs gdb")
def test_whole_copy_killed_before_its_message_is_stored_is_removed(client, imd, logged_in, peer, proxy,
                                                                   tmp_path):
    """imd is killed once its copy of the file is whole in the outbox and
    before the message is stored (store_append_message): its caller never
    got an id. The next opening removes the copy, which nothing named (it
    stayed forever, up to 4 GiB), and nothing is stored or sent."""
    data = os.urandom(300 * 1024)
    accepted = proxy.accepted
    left = killed_in_send_file(client, imd, peer, write_file(tmp_path, data, "unnamed.bin"),
                               "store_append_message")
    assert len(left) == 1 and not left[0].endswith(".part"), left
    with open(left[0], "rb") as fh:
        assert sha(fh.read()) == sha(data), "not the whole copy"
    nothing_left_of_it(client, imd, logged_in, peer, proxy, accepted)


@pytest.mark.skipif(shutil.which("gdb") is None, reason="needs gdb")
def test_copy_cut_off_by_a_kill_is_removed_at_the_next_start(client, imd, logged_in, peer, proxy, tmp_path):
    """imd is killed while its copy thread writes outbox/<id>.part (at
    image_size, after the data and before the rename), and started again at
    once: the .part goes at the first opening (it stayed while younger than
    60 s, and a quick restart kept it until the next one), nothing is stored
    or sent."""
    data = make_png(64, 48)
    accepted = proxy.accepted
    left = killed_in_send_file(client, imd, peer, write_file(tmp_path, data, "cut.png"), "image_size")
    assert len(left) == 1 and left[0].endswith(".part"), left
    nothing_left_of_it(client, imd, logged_in, peer, proxy, accepted)


@pytest.mark.parametrize("imd_env", [{"IMD_TEST_LOOPBACK_HTTP": None}])
def test_upload_slot_over_plain_http_is_not_used(client, logged_in, peer, proxy, tmp_path):
    """The slots of this Prosody are plain http on 127.0.0.1, which only a
    test suite lets imd use (the harness sets IMD_TEST_LOOPBACK_HTTP=1,
    unset here): nothing goes up, nothing goes out, the message is "failed"
    and an Error says why."""
    accepted = proxy.accepted
    start = client.mark()
    mid = send_path(client, peer.jid, write_file(tmp_path, b"secret" * 1000, "s.bin"), name="s.bin")
    wait_status(client, mid, "failed", start)
    assert any("https" in text for _, text in errors(client, start)), errors(client, start)
    assert proxy.accepted == accepted
    no_message_for(peer, logged_in.jid)
    assert "url" not in stored(client, peer.jid, mid)


# -- imctl ---------------------------------------------------------------------------------------

def test_imctl_send_file(imctl, client, logged_in, peer, tmp_path):
    data = os.urandom(200 * 1024)
    path = write_file(tmp_path, data, "notes.dat")
    r = imctl.run("send-file", peer.jid, path, "--name", "field notes.dat", check=0)
    mid = r.stdout.strip()
    assert mid and "\n" not in mid, r.stdout
    m = received_file(peer, logged_in.jid, mid, data)
    assert (m["file"] or {}).get("name") == "field notes.dat", m["xml"]
    assert stored(client, peer.jid, mid)["status"] in ("sent", "delivered")


def test_imctl_send_file_errors_and_resend(imctl, client, logged_in, peer, proxy, tmp_path):
    missing = str(tmp_path / "no-such-file.png")
    r = imctl.run("send-file", peer.jid, missing)
    assert r.returncode != 0 and "no-such-file.png" in r.stderr, (r.returncode, r.stderr)
    assert r.stdout.strip() == ""

    data = os.urandom(100 * 1024)
    path = write_file(tmp_path, data, "retry.dat")
    proxy.set(mode="refuse")
    r = imctl.run("send-file", peer.jid, path, check=1)
    mid = r.stdout.strip()
    assert mid and "failed" in r.stderr, (r.stdout, r.stderr)
    assert stored(client, peer.jid, mid)["status"] == "failed"
    proxy.reset()
    start = client.mark()
    imctl.run("resend", peer.jid, mid, check=0)
    wait_status(client, mid, "sent", start)
    received_file(peer, logged_in.jid, mid, data)
    assert from_me(peer, logged_in.jid)[0]["origin_id"] == mid


# -- offline -----------------------------------------------------------------------------------

def test_file_sent_offline_goes_out_after_reconnect(client, imd, logged_in, peer, peer_factory, prosody,
                                                    tmp_path):
    """With the server down, SendFile still takes a file (the limit is not
    known yet; only an absurd size is refused at once) and the upload and
    message follow when the connection is back."""
    data = os.urandom(300 * 1024)
    path = write_file(tmp_path, data, "offline.bin")
    huge = str(tmp_path / "huge.bin")
    with open(huge, "wb") as fh:
        os.truncate(fh.fileno(), 4 * 1024 * MiB + 1)               # sparse: 4 GiB + 1
    prosody.stop()
    try:
        client.wait_property("NetState", lambda v: v != "connected", timeout=30)
        with raises_im_error("TooLarge"):
            send_path(client, peer.jid, huge, name="huge.bin")
        start = client.mark()
        mid = send_path(client, peer.jid, path, name="offline.bin")
        m = stored(client, peer.jid, mid)
        assert m["status"] == "pending" and "url" not in m and m["size"] == len(data), m
    finally:
        prosody.start()
    wait_status(client, mid, "sent", start, timeout=90)
    check_progress(client, mid, len(data), start)
    # the peer lost its connection with the server: back, it gets the
    # message from its offline storage
    again = peer_factory(account=peer.account)
    received_file(again, logged_in.jid, mid, data, timeout=30)


# -- found in review -------------------------------------------------------------------------

def imd_holds(imd, path, timeout=10):
    """Waits until imd has an fd open on path (it got the SendFile call)."""
    deadline = time.monotonic() + timeout
    fds = "/proc/%d/fd" % imd.pid
    while time.monotonic() < deadline:
        for n in os.listdir(fds):
            try:
                if os.readlink(os.path.join(fds, n)) == path:
                    return
            except OSError:
                pass
        time.sleep(0.02)
    raise AssertionError("imd never got the file %s" % path)


def _send_call(caller, conv, fd, name):
    """A SendFile for a thread: (the function, its outcome: "id" or "error")."""
    result = {}

    def call():
        try:
            result["id"] = send_fd(caller, conv, fd, name=name)
        except Exception as e:          # noqa: BLE001 (the test checks it)
            result["error"] = e
    return call, result


def outbox_files(imd):
    return [os.path.join(b, n) for b, _, names in os.walk(imd.data_dir) for n in names
            if os.path.basename(b) == "outbox"]


def test_file_that_grows_after_send_file_is_refused(client, client_factory, imd, logged_in, peer,
                                                    prosody, proxy, tmp_path):
    """SendFile checks the size at once but copies the file only once the
    upload service (and its limit) is known; here the server hangs meanwhile
    and the caller makes the file 50 MiB larger than the server takes. imd
    copies no more than it checked: InvalidArgument (the file changed),
    nothing stored or sent, no big copy in imd's directories."""
    path = write_file(tmp_path, b"x" * 10, "grows.bin")
    fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    call, result = _send_call(client_factory(), peer.jid, fd, "grows.bin")
    accepted = proxy.accepted
    start = client.mark()
    prosody.pause()
    try:
        thread = threading.Thread(target=call, daemon=True)
        thread.start()
        imd_holds(imd, path)
        time.sleep(0.3)                 # (imd looks at the file as it gets the call)
        os.ftruncate(fd, prosody.upload_size_limit + 50 * MiB)       # sparse
    finally:
        prosody.resume()
    thread.join(60)
    os.close(fd)
    assert not thread.is_alive(), "SendFile did not answer"
    assert "id" not in result, "imd took the grown file as message %s" % result["id"]
    err = result["error"]
    assert getattr(err, "short", None) == "InvalidArgument" and "changed" in err.message, err
    msgs, _ = client.call("GetMessages", "ssu", (peer.jid, "", 10))
    assert msgs == []
    client.pump()
    assert [s for s in client.signals[start:]
            if s.member in ("MessageReceived", "TransferProgress")] == []
    assert outbox_files(imd) == []
    big = [os.path.join(b, n) for b, _, names in os.walk(imd.workdir) for n in names
           if os.path.getsize(os.path.join(b, n)) > MiB]
    assert big == [], "imd kept a copy of the grown file: %r" % big
    assert proxy.accepted == accepted, "something was uploaded"
    no_message_for(peer, logged_in.jid)
    # the next file goes out as usual
    start = client.mark()
    mid = send_path(client, peer.jid, write_file(tmp_path, b"unchanged", "ok.txt"), name="ok.txt")
    wait_status(client, mid, "sent", start)
    received_file(peer, logged_in.jid, mid, b"unchanged")


def test_logout_before_the_file_is_taken_is_cancelled(client, client_factory, imd, logged_in, peer,
                                                      prosody, proxy, tmp_path):
    """SendFile answers once the file is imd's, which waits for the upload
    service (the server hangs here); Logout comes first: the call fails with
    Cancelled, not as if the network had failed, and nothing of the file is
    kept or sent, even once the account is back."""
    path = write_file(tmp_path, os.urandom(64 * 1024), "late.bin")
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    call, result = _send_call(client_factory(), peer.jid, fd, "late.bin")
    accepted = proxy.accepted
    start = client.mark()
    prosody.pause()
    try:
        thread = threading.Thread(target=call, daemon=True)
        thread.start()
        imd_holds(imd, path)
        time.sleep(0.3)
        client.call("Logout")
        thread.join(10)
    finally:
        prosody.resume()
    os.close(fd)
    assert not thread.is_alive(), "SendFile did not answer after Logout"
    assert "id" not in result, "imd took the file as message %s" % result["id"]
    err = result["error"]
    assert getattr(err, "short", None) == "Cancelled" and "Logged out" in err.message, err
    client.login_account(logged_in)
    msgs, _ = client.call("GetMessages", "ssu", (peer.jid, "", 10))
    assert msgs == []
    client.pump()
    assert [s for s in client.signals[start:]
            if s.member in ("MessageReceived", "TransferProgress")] == []
    assert outbox_files(imd) == []
    assert proxy.accepted == accepted, "something was uploaded"
    no_message_for(peer, logged_in.jid)


class SlowUploadServer:
    """Where upload slots point: reads each PUT whole, waits `delay` seconds
    (a busy file server), then answers 201 Created. Serves no GET."""

    def __init__(self, delay):
        self.delay = delay
        self.puts = []                  # {"path", "body", "received", "answered"} (monotonic)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        with c:
            c.settimeout(30)
            try:
                buf = b""
                while b"\r\n\r\n" not in buf:
                    data = c.recv(65536)
                    if not data:
                        return
                    buf += data
                head, body = buf.split(b"\r\n\r\n", 1)
                lines = head.decode("latin-1").split("\r\n")
                method, target = lines[0].split(" ")[:2]
                length = [int(h.split(":", 1)[1]) for h in lines[1:]
                          if h.lower().startswith("content-length:")]
                n = length[0] if length else 0
                while len(body) < n:
                    data = c.recv(65536)
                    if not data:
                        return
                    body += data
                put = {"method": method, "path": target, "body": body,
                       "received": time.monotonic()}
                self.puts.append(put)
                time.sleep(self.delay)
                c.sendall(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                put["answered"] = time.monotonic()
                time.sleep(0.5)
            except OSError:
                return

    def close(self):
        self.sock.close()


def test_upload_server_slow_to_answer(client, imd, tmp_path):
    """The upload server answers 8 s after it got the whole file: the upload
    succeeded, and the message goes out (a server given 5 s failed it). The
    peer cannot download from this server: what reaches it is the URL."""
    delay = 8
    server = SlowUploadServer(delay)
    p = Prosody(upload_url="http://localhost:%d/" % server.port)
    peer = None
    try:
        p.start()
        me = Account(*p.new_account("alice"), p.ws_url)
        bob_jid, bob_pw = p.new_account("bob")
        peer = Peer(bob_jid, bob_pw, "127.0.0.1", p.c2s_port).start()
        client.login_account(me)
        data = os.urandom(100 * 1024)
        start = client.mark()
        mid = send_path(client, peer.jid, write_file(tmp_path, data, "slow.bin"), name="slow.bin")
        wait_status(client, mid, "sent", start, timeout=delay + 15)
        sent_at = time.monotonic()
        assert len(server.puts) == 1, [(x["method"], x["path"]) for x in server.puts]
        put = server.puts[0]
        assert put["method"] == "PUT" and sha(put["body"]) == sha(data)
        assert "answered" in put and put["answered"] - put["received"] >= delay - 0.1, put
        assert sent_at >= put["answered"]
        check_progress(client, mid, len(data), start)
        url = "http://localhost:%d%s" % (server.port, put["path"])
        m = peer.wait_for_message(lambda m: m["origin_id"] == mid, timeout=15)
        assert m["oob_url"] == url and m["body"] == url, m["xml"]
        got = stored(client, peer.jid, mid)
        assert got["url"] == url and got["status"] in ("sent", "delivered"), got
        assert statuses(client, mid, start)[0] == "sent", statuses(client, mid, start)
    finally:
        if peer is not None:
            peer.stop()
        p.cleanup()
        server.close()


def test_revoke_that_cannot_be_stored_keeps_the_file(client, imd, logged_in, peer, proxy, tmp_path):
    """RevokeMessage of a failed upload while another process holds the
    history's write lock longer than imd's 5 s busy timeout: the revoke
    fails and changes nothing. imd's copy is still there (it was removed
    before the revoke was tried, and the message, still "failed", named a
    file that was gone), and ResendMessage then sends the file."""
    data = os.urandom(200 * 1024)
    proxy.set(mode="refuse")
    start = client.mark()
    mid = send_path(client, peer.jid, write_file(tmp_path, data, "kept.bin"), name="kept.bin")
    wait_status(client, mid, "failed", start)
    copy = stored(client, peer.jid, mid)["path"]
    proxy.reset()

    db = sqlite3.connect(os.path.join(imd.data_dir, logged_in.jid, "history.sqlite"), timeout=0,
                         isolation_level=None)
    try:
        db.execute("BEGIN EXCLUSIVE")
        with pytest.raises(DBusCallError) as e:
            client.call("RevokeMessage", "ss", (peer.jid, mid), timeout=30)
        db.execute("ROLLBACK")
    finally:
        db.close()
    assert e.value.short and e.value.name.startswith(IM_ERROR), e.value
    assert os.path.exists(copy), "imd removed the copy of a message the history still holds"
    got = stored(client, peer.jid, mid)
    assert not got.get("revoked") and got["status"] == "failed" and got["path"] == copy, got

    start = client.mark()
    client.call("ResendMessage", "ss", (peer.jid, mid))
    wait_status(client, mid, "sent", start)
    received_file(peer, logged_in.jid, mid, data)


@pytest.mark.parametrize("imd_prefix", [("prlimit", "--nofile=64", "--")])
def test_many_send_files_at_once_under_a_low_fd_limit(client, imd, logged_in, peer, tmp_path):
    """40 SendFile calls at once from one client, imd limited to 64 file
    descriptors (each call in flight holds three): imd takes 8 at a time and
    answers the others Busy at once, stays on the bus (it ran out of
    descriptors, sd-bus dropped the connection, and imd exited with status
    0, which Restart=on-failure does not restart), and every file it took
    reaches the peer."""
    data = os.urandom(64 * 1024)
    path = write_file(tmp_path, data, "many.bin")
    fds = [os.open(path, os.O_RDONLY | os.O_CLOEXEC) for _ in range(40)]
    start = client.mark()
    try:
        calls = [client.call_async_with_fds("SendFile", "sha{sv}", (peer.jid, 0, info(name="f%d.bin" % i)),
                                            [fd], timeout=60) for i, fd in enumerate(fds)]
        ids, busy = [], []
        for c in calls:
            try:
                ids.append(c.result(60))
            except DBusCallError as e:
                busy.append(e)
    finally:
        for fd in fds:
            os.close(fd)
    assert imd.running, "imd exited with status %s" % imd.proc.returncode
    assert all(e.short == "Busy" and "already taking 8 files" in e.message for e in busy), busy
    assert len(ids) >= 8 and len(ids) + len(busy) == 40, (ids, busy)
    for mid in ids:
        wait_status(client, mid, "sent", start, timeout=60)
        m = peer.wait_for_message(lambda m, mid=mid: m["origin_id"] == mid, timeout=30)
        assert sha(peer.download(m["oob_url"])) == sha(data)
    assert sorted(m["origin_id"] for m in from_me(peer, logged_in.jid)) == sorted(ids)
    # and once they are answered, the next ones are taken
    start = client.mark()
    mid = send_path(client, peer.jid, path, name="after.bin")
    wait_status(client, mid, "sent", start)


def test_outbox_is_bounded(client, imd, logged_in, peer, proxy, tmp_path):
    """[media] max_outbox (here 300,000 bytes) bounds what an account's
    outbox holds for uploads, failed ones included (they stay for
    ResendMessage): a file that would pass it is TooLarge at once and
    nothing of it is kept (a sparse file sent again and again filled the
    disk); revoking a failed one, or an upload that went out, makes room."""
    conf = os.path.join(imd.workdir, "xdg-config", "imd")
    os.makedirs(conf, exist_ok=True)
    with open(os.path.join(conf, "imd.conf"), "w") as f:
        f.write("[media]\nmax_outbox=300000\n")
    imd.restart()
    client.login_account(logged_in)

    sparse = str(tmp_path / "sparse.bin")
    with open(sparse, "wb") as fh:
        os.truncate(fh.fileno(), 60 * MiB)
    with raises_im_error("TooLarge") as ei:
        send_path(client, peer.jid, sparse, name="sparse.bin")
    assert "max_outbox" in ei.value.message and "300000" in ei.value.message, ei.value.message
    assert outbox_files(imd) == []

    proxy.set(mode="refuse")
    failed = []
    for i in range(2):
        start = client.mark()
        failed.append(send_path(client, peer.jid, write_file(tmp_path, os.urandom(100000), "f.bin"),
                                name="f%d.bin" % i))
        wait_status(client, failed[-1], "failed", start)
    with raises_im_error("TooLarge"):
        send_path(client, peer.jid, write_file(tmp_path, os.urandom(100001), "g.bin"), name="g.bin")
    assert len(outbox_files(imd)) == 2, outbox_files(imd)
    proxy.reset()
    start = client.mark()
    fits = send_path(client, peer.jid, write_file(tmp_path, os.urandom(100000), "h.bin"), name="h.bin")
    wait_status(client, fits, "sent", start)        # and then it is out of the outbox
    more = send_path(client, peer.jid, write_file(tmp_path, os.urandom(100000), "i.bin"), name="i.bin")
    wait_status(client, more, "sent", start)

    proxy.set(mode="refuse")
    with raises_im_error("TooLarge"):
        send_path(client, peer.jid, write_file(tmp_path, os.urandom(100001), "j.bin"), name="j.bin")
    client.call("RevokeMessage", "ss", (peer.jid, failed[0]))
    start = client.mark()
    room = send_path(client, peer.jid, write_file(tmp_path, os.urandom(200000), "k.bin"), name="k.bin")
    wait_status(client, room, "failed", start)
    assert len(outbox_files(imd)) == 2, outbox_files(imd)


def test_revoking_a_failed_upload_takes_nothing_back(client, imd, logged_in, peer, proxy, tmp_path):
    """A file whose upload failed never went out: revoking it sends no
    retraction to anyone, removes imd's copy from the outbox, and it cannot be
    sent again."""
    data = os.urandom(200 * 1024)
    proxy.set(mode="refuse")
    start = client.mark()
    mid = send_path(client, peer.jid, write_file(tmp_path, data, "never.bin"), name="never.bin")
    wait_status(client, mid, "failed", start)
    copy = stored(client, peer.jid, mid)["path"]
    assert os.path.basename(copy) == mid and os.path.basename(os.path.dirname(copy)) == "outbox", copy
    assert copy.startswith(imd.data_dir + "/")
    with open(copy, "rb") as fh:
        assert sha(fh.read()) == sha(data)
    proxy.reset()
    accepted = proxy.accepted

    start = client.mark()
    assert client.call("RevokeMessage", "ss", (peer.jid, mid)) is None
    client.wait_signal("MessageRevoked", lambda a: tuple(a) == (peer.jid, mid), start=start,
                       timeout=5)
    assert not os.path.exists(copy), "imd kept its copy of a revoked file"
    assert outbox_files(imd) == []
    got = stored(client, peer.jid, mid)
    assert got["revoked"] is True and "url" not in got, got
    assert "path" not in got, "a revoked message names the copy that went with it"
    with raises_im_error("NotAllowed"):
        client.call("ResendMessage", "ss", (peer.jid, mid))
    client.call("RevokeMessage", "ss", (peer.jid, mid))         # again: nothing happens
    no_message_for(peer, logged_in.jid)                          # no retraction, no file
    assert proxy.accepted == accepted, "something was uploaded"
    assert statuses(client, mid, start) == []
    assert [tuple(s.args) for s in client.signals[start:] if s.member == "MessageRevoked"] == [
        (peer.jid, mid)]


# -- an upload service that never answers --------------------------------------------------------

NS_DISCO_ITEMS = "http://jabber.org/protocol/disco#items"
NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_UPLOAD = "urn:xmpp:http:upload:0"
UPLOAD = "upload.localhost"


def wait_until(pred, timeout=15, what="the condition"):
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "no %s within %.0f s" % (what, timeout)
        time.sleep(0.05)


def test_upload_service_that_never_answers(bus, tmp_path):
    """The server lists an upload component that never answers service
    discovery (its disco#info times out after a minute, imd's IQ timeout).
    A file waiting for its upload becomes "failed" with an Error saying why
    (it stayed "pending" for ever, discovery asked again every minute); a
    SendFile that waited for the same discovery fails with Timeout and keeps
    nothing (it was accepted, to stay pending); nothing asks again by
    itself, a user's ResendMessage does. (WsXmppServer, not Prosody: its
    components always answer.)"""
    server = WsXmppServer({"alice": "pw"}).start()
    workdir = str(tmp_path / "imd-silent")
    write_config(workdir, reconnect_min=0.2, reconnect_max=1)
    imd = Imd(bus, workdir).start()
    client = bus.client()
    fd = None
    try:
        server.iq_answers = {
            ("localhost", NS_DISCO_ITEMS): "<query xmlns='%s'><item jid='%s'/></query>"
                                           % (NS_DISCO_ITEMS, UPLOAD),
            (UPLOAD, NS_DISCO_INFO): "<query xmlns='%s'><feature var='%s'/></query>"
                                     % (NS_DISCO_INFO, NS_UPLOAD),
            (UPLOAD, NS_UPLOAD): None,          # no slot: the file waits for its upload
        }
        client.login("alice@localhost", "pw", server.url)
        first = server.connection(0).wait_ready()
        start = client.mark()
        mid = send_path(client, "bob@localhost", write_file(tmp_path, b"waiting" * 1000, "w.bin"),
                        name="w.bin")
        wait_until(lambda: first.iqs(UPLOAD, NS_UPLOAD), what="slot request")
        # the next connection's upload service never answers
        server.iq_answers[(UPLOAD, NS_DISCO_INFO)] = None
        first.close()
        second = server.connection(1).wait_ready()
        wait_until(lambda: second.iqs("localhost", NS_DISCO_ITEMS), what="service discovery")
        # a SendFile joins that discovery
        result = {}
        fd = os.open(write_file(tmp_path, b"late" * 1000, "late.bin"), os.O_RDONLY | os.O_CLOEXEC)

        def call():
            try:
                result["id"] = send_fd(bus.client(), "bob@localhost", fd, timeout=120, name="late.bin")
            except DBusCallError as e:
                result["error"] = e
        thread = threading.Thread(target=call, daemon=True)
        thread.start()

        wait_status(client, mid, "failed", start, timeout=90)
        assert any(a[0] == "Timeout" or "upload service" in a[1] for a in errors(client, start)), \
            errors(client, start)
        thread.join(30)
        assert not thread.is_alive(), "SendFile did not answer"
        assert "id" not in result, "SendFile was accepted as %s, to wait for ever" % result["id"]
        assert result["error"].short == "Timeout", result["error"]
        assert "upload service" in result["error"].message, result["error"]
        msgs, _ = client.call("GetMessages", "ssu", ("bob@localhost", "", 10))
        assert [(m["id"], m["status"]) for m in msgs] == [(mid, "failed")], msgs
        assert [os.path.basename(p) for p in outbox_files(imd)] == [mid]
        time.sleep(2)
        assert len(second.iqs("localhost", NS_DISCO_ITEMS)) == 1, "discovery asked again by itself"

        # a user's ResendMessage asks again
        client.call("ResendMessage", "ss", ("bob@localhost", mid))
        wait_until(lambda: len(second.iqs("localhost", NS_DISCO_ITEMS)) == 2, what="second discovery")
    finally:
        if fd is not None:
            os.close(fd)
        client.close()
        imd.stop()
        server.stop()
        if imd.problems:
            print(imd.stderr_text(all_runs=True))
    assert not imd.problems, imd.problems
