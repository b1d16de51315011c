/* SPDX-License-Identifier: MIT */

/*
 * Microbenchmark of the stanza parser, the first step of every received
 * message: CPU per stanza (UTF-8 check, expat, the tree, freeing it) for a
 * chat message as a server relays it, or for the stanza given as argument.
 *
 *     build/tests/bench/bench-xml [-n STANZAS] [STANZA]
 *
 * Build with --buildtype=release for meaningful numbers.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <glib.h>

#include "xml.h"

static const char chat_stanza[] =
        "<message xmlns=\"jabber:client\" type=\"chat\" to=\"alice@localhost\" "
        "id=\"6b1f4c52-1b0e-4f4e-9a34-6a3c0e1b9f11\" from=\"bob@localhost/slixmpp-1234567890\" "
        "xml:lang=\"en\"><body>flood 12345</body></message>";

static double cpu_seconds(void) {
        struct timespec t;

        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
        return (double) t.tv_sec + (double) t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
        const char *stanza = chat_stanza;
        unsigned long n = 200000;
        XmlParser *parser;
        double start;
        int opt;

        while ((opt = getopt(argc, argv, "n:")) != -1) {
                if (opt != 'n' || (n = strtoul(optarg, NULL, 10)) == 0) {
                        fprintf(stderr, "usage: %s [-n STANZAS] [STANZA]\n", argv[0]);
                        return 2;
                }
        }
        if (optind < argc)
                stanza = argv[optind];

        parser = xml_parser_new_stream(NULL);
        start = cpu_seconds();
        for (unsigned long i = 0; i < n; i++) {
                XmlNode *node = NULL;
                int r = xml_parser_feed(parser, stanza, strlen(stanza), &node);

                if (r < 0 || !node) {
                        fprintf(stderr, "stanza %lu not parsed: %s\n", i, g_strerror(r < 0 ? -r : EINVAL));
                        return 1;
                }
                xml_node_free(node);
        }
        printf("%zu-byte stanza, %lu times: %.2f us per stanza\n", strlen(stanza), n,
               (cpu_seconds() - start) * 1e6 / (double) n);
        xml_parser_free(parser);
        return 0;
}
