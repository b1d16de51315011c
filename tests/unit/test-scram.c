/* SPDX-License-Identifier: MIT */

#include <errno.h>
#include <string.h>
#include <glib.h>

#include "scram.h"

typedef struct Vector {
        ScramHash hash;
        const char *user, *password, *cnonce;
        const char *client_first, *server_first, *client_final, *server_final;
} Vector;

static const Vector rfc5802 = {
        .hash = SCRAM_SHA1,
        .user = "user",
        .password = "pencil",
        .cnonce = "fyko+d2lbbFgONRv9qkxdawL",
        .client_first = "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
        .server_first = "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
        .client_final = "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
        .server_final = "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
};

static const Vector rfc7677 = {
        .hash = SCRAM_SHA256,
        .user = "user",
        .password = "pencil",
        .cnonce = "rOprNGfwEbeRWgbNEkqO",
        .client_first = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
        .server_first = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
        .client_final = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                        "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        .server_final = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
};

static ScramClient *client_for(const Vector *v) {
        ScramClient *c = scram_client_new(v->hash, v->user, v->password, v->cnonce);

        g_assert_nonnull(c);
        return c;
}

/* Runs a vector up to and including client-final; returns the client. */
static ScramClient *run_to_final(const Vector *v) {
        ScramClient *c = client_for(v);
        g_autofree char *first = NULL, *final = NULL;

        g_assert_cmpint(scram_client_first(c, &first), ==, 0);
        g_assert_cmpstr(first, ==, v->client_first);
        g_assert_cmpint(scram_client_final(c, v->server_first, strlen(v->server_first), &final), ==, 0);
        g_assert_cmpstr(final, ==, v->client_final);
        return c;
}

static void test_vector(gconstpointer data) {
        const Vector *v = data;
        ScramClient *c = run_to_final(v);

        g_assert_cmpint(scram_client_verify(c, v->server_final, strlen(v->server_final)), ==, 0);
        scram_client_free(c);
}

static void test_bad_server_signature(gconstpointer data) {
        const Vector *v = data;
        ScramClient *c = run_to_final(v);
        g_autofree char *bad = g_strdup(v->server_final);

        /* Flip one base64 character in the middle: same length, other bytes. */
        bad[5] = bad[5] == 'A' ? 'B' : 'A';
        g_assert_cmpint(scram_client_verify(c, bad, strlen(bad)), ==, -EACCES);
        g_assert_cmpint(scram_client_verify(c, "e=invalid-proof", 15), ==, -EACCES);
        g_assert_cmpint(scram_client_verify(c, "v=", 2), ==, -EBADMSG);
        g_assert_cmpint(scram_client_verify(c, "v=AAAA", 6), ==, -EBADMSG);         /* wrong length */
        g_assert_cmpint(scram_client_verify(c, "v=!!!!", 6), ==, -EBADMSG);
        g_assert_cmpint(scram_client_verify(c, "x=abcd", 6), ==, -EBADMSG);
        g_assert_cmpint(scram_client_verify(c, "", 0), ==, -EBADMSG);
        /* Length is explicit: a NUL inside is refused, not a place to stop. */
        g_assert_cmpint(scram_client_verify(c, v->server_final, strlen(v->server_final) + 1), ==, -EBADMSG);
        /* The right one still works after the failures. */
        g_assert_cmpint(scram_client_verify(c, v->server_final, strlen(v->server_final)), ==, 0);
        scram_client_free(c);
}

static void test_verify_before_final(void) {
        ScramClient *c = client_for(&rfc5802);

        /* Without a server-first there is no signature to match, so a
         * server cannot skip straight to success. */
        g_assert_cmpint(scram_client_verify(c, rfc5802.server_final, strlen(rfc5802.server_final)), <, 0);
        scram_client_free(c);
}

static int final_for(const char *server_first) {
        ScramClient *c = client_for(&rfc5802);
        char *out = (char *) 0x1;
        int r;

        r = scram_client_final(c, server_first, strlen(server_first), &out);
        if (r == 0)
                g_free(out);
        else
                g_assert_true(out == (char *) 0x1);    /* untouched on failure */
        scram_client_free(c);
        return r;
}

