/* SPDX-License-Identifier: MIT */

#include <errno.h>
#include <stdbool.h>
#include <unistd.h>
#include <glib.h>
#include <opus/opusenc.h>

#include "encoder.h"

/* The encoder is nearly all of imd's CPU while recording (perf, with
 * tests/bench/bench_record.py). Speech needs little of it: wideband (8 kHz
 * of audio, what phones and chat apps send speech in) keeps Opus in its
 * SILK mode, and complexity 3 rather than 10 costs little quality there;
 * together they took imd from 2.0 % to 1.3 % of a core on the CI machine. */
#define COMPLEXITY 3

struct VoiceEncoder {
        OggOpusComments *comments;
        OggOpusEnc *enc;
        int fd;
        bool write_failed;
        uint64_t samples;
};

static int on_write(void *userdata, const unsigned char *ptr, opus_int32 len) {
        VoiceEncoder *e = userdata;

        while (len > 0) {
                ssize_t n = write(e->fd, ptr, (size_t) len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        e->write_failed = true;
                        return 1;       /* libopusenc: non-zero is an error */
                }
                ptr += n;
                len -= (opus_int32) n;
        }
        return 0;
}

static int on_close(void *userdata) {
        (void) userdata;
        return 0;       /* the fd is ours to close */
}

static const OpusEncCallbacks callbacks = { on_write, on_close };

int voice_encoder_new(int fd, unsigned bitrate, VoiceEncoder **ret) {
        VoiceEncoder *e = g_new0(VoiceEncoder, 1);
        int error = 0;

        e->fd = fd;
        e->comments = ope_comments_create();
        if (!e->comments) {
                voice_encoder_free(e);
                return -ENOMEM;
        }
        ope_comments_add(e->comments, "ENCODER", "imd");
        /* family 0: mono or stereo without a mapping table */
        e->enc = ope_encoder_create_callbacks(&callbacks, e, e->comments, 48000, 1, 0, &error);
        if (!e->enc) {
                voice_encoder_free(e);
                return error == OPE_ALLOC_FAIL ? -ENOMEM : -EIO;
        }
        if (ope_encoder_ctl(e->enc, OPUS_SET_BITRATE((opus_int32) bitrate)) != OPE_OK ||
            ope_encoder_ctl(e->enc, OPUS_SET_SIGNAL(OPUS_SIGNAL_VOICE)) != OPE_OK ||
            ope_encoder_ctl(e->enc, OPUS_SET_COMPLEXITY(COMPLEXITY)) != OPE_OK ||
            ope_encoder_ctl(e->enc, OPUS_SET_MAX_BANDWIDTH(OPUS_BANDWIDTH_WIDEBAND)) != OPE_OK) {
                voice_encoder_free(e);
                return -EINVAL;
        }
        *ret = e;
        return 0;
}

int voice_encoder_write(VoiceEncoder *e, const float *pcm, size_t n) {
        while (n > 0) {
                int chunk = (int) MIN(n, (size_t) 48000);
                if (ope_encoder_write_float(e->enc, pcm, chunk) != OPE_OK || e->write_failed)
                        return -EIO;
                e->samples += (uint64_t) chunk;
                pcm += chunk;
                n -= (size_t) chunk;
        }
        return 0;
}

uint64_t voice_encoder_samples(const VoiceEncoder *e) {
        return e->samples;
}

int voice_encoder_finish(VoiceEncoder *e) {
        /* (no fsync: the file is SendFile's to copy, and that copy is synced) */
        int r = ope_encoder_drain(e->enc) == OPE_OK && !e->write_failed ? 0 : -EIO;

        voice_encoder_free(e);
        return r;
}

void voice_encoder_free(VoiceEncoder *e) {
        if (!e)
                return;
        if (e->enc)
                ope_encoder_destroy(e->enc);
        if (e->comments)
                ope_comments_destroy(e->comments);
        if (e->fd >= 0)
                close(e->fd);
        g_free(e);
}
