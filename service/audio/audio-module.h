/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The audio code (PipeWire capture, Ogg Opus encoding) is a module of its
 * own, imd-audio.so, which imd loads the first time someone records: the
 * daemon's idle footprint does not pay for libpipewire and libopus (their
 * relocated pages were 0.6 MiB of resident memory at start) when voice
 * messages are rare. The module hands over this table, from one symbol.
 */

#include "capture.h"
#include "encoder.h"

#define AUDIO_MODULE_FILE "imd-audio.so"
#define AUDIO_MODULE_SYMBOL "imd_audio_module"
/* Bumped whenever the table changes: imd refuses a module of another. */
#define AUDIO_MODULE_VERSION 1

typedef struct AudioModule {
        unsigned version;
        int (*capture_start)(const char *source, unsigned start_timeout_ms, const AudioCaptureCallbacks *cb,
                             void *userdata, AudioCapture **ret);
        void (*capture_flush)(AudioCapture *c);
        void (*capture_free)(AudioCapture *c);
        uint64_t (*capture_dropped)(const AudioCapture *c);
        int (*encoder_new)(int fd, unsigned bitrate, VoiceEncoder **ret);
        int (*encoder_write)(VoiceEncoder *e, const float *pcm, size_t n);
        uint64_t (*encoder_samples)(const VoiceEncoder *e);
        int (*encoder_finish)(VoiceEncoder *e);
        void (*encoder_free)(VoiceEncoder *e);
} AudioModule;

/* The module's one export (the rest of it is hidden). */
__attribute__((visibility("default"))) const AudioModule *imd_audio_module(void);
