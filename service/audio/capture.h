/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Microphone capture from PipeWire, on the GLib main loop: mono 32-bit float
 * samples at AUDIO_CAPTURE_RATE. PipeWire's real-time thread only copies
 * what it captures into a ring buffer; the main loop drains it every
 * AUDIO_CAPTURE_PERIOD_MS and hands the samples up, so nothing slow (an
 * encoder, a disk) ever runs on the real-time thread. Knows nothing of
 * Opus, messages or D-Bus.
 */

#include <stddef.h>
#include <stdint.h>

#define AUDIO_CAPTURE_RATE 48000
#define AUDIO_CAPTURE_PERIOD_MS 100

typedef struct AudioCapture AudioCapture;

typedef struct AudioCaptureCallbacks {
        /* Samples captured since the last call, in order; on the main loop.
         * The first call means the source delivers. */
        void (*samples)(const float *pcm, size_t n, void *userdata);
        /* Capture ended by itself: -ENODEV no source delivered within
         * start_timeout_ms, or the source stopped delivering (it vanished);
         * -EPIPE PipeWire went away; -EIO the stream failed. text: for
         * people. No callback follows; audio_capture_free() it. */
        void (*failed)(int error, const char *text, void *userdata);
} AudioCaptureCallbacks;

/* Connects to PipeWire and starts capturing from source (a node name; NULL:
 * the default source). -ENOTSUP (or another errno) when PipeWire cannot be
 * reached: then nothing was created. */
int audio_capture_start(const char *source, unsigned start_timeout_ms, const AudioCaptureCallbacks *cb,
                        void *userdata, AudioCapture **ret);
/* Hands up at once (samples()) what was captured since the last period. */
void audio_capture_flush(AudioCapture *c);
/* Stops at once: no callback after this. NULL is fine. */
void audio_capture_free(AudioCapture *c);
/* Samples the real-time thread had to drop because the ring buffer was
 * full (the main loop fell more than a second behind): dropouts. */
uint64_t audio_capture_dropped(const AudioCapture *c);
