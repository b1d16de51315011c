/* SPDX-License-Identifier: MIT */

/* XEP-0198 bookkeeping (service/xmpp/sm.c) and reconnect backoff. */

#include <errno.h>
#include <string.h>
#include <glib.h>

#include "backoff.h"
#include "sm.h"

typedef struct Acked {
        GPtrArray *ids;
} Acked;

static void record_acked(const char *message_id, const char *to, void *userdata) {
        Acked *a = userdata;
        g_ptr_array_add(a->ids, g_strdup_printf("%s>%s", message_id, to));
}

static void test_ack_reports_messages_in_order(void) {
        g_autoptr(GPtrArray) ids = g_ptr_array_new_with_free_func(g_free);
        Acked a = { ids };
        XmppSm *sm = xmpp_sm_new();

        /* nothing counts before <enable/> */
        xmpp_sm_sent(sm, "<iq/>", 5, NULL, NULL);
        g_assert_cmpuint(xmpp_sm_n_unacked(sm), ==, 0);

        xmpp_sm_start(sm);
        xmpp_sm_sent(sm, "<iq/>", 5, NULL, NULL);                       /* 1: roster get */
        xmpp_sm_sent(sm, "<message id='a'/>", 17, "a", "bob@x");        /* 2 */
        xmpp_sm_sent(sm, "<presence/>", 11, NULL, NULL);                /* 3 */
        xmpp_sm_sent(sm, "<message id='b'/>", 17, "b", "carol@x");      /* 4 */
        g_assert_cmpuint(xmpp_sm_n_unacked(sm), ==, 4);
        g_assert_true(xmpp_sm_is_unacked_message(sm, "a"));
        {
                /* the messages in flight, without the other stanzas */
                g_autoptr(GPtrArray) flight = g_ptr_array_new_with_free_func(g_free);
                Acked f = { flight };
                xmpp_sm_foreach_unacked_message(sm, record_acked, &f);
                g_assert_cmpuint(flight->len, ==, 2);
                g_assert_cmpstr(g_ptr_array_index(flight, 0), ==, "a>bob@x");
                g_assert_cmpstr(g_ptr_array_index(flight, 1), ==, "b>carol@x");
        }

        g_assert_cmpint(xmpp_sm_ack(sm, 2, record_acked, &a), ==, 0);
        g_assert_cmpuint(ids->len, ==, 1);
        g_assert_cmpstr(g_ptr_array_index(ids, 0), ==, "a>bob@x");
        g_assert_false(xmpp_sm_is_unacked_message(sm, "a"));
        g_assert_true(xmpp_sm_is_unacked_message(sm, "b"));

        /* a repeated h changes nothing; a larger one than sent is refused */
        g_assert_cmpint(xmpp_sm_ack(sm, 2, record_acked, &a), ==, 0);
        g_assert_cmpuint(ids->len, ==, 1);
        g_assert_cmpint(xmpp_sm_ack(sm, 5, record_acked, &a), ==, -EPROTO);
        g_assert_cmpuint(xmpp_sm_n_unacked(sm), ==, 2);

        g_assert_cmpint(xmpp_sm_ack(sm, 4, record_acked, &a), ==, 0);
        g_assert_cmpuint(ids->len, ==, 2);
        g_assert_cmpstr(g_ptr_array_index(ids, 1), ==, "b>carol@x");
        g_assert_cmpuint(xmpp_sm_n_unacked(sm), ==, 0);
        xmpp_sm_free(sm);
}

static void collect_xml(const char *xml, size_t len, void *userdata) {
        g_string_append_len(userdata, xml, (gssize) len);
}

static void test_resend_after_resume(void) {
        g_autoptr(GString) resent = g_string_new(NULL);
        XmppSm *sm = xmpp_sm_new();

        xmpp_sm_start(sm);
        xmpp_sm_enabled(sm, "sess-1", 60);
        g_assert_cmpstr(xmpp_sm_resume_id(sm), ==, "sess-1");
        xmpp_sm_sent(sm, "<m1/>", 5, "1", "p@x");
        xmpp_sm_sent(sm, "<m2/>", 5, "2", "p@x");
        xmpp_sm_sent(sm, "<m3/>", 5, "3", "p@x");
        /* <resumed h='1'/>: the server had the first one */
        g_assert_cmpint(xmpp_sm_ack(sm, 1, NULL, NULL), ==, 0);
        xmpp_sm_foreach_unacked(sm, collect_xml, resent);
        g_assert_cmpstr(resent->str, ==, "<m2/><m3/>");
        /* the resent ones keep their numbers: the server's h goes on from 1 */
        g_assert_cmpint(xmpp_sm_ack(sm, 3, NULL, NULL), ==, 0);
        g_assert_cmpuint(xmpp_sm_n_unacked(sm), ==, 0);

        /* a new session forgets what the old one had in flight */
        xmpp_sm_sent(sm, "<m4/>", 5, "4", "p@x");
        xmpp_sm_start(sm);
        g_assert_cmpuint(xmpp_sm_n_unacked(sm), ==, 0);
        g_assert_null(xmpp_sm_resume_id(sm));
        xmpp_sm_stop(sm);
        xmpp_sm_sent(sm, "<m5/>", 5, "5", "p@x");
        g_assert_cmpuint(xmpp_sm_n_unacked(sm), ==, 0);
        xmpp_sm_free(sm);
}

static void test_counter_wraps(void) {
        XmppSm *sm = xmpp_sm_new();

        xmpp_sm_start(sm);
        /* pretend 2^32 - 1 stanzas went and were acknowledged */
        for (int i = 0; i < 3; i++)
                xmpp_sm_sent(sm, "<x/>", 4, NULL, NULL);
        g_assert_cmpint(xmpp_sm_ack(sm, 3, NULL, NULL), ==, 0);
        g_assert_cmpint(xmpp_sm_ack(sm, 2, NULL, NULL), ==, -EPROTO);   /* backwards = huge jump */
        xmpp_sm_free(sm);
}

