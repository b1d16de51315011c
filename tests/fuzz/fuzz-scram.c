/* SPDX-License-Identifier: MIT */

/*
 * The SCRAM client's parsers (RFC 5802, RFC 7677): the server-first-message
 * (scram_client_final()) and the server-final-message
 * (scram_client_verify()), with the client nonce, user and password of the
 * RFCs' examples, so the corpus's real exchanges get all the way through;
 * the same with a client made from the keys of an earlier login
 * (scram_client_new_from_keys()); and SASLprep and the client-first-message
 * of fuzzed credentials.
 *
 * Input: one flag byte, then
 *   flags & 2 == 0: server-first-message, NUL, server-final-message
 *                   (both optional); also the whole rest as a server-final
 *                   for a client that has sent its final message;
 *   flags & 2:      user, NUL, password, NUL, client nonce.
 * flags & 1 picks SCRAM-SHA-256 (RFC 7677's example), else SCRAM-SHA-1
 * (RFC 5802's).
 *
 * The iteration count is the server's to choose up to SCRAM_MAX_ITERATIONS,
 * which would make an input cost a second: counts in range are lowered to
 * SCRAM_MIN_ITERATIONS before the message is handed over (counts out of
 * range are left as they are: they must be refused).
 */

#include <errno.h>
#include <string.h>
#include <glib.h>

#include "fuzz.h"
#include "scram.h"

typedef struct Example {
        const char *user, *password, *cnonce;
        const char *server_first;       /* the RFC's, to prime a client for scram_client_verify() */
        const char *server_final;
} Example;

static const Example examples[] = {
        [SCRAM_SHA1] = {
                "user", "pencil", "fyko+d2lbbFgONRv9qkxdawL",
                "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
                "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
        },
        [SCRAM_SHA256] = {
                "user", "pencil", "rOprNGfwEbeRWgbNEkqO",
                "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
                "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
        },
};

static ScramClient *client_new(ScramHash hash) {
        const Example *e = &examples[hash];
        ScramClient *c = scram_client_new(hash, e->user, e->password, e->cnonce);

        FUZZ_CHECK(c);
        return c;
}

/* A client that has sent its final message for the RFC's exchange; made once
 * (4096 rounds of PBKDF2) and only verified against afterwards. */
static ScramClient *primed_client(ScramHash hash) {
        static ScramClient *primed[2];

        if (!primed[hash]) {
                const char *first = examples[hash].server_first;
                g_autofree char *final = NULL;

                primed[hash] = client_new(hash);
                FUZZ_CHECK(scram_client_final(primed[hash], first, strlen(first), &final) == 0);
        }
        return primed[hash];
}

/* The keys of the RFC's exchange, for clients that log in again without the
 * password (scram_client_new_from_keys()); made once. */
static const ScramKeys *rfc_keys(ScramHash hash) {
        static ScramKeys *keys[2];

        if (!keys[hash]) {
                const Example *e = &examples[hash];
                g_autofree char *final = NULL;
                ScramClient *c = client_new(hash);

                FUZZ_CHECK(scram_client_final(c, e->server_first, strlen(e->server_first), &final) == 0);
                FUZZ_CHECK(scram_client_verify(c, e->server_final, strlen(e->server_final)) == 0);
                FUZZ_CHECK(scram_client_get_keys(c, &keys[hash]) == 0 && keys[hash]);
                scram_client_free(c);
        }
        return keys[hash];
}

/* A copy of a server-first-message with an iteration count in range lowered
 * to the minimum, which exercises the same code at a fraction of the cost. */
static char *cap_iterations(const char *msg, size_t len, size_t *ret_len) {
        GString *out = g_string_new_len(msg, (gssize) len);
        const char *i = g_strstr_len(out->str, (gssize) out->len, ",i=");
        size_t start, end;
        uint64_t v = 0;

        if (i) {
                start = end = (size_t) (i - out->str) + 3;
                while (end < out->len && g_ascii_isdigit(out->str[end]) && v <= SCRAM_MAX_ITERATIONS)
                        v = v * 10 + (uint64_t) (out->str[end++] - '0');
                if (end > start && (end == out->len || !g_ascii_isdigit(out->str[end])) &&
                    v > SCRAM_MIN_ITERATIONS && v <= SCRAM_MAX_ITERATIONS) {
                        g_string_erase(out, (gssize) start, (gssize) (end - start));
                        g_string_insert(out, (gssize) start, G_STRINGIFY(SCRAM_MIN_ITERATIONS));
                }
        }
        *ret_len = out->len;
        return g_string_free(out, FALSE);
}

static bool has_prefix_len(const char *s, size_t len, const char *prefix) {
        size_t n = strlen(prefix);
        return len >= n && memcmp(s, prefix, n) == 0;
}

static void check_verify(ScramClient *c, ScramHash hash, const char *msg, size_t len, bool rfc_exchange) {
        int r = scram_client_verify(c, msg, len);

        FUZZ_CHECK(r == 0 || r == -EACCES || r == -EBADMSG);
        if (r == 0) {
                /* Only the one right signature is accepted (its base64 may
                 * differ in the unused bits of the last character). */
                const char *comma = memchr(msg, ',', len);
                g_autofree char *v = NULL;
                g_autofree guchar *got = NULL, *want = NULL;
                gsize got_len = 0, want_len = 0;

                FUZZ_CHECK(rfc_exchange);
                FUZZ_CHECK(has_prefix_len(msg, len, "v="));
                v = g_strndup(msg + 2, (comma ? (size_t) (comma - msg) : len) - 2);
                got = g_base64_decode(v, &got_len);
                want = g_base64_decode(examples[hash].server_final + 2, &want_len);
                FUZZ_CHECK(got_len == want_len && memcmp(got, want, want_len) == 0);
        }
}

