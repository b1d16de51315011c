/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of text.c: what the tray says for a given model. No bus needed.
 */
#include <string.h>

#include <glib.h>

#include "tray.h"

static struct model model_with(bool running, bool ready, const char *account, const char *net_state,
                               uint32_t unread) {
        return (struct model) { .running = running, .ready = ready, .account = (char *) account,
                                .net_state = (char *) net_state, .unread_total = unread };
}

static void test_status(void) {
        struct model m = model_with(false, false, "", "disconnected", 0);

        g_assert_cmpint(text_status(&m), ==, TRAY_STATUS_PASSIVE);
        m = model_with(true, false, "a@example.org", "disconnected", 5);
        g_assert_cmpint(text_status(&m), ==, TRAY_STATUS_PASSIVE);     /* logged out */
        m = model_with(true, false, "", "connecting", 0);
        g_assert_cmpint(text_status(&m), ==, TRAY_STATUS_PASSIVE);     /* no account */
        m = model_with(true, true, "a@example.org", "connected", 0);
        g_assert_cmpint(text_status(&m), ==, TRAY_STATUS_ACTIVE);
        m.unread_total = 1;
        g_assert_cmpint(text_status(&m), ==, TRAY_STATUS_NEEDS_ATTENTION);

        /* reconnecting after a network drop: still a session, still unread */
        m = model_with(true, false, "a@example.org", "connecting", 3);
        g_assert_cmpint(text_status(&m), ==, TRAY_STATUS_NEEDS_ATTENTION);
        m.unread_total = 0;
        g_assert_cmpint(text_status(&m), ==, TRAY_STATUS_ACTIVE);
        m = model_with(true, true, "a@example.org", "connecting", 2);
        g_assert_cmpint(text_status(&m), ==, TRAY_STATUS_NEEDS_ATTENTION);
        m = model_with(false, false, "a@example.org", "connecting", 2);
        g_assert_cmpint(text_status(&m), ==, TRAY_STATUS_PASSIVE);     /* imd gone */
        g_assert_cmpstr(text_status_name(TRAY_STATUS_NEEDS_ATTENTION), ==, "NeedsAttention");
        g_assert_cmpstr(text_status_name(TRAY_STATUS_ACTIVE), ==, "Active");
        g_assert_cmpstr(text_status_name(TRAY_STATUS_PASSIVE), ==, "Passive");
}

static void test_icon(void) {
        struct model m = model_with(true, true, "a@example.org", "connected", 0);

        g_assert_cmpstr(text_icon_name(&m), ==, "user-available");
        m.net_state = (char *) "connecting";
        g_assert_cmpstr(text_icon_name(&m), ==, "user-away");
        m.ready = false;                                    /* reconnecting */
        g_assert_cmpstr(text_icon_name(&m), ==, "user-away");
        m.net_state = (char *) "connected";                 /* connected, session not ready yet */
        g_assert_cmpstr(text_icon_name(&m), ==, "user-away");
        m.net_state = (char *) "disconnected";              /* logged out */
        g_assert_cmpstr(text_icon_name(&m), ==, "user-offline");
        m = model_with(true, false, "", "connecting", 0);
        g_assert_cmpstr(text_icon_name(&m), ==, "user-offline");
        m = model_with(false, true, "a@example.org", "connected", 0);
        g_assert_cmpstr(text_icon_name(&m), ==, "user-offline");
}

static void test_tooltip(void) {
        struct model m = model_with(true, true, "a@example.org", "connected", 0);
        g_autofree char *none = text_unread_summary(&m), *one = NULL, *many = NULL;
        g_autofree char *conn = text_connection(&m), *out = NULL, *gone = NULL, *connecting = NULL;

        g_assert_cmpstr(none, ==, "No unread messages");
        m.unread_total = 1;
        one = text_unread_summary(&m);
        g_assert_cmpstr(one, ==, "1 unread message");
        m.unread_total = 4294967295u;
        many = text_unread_summary(&m);
        g_assert_cmpstr(many, ==, "4294967295 unread messages");

        g_assert_cmpstr(conn, ==, "a@example.org: connected");
        m.ready = false;
        m.net_state = (char *) "connecting";                /* logging in */
        connecting = text_connection(&m);
        g_assert_cmpstr(connecting, ==, "a@example.org: connecting");
        m.net_state = (char *) "disconnected";
        out = text_connection(&m);
        g_assert_cmpstr(out, ==, "Not logged in");
        m.running = false;
        gone = text_connection(&m);
        g_assert_cmpstr(gone, ==, "imd is not running");
}

static char *label(const char *id, const char *name, uint32_t unread) {
        struct conversation c = { .id = (char *) id, .name = (char *) name, .unread = unread };

        return text_conversation_label(&c);
}

static void test_label(void) {
        g_autofree char *plain = label("bob@example.org", "", 0);
        g_autofree char *count = label("bob@example.org", "", 3);
        g_autofree char *named = label("bob@example.org", "Bob", 1);
        g_autofree char *mnemonic = label("bob_x@example.org", "", 2);
        g_autofree char *long_ascii = NULL, *long_utf8 = NULL;
        g_autofree char *ascii = g_strnfill(100, 'a');
        GString *utf8 = g_string_new("a");

        g_assert_cmpstr(plain, ==, "bob@example.org");
        g_assert_cmpstr(count, ==, "bob@example.org (3)");
        g_assert_cmpstr(named, ==, "Bob (1)");
        g_assert_cmpstr(mnemonic, ==, "bob__x@example.org (2)");

        long_ascii = label("x@example.org", ascii, 7);
        g_assert_cmpuint(strlen(long_ascii), ==, 64 + 3 + 4);
        g_assert_true(g_str_has_suffix(long_ascii, "a... (7)"));

        /* 1 + 2 * 40 bytes: the cut at 64 bytes falls inside a 2-byte sequence */
        for (int i = 0; i < 40; i++)
                g_string_append(utf8, "\xc3\xa9");     /* é */
        long_utf8 = label("x@example.org", utf8->str, 0);
        g_assert_true(g_utf8_validate(long_utf8, -1, NULL));
        g_assert_cmpuint(strlen(long_utf8), ==, 63 + 3);
        g_assert_true(g_str_has_suffix(long_utf8, "\xc3\xa9..."));
        g_string_free(utf8, TRUE);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/tray/text/status", test_status);
        g_test_add_func("/tray/text/icon", test_icon);
        g_test_add_func("/tray/text/tooltip", test_tooltip);
        g_test_add_func("/tray/text/label", test_label);
        return g_test_run();
}