static void test_handled_waits_for_commit(void) {
        XmppSm *sm = xmpp_sm_new();

        xmpp_sm_start(sm);
        xmpp_sm_received(sm, false);            /* before <enabled/>: not counted */
        xmpp_sm_enabled(sm, "id", 0);
        xmpp_sm_received(sm, false);            /* 1: an IQ, handled at once */
        g_assert_cmpuint(xmpp_sm_handled(sm), ==, 1);
        xmpp_sm_received(sm, true);             /* 2: a message, not stored yet */
        xmpp_sm_received(sm, false);            /* 3 */
        xmpp_sm_received(sm, true);             /* 4 */
        g_assert_cmpuint(xmpp_sm_handled(sm), ==, 1);
        xmpp_sm_committed(sm);
        g_assert_cmpuint(xmpp_sm_handled(sm), ==, 4);
        xmpp_sm_free(sm);
}

/* The connection broke with messages 3 and 4 received but not stored: we
 * resume with h=2, the server sends 3 and 4 again, and they count once. */
static void test_resume_rewinds_to_handled(void) {
        XmppSm *sm = xmpp_sm_new();

        xmpp_sm_start(sm);
        xmpp_sm_enabled(sm, "id", 0);
        xmpp_sm_received(sm, true);
        xmpp_sm_received(sm, false);
        xmpp_sm_committed(sm);                  /* 1 and 2 handled */
        xmpp_sm_received(sm, true);             /* 3 */
        xmpp_sm_received(sm, true);             /* 4 */
        g_assert_cmpuint(xmpp_sm_rewind_to_handled(sm), ==, 2);
        g_assert_false(xmpp_sm_has_uncommitted(sm));
        xmpp_sm_received(sm, true);             /* 3 again */
        xmpp_sm_received(sm, true);             /* 4 again */
        xmpp_sm_committed(sm);
        g_assert_cmpuint(xmpp_sm_handled(sm), ==, 4);
        xmpp_sm_free(sm);
}

/* Without XEP-0198 the count is ours alone: the stream acknowledges what a
 * ping's answer covers, and there is nothing to resume. */
static void test_local_count(void) {
        g_autoptr(GPtrArray) ids = g_ptr_array_new_with_free_func(g_free);
        Acked a = { ids };
        XmppSm *sm = xmpp_sm_new();

        xmpp_sm_start(sm);
        xmpp_sm_sent(sm, "<message id='old'/>", 19, "old", "bob@x");
        xmpp_sm_stop(sm);                       /* <enable/> refused */
        g_assert_false(xmpp_sm_is_local(sm));

        xmpp_sm_start_local(sm);
        g_assert_true(xmpp_sm_is_enabled(sm));
        g_assert_true(xmpp_sm_is_local(sm));
        g_assert_null(xmpp_sm_resume_id(sm));
        g_assert_cmpuint(xmpp_sm_n_unacked(sm), ==, 0);
        xmpp_sm_sent(sm, "<message id='a'/>", 17, "a", "bob@x");
        /* markers, pings and the like are not kept: nothing resends them */
        xmpp_sm_sent(sm, "<message><displayed/></message>", 31, NULL, NULL);
        xmpp_sm_sent(sm, "<iq id='ack-1'/>", 16, NULL, NULL);    /* the ping */
        g_assert_cmpuint(xmpp_sm_n_sent(sm), ==, 1);
        g_assert_cmpuint(xmpp_sm_n_unacked(sm), ==, 1);
        xmpp_sm_sent(sm, "<message id='b'/>", 17, "b", "bob@x");
        g_assert_cmpint(xmpp_sm_ack(sm, 1, record_acked, &a), ==, 0);
        g_assert_cmpuint(ids->len, ==, 1);
        g_assert_cmpstr(g_ptr_array_index(ids, 0), ==, "a>bob@x");
        g_assert_true(xmpp_sm_is_unacked_message(sm, "b"));

        /* a server that turns out to count after all starts afresh */
        xmpp_sm_start(sm);
        g_assert_false(xmpp_sm_is_local(sm));
        g_assert_cmpuint(xmpp_sm_n_unacked(sm), ==, 0);
        xmpp_sm_free(sm);
}

static void test_backoff(void) {
        Backoff b = { .min_ms = 1000, .max_ms = 60000 };
        unsigned base = 1000;

        for (unsigned i = 0; i < 12; i++) {
                unsigned d = backoff_next_ms(&b, g_random_int());

                /* base * [0.75, 1.25): doubling from min_ms, capped at max_ms */
                g_assert_cmpuint(d, >=, base - base / 4);
                g_assert_cmpuint(d, <, base - base / 4 + base / 2);
                base = MIN(base * 2, 60000u);
        }
        g_assert_cmpuint(b.attempt, ==, 12);
        backoff_reset(&b);
        g_assert_cmpuint(backoff_next_ms(&b, 0), ==, 750);
        g_assert_cmpuint(backoff_next_ms(&b, 0), ==, 1500);
}

int main(int argc, char *argv[]) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/sm/ack", test_ack_reports_messages_in_order);
        g_test_add_func("/sm/resume", test_resend_after_resume);
        g_test_add_func("/sm/wrap", test_counter_wraps);
        g_test_add_func("/sm/handled", test_handled_waits_for_commit);
        g_test_add_func("/sm/resume-rewinds", test_resume_rewinds_to_handled);
        g_test_add_func("/sm/local", test_local_count);
        g_test_add_func("/backoff", test_backoff);
        return g_test_run();
}
