/* SPDX-License-Identifier: MIT */
/*
 * Voice messages for the Session (TIM's sound element, recorded the way
 * chat apps do it): the microphone (audio/capture.h) feeds an Ogg Opus
 * encoder (audio/encoder.h) writing into the cache directory; stopping
 * sends the file like SendFile, as type "audio" with its duration. Too
 * short, cancelled or failed: nothing is kept or sent. Who may stop a
 * recording is the bus layer's business; here there is one recording, the
 * Session's.
 */

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <string.h>
#include <unistd.h>
#include <glib.h>

#include <dlfcn.h>

#include "audio-module.h"
#include "session-private.h"

#define DEFAULT_MIN_MS 1000
#define DEFAULT_MAX_MS 60000
#define DEFAULT_BITRATE 24000
/* How long StartRecording waits for the source to deliver. */
#define START_TIMEOUT_MS 3000
#define LEVEL_SAMPLES (AUDIO_CAPTURE_RATE / 10)
#define VOICE_MIME "audio/ogg"

struct Recording {
        Session *session;
        const AudioModule *audio;
        char *conversation;
        char *owner;                    /* who may stop it (the bus layer's word: a bus name) */
        /* The Ogg Opus file being written, read back to be sent. It has no
         * name: a crash or kill mid-recording leaves nothing behind. */
        int fd;
        AudioCapture *capture;
        VoiceEncoder *encoder;
        uint64_t max_samples;
        SessionDoneCallback started;    /* StartRecording waits for the first samples */
        void *started_userdata;
        bool delivering;                /* the source delivers: Recording is true */
        /* StopRecording is flushing the last samples: if they reach the
         * maximum, its caller gets the message sent for that */
        SessionSendFileCallback stopping;
        void *stopping_userdata;
        float peak;                     /* loudest sample since the last level */
        unsigned level_samples;
};

static unsigned min_ms(const Session *s) {
        return s->config.voice_min_ms ? s->config.voice_min_ms : DEFAULT_MIN_MS;
}

static unsigned max_ms(const Session *s) {
        return s->config.voice_max_ms ? s->config.voice_max_ms : DEFAULT_MAX_MS;
}

/* Ends the recording: nothing of it stays (the file was handed on, or it is
 * thrown away). The Session has none afterwards. */
/* A recording lost samples if the loop fell behind the microphone by more
 * than the ring buffer holds: said once, at its end (the benchmark checks). */
static void report_dropouts(Recording *rec) {
        uint64_t dropped = rec->capture ? rec->audio->capture_dropped(rec->capture) : 0;

        if (dropped > 0)
                g_message("The recording lost %" G_GUINT64_FORMAT " samples (%.0f ms): dropouts", dropped,
                          (double) dropped * 1000 / AUDIO_CAPTURE_RATE);
}

static void recording_end(Session *s, Recording *rec, int start_error) {
        s->recording = NULL;
        report_dropouts(rec);
        rec->audio->capture_free(rec->capture);
        rec->audio->encoder_free(rec->encoder);
        if (rec->fd >= 0)
                close(rec->fd);
        if (rec->started)
                rec->started(start_error, rec->started_userdata);
        g_free(rec->conversation);
        g_free(rec->owner);
        if (rec->delivering)
                s->events.recording_changed(s->userdata);
        g_free(rec);
}

struct VoiceSend {
        Session *session;
        char *conversation;
        char *owner;
        const char *reason;
        SessionSendFileCallback callback;       /* StopRecording's, or NULL (sent by itself) */
        void *userdata;
};

/* How long after a recording went by itself (its maximum) its owner's
 * StopRecording, sent in the same instant, still gets that message. */
#define LATE_STOP_US (2 * G_USEC_PER_SEC)

static void forget_sent_by_itself(Session *s) {
        g_clear_pointer(&s->voice_auto_owner, g_free);
        g_clear_pointer(&s->voice_auto_id, g_free);
}

static void on_voice_sent(int error, const char *id, void *userdata) {
        VoiceSend *v = userdata;
        Session *s = v->session;

        if (s->voice_sending == v) {
                s->voice_sending = NULL;
                if (!v->callback && error == 0) {
                        /* for a Stop that crosses it (session_stop_recording()) */
                        forget_sent_by_itself(s);
                        s->voice_auto_owner = g_strdup(v->owner);
                        s->voice_auto_id = g_strdup(id);
                        s->voice_auto_us = g_get_monotonic_time();
                }
        }
        /* sent by itself (its maximum): nobody's call hears why it was not */
        if (!v->callback && error < 0 && error != -ECANCELED) {
                g_autofree char *text = g_strdup_printf("The voice message to %s was not sent: %s", v->conversation,
                                                        error == -EDQUOT ? "imd's outbox is full ([media] max_outbox)"
                                                                         : g_strerror(-error));
                s->events.error(error, text, s->userdata);
        }
        s->events.recording_stopped(v->conversation, error == 0 ? id : "", error == 0 ? v->reason : "failed",
                                    s->userdata);
        if (v->callback)
                v->callback(error, id, v->userdata);
        g_free(v->conversation);
        g_free(v->owner);
        g_free(v);
}

