/* SPDX-License-Identifier: MIT */
/* imd-audio.so: what imd calls, through one table (audio-module.h). */

#include "audio-module.h"

static const AudioModule module = {
        .version = AUDIO_MODULE_VERSION,
        .capture_start = audio_capture_start,
        .capture_flush = audio_capture_flush,
        .capture_free = audio_capture_free,
        .capture_dropped = audio_capture_dropped,
        .encoder_new = voice_encoder_new,
        .encoder_write = voice_encoder_write,
        .encoder_samples = voice_encoder_samples,
        .encoder_finish = voice_encoder_finish,
        .encoder_free = voice_encoder_free,
};

const AudioModule *imd_audio_module(void) {
        return &module;
}