static void test_server_first_errors(void) {
        static const struct {
                const char *msg;
                int error;
        } cases[] = {
                { "r=XXXXfyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92,i=4096", -EPROTO },
                { "r=fyko+d2lbbFgONRv9qkxdawL,s=QSXCR+Q6sek8bf92,i=4096", -EPROTO }, /* not longer */
                { "r=fyko+d2lbbFgONRv9qkxdawK3rfc,s=QSXCR+Q6sek8bf92,i=4096", -EPROTO },
                { "r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92,i=1", -ERANGE },
                { "r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92,i=4095", -ERANGE },
                { "r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92,i=10000000", -ERANGE },
                { "r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92,i=99999999999999999999999", -ERANGE },
                { "r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92,i=", -EBADMSG },
                { "r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92,i=-4096", -EBADMSG },
                { "r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92,i=4096x", -EBADMSG },
                { "r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92", -EBADMSG },   /* no i= */
                { "r=fyko+d2lbbFgONRv9qkxdawL3rfc,i=4096", -EBADMSG },               /* no s= */
                { "s=QSXCR+Q6sek8bf92,i=4096", -EBADMSG },                           /* no r= */
                { "s=QSXCR+Q6sek8bf92,r=fyko+d2lbbFgONRv9qkxdawL3rfc,i=4096", -EBADMSG },
                { "m=ext,r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92,i=4096", -EBADMSG },
                { "r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92,i=4096,m=ext", -EBADMSG },
                { "r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92,i=4096,r=again", -EBADMSG },
                { "r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92,i=4096,i=4096", -EBADMSG },
                { "r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92,i=4096,", -EBADMSG },
                { "r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=,i=4096", -EBADMSG },
                { "r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXC*Q6sek8bf92,i=4096", -EBADMSG },
                { "r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf9,i=4096", -EBADMSG },
                { "r=fyko+d2lbbFgONRv9qkxdawL3r c,s=QSXCR+Q6sek8bf92,i=4096", -EBADMSG },
                { "r=,s=QSXCR+Q6sek8bf92,i=4096", -EBADMSG },
                { "e=other-error", -EBADMSG },
                { "", -EBADMSG },
                { "garbage", -EBADMSG },
                /* Unknown optional extensions after i= are ignored. */
                { "r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92,i=4096,x=future", 0 },
        };

        for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
                g_test_message("server-first: %s", cases[i].msg);
                g_assert_cmpint(final_for(cases[i].msg), ==, cases[i].error);
        }
}

static void test_oversized_server_first(void) {
        g_autoptr(GString) s = g_string_new("r=fyko+d2lbbFgONRv9qkxdawL");

        for (int i = 0; i < 5000; i++)
                g_string_append_c(s, 'x');
        g_string_append(s, ",s=QSXCR+Q6sek8bf92,i=4096");
        g_assert_cmpint(final_for(s->str), ==, -EBADMSG);
}

static void test_final_twice(void) {
        ScramClient *c = run_to_final(&rfc5802);
        char *out = NULL;

        g_assert_cmpint(scram_client_final(c, rfc5802.server_first, strlen(rfc5802.server_first), &out), <, 0);
        g_assert_null(out);
        scram_client_free(c);
}

static void test_username_escaping(void) {
        ScramClient *c = scram_client_new(SCRAM_SHA1, "a,b=c", "pw", "abc");
        g_autofree char *first = NULL;

        g_assert_nonnull(c);
        g_assert_cmpint(scram_client_first(c, &first), ==, 0);
        g_assert_cmpstr(first, ==, "n,,n=a=2Cb=3Dc,r=abc");
        scram_client_free(c);
}

static void test_new_invalid(void) {
        g_assert_null(scram_client_new(SCRAM_SHA1, NULL, "pw", "abc"));
        g_assert_null(scram_client_new(SCRAM_SHA1, "user", NULL, "abc"));
        g_assert_null(scram_client_new(SCRAM_SHA1, "", "pw", "abc"));
        g_assert_null(scram_client_new(SCRAM_SHA1, "us\x01r", "pw", "abc"));
        g_assert_null(scram_client_new(SCRAM_SHA1, "user", "p\xffw", "abc"));
        g_assert_null(scram_client_new(SCRAM_SHA1, "user", "pw", "a,b"));
        g_assert_null(scram_client_new(SCRAM_SHA1, "user", "pw", "a b"));
        g_assert_null(scram_client_new(SCRAM_SHA1, "user", "pw", ""));
        g_assert_null(scram_client_new((ScramHash) 7, "user", "pw", "abc"));
        scram_client_free(NULL);
}

