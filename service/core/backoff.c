/* SPDX-License-Identifier: MIT */

#include "backoff.h"

unsigned backoff_next_ms(Backoff *b, uint32_t random) {
        uint64_t base = b->min_ms;
        uint64_t jitter_range;
        int64_t delay;

        for (unsigned i = 0; i < b->attempt && base < b->max_ms; i++)
                base *= 2;
        if (base > b->max_ms)
                base = b->max_ms;
        if (b->attempt < 64)
                b->attempt++;

        /* base * [0.75, 1.25) */
        jitter_range = base / 2;
        delay = (int64_t) (base - base / 4) + (int64_t) (jitter_range ? random % jitter_range : 0);
        return delay < 1 ? 1 : (unsigned) delay;
}

void backoff_reset(Backoff *b) {
        b->attempt = 0;
}
