/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of conversations.c: merging imd's conversations into the model,
 * and the bound on how many it keeps. No bus needed.
 */
#include <stdio.h>

#include <glib.h>

#include "tray.h"

static void merge(struct model *m, const char *id, uint32_t unread, int64_t time) {
        struct conversation_fields f = { .id = id, .name = "", .unread = unread, .time = time };

        g_assert_cmpint(conversations_merge(m, &f), ==, 0);
}

static void merge_n(struct model *m, size_t from, size_t to, uint32_t unread) {
        char id[32];

        for (size_t i = from; i < to; i++) {
                snprintf(id, sizeof id, "c%05zu@example.org", i);
                merge(m, id, unread, (int64_t) i);
        }
}

static const struct conversation *get(const struct model *m, size_t i) {
        char id[32];

        snprintf(id, sizeof id, "c%05zu@example.org", i);
        return conversations_find(m, id);
}

static bool has(const struct model *m, size_t i) {
        return get(m, i) != NULL;
}

static void test_merge(void) {
        struct model m = { 0 };
        struct conversation_fields f = { .id = "bob@example.org", .name = "Bob", .unread = 2, .time = 5 };

        g_assert_cmpint(conversations_merge(&m, &f), ==, 0);
        f = (struct conversation_fields) { .id = "", .name = "", .unread = 1 };
        g_assert_cmpint(conversations_merge(&m, &f), ==, 0);    /* no id: not kept */
        merge(&m, "carol@example.org", 0, 9);
        merge(&m, "bob@example.org", 0, 7);                     /* replaced, not added */
        g_assert_cmpuint(m.n_conversations, ==, 2);
        conversations_sort(&m);
        g_assert_cmpstr(m.conversations[0].id, ==, "carol@example.org");
        g_assert_cmpstr(m.conversations[1].id, ==, "bob@example.org");
        g_assert_cmpstr(m.conversations[1].name, ==, "");
        g_assert_cmpuint(m.conversations[1].unread, ==, 0);
        conversations_clear(&m);
        g_assert_cmpuint(m.n_conversations, ==, 0);
}

/* However many conversations come, the model keeps MODEL_MAX_CONVERSATIONS. */
static void test_bounded(void) {
        const size_t many = MODEL_MAX_CONVERSATIONS + 1000;
        struct model m = { 0 };

        merge_n(&m, 0, many, 0);
        g_assert_cmpuint(m.n_conversations, ==, MODEL_MAX_CONVERSATIONS);
        /* the most recent were kept */
        g_assert_false(has(&m, 0));
        g_assert_false(has(&m, many - MODEL_MAX_CONVERSATIONS - 1));
        g_assert_true(has(&m, many - MODEL_MAX_CONVERSATIONS));
        g_assert_true(has(&m, many - 1));

        /* an older read one is not taken; an update of a kept one is */
        merge(&m, "old@example.org", 0, -1);
        g_assert_null(conversations_find(&m, "old@example.org"));
        merge_n(&m, many - 1, many, 3);
        g_assert_cmpuint(get(&m, many - 1)->unread, ==, 3);
        g_assert_cmpuint(m.n_conversations, ==, MODEL_MAX_CONVERSATIONS);

        /* an unread one, however old, goes before the least recent read one */
        merge(&m, "unread@example.org", 1, -1);
        g_assert_nonnull(conversations_find(&m, "unread@example.org"));
        g_assert_false(has(&m, many - MODEL_MAX_CONVERSATIONS));
        g_assert_cmpuint(m.n_conversations, ==, MODEL_MAX_CONVERSATIONS);
        conversations_clear(&m);

        /* all unread: the least recent unread ones go */
        merge_n(&m, 0, many, 1);
        g_assert_cmpuint(m.n_conversations, ==, MODEL_MAX_CONVERSATIONS);
        g_assert_false(has(&m, 0));
        g_assert_true(has(&m, many - 1));
        merge(&m, "read@example.org", 0, (int64_t) many);      /* read: not worth an unread one */
        g_assert_null(conversations_find(&m, "read@example.org"));
        conversations_clear(&m);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/tray/conversations/merge", test_merge);
        g_test_add_func("/tray/conversations/bounded", test_bounded);
        return g_test_run();
}