static void test_random_nonce(void) {
        ScramClient *a = scram_client_new(SCRAM_SHA256, "user", "pw", NULL);
        ScramClient *b = scram_client_new(SCRAM_SHA256, "user", "pw", NULL);
        g_autofree char *fa = NULL, *fb = NULL;

        g_assert_nonnull(a);
        g_assert_nonnull(b);
        g_assert_cmpint(scram_client_first(a, &fa), ==, 0);
        g_assert_cmpint(scram_client_first(b, &fb), ==, 0);
        g_assert_true(g_str_has_prefix(fa, "n,,n=user,r="));
        g_assert_cmpuint(strlen(fa), ==, strlen("n,,n=user,r=") + 32);     /* 24 bytes in base64 */
        g_assert_cmpstr(fa, !=, fb);
        g_assert_null(strchr(fa + strlen("n,,n=user,r="), ','));
        scram_client_free(a);
        scram_client_free(b);
}

static void test_names(void) {
        g_assert_cmpstr(scram_mechanism_name(SCRAM_SHA1), ==, "SCRAM-SHA-1");
        g_assert_cmpstr(scram_mechanism_name(SCRAM_SHA256), ==, "SCRAM-SHA-256");
        g_assert_cmpuint(scram_hash_len(SCRAM_SHA1), ==, 20);
        g_assert_cmpuint(scram_hash_len(SCRAM_SHA256), ==, 32);
}

/* RFC 6070 PBKDF2-HMAC-SHA1 vectors, dkLen = 20 (one block, as Hi() uses). */
static void test_pbkdf2(void) {
        static const struct {
                unsigned iterations;
                const char *hex;
        } cases[] = {
                { 1, "0c60c80f961f0e71f3a9b524af6012062fe037a6" },
                { 2, "ea6c014dc72d6f8ccd1ed92ace1d41f0d8de8957" },
                { 4096, "4b007901b765489abead49d926f721d065a429c1" },
        };
        const uint8_t *salt = (const uint8_t *) "salt";

        for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
                uint8_t out[SCRAM_MAX_HASH_LEN];
                g_autoptr(GString) hex = g_string_new(NULL);

                g_assert_cmpint(scram_salted_password(SCRAM_SHA1, "password", salt, 4,
                                                      cases[i].iterations, out), ==, 0);
                for (size_t j = 0; j < 20; j++)
                        g_string_append_printf(hex, "%02x", out[j]);
                g_assert_cmpstr(hex->str, ==, cases[i].hex);
        }
}

static void test_pbkdf2_bounds(void) {
        uint8_t out[SCRAM_MAX_HASH_LEN];

        g_assert_cmpint(scram_salted_password(SCRAM_SHA256, "pw", (const uint8_t *) "s", 1, 0, out), ==, -ERANGE);
        g_assert_cmpint(scram_salted_password(SCRAM_SHA256, "pw", (const uint8_t *) "s", 1,
                                              SCRAM_MAX_ITERATIONS + 1, out), ==, -ERANGE);
        g_assert_cmpint(scram_salted_password(SCRAM_SHA256, NULL, (const uint8_t *) "s", 1, 1, out), ==, -EINVAL);
}

/* RFC 4013 §3 examples, through the salted password they produce. */
static void test_saslprep(void) {
        static const struct {
                const char *in, *same_as;
        } cases[] = {
                { "I\xc2\xadX", "IX" },               /* soft hyphen mapped to nothing */
                { "\xe2\x85\xa8", "IX" },             /* U+2168 ROMAN NUMERAL NINE, NFKC */
                { "\xc2\xaa", "a" },                   /* U+00AA, NFKC */
                { "a\xc2\xa0" "b", "a b" },              /* no-break space to space */
        };
        const uint8_t *salt = (const uint8_t *) "salt";

        for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
                uint8_t a[SCRAM_MAX_HASH_LEN], b[SCRAM_MAX_HASH_LEN];

                g_assert_cmpint(scram_salted_password(SCRAM_SHA256, cases[i].in, salt, 4, 1, a), ==, 0);
                g_assert_cmpint(scram_salted_password(SCRAM_SHA256, cases[i].same_as, salt, 4, 1, b), ==, 0);
                g_assert_cmpmem(a, 32, b, 32);
        }
        /* Control characters are prohibited output. */
        {
                uint8_t out[SCRAM_MAX_HASH_LEN];

                g_assert_cmpint(scram_salted_password(SCRAM_SHA256, "a\x07", salt, 4, 1, out), ==, -EINVAL);
        }
}

/* --- logging in again with the keys of an earlier login --- */

/* The salt of a vector's server-first (s=...). */
static uint8_t *vector_salt(const Vector *v, size_t *len) {
        const char *s = strstr(v->server_first, ",s=") + 3;
        g_autofree char *b64 = g_strndup(s, strcspn(s, ","));
        gsize n = 0;
        uint8_t *salt = g_base64_decode(b64, &n);

        *len = n;
        return salt;
}

