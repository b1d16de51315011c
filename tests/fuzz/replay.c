/* SPDX-License-Identifier: MIT */

/*
 * Runs every file of a fuzz target's corpus through its
 * LLVMFuzzerTestOneInput(), without libFuzzer, so that any compiler builds it
 * and the unit tests (under ASan/UBSan in CI) keep checking every input that
 * fuzzing once found interesting or that once crashed.
 *
 *   fuzz-xml-replay [--tap] DIR|FILE...
 *
 * Prints TAP: one "ok" per file. A crash or broken invariant aborts, which
 * meson reports as the test failing; the file being run is printed first.
 */

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

static int read_file(const char *path, uint8_t **ret, size_t *ret_len) {
        FILE *f = fopen(path, "rb");
        uint8_t *buf = NULL;
        size_t len = 0, cap = 0;

        if (!f)
                return -errno;
        for (;;) {
                size_t n;

                if (len == cap) {
                        uint8_t *nbuf;

                        cap = cap ? cap * 2 : 4096;
                        nbuf = realloc(buf, cap);
                        if (!nbuf) {
                                free(buf);
                                fclose(f);
                                return -ENOMEM;
                        }
                        buf = nbuf;
                }
                n = fread(buf + len, 1, cap - len, f);
                len += n;
                if (n == 0)
                        break;
        }
        if (ferror(f)) {
                free(buf);
                fclose(f);
                return -EIO;
        }
        fclose(f);
        *ret = buf;
        *ret_len = len;
        return 0;
}

static int compare_names(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

/* The files of a directory (not recursive), sorted so runs are repeatable. */
static int list_dir(const char *dir, char ***ret, size_t *ret_n) {
        DIR *d = opendir(dir);
        struct dirent *de;
        char **names = NULL;
        size_t n = 0;

        if (!d)
                return -errno;
        while ((de = readdir(d))) {
                char **nnames;
                char *path;

                if (de->d_name[0] == '.')
                        continue;
                if (asprintf(&path, "%s/%s", dir, de->d_name) < 0)
                        abort();
                nnames = realloc(names, (n + 1) * sizeof *names);
                if (!nnames)
                        abort();
                names = nnames;
                names[n++] = path;
        }
        closedir(d);
        if (n > 0)
                qsort(names, n, sizeof *names, compare_names);
        *ret = names;
        *ret_n = n;
        return 0;
}

static int run_one(const char *path, unsigned *counter) {
        uint8_t *data = NULL;
        size_t len = 0;
        int r;

        r = read_file(path, &data, &len);
        if (r < 0) {
                printf("not ok %u - %s: %s\n", ++*counter, path, strerror(-r));
                return r;
        }
        /* Named before it runs: a crash leaves this line as the last one. */
        printf("# %s (%zu bytes)\n", path, len);
        fflush(stdout);
        LLVMFuzzerTestOneInput(data, len);
        free(data);
        printf("ok %u - %s\n", ++*counter, path);
        return 0;
}

int main(int argc, char **argv) {
        unsigned counter = 0;
        bool failed = false;

        for (int i = 1; i < argc; i++) {
                struct stat st;
                char **names = NULL;
                size_t n = 0;

                if (strcmp(argv[i], "--tap") == 0)
                        continue;
                if (stat(argv[i], &st) < 0) {
                        printf("not ok %u - %s: %s\n", ++counter, argv[i], strerror(errno));
                        failed = true;
                        continue;
                }
                if (!S_ISDIR(st.st_mode)) {
                        failed |= run_one(argv[i], &counter) < 0;
                        continue;
                }
                if (list_dir(argv[i], &names, &n) < 0) {
                        printf("not ok %u - %s: cannot list\n", ++counter, argv[i]);
                        failed = true;
                        continue;
                }
                if (n == 0) {
                        /* An empty corpus means a wrong path, not a pass. */
                        printf("not ok %u - %s: no corpus files\n", ++counter, argv[i]);
                        failed = true;
                }
                for (size_t j = 0; j < n; j++) {
                        failed |= run_one(names[j], &counter) < 0;
                        free(names[j]);
                }
                free(names);
        }
        if (counter == 0) {
                printf("not ok 1 - no input given\n");
                counter = 1;
                failed = true;
        }
        printf("1..%u\n", counter);
        return failed ? 1 : 0;
}
