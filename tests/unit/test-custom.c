/* SPDX-License-Identifier: MIT */
/* Custom message data: exactly the JSON documents of RFC 8259, bounded. */

#include <string.h>
#include <glib.h>

#include "custom.h"

static void test_valid(void) {
        static const char *const good[] = {
                "{}", "[]", "[1,2,3]", "\"s\"", "1", "-0.5e3", "true", "false", "null",
                " {\"a\": \"it's \\\" ok\"} \n", "\"\\u00e9 ✓\"", "{\"k\": [null, {\"x\": 1.5}]}",
        };
        for (size_t i = 0; i < G_N_ELEMENTS(good); i++)
                g_assert_true(custom_data_valid(good[i]));
}

static void test_invalid(void) {
        static const char *const bad[] = {
                "", " ", "{", "{} trailing", "{'single': 1}", "['x']", "[1,]", "nope", "1 2",
                "{\"a\":1}{}", "{\"a\" 1}", "01x", "\"unterminated",
        };
        for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
                g_test_message("%s", bad[i]);
                g_assert_false(custom_data_valid(bad[i]));
        }
        g_assert_false(custom_data_valid(NULL));
}

static void test_limits(void) {
        GString *deep = g_string_new(NULL);
        g_autofree char *big = NULL;

        for (int i = 0; i < CUSTOM_DATA_MAX_DEPTH - 1; i++)
                g_string_append_c(deep, '[');
        for (int i = 0; i < CUSTOM_DATA_MAX_DEPTH - 1; i++)
                g_string_append_c(deep, ']');
        g_assert_true(custom_data_valid(deep->str));
        g_string_prepend_c(deep, '[');
        g_string_append_c(deep, ']');
        g_string_prepend_c(deep, '[');
        g_string_append_c(deep, ']');
        g_assert_false(custom_data_valid(deep->str));
        g_string_free(deep, TRUE);

        big = g_malloc(CUSTOM_DATA_MAX + 2);
        memset(big, 'x', CUSTOM_DATA_MAX + 1);
        big[0] = '"';
        big[CUSTOM_DATA_MAX - 1] = '"';
        big[CUSTOM_DATA_MAX] = 0;
        g_assert_true(custom_data_valid(big));          /* exactly the limit */
        big[CUSTOM_DATA_MAX - 1] = 'x';
        big[CUSTOM_DATA_MAX] = '"';
        big[CUSTOM_DATA_MAX + 1] = 0;
        g_assert_false(custom_data_valid(big));         /* one byte over */
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/custom/valid", test_valid);
        g_test_add_func("/custom/invalid", test_invalid);
        g_test_add_func("/custom/limits", test_limits);
        return g_test_run();
}