static void hmac_of(const Vector *v, const uint8_t *key, const char *text, uint8_t *out) {
        size_t hlen = scram_hash_len(v->hash);
        GHmac *h = g_hmac_new(v->hash == SCRAM_SHA1 ? G_CHECKSUM_SHA1 : G_CHECKSUM_SHA256, key, hlen);
        gsize n = hlen;

        g_hmac_update(h, (const guchar *) text, strlen(text));
        g_hmac_get_digest(h, out, &n);
        g_hmac_unref(h);
}

/* The keys of a vector's login with the password, checked against RFC 5802
 * §3: ClientKey = HMAC(SaltedPassword, "Client Key"), ServerKey likewise. */
static ScramKeys *vector_keys(const Vector *v) {
        ScramClient *c = run_to_final(v);
        ScramKeys *keys = (ScramKeys *) 0x1;
        g_autofree uint8_t *salt = NULL;
        uint8_t salted[SCRAM_MAX_HASH_LEN], expect[SCRAM_MAX_HASH_LEN];
        size_t salt_len, hlen = scram_hash_len(v->hash);

        /* Not before the server proved itself. */
        g_assert_cmpint(scram_client_get_keys(c, &keys), ==, -EINVAL);
        g_assert_true(keys == (ScramKeys *) 0x1);
        g_assert_cmpint(scram_client_verify(c, v->server_final, strlen(v->server_final)), ==, 0);
        g_assert_cmpint(scram_client_get_keys(c, &keys), ==, 0);
        scram_client_free(c);

        salt = vector_salt(v, &salt_len);
        g_assert_cmpint(keys->hash, ==, v->hash);
        g_assert_cmpuint(keys->iterations, ==, 4096);
        g_assert_cmpmem(keys->salt, keys->salt_len, salt, salt_len);
        g_assert_cmpint(scram_salted_password(v->hash, v->password, salt, salt_len, 4096, salted), ==, 0);
        hmac_of(v, salted, "Client Key", expect);
        g_assert_cmpmem(keys->client_key, hlen, expect, hlen);
        hmac_of(v, salted, "Server Key", expect);
        g_assert_cmpmem(keys->server_key, hlen, expect, hlen);
        return keys;
}

static void test_keys_vector(gconstpointer data) {
        const Vector *v = data;
        ScramKeys *keys = vector_keys(v), *again = NULL;
        ScramClient *c = scram_client_new_from_keys(keys, v->user, v->cnonce);
        g_autofree char *first = NULL, *final = NULL;

        /* Without the password, the very same messages. */
        g_assert_nonnull(c);
        g_assert_cmpint(scram_client_first(c, &first), ==, 0);
        g_assert_cmpstr(first, ==, v->client_first);
        g_assert_cmpint(scram_client_final(c, v->server_first, strlen(v->server_first), &final), ==, 0);
        g_assert_cmpstr(final, ==, v->client_final);
        g_assert_cmpint(scram_client_verify(c, v->server_final, strlen(v->server_final)), ==, 0);
        g_assert_cmpint(scram_client_get_keys(c, &again), ==, 0);
        g_assert_cmpint(again->hash, ==, keys->hash);
        g_assert_cmpuint(again->iterations, ==, keys->iterations);
        g_assert_cmpmem(again->salt, again->salt_len, keys->salt, keys->salt_len);
        g_assert_cmpmem(again->client_key, SCRAM_MAX_HASH_LEN, keys->client_key, SCRAM_MAX_HASH_LEN);
        g_assert_cmpmem(again->server_key, SCRAM_MAX_HASH_LEN, keys->server_key, SCRAM_MAX_HASH_LEN);
        scram_client_free(c);
        scram_keys_free(again);
        scram_keys_free(keys);
}

static void test_keys_bad_server_signature(gconstpointer data) {
        const Vector *v = data;
        ScramKeys *keys = vector_keys(v);
        ScramClient *c;
        g_autofree char *final = NULL;

        /* Keys that are not the server's: its signature does not verify. */
        keys->server_key[0] ^= 1;
        c = scram_client_new_from_keys(keys, v->user, v->cnonce);
        g_assert_cmpint(scram_client_final(c, v->server_first, strlen(v->server_first), &final), ==, 0);
        g_assert_cmpstr(final, ==, v->client_final);    /* the proof uses ClientKey only */
        g_assert_cmpint(scram_client_verify(c, v->server_final, strlen(v->server_final)), ==, -EACCES);
        scram_client_free(c);
        scram_keys_free(keys);
}