/* The recording is long enough: finish its file and send it as SendFile
 * does (which copies it; ours goes at once). */
static void recording_send(Session *s, Recording *rec, const char *reason, SessionSendFileCallback callback,
                           void *userdata) {
        uint64_t samples = rec->audio->encoder_samples(rec->encoder);
        uint32_t duration_ms = (uint32_t) (samples * 1000 / AUDIO_CAPTURE_RATE);
        g_autoptr(GDateTime) now = g_date_time_new_now_local();
        g_autofree char *name = g_date_time_format(now, "voice-%Y%m%d-%H%M%S.ogg");
        VoiceSend *v = g_new0(VoiceSend, 1);
        int r;

        v->session = s;
        v->conversation = g_strdup(rec->conversation);
        v->owner = g_strdup(rec->owner);
        v->reason = reason;
        v->callback = callback;
        v->userdata = userdata;
        if (!callback)
                s->voice_sending = v;   /* by itself: a Stop may still come for it */
        report_dropouts(rec);
        rec->audio->capture_free(g_steal_pointer(&rec->capture));
        r = rec->audio->encoder_finish(g_steal_pointer(&rec->encoder));
        /* session_send_file() takes its own copy, as of any caller's file */
        if (r == 0)
                r = session_send_recording(s, rec->conversation, rec->fd, &(SessionFileInfo) {
                                              .name = name, .mime = VOICE_MIME, .type = "audio",
                                              .duration_ms = duration_ms },
                                      on_voice_sent, v);
        recording_end(s, rec, 0);
        if (r < 0)
                on_voice_sent(r, NULL, v);
}

static void on_samples(const float *pcm, size_t n, void *userdata) {
        Session *s = userdata;
        Recording *rec = s->recording;
        uint64_t written = rec->audio->encoder_samples(rec->encoder);
        bool full = false;
        int r;

        if (!rec->delivering) {
                SessionDoneCallback started = g_steal_pointer(&rec->started);
                /* Recording turns true only now: a start that fails never shows */
                rec->delivering = true;
                s->events.recording_changed(s->userdata);
                started(0, rec->started_userdata);
        }
        if (written + n >= rec->max_samples) {
                n = (size_t) (rec->max_samples - written);
                full = true;
        }
        for (size_t i = 0; i < n; i++) {
                rec->peak = fmaxf(rec->peak, fabsf(pcm[i]));
                if (++rec->level_samples == LEVEL_SAMPLES) {
                        s->events.recording_level(fmin(rec->peak, 1.0), s->userdata);
                        rec->peak = 0;
                        rec->level_samples = 0;
                }
        }
        r = rec->audio->encoder_write(rec->encoder, pcm, n);
        if (r < 0) {
                g_autofree char *conversation = g_strdup(rec->conversation);
                SessionSendFileCallback stopping = rec->stopping;
                void *stopping_userdata = rec->stopping_userdata;
                recording_end(s, rec, 0);
                s->events.error(r, "The voice message could not be written", s->userdata);
                s->events.recording_stopped(conversation, "", "failed", s->userdata);
                if (stopping)
                        stopping(r, NULL, stopping_userdata);
                return;
        }
        if (full) {
                g_debug("session: the recording reached %u ms; sending it", max_ms(s));
                recording_send(s, rec, "maximum", rec->stopping, rec->stopping_userdata);
        }
}

static void on_capture_failed(int error, const char *text, void *userdata) {
        Session *s = userdata;
        Recording *rec = s->recording;
        g_autofree char *conversation = g_strdup(rec->conversation);
        g_autofree char *message = g_strdup_printf("The recording stopped: %s", text);
        bool was_started = rec->delivering;
        SessionSendFileCallback stopping = rec->stopping;
        void *stopping_userdata = rec->stopping_userdata;

        recording_end(s, rec, error);
        if (stopping)
                stopping(error, NULL, stopping_userdata);
        if (was_started) {
                /* the caller of StartRecording heard about it; others hear now */
                s->events.error(error, message, s->userdata);
                s->events.recording_stopped(conversation, "", "failed", s->userdata);
        }
}

static const AudioCaptureCallbacks capture_callbacks = {
        .samples = on_samples,
        .failed = on_capture_failed,
};

/* imd-audio.so: beside the executable (a build tree), else where it is
 * installed. Loaded once and never unloaded (PipeWire's threads). */
static const AudioModule *load_audio(Session *s) {
        g_autofree char *exe = g_file_read_link("/proc/self/exe", NULL);
        g_autofree char *dir = exe ? g_path_get_dirname(exe) : NULL;
        g_autofree char *beside = dir ? g_build_filename(dir, AUDIO_MODULE_FILE, NULL) : NULL;
        const char *const paths[] = { beside, IMD_MODULE_DIR "/" AUDIO_MODULE_FILE };

        if (s->audio)
                return s->audio;
        for (size_t i = 0; i < G_N_ELEMENTS(paths); i++) {
                const AudioModule *(*get)(void);
                void *handle;
                if (!paths[i] || access(paths[i], R_OK) < 0)
                        continue;
                handle = dlopen(paths[i], RTLD_NOW | RTLD_LOCAL);
                if (!handle) {
                        g_warning("Cannot load %s: %s", paths[i], dlerror());
                        continue;
                }
                *(void **) &get = dlsym(handle, AUDIO_MODULE_SYMBOL);
                if (!get || get()->version != AUDIO_MODULE_VERSION) {
                        g_warning("%s is not imd's audio module of this version", paths[i]);
                        dlclose(handle);
                        continue;
                }
                g_debug("session: audio from %s", paths[i]);
                s->audio = get();
                return s->audio;
        }
        return NULL;
}

