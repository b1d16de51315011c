/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * What the fuzz targets share: libFuzzer's entry point (also called by
 * replay.c's main in every build) and a check that crashes loudly, so that a
 * broken invariant is a finding like any sanitizer report.
 */

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Not assert(): NDEBUG must not turn the checks off. */
#define FUZZ_CHECK(cond)                                                                       \
        do {                                                                                   \
                if (!(cond)) {                                                                 \
                        fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #cond); \
                        abort();                                                               \
                }                                                                              \
        } while (0)
