/* SPDX-License-Identifier: MIT */

#include <errno.h>
#include <string.h>
#include <sys/random.h>
#include <glib.h>

#include "scram.h"

#define CNONCE_BYTES 24
/* Server messages are a few hundred bytes; anything bigger is hostile. */
#define SERVER_MSG_MAX 4096
#define SALT_MAX 1024

typedef enum ScramState {
        SCRAM_STATE_START,      /* waiting for server-first */
        SCRAM_STATE_FINAL_SENT, /* waiting for server-final */
        SCRAM_STATE_VERIFIED,
} ScramState;

struct ScramClient {
        ScramHash hash;
        ScramState state;
        char *password;         /* normalised; wiped on free; NULL with from_keys */
        char *client_first_bare;
        size_t cnonce_len;      /* the nonce is the tail of client_first_bare */
        uint8_t server_signature[SCRAM_MAX_HASH_LEN];
        /* Given (from_keys), or derived from the password by scram_client_final(). */
        bool from_keys;
        ScramKeys keys;
};

const char *scram_mechanism_name(ScramHash hash) {
        switch (hash) {
        case SCRAM_SHA1:
                return "SCRAM-SHA-1";
        case SCRAM_SHA256:
                return "SCRAM-SHA-256";
        }
        return NULL;
}

size_t scram_hash_len(ScramHash hash) {
        switch (hash) {
        case SCRAM_SHA1:
                return 20;
        case SCRAM_SHA256:
                return 32;
        }
        return 0;
}

static GChecksumType checksum_type(ScramHash hash) {
        return hash == SCRAM_SHA1 ? G_CHECKSUM_SHA1 : G_CHECKSUM_SHA256;
}

static void wipe_string(char *s) {
        if (!s)
                return;
        explicit_bzero(s, strlen(s));
        g_free(s);
}

/* An approximation of SASLprep (RFC 4013) from what GLib offers: non-ASCII
 * spaces become U+0020, the "commonly mapped to nothing" characters go, then
 * NFKC; control characters are refused. Exact for ASCII, which is by far the
 * common case, and it matches what servers do for typical non-ASCII input. */
static char *saslprep(const char *s) {
        g_autoptr(GString) mapped = NULL;
        char *r;
        bool ascii = true;

        if (!g_utf8_validate(s, -1, NULL))
                return NULL;
        for (const char *p = s; *p; p++) {
                if ((unsigned char) *p < 0x20 || *p == 0x7f)
                        return NULL;
                if ((unsigned char) *p >= 0x80)
                        ascii = false;
        }
        if (ascii)
                return g_strdup(s);

        mapped = g_string_sized_new(strlen(s));
        for (const char *p = s; *p; p = g_utf8_next_char(p)) {
                gunichar c = g_utf8_get_char(p);

                if (c == 0xad || c == 0x34f || c == 0x1806 || (c >= 0x180b && c <= 0x180d) ||
                    (c >= 0x200b && c <= 0x200d) || c == 0x2060 || (c >= 0xfe00 && c <= 0xfe0f) ||
                    c == 0xfeff)
                        continue;
                if (g_unichar_iscntrl(c))
                        goto fail;
                if (g_unichar_type(c) == G_UNICODE_SPACE_SEPARATOR)
                        c = ' ';
                g_string_append_unichar(mapped, c);
        }
        r = g_utf8_normalize(mapped->str, mapped->len, G_NORMALIZE_NFKC);
        explicit_bzero(mapped->str, mapped->len);
        return r;
fail:
        explicit_bzero(mapped->str, mapped->len);
        return NULL;
}

/* printable in RFC 5802: %x21-7E except ','. */
static bool is_printable(const char *s, size_t len) {
        for (size_t i = 0; i < len; i++)
                if (s[i] < 0x21 || s[i] > 0x7e || s[i] == ',')
                        return false;
        return true;
}

static char *random_nonce(void) {
        uint8_t buf[CNONCE_BYTES];
        size_t done = 0;

        /* g_random_*() is not a CSPRNG; the nonce must be unpredictable. */
        while (done < sizeof buf) {
                ssize_t n = getrandom(buf + done, sizeof buf - done, 0);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return NULL;
                }
                done += n;
        }
        return g_base64_encode(buf, sizeof buf);
}

ScramKeys *scram_keys_copy(const ScramKeys *k) {
        ScramKeys *copy;

        if (!k)
                return NULL;
        copy = g_new(ScramKeys, 1);
        *copy = *k;
        copy->salt = g_memdup2(k->salt, k->salt_len);
        return copy;
}

static void keys_clear(ScramKeys *k) {
        if (k->salt) {
                explicit_bzero(k->salt, k->salt_len);
                g_free(k->salt);
        }
        explicit_bzero(k, sizeof *k);
}

