/* SPDX-License-Identifier: MIT */

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <glib.h>
#include <glib/gstdio.h>

#include "credentials.h"

static ScramKeys *sample_keys(void) {
        static const uint8_t salt[] = "0123456789abcdef";
        ScramKeys *k = g_new0(ScramKeys, 1);

        k->hash = SCRAM_SHA256;
        k->salt = g_memdup2(salt, 16);
        k->salt_len = 16;
        k->iterations = 4096;
        for (int i = 0; i < SCRAM_MAX_HASH_LEN; i++) {
                k->client_key[i] = (uint8_t) i;
                k->server_key[i] = (uint8_t) (0xff - i);
        }
        return k;
}

static char *new_dir(void) {
        g_autoptr(GError) error = NULL;
        char *dir = g_dir_make_tmp("imd-cred-XXXXXX", &error);

        g_assert_no_error(error);
        return dir;
}

static char *file_in(const char *dir) {
        return g_build_filename(dir, CREDENTIALS_FILE, NULL);
}

static void remove_dir(char *dir) {
        g_autofree char *path = file_in(dir);

        (void) unlink(path);
        (void) g_rmdir(dir);
        g_free(dir);
}

static void test_round_trip(void) {
        char *dir = new_dir();
        g_autofree char *path = file_in(dir);
        g_autofree char *tmp = g_strconcat(path, ".tmp", NULL);
        ScramKeys *keys = sample_keys();
        Credentials *c = NULL;
        struct stat st;
        mode_t old = umask(0277);        /* what open() alone would turn into 0400 */

        g_assert_cmpint(credentials_save(dir, keys, "wss://example.org/ws", "/etc/ca.pem"), ==, 0);
        umask(old);
        g_assert_cmpint(stat(path, &st), ==, 0);
        g_assert_cmpuint(st.st_mode & 07777, ==, 0600);
        g_assert_false(g_file_test(tmp, G_FILE_TEST_EXISTS));

        g_assert_cmpint(credentials_load(dir, &c), ==, 0);
        g_assert_cmpint(c->keys->hash, ==, SCRAM_SHA256);
        g_assert_cmpuint(c->keys->iterations, ==, 4096);
        g_assert_cmpmem(c->keys->salt, c->keys->salt_len, keys->salt, keys->salt_len);
        g_assert_cmpmem(c->keys->client_key, 32, keys->client_key, 32);
        g_assert_cmpmem(c->keys->server_key, 32, keys->server_key, 32);
        g_assert_cmpstr(c->url, ==, "wss://example.org/ws");
        g_assert_cmpstr(c->ca_file, ==, "/etc/ca.pem");
        credentials_free(c);

        /* Saved again (without a CA file): replaced whole. */
        g_assert_cmpint(credentials_save(dir, keys, "ws://127.0.0.1:5280/ws", NULL), ==, 0);
        g_assert_cmpint(credentials_load(dir, &c), ==, 0);
        g_assert_null(c->ca_file);
        credentials_free(c);

        g_assert_cmpint(credentials_remove(dir), ==, 0);
        g_assert_cmpint(credentials_remove(dir), ==, 0);
        g_assert_cmpint(credentials_load(dir, &c), ==, -ENOENT);
        scram_keys_free(keys);
        remove_dir(dir);
}

static void test_unsafe_files(void) {
        char *dir = new_dir();
        g_autofree char *path = file_in(dir);
        g_autofree char *target = g_build_filename(dir, "elsewhere", NULL);
        ScramKeys *keys = sample_keys();
        Credentials *c = (Credentials *) 0x1;

        g_assert_cmpint(credentials_save(dir, keys, "ws://h/ws", NULL), ==, 0);
        g_assert_cmpint(chmod(path, 0640), ==, 0);
        g_assert_cmpint(credentials_load(dir, &c), ==, -EPERM);
        g_assert_cmpint(chmod(path, 0604), ==, 0);
        g_assert_cmpint(credentials_load(dir, &c), ==, -EPERM);
        g_assert_cmpint(chmod(path, 0600), ==, 0);

        g_assert_cmpint(rename(path, target), ==, 0);
        g_assert_cmpint(symlink(target, path), ==, 0);
        g_assert_cmpint(credentials_load(dir, &c), ==, -ELOOP);
        g_assert_true(c == (Credentials *) 0x1);
        g_assert_cmpint(unlink(path), ==, 0);
        g_assert_cmpint(unlink(target), ==, 0);

        g_assert_cmpint(mkdir(path, 0700), ==, 0);
        g_assert_cmpint(credentials_load(dir, &c), ==, -EPERM);
        g_assert_cmpint(rmdir(path), ==, 0);
        scram_keys_free(keys);
        remove_dir(dir);
}

