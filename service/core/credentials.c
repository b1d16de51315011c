/* SPDX-License-Identifier: MIT */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <glib.h>

#include "credentials.h"

#define GROUP "login"
/* The file holds a few hundred bytes; more is not ours. */
#define CREDENTIALS_MAX_BYTES 16384
#define SALT_MAX_BYTES 1024

void credentials_free(Credentials *c) {
        if (!c)
                return;
        scram_keys_free(c->keys);
        g_free(c->url);
        g_free(c->ca_file);
        g_free(c);
}

static void wipe_free(char *s, size_t len) {
        if (!s)
                return;
        explicit_bzero(s, len);
        g_free(s);
}

static int write_all(int fd, const char *data, size_t len) {
        while (len > 0) {
                ssize_t n = write(fd, data, len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                data += n;
                len -= (size_t) n;
        }
        return 0;
}

static char *to_data(const ScramKeys *keys, const char *url, const char *ca_file, size_t *ret_len) {
        g_autoptr(GKeyFile) kf = g_key_file_new();
        g_autofree char *salt = g_base64_encode(keys->salt, keys->salt_len);
        char *ck = g_base64_encode(keys->client_key, scram_hash_len(keys->hash));
        char *sk = g_base64_encode(keys->server_key, scram_hash_len(keys->hash));
        gsize len = 0;
        char *data;

        g_key_file_set_comment(kf, NULL, NULL,
                               " imd: a remembered login. SCRAM keys (RFC 5802), not the password;\n"
                               " they log in to this account until its password changes. Keep it 0600.",
                               NULL);
        g_key_file_set_string(kf, GROUP, "mechanism", scram_mechanism_name(keys->hash));
        g_key_file_set_string(kf, GROUP, "salt", salt);
        g_key_file_set_uint64(kf, GROUP, "iterations", keys->iterations);
        g_key_file_set_string(kf, GROUP, "client_key", ck);
        g_key_file_set_string(kf, GROUP, "server_key", sk);
        g_key_file_set_string(kf, GROUP, "websocket_url", url);
        if (ca_file)
                g_key_file_set_string(kf, GROUP, "ca_file", ca_file);
        data = g_key_file_to_data(kf, &len, NULL);
        wipe_free(ck, strlen(ck));
        wipe_free(sk, strlen(sk));
        /* The key file's own copies of the keys go with it; GLib does not
         * wipe them, a limit of using GKeyFile at all. */
        *ret_len = len;
        return data;
}

int credentials_save(const char *dir, const ScramKeys *keys, const char *url, const char *ca_file) {
        g_autofree char *path = g_build_filename(dir, CREDENTIALS_FILE, NULL);
        g_autofree char *tmp = g_strconcat(path, ".tmp", NULL);
        char *data;
        size_t len = 0;
        int fd, dfd, r;

        if (!keys || !keys->salt || !url)
                return -EINVAL;
        data = to_data(keys, url, ca_file, &len);

        /* A leftover of a crash; O_EXCL then makes sure we write a file we created. */
        (void) unlink(tmp);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0) {
                r = -errno;
                wipe_free(data, len);
                return r;
        }
        /* open() honours the umask, which may leave less than 0600 (still
         * private, but then not writable next time); fchmod() does not. */
        r = fchmod(fd, 0600) < 0 ? -errno : 0;
        if (r == 0)
                r = write_all(fd, data, len);
        if (r == 0 && fsync(fd) < 0)
                r = -errno;
        wipe_free(data, len);
        if (close(fd) < 0 && r == 0)
                r = -errno;
        if (r == 0 && rename(tmp, path) < 0)
                r = -errno;
        if (r < 0) {
                (void) unlink(tmp);
                return r;
        }
        /* The rename itself must survive a crash, or the old file comes back. */
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
                (void) fsync(dfd);
                close(dfd);
        }
        return 0;
}

static int read_file(const char *path, char **ret, size_t *ret_len) {
        struct stat st;
        char *buf;
        size_t done = 0;
        int fd, r = 0;

        fd = open(path, O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0) {
                r = -errno;
                close(fd);
                return r;
        }
        if (!S_ISREG(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077) != 0) {
                close(fd);
                return -EPERM;
        }
        if (st.st_size > CREDENTIALS_MAX_BYTES) {
                close(fd);
                return -EBADMSG;
        }
        buf = g_malloc0(CREDENTIALS_MAX_BYTES + 1);
        while (done < CREDENTIALS_MAX_BYTES) {
                ssize_t n = read(fd, buf + done, CREDENTIALS_MAX_BYTES - done);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        r = -errno;
                        break;
                }
                if (n == 0)
                        break;
                done += (size_t) n;
        }
        close(fd);
        if (r == 0 && done == CREDENTIALS_MAX_BYTES)
                r = -EBADMSG;
        if (r < 0) {
                wipe_free(buf, CREDENTIALS_MAX_BYTES + 1);
                return r;
        }
        *ret = buf;
        *ret_len = done;
        return 0;
}