/* A new file in the cache directory with its name already gone: the
 * encoder's descriptor (returned) and one to read it back with (*ret_read). */
static int open_unnamed(Session *s, int *ret_read) {
        g_autofree char *path = NULL;
        int fd = session_media_create_file(s, VOICE_MIME, &path);
        int r;

        if (fd < 0)
                return fd;
        *ret_read = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        r = *ret_read < 0 ? -errno : 0;
        (void) unlink(path);
        if (r < 0) {
                close(fd);
                return r;
        }
        return fd;
}

int session_start_recording(Session *s, const char *conversation, const char *owner, SessionDoneCallback started,
                            void *userdata) {
        const AudioModule *audio;
        Recording *rec;
        int fd, r;

        if (!s->online_wanted || !s->store || s->login_pending)
                return -ENOTCONN;
        if (s->recording)
                return -EBUSY;
        audio = load_audio(s);
        if (!audio)
                return -ENOPKG;
        rec = g_new0(Recording, 1);
        rec->session = s;
        rec->audio = audio;
        rec->conversation = g_strdup(conversation);
        rec->owner = g_strdup(owner);
        rec->max_samples = (uint64_t) max_ms(s) * AUDIO_CAPTURE_RATE / 1000;
        rec->fd = -1;
        fd = open_unnamed(s, &rec->fd);
        r = fd < 0 ? fd
                   : audio->encoder_new(fd, s->config.voice_bitrate ? s->config.voice_bitrate : DEFAULT_BITRATE,
                                        &rec->encoder);
        s->recording = rec;
        if (r == 0)
                r = audio->capture_start(s->config.voice_source, START_TIMEOUT_MS, &capture_callbacks, s,
                                         &rec->capture);
        if (r < 0) {
                recording_end(s, rec, 0);
                return r;
        }
        rec->started = started;
        rec->started_userdata = userdata;
        return 0;
}

/* No recording: but if the owner's last one just went by itself (it hit
 * its maximum as the owner let go), the owner's Stop answers with that. */
static int stop_after_maximum(Session *s, const char *owner, SessionSendFileCallback callback, void *userdata) {
        if (s->voice_sending && !s->voice_sending->callback && g_strcmp0(s->voice_sending->owner, owner) == 0) {
                s->voice_sending->callback = callback;
                s->voice_sending->userdata = userdata;
                return 0;
        }
        if (s->voice_auto_id && g_strcmp0(s->voice_auto_owner, owner) == 0 &&
            g_get_monotonic_time() - s->voice_auto_us < LATE_STOP_US) {
                g_autofree char *id = g_steal_pointer(&s->voice_auto_id);
                forget_sent_by_itself(s);
                callback(0, id, userdata);
                return 0;
        }
        return -ENOENT;
}

int session_stop_recording(Session *s, const char *owner, SessionSendFileCallback callback, void *userdata) {
        Recording *rec = s->recording;
        uint64_t samples;

        if (!rec)
                return stop_after_maximum(s, owner, callback, userdata);
        if (g_strcmp0(rec->owner, owner) != 0)
                return -EPERM;
        /* up to this moment, not up to the last period */
        rec->stopping = callback;
        rec->stopping_userdata = userdata;
        rec->audio->capture_flush(rec->capture);
        if (!s->recording)
                return 0;       /* it just reached its maximum (callback has or gets that) or failed */
        rec->stopping = NULL;
        samples = rec->audio->encoder_samples(rec->encoder);
        if (!rec->delivering || samples * 1000 < (uint64_t) min_ms(s) * AUDIO_CAPTURE_RATE) {
                g_autofree char *conversation = g_strdup(rec->conversation);
                recording_end(s, rec, -ECANCELED);
                s->events.recording_stopped(conversation, "", "too-short", s->userdata);
                return -ENODATA;
        }
        recording_send(s, rec, "sent", callback, userdata);
        return 0;
}

int session_cancel_recording(Session *s, const char *reason) {
        Recording *rec = s->recording;
        g_autofree char *conversation = NULL;

        if (!rec)
                return -ENOENT;
        conversation = g_strdup(rec->conversation);
        recording_end(s, rec, -ECANCELED);
        s->events.recording_stopped(conversation, "", reason, s->userdata);
        return 0;
}

const char *session_recording_owner(const Session *s) {
        return s->recording ? s->recording->owner : NULL;
}

bool session_is_recording(const Session *s) {
        return s->recording && s->recording->delivering;
}
