/* SPDX-License-Identifier: MIT */

#include <errno.h>
#include <string.h>
#include <glib.h>

#include "jid.h"

typedef struct Valid {
        const char *in;
        const char *local, *domain, *resource;
} Valid;

/* RFC 7622 §3.5 examples plus normalisation cases. */
static const Valid valid[] = {
        { "juliet@example.com", "juliet", "example.com", NULL },
        { "juliet@example.com/foo", "juliet", "example.com", "foo" },
        { "juliet@example.com/foo bar", "juliet", "example.com", "foo bar" },
        { "juliet@example.com/foo@bar", "juliet", "example.com", "foo@bar" },
        { "juliet@example.com/foo/bar", "juliet", "example.com", "foo/bar" },
        { "foo\\20bar@example.com", "foo\\20bar", "example.com", NULL },
        { "fussball@example.com", "fussball", "example.com", NULL },
        { "fu\xc3\x9f" "ball@example.com", "fu\xc3\x9f" "ball", "example.com", NULL },
        { "\xcf\x80@example.com", "\xcf\x80", "example.com", NULL },                 /* π */
        { "\xce\xa3@example.com/foo", "\xcf\x83", "example.com", "foo" },          /* Σ -> σ */
        { "\xcf\x83@example.com/foo", "\xcf\x83", "example.com", "foo" },
        { "\xcf\x82@example.com/foo", "\xcf\x82", "example.com", "foo" },          /* final sigma */
        { "king@example.com/\xe2\x99\x9a", "king", "example.com", "\xe2\x99\x9a" }, /* ♚ */
        { "example.com", NULL, "example.com", NULL },
        { "example.com/foobar", NULL, "example.com", "foobar" },
        { "a.example.com/b@example.net", NULL, "a.example.com", "b@example.net" },
        { "\xc3\xa9mile@example.com", "\xc3\xa9mile", "example.com", NULL },       /* émile */
        /* e + combining acute composes to é under NFC. */
        { "e\xcc\x81mile@example.com", "\xc3\xa9mile", "example.com", NULL },
        { "Juliet@Example.COM/Balcony", "juliet", "example.com", "Balcony" },
        { "juliet@example.com./x", "juliet", "example.com", "x" },
        { "juliet@example.com.", "juliet", "example.com", NULL },
        { "\xc3\x89MILE@\xc3\x89XAMPLE.com", "\xc3\xa9mile", "\xc3\xa9xample.com", NULL },
        { "user@\xe4\xbe\x8b\xe5\xad\x90.\xe6\xb5\x8b\xe8\xaf\x95", "user",
          "\xe4\xbe\x8b\xe5\xad\x90.\xe6\xb5\x8b\xe8\xaf\x95", NULL },               /* 例子.测试 */
        { "user@localhost", "user", "localhost", NULL },
        { "user@127.0.0.1", "user", "127.0.0.1", NULL },
        { "user@[::1]/r", "user", "[::1]", "r" },
        { "user@[2001:DB8::1]", "user", "[2001:db8::1]", NULL },
        { "user@my-host.example", "user", "my-host.example", NULL },
        { "conference.localhost/nick with spaces", NULL, "conference.localhost", "nick with spaces" },
        { "u@x/phone \xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9", "u", "x",
          "phone \xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9" },                    /* ZWJ emoji */
};

static const char *const invalid[] = {
        "",
        "@example.com",
        "juliet@",
        "juliet@example.com/",
        "example.com/",
        "/resource",
        "@",
        "jul iet@example.com",
        "juliet\"@example.com",
        "juliet\"@x",
        "jul&iet@example.com",
        "jul'iet@example.com",
        "jul:iet@example.com",
        "jul<iet@example.com",
        "jul>iet@example.com",
        "a@b@c",
        "juliet@exa mple.com",
        "juliet@example..com",
        "juliet@.example.com",
        "juliet@example.com..",
        "juliet@.",
        "juliet@-example.com",
        "juliet@example-.com",
        "juliet@exam_ple.com",
        "juliet@example.com/foo\x01",
        "juliet@example.com/foo\x7f",
        "jul\tiet@example.com",
        "juliet@example.com/a\nb",
        "jul\xc2\xa0iet@example.com",          /* no-break space */
        "jul\xe2\x80\x8biet@example.com",      /* zero-width space */
        "\xff@example.com",
        "juliet@example.com/\xc3",
        "juliet@\xc3\x28.com",
        "user@[::1",
        "user@[127.0.0.1]",
        "user@[not-an-ip]",
        "user@[fe80::1%eth0]",                  /* no zone ids */
        "a%@[::a%@[::gg]",                      /* ... which would let '@' and '[' in (fuzz-jid) */
        "user@1.2.3.999",
        "user@1.2.3",
        "user@12345",
};

static void test_valid(void) {
        for (size_t i = 0; i < G_N_ELEMENTS(valid); i++) {
                Jid j = { 0 };

                g_test_message("valid: %s", valid[i].in);
                g_assert_cmpint(jid_parse(valid[i].in, &j), ==, 0);
                g_assert_cmpstr(j.local, ==, valid[i].local);
                g_assert_cmpstr(j.domain, ==, valid[i].domain);
                g_assert_cmpstr(j.resource, ==, valid[i].resource);
                jid_clear(&j);
                g_assert_null(j.domain);
        }
}