/* A base64 value of exactly len bytes (min_len..len if min_len > 0). */
static int get_bytes(GKeyFile *kf, const char *key, size_t min_len, size_t max_len, uint8_t **ret, size_t *ret_len) {
        g_autofree char *text = g_key_file_get_string(kf, GROUP, key, NULL);
        gsize len = 0;
        guchar *bytes;

        if (!text || !*text)
                return -EBADMSG;
        bytes = g_base64_decode(text, &len);
        explicit_bzero(text, strlen(text));
        if (!bytes || len < min_len || len > max_len) {
                if (bytes)
                        explicit_bzero(bytes, len);
                g_free(bytes);
                return -EBADMSG;
        }
        *ret = bytes;
        *ret_len = len;
        return 0;
}

static int get_key(GKeyFile *kf, const char *key, size_t len, uint8_t *out) {
        g_autofree uint8_t *bytes = NULL;
        size_t n;
        int r = get_bytes(kf, key, len, len, &bytes, &n);

        if (r < 0)
                return r;
        memcpy(out, bytes, len);
        explicit_bzero(bytes, n);
        return 0;
}

static int parse(GKeyFile *kf, Credentials *c) {
        g_autofree char *mech = g_key_file_get_string(kf, GROUP, "mechanism", NULL);
        g_autoptr(GError) error = NULL;
        ScramKeys *k = g_new0(ScramKeys, 1);
        guint64 iterations;
        int r;

        c->keys = k;
        if (mech && strcmp(mech, scram_mechanism_name(SCRAM_SHA256)) == 0)
                k->hash = SCRAM_SHA256;
        else if (mech && strcmp(mech, scram_mechanism_name(SCRAM_SHA1)) == 0)
                k->hash = SCRAM_SHA1;
        else
                return -EBADMSG;
        iterations = g_key_file_get_uint64(kf, GROUP, "iterations", &error);
        if (error || iterations < SCRAM_MIN_ITERATIONS || iterations > SCRAM_MAX_ITERATIONS)
                return -EBADMSG;
        k->iterations = (unsigned) iterations;
        r = get_bytes(kf, "salt", 1, SALT_MAX_BYTES, &k->salt, &k->salt_len);
        if (r < 0)
                return r;
        r = get_key(kf, "client_key", scram_hash_len(k->hash), k->client_key);
        if (r < 0)
                return r;
        r = get_key(kf, "server_key", scram_hash_len(k->hash), k->server_key);
        if (r < 0)
                return r;
        c->url = g_key_file_get_string(kf, GROUP, "websocket_url", NULL);
        if (!c->url || !*c->url)
                return -EBADMSG;
        c->ca_file = g_key_file_get_string(kf, GROUP, "ca_file", NULL);
        if (c->ca_file && !*c->ca_file)
                g_clear_pointer(&c->ca_file, g_free);
        return 0;
}

int credentials_load(const char *dir, Credentials **ret) {
        g_autofree char *path = g_build_filename(dir, CREDENTIALS_FILE, NULL);
        g_autoptr(GKeyFile) kf = g_key_file_new();
        Credentials *c;
        char *data = NULL;
        size_t len = 0;
        bool ok;
        int r;

        r = read_file(path, &data, &len);
        if (r < 0)
                return r;
        ok = g_key_file_load_from_data(kf, data, len, G_KEY_FILE_NONE, NULL);
        wipe_free(data, CREDENTIALS_MAX_BYTES + 1);
        if (!ok)
                return -EBADMSG;

        c = g_new0(Credentials, 1);
        r = parse(kf, c);
        if (r < 0) {
                credentials_free(c);
                return r;
        }
        *ret = c;
        return 0;
}

int credentials_remove(const char *dir) {
        g_autofree char *path = g_build_filename(dir, CREDENTIALS_FILE, NULL);

        if (unlink(path) < 0 && errno != ENOENT)
                return -errno;
        return 0;
}