void scram_keys_free(ScramKeys *k) {
        if (!k)
                return;
        keys_clear(k);
        g_free(k);
}

/* The part common to both ways in: client-first-bare. */
static ScramClient *client_new(ScramHash hash, const char *user, const char *cnonce) {
        g_autofree char *prepped_user = NULL, *nonce = NULL;
        g_autoptr(GString) first = NULL;
        ScramClient *c;

        if (scram_hash_len(hash) == 0 || !user)
                return NULL;
        prepped_user = saslprep(user);
        if (!prepped_user || !*prepped_user)
                return NULL;

        if (cnonce) {
                if (!*cnonce || !is_printable(cnonce, strlen(cnonce)))
                        return NULL;
                nonce = g_strdup(cnonce);
        } else {
                nonce = random_nonce();
                if (!nonce)
                        return NULL;
        }

        first = g_string_new("n=");
        for (const char *p = prepped_user; *p; p++) {
                if (*p == ',')
                        g_string_append(first, "=2C");
                else if (*p == '=')
                        g_string_append(first, "=3D");
                else
                        g_string_append_c(first, *p);
        }
        g_string_append(first, ",r=");
        g_string_append(first, nonce);

        c = g_new0(ScramClient, 1);
        c->hash = hash;
        c->state = SCRAM_STATE_START;
        c->cnonce_len = strlen(nonce);
        c->client_first_bare = g_string_free(g_steal_pointer(&first), FALSE);
        return c;
}

ScramClient *scram_client_new(ScramHash hash, const char *user, const char *password, const char *cnonce) {
        ScramClient *c;
        char *pw;

        if (!password)
                return NULL;
        pw = saslprep(password);
        if (!pw)
                return NULL;
        c = client_new(hash, user, cnonce);
        if (!c) {
                wipe_string(pw);
                return NULL;
        }
        c->password = pw;
        return c;
}

ScramClient *scram_client_new_from_keys(const ScramKeys *keys, const char *user, const char *cnonce) {
        ScramClient *c;

        if (!keys || !keys->salt || keys->salt_len == 0 || keys->salt_len > SALT_MAX ||
            keys->iterations < SCRAM_MIN_ITERATIONS || keys->iterations > SCRAM_MAX_ITERATIONS)
                return NULL;
        c = client_new(keys->hash, user, cnonce);
        if (!c)
                return NULL;
        c->from_keys = true;
        c->keys = *keys;
        c->keys.salt = g_memdup2(keys->salt, keys->salt_len);
        return c;
}

void scram_client_free(ScramClient *c) {
        if (!c)
                return;
        wipe_string(c->password);
        keys_clear(&c->keys);
        g_free(c->client_first_bare);
        explicit_bzero(c, sizeof *c);
        g_free(c);
}

int scram_client_first(ScramClient *c, char **ret) {
        if (!c || !ret)
                return -EINVAL;
        *ret = g_strconcat("n,,", c->client_first_bare, NULL);
        return 0;
}

static void hmac(ScramHash hash, const uint8_t *key, size_t key_len,
                 const void *data, size_t len, uint8_t *out) {
        GHmac *h = g_hmac_new(checksum_type(hash), key, key_len);
        gsize n = scram_hash_len(hash);

        g_hmac_update(h, data, len);
        g_hmac_get_digest(h, out, &n);
        g_hmac_unref(h);
}

/* Hi() on an already prepared password. */
static void hi(ScramHash hash, const char *password, const uint8_t *salt, size_t salt_len,
               unsigned iterations, uint8_t *out) {
        static const uint8_t block_one[4] = { 0, 0, 0, 1 };
        uint8_t u[SCRAM_MAX_HASH_LEN];
        size_t hlen = scram_hash_len(hash);
        GHmac *keyed;

        /* Keying HMAC once and copying it per round halves the hashing. */
        keyed = g_hmac_new(checksum_type(hash), (const guchar *) password, strlen(password));

        for (unsigned i = 0; i < iterations; i++) {
                GHmac *h = g_hmac_copy(keyed);
                gsize n = hlen;

                if (i == 0) {
                        g_hmac_update(h, salt, salt_len);
                        g_hmac_update(h, block_one, sizeof block_one);
                } else
                        g_hmac_update(h, u, hlen);
                g_hmac_get_digest(h, u, &n);
                g_hmac_unref(h);

                if (i == 0)
                        memcpy(out, u, hlen);
                else
                        for (size_t j = 0; j < hlen; j++)
                                out[j] ^= u[j];
        }
        g_hmac_unref(keyed);
        explicit_bzero(u, sizeof u);
}

