/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The pixel size of an image, read from the first bytes of its file alone:
 * what SendFile tells the peer so that it can lay out a preview before
 * downloading. The bytes are the caller's, so every field read is
 * bounds-checked.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The width and height of a PNG, JPEG, GIF or WebP (VP8, VP8L, VP8X) image
 * from the start of its file (data, len bytes: 64 KiB is enough for all but
 * JPEGs with huge metadata before their frame header). false if the format is
 * none of these, the header is cut short or malformed, or a dimension is 0. */
bool image_size(const uint8_t *data, size_t len, uint32_t *ret_width, uint32_t *ret_height);
