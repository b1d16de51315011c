/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Reconnect delays: exponential from min_ms, capped at max_ms, with ±25 %
 * jitter so that many clients cut off together do not return together.
 */

#include <stdint.h>

typedef struct Backoff {
        unsigned min_ms, max_ms;
        unsigned attempt;       /* failures since the last success */
} Backoff;

/* The delay before the next attempt; counts the attempt. random: any value
 * from a uniform 32-bit source (tests pass fixed ones). */
unsigned backoff_next_ms(Backoff *b, uint32_t random);
void backoff_reset(Backoff *b);