int scram_salted_password(ScramHash hash, const char *password, const uint8_t *salt, size_t salt_len,
                          unsigned iterations, uint8_t *out) {
        uint8_t result[SCRAM_MAX_HASH_LEN];
        size_t hlen = scram_hash_len(hash);
        char *pw;

        if (hlen == 0 || !password || (!salt && salt_len > 0) || !out)
                return -EINVAL;
        /* The lower bound is the caller's policy; the upper one keeps a
         * hostile server from making us spin. */
        if (iterations == 0 || iterations > SCRAM_MAX_ITERATIONS)
                return -ERANGE;
        pw = saslprep(password);
        if (!pw)
                return -EINVAL;

        hi(hash, pw, salt, salt_len, iterations, result);
        wipe_string(pw);
        memcpy(out, result, hlen);
        explicit_bzero(result, sizeof result);
        return 0;
}

/* Strict base64: g_base64_decode() skips characters it does not know, which
 * would let a malformed message through. */
static int base64_decode_strict(const char *s, size_t len, size_t max, uint8_t **ret, size_t *ret_len) {
        size_t pad = 0;
        gsize out_len;
        guchar *out;
        char *tmp;

        if (len == 0 || len % 4 != 0)
                return -EBADMSG;
        for (size_t i = 0; i < len; i++) {
                char ch = s[i];

                if (ch == '=') {
                        if (i < len - 2)
                                return -EBADMSG;
                        pad++;
                } else if (pad > 0 || !(g_ascii_isalnum(ch) || ch == '+' || ch == '/'))
                        return -EBADMSG;
        }
        if (len / 4 * 3 - pad > max)
                return -EBADMSG;

        tmp = g_strndup(s, len);
        out = g_base64_decode(tmp, &out_len);
        g_free(tmp);
        *ret = out;
        *ret_len = out_len;
        return 0;
}

/* One "a=value" attribute of a comma-separated message. */
typedef struct Attr {
        char name;
        const char *value;
        size_t len;
} Attr;

/* Splits the next attribute off [*p, end). */
static int next_attr(const char **p, const char *end, Attr *ret) {
        const char *s = *p, *comma;

        if (end - s < 2 || !g_ascii_isalpha(s[0]) || s[1] != '=')
                return -EBADMSG;
        comma = memchr(s, ',', end - s);
        *ret = (Attr) { .name = s[0], .value = s + 2, .len = (comma ? comma : end) - (s + 2) };
        *p = comma ? comma + 1 : end;
        if (comma && *p == end)
                return -EBADMSG;        /* trailing comma */
        return 0;
}

static int check_server_msg(const char *msg, size_t len) {
        if (!msg || len == 0 || len > SERVER_MSG_MAX)
                return -EBADMSG;
        if (memchr(msg, 0, len) || !g_utf8_validate_len(msg, len, NULL))
                return -EBADMSG;
        return 0;
}

static int parse_iterations(const char *s, size_t len, unsigned *ret) {
        uint64_t v = 0;

        if (len == 0)
                return -EBADMSG;
        for (size_t i = 0; i < len; i++) {
                if (!g_ascii_isdigit(s[i]))
                        return -EBADMSG;
                /* Saturate: a huge count is out of range, not malformed. */
                if (v <= SCRAM_MAX_ITERATIONS)
                        v = v * 10 + (s[i] - '0');
        }
        if (v < SCRAM_MIN_ITERATIONS || v > SCRAM_MAX_ITERATIONS)
                return -ERANGE;
        *ret = (unsigned) v;
        return 0;
}

