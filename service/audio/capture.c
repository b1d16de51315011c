/* SPDX-License-Identifier: MIT */

#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <glib.h>
#include <pipewire/pipewire.h>
#include <spa/param/audio/format-utils.h>
#include <spa/utils/ringbuffer.h>

#include "capture.h"

/* 2^18 bytes: 1.36 s of mono float at 48 kHz, more than ten drain periods. */
#define RING_BYTES (1u << 18)
/* Once delivering, a source silent this long is gone (unplugged, its node
 * destroyed): PipeWire does not always say so, WirePlumber may just leave
 * the stream unlinked. */
#define STALL_MS 1500

/* PipeWire's main loop as a GLib source: its fd wakes GLib, and dispatching
 * runs whatever is ready, without blocking. */
typedef struct PwSource {
        GSource base;
        AudioCapture *capture;
} PwSource;

struct AudioCapture {
        AudioCaptureCallbacks cb;
        void *userdata;
        struct pw_loop *loop;
        GSource *loop_source;
        struct pw_context *context;
        struct pw_core *core;
        struct spa_hook core_listener;
        struct pw_stream *stream;
        struct spa_hook stream_listener;
        guint drain_timer;
        int64_t start_us, last_data_us;
        unsigned start_timeout_ms;
        bool delivering;
        bool failed;
        bool starting;                  /* in audio_capture_start(): a failure is its return value */
        int start_error;
        /* Inside a callback of ours (or PipeWire's loop): the caller may free
         * us from there; that waits until we are out. */
        unsigned busy;
        bool free_pending;

        /* shared with the real-time thread: the ring and its counter */
        struct spa_ringbuffer ring;
        uint8_t *ring_data;
        atomic_uint_fast64_t dropped_bytes;
};

static void really_free(AudioCapture *c);

static void enter(AudioCapture *c) {
        c->busy++;
}

/* false: c is gone */
static bool leave(AudioCapture *c) {
        if (--c->busy == 0 && c->free_pending) {
                really_free(c);
                return false;
        }
        return true;
}

static gboolean pw_source_dispatch(GSource *source, GSourceFunc callback, gpointer userdata) {
        AudioCapture *c = ((PwSource *) source)->capture;

        enter(c);
        if (pw_loop_iterate(c->loop, 0) < 0)
                g_debug("audio: PipeWire loop iteration failed");
        return leave(c) ? G_SOURCE_CONTINUE : G_SOURCE_REMOVE;
}

static GSourceFuncs pw_source_funcs = { .dispatch = pw_source_dispatch };

/* Real-time thread: copy, nothing else (no allocation, no lock, no I/O). */
static void on_process(void *userdata) {
        AudioCapture *c = userdata;
        struct pw_buffer *b = pw_stream_dequeue_buffer(c->stream);
        struct spa_data *d;
        uint32_t offset, size, index;
        int32_t filled;

        if (!b)
                return;
        d = &b->buffer->datas[0];
        if (d->data && d->chunk) {
                offset = SPA_MIN(d->chunk->offset, d->maxsize);
                size = SPA_MIN(d->chunk->size, d->maxsize - offset);
                size -= size % sizeof(float);
                filled = spa_ringbuffer_get_write_index(&c->ring, &index);
                if (filled < 0 || (uint32_t) filled + size > RING_BYTES) {
                        uint32_t room = filled < 0 ? 0 : RING_BYTES - (uint32_t) filled;
                        room -= room % sizeof(float);
                        atomic_fetch_add(&c->dropped_bytes, size - room);
                        size = room;
                }
                if (size > 0) {
                        spa_ringbuffer_write_data(&c->ring, c->ring_data, RING_BYTES, index & (RING_BYTES - 1),
                                                  SPA_PTROFF(d->data, offset, void), size);
                        spa_ringbuffer_write_update(&c->ring, index + size);
                }
        }
        pw_stream_queue_buffer(c->stream, b);
}

static void fail(AudioCapture *c, int error, const char *text) {
        if (c->failed || c->free_pending)
                return;
        c->failed = true;
        if (c->starting) {
                g_debug("audio: %s", text);
                c->start_error = error;
                return;
        }
        /* (on_drain() ends its own timer) */
        if (c->drain_timer && !c->busy) {
                g_source_remove(c->drain_timer);
                c->drain_timer = 0;
        }
        g_debug("audio: %s", text);
        enter(c);
        c->cb.failed(error, text, c->userdata);
        leave(c);
}

