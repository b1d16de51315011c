/* SPDX-License-Identifier: MIT */

/*
 * JIDs (RFC 7622) from the network and from D-Bus callers: jid_parse() and
 * the helpers built on it. Invariants: whatever is accepted is valid UTF-8,
 * every part within JID_PART_MAX, with no separator where it would change
 * the parse; normalising is idempotent (the string form of a parsed JID
 * parses to the same parts), and the helpers agree with jid_parse().
 *
 * Input: the JID's bytes (a NUL ends it, as it would end a C string).
 */

#include <errno.h>
#include <string.h>
#include <glib.h>

#include "fuzz.h"
#include "jid.h"

static void check_part(const char *part, const char *forbidden) {
        size_t len;

        if (!part)
                return;
        len = strlen(part);
        FUZZ_CHECK(len > 0 && len <= JID_PART_MAX);
        FUZZ_CHECK(g_utf8_validate(part, (gssize) len, NULL));
        FUZZ_CHECK(!strpbrk(part, forbidden));
}

static bool same(const char *a, const char *b) {
        return g_strcmp0(a, b) == 0;
}

static void check_valid(const char *s, const Jid *j) {
        g_autofree char *full = NULL, *bare = NULL, *bare_again = NULL, *bare_of_bare = NULL;
        Jid again = { 0 };

        FUZZ_CHECK(j->domain);
        check_part(j->local, "@/\"&':<> ");
        check_part(j->domain, "@/");
        check_part(j->resource, "");

        /* Normalised already: parsing the string form changes nothing. */
        full = jid_to_string(j);
        FUZZ_CHECK(full && g_utf8_validate(full, -1, NULL));
        if (jid_parse(full, &again) != 0) {
                fprintf(stderr, "'%s' normalised to '%s', which does not parse\n", s, full);
                FUZZ_CHECK(!"normalised JID does not parse");
        }
        if (!same(j->local, again.local) || !same(j->domain, again.domain) ||
            !same(j->resource, again.resource))
                fprintf(stderr, "'%s' normalised to '%s', which normalises to '%s@%s/%s'\n", s, full,
                        again.local, again.domain, again.resource);
        FUZZ_CHECK(same(j->local, again.local));
        FUZZ_CHECK(same(j->domain, again.domain));
        FUZZ_CHECK(same(j->resource, again.resource));
        jid_clear(&again);

        bare = jid_to_bare(j);
        FUZZ_CHECK(bare);
        bare_again = jid_normalize_bare(s);
        FUZZ_CHECK(same(bare, bare_again));
        bare_of_bare = jid_normalize_bare(bare);
        FUZZ_CHECK(same(bare, bare_of_bare));
        FUZZ_CHECK(jid_bare_equal(s, bare));
        FUZZ_CHECK(jid_bare_equal(bare, s));
        FUZZ_CHECK(jid_bare_equal(full, s));
        FUZZ_CHECK(jid_is_valid_user_bare(s) == (j->local && !j->resource));
        FUZZ_CHECK(jid_is_valid_user_bare(bare) == (j->local != NULL));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        g_autofree char *s = g_strndup((const char *) data, size);
        Jid j = { .local = (char *) 0x1 };

        if (jid_parse(s, &j) == 0) {
                check_valid(s, &j);
                jid_clear(&j);
        } else {
                FUZZ_CHECK(j.local == (char *) 0x1 && !j.domain && !j.resource);  /* untouched */
                FUZZ_CHECK(!jid_normalize_bare(s));
                FUZZ_CHECK(!jid_is_valid_user_bare(s));
                FUZZ_CHECK(!jid_bare_equal(s, s));
        }
        return 0;
}
