/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * SASL SCRAM client (RFC 5802, RFC 7677) without channel binding ("n,,").
 * Pure functions of their inputs: no I/O, so they are unit-tested against the
 * RFC vectors. The server signature is always verified (scram_client_verify),
 * and the iteration count is bounded both ways.
 */

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

typedef enum ScramHash {
        SCRAM_SHA1,
        SCRAM_SHA256,
} ScramHash;

#define SCRAM_MAX_HASH_LEN 32
#define SCRAM_MIN_ITERATIONS 4096
#define SCRAM_MAX_ITERATIONS 1000000

typedef struct ScramClient ScramClient;

/* What a SCRAM login leaves behind that can log in again without the
 * password (RFC 5802 §3): ClientKey makes the proof, ServerKey checks the
 * server's signature; salt and iteration count tell whether they still fit
 * (a new password comes with a new salt). Neither the password nor
 * SaltedPassword: whoever holds these can log in to this one account on this
 * server until the password changes, but learns no password to try
 * elsewhere. Secret all the same: wiped on free. */
typedef struct ScramKeys {
        ScramHash hash;
        uint8_t *salt;
        size_t salt_len;
        unsigned iterations;
        uint8_t client_key[SCRAM_MAX_HASH_LEN];
        uint8_t server_key[SCRAM_MAX_HASH_LEN];
} ScramKeys;

/* A deep copy, or NULL if k is NULL. */
ScramKeys *scram_keys_copy(const ScramKeys *k);
void scram_keys_free(ScramKeys *k);

const char *scram_mechanism_name(ScramHash hash);   /* "SCRAM-SHA-1", "SCRAM-SHA-256" */
size_t scram_hash_len(ScramHash hash);

/* user and password are UTF-8; the username is escaped (=2C, =3D) as RFC 5802 requires.
 * cnonce NULL generates a random nonce. Returns NULL on invalid input (-EINVAL). */
ScramClient *scram_client_new(ScramHash hash, const char *user, const char *password, const char *cnonce);
/* The same exchange with keys of an earlier login instead of the password:
 * no PBKDF2, and scram_client_final() fails with -ESTALE when the server's
 * salt or iteration count is not the one the keys were made with. */
ScramClient *scram_client_new_from_keys(const ScramKeys *keys, const char *user, const char *cnonce);
void scram_client_free(ScramClient *c);

/* client-first-message, e.g. "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL". 0 or negative errno. */
int scram_client_first(ScramClient *c, char **ret);
/* Consume server-first-message, produce client-final-message.
 * -EBADMSG malformed; -EPROTO nonce not prefixed by ours; -ERANGE iteration count
 * outside [SCRAM_MIN_ITERATIONS, SCRAM_MAX_ITERATIONS]; -ESTALE (a client from
 * keys) the salt or iteration count differs from the keys'. */
int scram_client_final(ScramClient *c, const char *server_first, size_t len, char **ret);
/* Verify server-final-message: 0 if v= matches (constant-time compare);
 * -EACCES if the server sent e=... or the signature is wrong; -EBADMSG if malformed. */
int scram_client_verify(ScramClient *c, const char *server_final, size_t len);
/* Once scram_client_verify() succeeded (the server proved it knows them):
 * a copy of the keys, to log in again without the password. -EINVAL before. */
int scram_client_get_keys(const ScramClient *c, ScramKeys **ret);

/* Hi() of RFC 5802: PBKDF2 with HMAC. out receives scram_hash_len(hash) bytes. */
int scram_salted_password(ScramHash hash, const char *password, const uint8_t *salt, size_t salt_len,
                          unsigned iterations, uint8_t *out);
