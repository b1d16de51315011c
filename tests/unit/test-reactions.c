/* SPDX-License-Identifier: MIT */
/* XEP-0444 bookkeeping (service/core/reactions.c): each sender's whole set. */

#include <glib.h>
#include <json-c/json.h>

#include "reactions.h"

static void test_update(void) {
        const char *const bob1[] = { "👍", "❤️" }, *const me[] = { "🎉" }, *const bob2[] = { "😮" };
        g_autofree char *a = reactions_update(NULL, "bob@x", bob1, 2);
        g_autofree char *b = reactions_update(a, "me@x", me, 1);
        g_autofree char *c = reactions_update(b, "bob@x", bob2, 1);
        g_autofree char *d = reactions_update(c, "bob@x", NULL, 0);
        g_autofree char *e = reactions_update(d, "me@x", NULL, 0);
        g_autofree char *junk = reactions_update("[1, 2", "bob@x", me, 1);
        g_autofree char *none = reactions_update(NULL, "bob@x", NULL, 0);

        g_assert_cmpstr(a, ==, "{\"bob@x\":[\"👍\",\"❤️\"]}");
        g_assert_cmpstr(b, ==, "{\"bob@x\":[\"👍\",\"❤️\"],\"me@x\":[\"🎉\"]}");
        g_assert_cmpstr(c, ==, "{\"bob@x\":[\"😮\"],\"me@x\":[\"🎉\"]}");
        g_assert_cmpstr(d, ==, "{\"me@x\":[\"🎉\"]}");
        g_assert_null(e);
        g_assert_cmpstr(junk, ==, "{\"bob@x\":[\"🎉\"]}");     /* a damaged value is replaced */
        g_assert_null(none);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/reactions/update", test_update);
        return g_test_run();
}
