/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Ogg Opus files of speech with libopusenc: mono, 48 kHz, a voice-tuned
 * bitrate. Writes to a file descriptor the caller opened (so that it, not
 * the library, decides how the file is created).
 */

#include <stddef.h>
#include <stdint.h>

typedef struct VoiceEncoder VoiceEncoder;

/* Takes fd (closed by voice_encoder_finish/_free). bitrate: bits/s. -EINVAL
 * for a bitrate Opus does not take, -ENOMEM, -EIO. */
int voice_encoder_new(int fd, unsigned bitrate, VoiceEncoder **ret);
/* n mono samples at 48 kHz, -1.0 .. 1.0. -EIO if the file cannot be written. */
int voice_encoder_write(VoiceEncoder *e, const float *pcm, size_t n);
/* Samples written so far. */
uint64_t voice_encoder_samples(const VoiceEncoder *e);
/* Flushes the end of the stream, closes the file and frees e: 0 or -EIO. */
int voice_encoder_finish(VoiceEncoder *e);
/* Closes the file (incomplete) and frees e. NULL is fine. */
void voice_encoder_free(VoiceEncoder *e);