static int keys_final(const ScramKeys *keys, const char *server_first) {
        ScramClient *c = scram_client_new_from_keys(keys, "user", "fyko+d2lbbFgONRv9qkxdawL");
        char *out = (char *) 0x1;
        int r;

        g_assert_nonnull(c);
        r = scram_client_final(c, server_first, strlen(server_first), &out);
        if (r == 0)
                g_free(out);
        else
                g_assert_true(out == (char *) 0x1);
        scram_client_free(c);
        return r;
}

static void test_keys_stale(void) {
        ScramKeys *keys = vector_keys(&rfc5802);

        g_assert_cmpint(keys_final(keys, rfc5802.server_first), ==, 0);
        /* A new password comes with a new salt, or another count: the keys
         * are stale, and no proof is made from them. */
        g_assert_cmpint(keys_final(keys, "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf93,i=4096"),
                        ==, -ESTALE);
        g_assert_cmpint(keys_final(keys, "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4097"),
                        ==, -ESTALE);
        g_assert_cmpint(keys_final(keys, "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6,i=4096"),
                        ==, -ESTALE);
        /* The usual checks come first. */
        g_assert_cmpint(keys_final(keys, "r=other,s=QSXCR+Q6sek8bf92,i=4096"), ==, -EPROTO);
        g_assert_cmpint(keys_final(keys, "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=1"),
                        ==, -ERANGE);
        scram_keys_free(keys);
}

static void test_keys_invalid(void) {
        ScramKeys *keys = vector_keys(&rfc5802);
        ScramKeys *copy;

        g_assert_null(scram_client_new_from_keys(NULL, "user", "abc"));
        g_assert_null(scram_client_new_from_keys(keys, NULL, "abc"));
        g_assert_null(scram_client_new_from_keys(keys, "user", "a,b"));
        copy = scram_keys_copy(keys);
        copy->iterations = 1;
        g_assert_null(scram_client_new_from_keys(copy, "user", "abc"));
        copy->iterations = 4096;
        copy->salt_len = 0;
        g_assert_null(scram_client_new_from_keys(copy, "user", "abc"));
        copy->salt_len = keys->salt_len;
        copy->hash = (ScramHash) 7;
        g_assert_null(scram_client_new_from_keys(copy, "user", "abc"));
        scram_keys_free(copy);
        g_assert_null(scram_keys_copy(NULL));
        scram_keys_free(NULL);
        scram_keys_free(keys);
}

int main(int argc, char *argv[]) {
        g_test_init(&argc, &argv, NULL);

        g_test_add_data_func("/scram/rfc5802-sha1", &rfc5802, test_vector);
        g_test_add_data_func("/scram/rfc7677-sha256", &rfc7677, test_vector);
        g_test_add_data_func("/scram/bad-server-signature/sha1", &rfc5802, test_bad_server_signature);
        g_test_add_data_func("/scram/bad-server-signature/sha256", &rfc7677, test_bad_server_signature);
        g_test_add_func("/scram/verify-before-final", test_verify_before_final);
        g_test_add_func("/scram/server-first-errors", test_server_first_errors);
        g_test_add_func("/scram/oversized-server-first", test_oversized_server_first);
        g_test_add_func("/scram/final-twice", test_final_twice);
        g_test_add_func("/scram/username-escaping", test_username_escaping);
        g_test_add_func("/scram/new-invalid", test_new_invalid);
        g_test_add_func("/scram/random-nonce", test_random_nonce);
        g_test_add_func("/scram/names", test_names);
        g_test_add_func("/scram/pbkdf2-rfc6070", test_pbkdf2);
        g_test_add_func("/scram/pbkdf2-bounds", test_pbkdf2_bounds);
        g_test_add_func("/scram/saslprep", test_saslprep);
        g_test_add_data_func("/scram/keys/rfc5802-sha1", &rfc5802, test_keys_vector);
        g_test_add_data_func("/scram/keys/rfc7677-sha256", &rfc7677, test_keys_vector);
        g_test_add_data_func("/scram/keys/bad-server-signature/sha1", &rfc5802, test_keys_bad_server_signature);
        g_test_add_data_func("/scram/keys/bad-server-signature/sha256", &rfc7677, test_keys_bad_server_signature);
        g_test_add_func("/scram/keys/stale", test_keys_stale);
        g_test_add_func("/scram/keys/invalid", test_keys_invalid);

        return g_test_run();
}
