/* SPDX-License-Identifier: MIT */

/*
 * Microbenchmark of the history store's batch append, the daemon's hot path in a
 * message flood: CPU (user + sys, getrusage) per appended message, commit
 * included, in two scenarios:
 *  - one conversation: every batch goes to the same peer;
 *  - 20 conversations interleaved message by message inside each batch.
 * Messages look like the daemon's: UUID ids, bare-JID conversations, incoming,
 * 20-100 bytes of text, a server stanza-id on some of them. They are built before
 * the clock starts, so only the store is measured.
 *
 *     build/tests/bench/bench-store [-n MESSAGES] [-b BATCH] [-r RUNS] [-p PREFILL]
 *
 * -p appends PREFILL messages (not measured) first, to see the cost with an
 * existing history. Each run starts from an empty database; the median of the
 * runs is the number to quote (a virtual machine's noise is +-20% per run).
 * Build with --buildtype=release for meaningful numbers.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <glib.h>
#include <glib/gstdio.h>

#include "store.h"

static unsigned n_messages = 20000;
static unsigned batch_size = 50;
static unsigned runs = 3;
static unsigned prefill = 0;

static double rusage_us(void) {
        struct rusage ru;

        if (getrusage(RUSAGE_SELF, &ru) < 0)
                abort();
        return (double) (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 +
               (double) (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;

        return x < y ? -1 : x > y;
}

static void remove_dir(const char *dir) {
        g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
        const char *name;

        while (d && (name = g_dir_read_name(d))) {
                g_autofree char *path = g_build_filename(dir, name, NULL);
                (void) g_unlink(path);
        }
        (void) g_rmdir(dir);
}

static const char words[] =
        "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor "
        "incididunt ut labore et dolore magna aliqua ut enim ad minim veniam quis nostrud";

/* n messages over n_conversations peers, round robin. */
static GPtrArray *make_messages(GRand *rand, unsigned n, unsigned n_conversations, int64_t *time_ms,
                                const char *tag) {
        GPtrArray *msgs = g_ptr_array_new_with_free_func((GDestroyNotify) store_message_free);

        for (unsigned i = 0; i < n; i++) {
                StoreMessage *m = g_new0(StoreMessage, 1);
                unsigned len = (unsigned) g_rand_int_range(rand, 20, 101);
                unsigned off = (unsigned) g_rand_int_range(rand, 0, (gint32) (sizeof words - 1 - len));

                m->id = g_uuid_string_random();
                m->conversation = g_strdup_printf("peer%u-%s@localhost", i % n_conversations, tag);
                m->sender = g_strdup(m->conversation);
                /* A server stanza-id on one message in 8. */
                m->stanza_id = g_rand_int_range(rand, 0, 8) == 0 ?
                        g_strdup_printf("%08x-%s-%u", g_rand_int(rand), tag, i) : NULL;
                m->direction = STORE_DIRECTION_IN;
                m->time_ms = (*time_ms)++;
                m->type = g_strdup("text");
                m->text = g_strndup(words + off, len);
                m->status = g_strdup("received");
                g_ptr_array_add(msgs, m);
        }
        return msgs;
}

/* As the daemon does: one store_append_messages() per batch, which commits. */
static void append_all(Store *store, GPtrArray *msgs) {
        for (unsigned i = 0; i < msgs->len; i += batch_size) {
                size_t n = MIN(batch_size, msgs->len - i), added = 0;

                if (store_append_messages(store, (StoreMessage *const *) msgs->pdata + i, n, &added) < 0 ||
                    added != n) {
                        fprintf(stderr, "append failed\n");
                        exit(EXIT_FAILURE);
                }
        }
}

static double run(unsigned n_conversations, unsigned seed) {
        g_autoptr(GError) error = NULL;
        g_autoptr(GRand) rand = g_rand_new_with_seed(seed);
        g_autoptr(GPtrArray) pre = NULL, msgs = NULL;
        g_autoptr(Store) store = NULL;
        g_autofree char *dir = NULL;
        int64_t time_ms = INT64_C(1700000000000);
        double start, us;
        int r;

        dir = g_dir_make_tmp("imd-bench-store-XXXXXX", &error);
        if (!dir) {
                fprintf(stderr, "%s\n", error->message);
                exit(EXIT_FAILURE);
        }
        r = store_open(dir, &store);
        if (r < 0) {
                fprintf(stderr, "store_open: %s\n", g_strerror(-r));
                exit(EXIT_FAILURE);
        }

        if (prefill) {
                for (unsigned done = 0; done < prefill; done += 20000) {
                        g_autoptr(GPtrArray) p = make_messages(rand, MIN(20000, prefill - done),
                                                               n_conversations, &time_ms, "p");
                        append_all(store, p);
                }
        }
        msgs = make_messages(rand, n_messages, n_conversations, &time_ms, "m");

        start = rusage_us();
        append_all(store, msgs);
        us = rusage_us() - start;

        g_clear_pointer(&store, store_close);
        remove_dir(dir);
        return us / n_messages;
}

int main(int argc, char *argv[]) {
        static const unsigned scenarios[] = { 1, 20 };
        int opt;

        while ((opt = getopt(argc, argv, "n:b:r:p:")) != -1) {
                switch (opt) {
                case 'n': n_messages = (unsigned) strtoul(optarg, NULL, 10); break;
                case 'b': batch_size = (unsigned) strtoul(optarg, NULL, 10); break;
                case 'r': runs = (unsigned) strtoul(optarg, NULL, 10); break;
                case 'p': prefill = (unsigned) strtoul(optarg, NULL, 10); break;
                default:
                        fprintf(stderr, "usage: %s [-n MESSAGES] [-b BATCH] [-r RUNS] [-p PREFILL]\n", argv[0]);
                        return EXIT_FAILURE;
                }
        }
        if (!n_messages || !batch_size || !runs)
                return EXIT_FAILURE;

        printf("%u messages in batches of %u, %u prefilled, %u runs\n", n_messages, batch_size, prefill, runs);
        for (size_t s = 0; s < G_N_ELEMENTS(scenarios); s++) {
                g_autofree double *us = g_new(double, runs);

                printf("%2u conversation%s:", scenarios[s], scenarios[s] == 1 ? " " : "s");
                for (unsigned i = 0; i < runs; i++) {
                        us[i] = run(scenarios[s], 42 + i);
                        printf(" %.2f", us[i]);
                        fflush(stdout);
                }
                qsort(us, runs, sizeof *us, cmp_double);
                printf("  us/message CPU; median %.2f, best %.2f\n",
                       runs % 2 ? us[runs / 2] : (us[runs / 2 - 1] + us[runs / 2]) / 2, us[0]);
        }
        return EXIT_SUCCESS;
}