static void on_stream_state_changed(void *userdata, enum pw_stream_state old, enum pw_stream_state state,
                                    const char *error) {
        AudioCapture *c = userdata;

        g_debug("audio: stream %s -> %s", pw_stream_state_as_string(old), pw_stream_state_as_string(state));
        /* WirePlumber: no source at all is an error ("no node available");
         * with node.dont-reconnect, a source that vanishes (or a target that
         * does not exist) unlinks and destroys our node: unconnected */
        if (state == PW_STREAM_STATE_ERROR)
                fail(c, c->delivering ? -EIO : -ENODEV, error ? error : "the capture stream failed");
        else if (state == PW_STREAM_STATE_UNCONNECTED && old != PW_STREAM_STATE_UNCONNECTED)
                fail(c, -ENODEV, c->delivering ? "the audio source went away" : "no such audio source");
}

static const struct pw_stream_events stream_events = {
        PW_VERSION_STREAM_EVENTS,
        .state_changed = on_stream_state_changed,
        .process = on_process,
};

static void on_core_error(void *userdata, uint32_t id, int seq, int res, const char *message) {
        AudioCapture *c = userdata;

        if (id == PW_ID_CORE)
                fail(c, res == -EPIPE ? -EPIPE : -EIO, res == -EPIPE ? "PipeWire went away" : message);
}

static const struct pw_core_events core_events = {
        PW_VERSION_CORE_EVENTS,
        .error = on_core_error,
};

/* Hands up what the ring holds; call between enter() and leave(). */
static void drain_ring(AudioCapture *c) {
        float chunk[4096];
        uint32_t index;
        int32_t avail = spa_ringbuffer_get_read_index(&c->ring, &index);

        if (avail > 0)
                c->last_data_us = g_get_monotonic_time();
        while (avail > 0 && !c->failed && !c->free_pending) {
                uint32_t n = SPA_MIN((uint32_t) avail, (uint32_t) sizeof chunk);
                spa_ringbuffer_read_data(&c->ring, c->ring_data, RING_BYTES, index & (RING_BYTES - 1), chunk, n);
                spa_ringbuffer_read_update(&c->ring, index + n);
                index += n;
                avail -= (int32_t) n;
                c->delivering = true;
                c->cb.samples(chunk, n / sizeof(float), c->userdata);
        }
}

void audio_capture_flush(AudioCapture *c) {
        enter(c);
        drain_ring(c);
        leave(c);
}

static gboolean on_drain(gpointer userdata) {
        AudioCapture *c = userdata;
        int64_t now = g_get_monotonic_time();
        bool go_on = true;

        enter(c);
        drain_ring(c);
        if (!c->failed && !c->free_pending) {
                if (!c->delivering && now - c->start_us > (int64_t) c->start_timeout_ms * 1000)
                        fail(c, -ENODEV, "no audio source delivered anything");
                else if (c->delivering && now - c->last_data_us > STALL_MS * 1000)
                        fail(c, -ENODEV, "the audio source stopped delivering");
        }
        if (c->failed || c->free_pending) {
                c->drain_timer = 0;
                go_on = false;
        }
        leave(c);
        return go_on ? G_SOURCE_CONTINUE : G_SOURCE_REMOVE;
}