int scram_client_final(ScramClient *c, const char *server_first, size_t len, char **ret) {
        const char *p = server_first, *end = server_first + len;
        size_t hlen;
        Attr nonce, salt_attr, iter_attr, ext;
        g_autofree uint8_t *salt = NULL;
        size_t salt_len;
        unsigned iterations;
        uint8_t salted[SCRAM_MAX_HASH_LEN], proof[SCRAM_MAX_HASH_LEN],
                stored_key[SCRAM_MAX_HASH_LEN], client_sig[SCRAM_MAX_HASH_LEN];
        g_autofree char *server_first_str = NULL, *without_proof = NULL, *auth = NULL;
        g_autofree char *proof_b64 = NULL;
        gsize n;
        char *final;
        int r;

        if (!c || !ret)
                return -EINVAL;
        if (c->state != SCRAM_STATE_START)
                return -EALREADY;
        hlen = scram_hash_len(c->hash);

        r = check_server_msg(server_first, len);
        if (r < 0)
                return r;

        /* RFC 5802 §5.1: a mandatory extension (m=) we cannot know means failure. */
        if (next_attr(&p, end, &nonce) < 0 || nonce.name != 'r')
                return -EBADMSG;
        if (next_attr(&p, end, &salt_attr) < 0 || salt_attr.name != 's')
                return -EBADMSG;
        if (next_attr(&p, end, &iter_attr) < 0 || iter_attr.name != 'i')
                return -EBADMSG;
        while (p < end) {
                if (next_attr(&p, end, &ext) < 0)
                        return -EBADMSG;
                if (strchr("rsim", ext.name))
                        return -EBADMSG;
        }

        if (nonce.len == 0 || !is_printable(nonce.value, nonce.len))
                return -EBADMSG;
        r = base64_decode_strict(salt_attr.value, salt_attr.len, SALT_MAX, &salt, &salt_len);
        if (r < 0)
                return r;
        r = parse_iterations(iter_attr.value, iter_attr.len, &iterations);
        if (r < 0)
                return r;

        /* Our nonce is the tail of client-first-bare. */
        if (nonce.len <= c->cnonce_len ||
            memcmp(nonce.value, c->client_first_bare + strlen(c->client_first_bare) - c->cnonce_len,
                   c->cnonce_len) != 0)
                return -EPROTO;

        if (c->from_keys) {
                /* Keys are only good for the salt and count they were made
                 * with; another pair means another password. */
                if (salt_len != c->keys.salt_len || memcmp(salt, c->keys.salt, salt_len) != 0 ||
                    iterations != c->keys.iterations)
                        return -ESTALE;
        } else {
                /* c->password went through saslprep() already. */
                hi(c->hash, c->password, salt, salt_len, iterations, salted);
                hmac(c->hash, salted, hlen, "Client Key", strlen("Client Key"), c->keys.client_key);
                hmac(c->hash, salted, hlen, "Server Key", strlen("Server Key"), c->keys.server_key);
                explicit_bzero(salted, sizeof salted);
                c->keys.hash = c->hash;
                c->keys.iterations = iterations;
                c->keys.salt = g_steal_pointer(&salt);
                c->keys.salt_len = salt_len;
        }

        /* AuthMessage = client-first-bare "," server-first "," client-final-without-proof */
        server_first_str = g_strndup(server_first, len);

        without_proof = g_strdup_printf("c=biws,r=%.*s", (int) nonce.len, nonce.value);
        auth = g_strjoin(",", c->client_first_bare, server_first_str, without_proof, NULL);

        /* StoredKey = H(ClientKey); ClientProof = ClientKey XOR HMAC(StoredKey, AuthMessage) */
        n = hlen;
        {
                GChecksum *ck = g_checksum_new(checksum_type(c->hash));

                g_checksum_update(ck, c->keys.client_key, hlen);
                g_checksum_get_digest(ck, stored_key, &n);
                g_checksum_free(ck);
        }
        hmac(c->hash, stored_key, hlen, auth, strlen(auth), client_sig);
        for (size_t i = 0; i < hlen; i++)
                proof[i] = c->keys.client_key[i] ^ client_sig[i];
        proof_b64 = g_base64_encode(proof, hlen);

        hmac(c->hash, c->keys.server_key, hlen, auth, strlen(auth), c->server_signature);

        explicit_bzero(proof, sizeof proof);
        explicit_bzero(stored_key, sizeof stored_key);
        explicit_bzero(client_sig, sizeof client_sig);

        final = g_strconcat(without_proof, ",p=", proof_b64, NULL);
        c->state = SCRAM_STATE_FINAL_SENT;
        *ret = final;
        return 0;
}

int scram_client_verify(ScramClient *c, const char *server_final, size_t len) {
        const char *p = server_final, *end = server_final + len;
        g_autofree uint8_t *sig = NULL;
        size_t sig_len, hlen;
        Attr a, ext;
        uint8_t diff = 0;
        int r;

        if (!c)
                return -EINVAL;
        if (c->state == SCRAM_STATE_START)
                return -EINVAL;         /* nothing to verify against yet */

        r = check_server_msg(server_final, len);
        if (r < 0)
                return r;
        if (next_attr(&p, end, &a) < 0)
                return -EBADMSG;
        if (a.name == 'e')
                return -EACCES;
        if (a.name != 'v')
                return -EBADMSG;
        while (p < end)
                if (next_attr(&p, end, &ext) < 0)
                        return -EBADMSG;

        hlen = scram_hash_len(c->hash);
        r = base64_decode_strict(a.value, a.len, SCRAM_MAX_HASH_LEN, &sig, &sig_len);
        if (r < 0)
                return r;
        if (sig_len != hlen)
                return -EBADMSG;

        /* Constant time: how much matched must not leak through timing. */
        for (size_t i = 0; i < hlen; i++)
                diff |= sig[i] ^ c->server_signature[i];
        if (diff != 0)
                return -EACCES;

        c->state = SCRAM_STATE_VERIFIED;
        return 0;
}

int scram_client_get_keys(const ScramClient *c, ScramKeys **ret) {
        if (!c || !ret || c->state != SCRAM_STATE_VERIFIED)
                return -EINVAL;
        *ret = scram_keys_copy(&c->keys);
        return 0;
}