/* The same messages to a client made from keys: no PBKDF2, and any salt or
 * count but the keys' is -ESTALE once the message has been parsed. */
static void run_from_keys(ScramHash hash, const char *first, size_t first_len, const char *final_msg,
                          size_t final_len) {
        const ScramKeys *keys = rfc_keys(hash);
        g_autofree char *final = NULL;
        ScramKeys *again = NULL;
        ScramClient *c;
        int r;

        c = scram_client_new_from_keys(keys, examples[hash].user, examples[hash].cnonce);
        FUZZ_CHECK(c);
        FUZZ_CHECK(scram_client_get_keys(c, &again) == -EINVAL && !again);
        r = scram_client_final(c, first, first_len, &final);
        FUZZ_CHECK(r == 0 || r == -EBADMSG || r == -EPROTO || r == -ERANGE || r == -ESTALE);
        if (r == 0 && final_msg) {
                bool rfc_exchange = first_len == strlen(examples[hash].server_first) &&
                                    memcmp(first, examples[hash].server_first, first_len) == 0;

                check_verify(c, hash, final_msg, final_len, rfc_exchange);
                if (scram_client_get_keys(c, &again) == 0) {
                        FUZZ_CHECK(again && again->salt_len == keys->salt_len &&
                                   memcmp(again->salt, keys->salt, keys->salt_len) == 0 &&
                                   again->iterations == keys->iterations);
                        scram_keys_free(again);
                }
        }
        scram_client_free(c);
}

static void run_server(ScramHash hash, const char *rest, size_t len) {
        const char *nul = memchr(rest, 0, len);
        size_t first_len = nul ? (size_t) (nul - rest) : len;
        g_autofree char *first = NULL, *final = NULL, *again = NULL;
        ScramClient *c;
        size_t capped_len;
        bool rfc_exchange;
        int r;

        check_verify(primed_client(hash), hash, rest, len, true);
        run_from_keys(hash, rest, first_len, nul ? nul + 1 : NULL, nul ? len - first_len - 1 : 0);

        c = client_new(hash);
        FUZZ_CHECK(scram_client_verify(c, "v=", 2) == -EINVAL);      /* nothing sent yet */
        first = cap_iterations(rest, first_len, &capped_len);
        r = scram_client_final(c, first, capped_len, &final);
        FUZZ_CHECK(r == 0 || r == -EBADMSG || r == -EPROTO || r == -ERANGE);
        if (r == 0) {
                g_autofree char *prefix = g_strconcat("c=biws,r=", examples[hash].cnonce, NULL);

                FUZZ_CHECK(final && g_str_has_prefix(final, prefix));
                FUZZ_CHECK(strstr(final, ",p="));
                FUZZ_CHECK(scram_client_final(c, first, capped_len, &again) == -EALREADY && !again);
                rfc_exchange = strcmp(first, examples[hash].server_first) == 0;
                if (nul)
                        check_verify(c, hash, nul + 1, len - first_len - 1, rfc_exchange);
        } else
                FUZZ_CHECK(!final);
        scram_client_free(c);
}

/* Splits off the next NUL-terminated field of [*p, end). */
static char *next_field(const char **p, const char *end) {
        const char *nul = memchr(*p, 0, end - *p);
        const char *stop = nul ? nul : end;
        char *r = g_strndup(*p, stop - *p);

        *p = nul ? nul + 1 : end;
        return r;
}

static void run_client(ScramHash hash, const char *rest, size_t len) {
        const char *p = rest, *end = rest + len;
        g_autofree char *user = next_field(&p, end);
        g_autofree char *password = next_field(&p, end);
        g_autofree char *cnonce = next_field(&p, end);
        g_autofree char *first = NULL;
        uint8_t out[SCRAM_MAX_HASH_LEN];
        ScramClient *c;
        int r;

        c = scram_client_new(hash, user, password, *cnonce ? cnonce : "fixed-nonce");
        if (c) {
                const char *u, *comma;

                FUZZ_CHECK(scram_client_first(c, &first) == 0);
                FUZZ_CHECK(g_str_has_prefix(first, "n,,n="));
                FUZZ_CHECK(g_utf8_validate(first, -1, NULL));
                /* The username is escaped: its only comma is the one before r=. */
                u = first + 5;
                comma = strchr(u, ',');
                FUZZ_CHECK(comma && g_str_has_prefix(comma, ",r="));
                FUZZ_CHECK(!strchr(comma + 3, ','));
                for (const char *q = strchr(u, '='); q && q < comma; q = strchr(q + 1, '='))
                        FUZZ_CHECK(g_str_has_prefix(q, "=2C") || g_str_has_prefix(q, "=3D"));
                scram_client_free(c);
        }
        /* SASLprep of the password, with one round of PBKDF2. */
        r = scram_salted_password(hash, password, (const uint8_t *) "salt", 4, 1, out);
        FUZZ_CHECK(r == 0 || r == -EINVAL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        ScramHash hash;

        if (size == 0)
                return 0;
        hash = data[0] & 1 ? SCRAM_SHA256 : SCRAM_SHA1;
        if (data[0] & 2)
                run_client(hash, (const char *) data + 1, size - 1);
        else
                run_server(hash, (const char *) data + 1, size - 1);
        return 0;
}