static int connect_stream(AudioCapture *c, const char *source) {
        uint8_t buffer[1024];
        struct spa_pod_builder b = SPA_POD_BUILDER_INIT(buffer, sizeof buffer);
        struct spa_audio_info_raw info = {
                .format = SPA_AUDIO_FORMAT_F32, .rate = AUDIO_CAPTURE_RATE, .channels = 1,
                .position = { SPA_AUDIO_CHANNEL_MONO },
        };
        const struct spa_pod *params[1];
        struct pw_properties *props;

        props = pw_properties_new(PW_KEY_MEDIA_TYPE, "Audio", PW_KEY_MEDIA_CATEGORY, "Capture",
                                  PW_KEY_MEDIA_ROLE, "Communication", PW_KEY_APP_NAME, "imd",
                                  PW_KEY_NODE_NAME, "imd-voice-message",
                                  /* a voice message needs no low latency: fewer,
                                   * larger periods wake the real-time thread less */
                                  PW_KEY_NODE_LATENCY, "4096/48000",
                                  /* a vanished source ends the recording rather than
                                   * quietly continuing from another microphone */
                                  PW_KEY_NODE_DONT_RECONNECT, "true", NULL);
        if (source)
                pw_properties_set(props, PW_KEY_TARGET_OBJECT, source);
        c->stream = pw_stream_new(c->core, "voice message", props);
        if (!c->stream)
                return -errno;
        pw_stream_add_listener(c->stream, &c->stream_listener, &stream_events, c);
        params[0] = spa_format_audio_raw_build(&b, SPA_PARAM_EnumFormat, &info);
        return pw_stream_connect(c->stream, PW_DIRECTION_INPUT, PW_ID_ANY,
                                 PW_STREAM_FLAG_AUTOCONNECT | PW_STREAM_FLAG_MAP_BUFFERS |
                                 PW_STREAM_FLAG_RT_PROCESS, params, 1);
}

int audio_capture_start(const char *source, unsigned start_timeout_ms, const AudioCaptureCallbacks *cb,
                        void *userdata, AudioCapture **ret) {
        AudioCapture *c;
        int r;

        pw_init(NULL, NULL);
        c = g_new0(AudioCapture, 1);
        c->cb = *cb;
        c->userdata = userdata;
        c->start_timeout_ms = start_timeout_ms;
        c->ring_data = g_malloc(RING_BYTES);
        spa_ringbuffer_init(&c->ring);
        c->loop = pw_loop_new(NULL);
        if (!c->loop) {
                r = -errno;
                audio_capture_free(c);
                return r ? r : -ENOMEM;
        }
        c->context = pw_context_new(c->loop, NULL, 0);
        if (!c->context) {
                r = -errno;
                audio_capture_free(c);
                return r ? r : -ENOMEM;
        }
        c->core = pw_context_connect(c->context, NULL, 0);
        if (!c->core) {
                g_debug("audio: cannot connect to PipeWire: %s", g_strerror(errno));
                audio_capture_free(c);
                return -ENOTSUP;
        }
        pw_core_add_listener(c->core, &c->core_listener, &core_events, c);
        c->starting = true;
        r = connect_stream(c, source);
        c->starting = false;
        if (r == 0 && c->failed)
                r = c->start_error;
        if (r < 0) {
                audio_capture_free(c);
                return r;
        }
        c->loop_source = g_source_new(&pw_source_funcs, sizeof(PwSource));
        ((PwSource *) c->loop_source)->capture = c;
        g_source_add_unix_fd(c->loop_source, pw_loop_get_fd(c->loop), G_IO_IN | G_IO_ERR | G_IO_HUP);
        g_source_attach(c->loop_source, NULL);
        pw_loop_enter(c->loop);
        c->start_us = c->last_data_us = g_get_monotonic_time();
        c->drain_timer = g_timeout_add(AUDIO_CAPTURE_PERIOD_MS, on_drain, c);
        *ret = c;
        return 0;
}

void audio_capture_free(AudioCapture *c) {
        if (!c)
                return;
        if (c->busy > 0) {
                c->free_pending = true;         /* leave() frees it */
                return;
        }
        really_free(c);
}

static void really_free(AudioCapture *c) {
        if (c->drain_timer)
                g_source_remove(c->drain_timer);
        if (c->stream) {
                spa_hook_remove(&c->stream_listener);
                pw_stream_destroy(c->stream);   /* also stops the real-time callbacks */
        }
        if (c->core) {
                spa_hook_remove(&c->core_listener);
                pw_core_disconnect(c->core);
        }
        if (c->context)
                pw_context_destroy(c->context);
        if (c->loop_source) {
                pw_loop_leave(c->loop);
                g_source_destroy(c->loop_source);
                g_source_unref(c->loop_source);
        }
        if (c->loop)
                pw_loop_destroy(c->loop);
        g_free(c->ring_data);
        g_free(c);
}

uint64_t audio_capture_dropped(const AudioCapture *c) {
        return atomic_load(&((AudioCapture *) c)->dropped_bytes) / sizeof(float);
}