static void test_malformed(void) {
        static const char *const cases[] = {
                "not a key file",
                "[login]\nmechanism=SCRAM-SHA-512\nsalt=YWJj\niterations=4096\n"
                "client_key=AAAAAAAAAAAAAAAAAAAAAAAAAAA=\nserver_key=AAAAAAAAAAAAAAAAAAAAAAAAAAA=\nwebsocket_url=ws://h/\n",
                /* iterations out of bounds */
                "[login]\nmechanism=SCRAM-SHA-1\nsalt=YWJj\niterations=1\n"
                "client_key=AAAAAAAAAAAAAAAAAAAAAAAAAAA=\nserver_key=AAAAAAAAAAAAAAAAAAAAAAAAAAA=\nwebsocket_url=ws://h/\n",
                /* a key of the wrong length for SHA-1 */
                "[login]\nmechanism=SCRAM-SHA-1\nsalt=YWJj\niterations=4096\n"
                "client_key=AAAA\nserver_key=AAAAAAAAAAAAAAAAAAAAAAAAAAA=\nwebsocket_url=ws://h/\n",
                /* no URL */
                "[login]\nmechanism=SCRAM-SHA-1\nsalt=YWJj\niterations=4096\n"
                "client_key=AAAAAAAAAAAAAAAAAAAAAAAAAAA=\nserver_key=AAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
        };
        char *dir = new_dir();
        g_autofree char *path = file_in(dir);
        g_autofree char *big = g_malloc(20000);
        Credentials *c = NULL;
        int fd;

        for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
                g_assert_true(g_file_set_contents_full(path, cases[i], -1, G_FILE_SET_CONTENTS_CONSISTENT, 0600, NULL));
                g_assert_cmpint(chmod(path, 0600), ==, 0);
                g_assert_cmpint(credentials_load(dir, &c), ==, -EBADMSG);
        }
        /* The good one of the same shape loads. */
        g_assert_true(g_file_set_contents_full(path,
                "[login]\nmechanism=SCRAM-SHA-1\nsalt=YWJj\niterations=4096\n"
                "client_key=AAAAAAAAAAAAAAAAAAAAAAAAAAA=\nserver_key=AAAAAAAAAAAAAAAAAAAAAAAAAAA=\nwebsocket_url=ws://h/\n",
                -1, G_FILE_SET_CONTENTS_CONSISTENT, 0600, NULL));
        g_assert_cmpint(chmod(path, 0600), ==, 0);
        g_assert_cmpint(credentials_load(dir, &c), ==, 0);
        g_assert_cmpint(c->keys->hash, ==, SCRAM_SHA1);
        credentials_free(c);

        /* Far larger than any real one. */
        memset(big, '#', 20000);
        fd = open(path, O_WRONLY | O_TRUNC);
        g_assert_cmpint(fd, >=, 0);
        g_assert_cmpint(write(fd, big, 20000), ==, 20000);
        close(fd);
        g_assert_cmpint(credentials_load(dir, &c), ==, -EBADMSG);
        remove_dir(dir);
}

int main(int argc, char *argv[]) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/credentials/round-trip", test_round_trip);
        g_test_add_func("/credentials/unsafe-files", test_unsafe_files);
        g_test_add_func("/credentials/malformed", test_malformed);
        return g_test_run();
}