static void test_invalid(void) {
        for (size_t i = 0; i < G_N_ELEMENTS(invalid); i++) {
                Jid j = { (char *) 0x1, (char *) 0x2, (char *) 0x3 };
                g_autofree char *esc = g_strescape(invalid[i], NULL);

                /* Escaped: raw control bytes would break the TAP stream. */
                g_test_message("invalid: %s", esc);
                g_assert_cmpint(jid_parse(invalid[i], &j), ==, -EINVAL);
                /* Untouched on failure. */
                g_assert_true(j.local == (char *) 0x1 && j.domain == (char *) 0x2 &&
                              j.resource == (char *) 0x3);
        }
        g_assert_cmpint(jid_parse(NULL, &(Jid) { 0 }), ==, -EINVAL);
}

static char *repeat(char c, size_t n) {
        char *s = g_malloc(n + 1);

        memset(s, c, n);
        s[n] = 0;
        return s;
}

static void test_lengths(void) {
        g_autofree char *l1023 = repeat('a', 1023), *l1024 = repeat('a', 1024);
        g_autofree char *huge = repeat('a', 100000);
        g_autofree char *s = NULL;
        Jid j = { 0 };

        s = g_strconcat(l1023, "@example.com/", l1023, NULL);
        g_assert_cmpint(jid_parse(s, &j), ==, 0);
        jid_clear(&j);
        g_clear_pointer(&s, g_free);

        s = g_strconcat(l1024, "@example.com", NULL);
        g_assert_cmpint(jid_parse(s, &j), ==, -EINVAL);
        g_clear_pointer(&s, g_free);

        s = g_strconcat("juliet@example.com/", l1024, NULL);
        g_assert_cmpint(jid_parse(s, &j), ==, -EINVAL);
        g_clear_pointer(&s, g_free);

        /* Domain of 1024 bytes, built of legal labels. */
        {
                g_autoptr(GString) d = g_string_new("u@");

                while (d->len - 2 < 1024)
                        g_string_append(d, "abcdefghi.");
                g_string_truncate(d, 2 + 1023);
                g_string_append_c(d, 'x');
                g_assert_cmpint(jid_parse(d->str, &j), ==, -EINVAL);
        }

        /* A 64-byte ASCII label is over the DNS limit. */
        {
                g_autofree char *label = repeat('b', 64);

                g_clear_pointer(&s, g_free);
                s = g_strconcat("u@", label, ".com", NULL);
                g_assert_cmpint(jid_parse(s, &j), ==, -EINVAL);
        }

        g_assert_cmpint(jid_parse(huge, &j), ==, -EINVAL);
}

static void test_to_string(void) {
        Jid j = { 0 };
        g_autofree char *full = NULL, *bare = NULL;

        g_assert_cmpint(jid_parse("Juliet@Example.COM/Balcony", &j), ==, 0);
        full = jid_to_string(&j);
        bare = jid_to_bare(&j);
        g_assert_cmpstr(full, ==, "juliet@example.com/Balcony");
        g_assert_cmpstr(bare, ==, "juliet@example.com");
        jid_clear(&j);
        jid_clear(&j);          /* twice is fine */
        jid_clear(NULL);

        g_assert_cmpint(jid_parse("example.com/r", &j), ==, 0);
        g_clear_pointer(&full, g_free);
        g_clear_pointer(&bare, g_free);
        full = jid_to_string(&j);
        bare = jid_to_bare(&j);
        g_assert_cmpstr(full, ==, "example.com/r");
        g_assert_cmpstr(bare, ==, "example.com");
        jid_clear(&j);

        g_assert_null(jid_to_bare(&j));
        g_assert_null(jid_to_string(&j));
}

static void test_normalize_bare(void) {
        g_autofree char *a = jid_normalize_bare("Juliet@Example.COM/Balcony");
        g_autofree char *b = jid_normalize_bare("EXAMPLE.com.");

        g_assert_cmpstr(a, ==, "juliet@example.com");
        g_assert_cmpstr(b, ==, "example.com");
        g_assert_null(jid_normalize_bare("juliet@"));
        g_assert_null(jid_normalize_bare(NULL));
}

static void test_user_bare(void) {
        g_assert_true(jid_is_valid_user_bare("juliet@example.com"));
        g_assert_true(jid_is_valid_user_bare("Juliet@Example.com"));
        g_assert_false(jid_is_valid_user_bare("juliet@example.com/r"));
        g_assert_false(jid_is_valid_user_bare("example.com"));
        g_assert_false(jid_is_valid_user_bare("a@b@c"));
        g_assert_false(jid_is_valid_user_bare(NULL));
}

static void test_bare_equal(void) {
        g_assert_true(jid_bare_equal("juliet@example.com", "juliet@example.com"));
        g_assert_true(jid_bare_equal("Juliet@Example.COM", "juliet@example.com/balcony"));
        g_assert_true(jid_bare_equal("\xc3\x89mile@example.com", "e\xcc\x81mile@EXAMPLE.com."));
        g_assert_false(jid_bare_equal("juliet@example.com", "romeo@example.com"));
        g_assert_false(jid_bare_equal("juliet@example.com", "example.com"));
        g_assert_false(jid_bare_equal("juliet@", "juliet@"));
        g_assert_false(jid_bare_equal(NULL, "juliet@example.com"));
        g_assert_false(jid_bare_equal("juliet@example.com", NULL));
}

int main(int argc, char *argv[]) {
        g_test_init(&argc, &argv, NULL);

        g_test_add_func("/jid/valid", test_valid);
        g_test_add_func("/jid/invalid", test_invalid);
        g_test_add_func("/jid/lengths", test_lengths);
        g_test_add_func("/jid/to-string", test_to_string);
        g_test_add_func("/jid/normalize-bare", test_normalize_bare);
        g_test_add_func("/jid/user-bare", test_user_bare);
        g_test_add_func("/jid/bare-equal", test_bare_equal);

        return g_test_run();
}
