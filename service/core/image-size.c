/* SPDX-License-Identifier: MIT */

#include <string.h>

#include "image-size.h"

/* Fields are assembled byte by byte: the data has no alignment, and its byte
 * order is the format's, not the host's. Each byte is widened before it is
 * shifted, so no shift ever lands in an int's sign bit. */
static uint32_t be16(const uint8_t *p) {
        return (uint32_t) p[0] << 8 | p[1];
}

static uint32_t be32(const uint8_t *p) {
        return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | p[3];
}

static uint32_t le16(const uint8_t *p) {
        return (uint32_t) p[1] << 8 | p[0];
}

static uint32_t le24(const uint8_t *p) {
        return (uint32_t) p[2] << 16 | (uint32_t) p[1] << 8 | p[0];
}

static uint32_t le32(const uint8_t *p) {
        return (uint32_t) p[3] << 24 | le24(p);
}

/* Whether the n bytes at offset are s; false if they lie past len. */
static bool has(const uint8_t *data, size_t len, size_t offset, const char *s, size_t n) {
        return len >= offset + n && memcmp(data + offset, s, n) == 0;
}

static bool png_size(const uint8_t *d, size_t len, uint32_t *w, uint32_t *h) {
        /* IHDR must be the first chunk, so its fields sit at fixed offsets. */
        if (len < 24 || be32(d + 8) != 13 || !has(d, len, 12, "IHDR", 4))
                return false;
        *w = be32(d + 16);
        *h = be32(d + 20);
        /* The PNG spec keeps both below 2^31. */
        return *w <= INT32_MAX && *h <= INT32_MAX;
}

/* The logical screen: every frame is drawn within it. */
static bool gif_size(const uint8_t *d, size_t len, uint32_t *w, uint32_t *h) {
        if (len < 10)
                return false;
        *w = le16(d + 6);
        *h = le16(d + 8);
        return true;
}

/* Walks the marker segments (ITU T.81 B.1) to the frame header. */
static bool jpeg_size(const uint8_t *d, size_t len, uint32_t *w, uint32_t *h) {
        size_t i = 2;

        for (;;) {
                uint8_t marker;
                size_t seg;

                if (i >= len || d[i] != 0xFF)
                        return false;
                /* Any number of 0xFF fill bytes may come before a marker. */
                while (i < len && d[i] == 0xFF)
                        i++;
                if (i >= len)
                        return false;
                marker = d[i++];
                /* RST0-7 and TEM stand alone: no length follows. */
                if ((marker >= 0xD0 && marker <= 0xD7) || marker == 0x01)
                        continue;
                /* 0x00 is no marker; past SOS comes entropy-coded data,
                 * and a frame header never follows SOI again or EOI. */
                if (marker == 0x00 || marker == 0xD8 || marker == 0xD9 || marker == 0xDA)
                        return false;
                if (len - i < 2)
                        return false;
                seg = be16(d + i);      /* counts its own two bytes */
                if (seg < 2 || seg > len - i)
                        return false;
                /* SOF0-15, less DHT (C4), JPG (C8) and DAC (CC) which share the range. */
                if (marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC) {
                        /* Length, precision, then height before width. */
                        if (seg < 7)
                                return false;
                        *h = be16(d + i + 3);
                        *w = be16(d + i + 5);
                        return true;
                }
                i += seg;
        }
}

/* The first chunk after "RIFF" size "WEBP" names the bitstream; its payload
 * starts at offset 20. */
static bool webp_size(const uint8_t *d, size_t len, uint32_t *w, uint32_t *h) {
        if (has(d, len, 12, "VP8 ", 4)) {
                /* Lossy (RFC 6386 9.1): a key frame's 3-byte tag, the start
                 * code, then 14-bit sizes whose top 2 bits are a scale. */
                if (len < 30 || (d[20] & 1) != 0 || !has(d, len, 23, "\x9d\x01\x2a", 3))
                        return false;
                *w = le16(d + 26) & 0x3FFF;
                *h = le16(d + 28) & 0x3FFF;
                return true;
        }
        if (has(d, len, 12, "VP8L", 4)) {
                uint32_t bits;

                /* Lossless: signature, then 14 bits each of width-1 and
                 * height-1, 1 alpha hint and a 3-bit version that must be 0. */
                if (len < 25 || d[20] != 0x2F)
                        return false;
                bits = le32(d + 21);
                if (bits >> 29 != 0)
                        return false;
                *w = (bits & 0x3FFF) + 1;
                *h = (bits >> 14 & 0x3FFF) + 1;
                return true;
        }
        if (has(d, len, 12, "VP8X", 4)) {
                /* Extended: flags, 3 reserved bytes, 24-bit canvas width-1, height-1. */
                if (len < 30)
                        return false;
                *w = le24(d + 24) + 1;
                *h = le24(d + 27) + 1;
                return true;
        }
        return false;
}

bool image_size(const uint8_t *data, size_t len, uint32_t *ret_width, uint32_t *ret_height) {
        uint32_t w, h;
        bool ok;

        if (has(data, len, 0, "\x89PNG\r\n\x1a\n", 8))
                ok = png_size(data, len, &w, &h);
        else if (has(data, len, 0, "GIF87a", 6) || has(data, len, 0, "GIF89a", 6))
                ok = gif_size(data, len, &w, &h);
        else if (has(data, len, 0, "\xFF\xD8", 2))
                ok = jpeg_size(data, len, &w, &h);
        else if (has(data, len, 0, "RIFF", 4) && has(data, len, 8, "WEBP", 4))
                ok = webp_size(data, len, &w, &h);
        else
                ok = false;

        if (!ok || w == 0 || h == 0)
                return false;
        *ret_width = w;
        *ret_height = h;
        return true;
}
