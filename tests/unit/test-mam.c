/* SPDX-License-Identifier: MIT */

/* Forwarded messages (service/xmpp/forward.c), XEP-0280 carbons
 * (carbons.c) and XEP-0313 archive queries and results (mam.c). */

#include <errno.h>
#include <string.h>
#include <glib.h>

#include "carbons.h"
#include "forward.h"
#include "mam.h"

static XmlNode *parse(const char *xml) {
        XmlNode *node = NULL;
        g_assert_cmpint(xml_parse(xml, strlen(xml), NULL, &node), ==, 0);
        return node;
}

#define CARBON(kind, inner) \
        "<message xmlns='jabber:client' from='alice@x' to='alice@x/imd'>" \
        "<" kind " xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>" inner \
        "</forwarded></" kind "></message>"
#define INNER "<message xmlns='jabber:client' from='bob@x/a' to='alice@x/phone' type='chat'><body>hi</body></message>"

static void test_carbons(void) {
        g_autoptr(XmlNode) received = parse(CARBON("received", INNER));
        g_autoptr(XmlNode) sent = parse(CARBON("sent", INNER));
        g_autoptr(XmlNode) plain = parse(INNER);
        g_autoptr(XmlNode) empty = parse(CARBON("received", ""));
        g_autoptr(XmlNode) two = parse(CARBON("sent", INNER INNER));
        g_autoptr(XmlNode) wrong_ns = parse(
                "<message xmlns='jabber:client'><received xmlns='urn:xmpp:carbons:2'>"
                "<forwarded xmlns='urn:xmpp:forward:1'>" INNER "</forwarded></received></message>");
        g_autoptr(XmlNode) both = parse(
                "<message xmlns='jabber:client'><received xmlns='urn:xmpp:carbons:2'><forwarded "
                "xmlns='urn:xmpp:forward:0'>" INNER "</forwarded></received><sent xmlns='urn:xmpp:carbons:2'>"
                "<forwarded xmlns='urn:xmpp:forward:0'>" INNER "</forwarded></sent></message>");
        const XmlNode *inner = NULL;
        bool is_sent = true;

        g_assert_cmpint(xmpp_carbons_parse(received, &is_sent, &inner), ==, 0);
        g_assert_false(is_sent);
        g_assert_nonnull(inner);
        g_assert_cmpstr(xml_node_attr(inner, "from"), ==, "bob@x/a");
        g_assert_cmpstr(xml_node_child_text(inner, "body", "jabber:client"), ==, "hi");

        g_assert_cmpint(xmpp_carbons_parse(sent, &is_sent, &inner), ==, 0);
        g_assert_true(is_sent);

        inner = NULL;
        g_assert_cmpint(xmpp_carbons_parse(plain, &is_sent, &inner), ==, -ENOENT);
        g_assert_cmpint(xmpp_carbons_parse(empty, &is_sent, &inner), ==, -EBADMSG);
        g_assert_cmpint(xmpp_carbons_parse(two, &is_sent, &inner), ==, -EBADMSG);
        g_assert_cmpint(xmpp_carbons_parse(wrong_ns, &is_sent, &inner), ==, -EBADMSG);
        g_assert_cmpint(xmpp_carbons_parse(both, &is_sent, &inner), ==, -EBADMSG);
        g_assert_null(inner);   /* written only on success */
}

static void test_carbons_enable(void) {
        g_autoptr(XmlNode) iq = xmpp_carbons_enable_new("c1");
        g_autofree char *xml = xml_serialize(iq, NULL);
        g_assert_cmpstr(xml, ==, "<iq xmlns=\"jabber:client\" type=\"set\" id=\"c1\"><enable xmlns=\"urn:xmpp:carbons:2\"/></iq>");
}

static void test_forwarded(void) {
        g_autoptr(XmlNode) fwd = parse(
                "<forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='2024-01-02T03:04:05Z'/>"
                INNER "</forwarded>");
        g_autoptr(XmlNode) no_message = parse(
                "<forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:server'/></forwarded>");
        const XmlNode *msg = NULL;
        const char *stamp = NULL;

        g_assert_cmpint(xmpp_forwarded_unwrap(fwd, &msg, &stamp), ==, 0);
        g_assert_cmpstr(stamp, ==, "2024-01-02T03:04:05Z");
        g_assert_cmpstr(xml_node_attr(msg, "to"), ==, "alice@x/phone");
        g_assert_cmpint(xmpp_forwarded_unwrap(no_message, &msg, &stamp), ==, -EBADMSG);
        g_assert_cmpint(xmpp_forwarded_unwrap(NULL, &msg, &stamp), ==, -EBADMSG);
}

static void test_mam_query(void) {
        g_autoptr(XmlNode) after = xmpp_mam_query_new("i1", "q1", XMPP_MAM_AFTER, "A-7", 100);
        g_autoptr(XmlNode) start = xmpp_mam_query_new("i2", "q2", XMPP_MAM_AFTER, NULL, 50);
        g_autoptr(XmlNode) newest = xmpp_mam_query_new("i3", "q3", XMPP_MAM_NEWEST, "ignored", 100);
        g_autofree char *a = xml_serialize(after, NULL);
        g_autofree char *s = xml_serialize(start, NULL);
        g_autofree char *n = xml_serialize(newest, NULL);

        g_assert_cmpstr(a, ==, "<iq xmlns=\"jabber:client\" type=\"set\" id=\"i1\"><query xmlns=\"urn:xmpp:mam:2\" queryid=\"q1\">"
                               "<set xmlns=\"http://jabber.org/protocol/rsm\"><max>100</max><after>A-7</after></set>"
                               "</query></iq>");
        g_assert_cmpstr(s, ==, "<iq xmlns=\"jabber:client\" type=\"set\" id=\"i2\"><query xmlns=\"urn:xmpp:mam:2\" queryid=\"q2\">"
                               "<set xmlns=\"http://jabber.org/protocol/rsm\"><max>50</max></set></query></iq>");
        g_assert_cmpstr(n, ==, "<iq xmlns=\"jabber:client\" type=\"set\" id=\"i3\"><query xmlns=\"urn:xmpp:mam:2\" queryid=\"q3\">"
                               "<set xmlns=\"http://jabber.org/protocol/rsm\"><max>1</max><before/></set></query></iq>");
}

#define RESULT(attrs, fwd) \
        "<message xmlns='jabber:client' to='alice@x/imd'><result xmlns='urn:xmpp:mam:2' " attrs ">" fwd \
        "</result></message>"
#define FWD "<forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='2024-01-02T03:04:05Z'/>" \
        INNER "</forwarded>"

static void test_mam_result(void) {
        g_autoptr(XmlNode) ok = parse(RESULT("queryid='q1' id='A-8'", FWD));
        g_autoptr(XmlNode) no_queryid = parse(RESULT("id='A-8'", FWD));
        g_autoptr(XmlNode) no_id = parse(RESULT("queryid='q1'", FWD));
        g_autoptr(XmlNode) empty_id = parse(RESULT("queryid='q1' id=''", FWD));
        g_autoptr(XmlNode) no_fwd = parse(RESULT("queryid='q1' id='A-8'", ""));
        g_autoptr(XmlNode) plain = parse(INNER);
        g_autofree char *long_id = g_strnfill(XMPP_MAM_ID_MAX + 1, 'x');
        g_autofree char *long_xml = g_strdup_printf(RESULT("queryid='q1' id='%s'", FWD), long_id);
        g_autoptr(XmlNode) too_long = parse(long_xml);
        XmppMamResult r = { 0 };

        g_assert_cmpint(xmpp_mam_parse_result(ok, &r), ==, 0);
        g_assert_cmpstr(r.query_id, ==, "q1");
        g_assert_cmpstr(r.id, ==, "A-8");
        g_assert_cmpstr(r.stamp, ==, "2024-01-02T03:04:05Z");
        g_assert_cmpstr(xml_node_attr(r.message, "from"), ==, "bob@x/a");

        g_assert_cmpint(xmpp_mam_parse_result(no_queryid, &r), ==, 0);
        g_assert_null(r.query_id);      /* the stream refuses it: not our query */

        g_assert_cmpint(xmpp_mam_parse_result(plain, &r), ==, -ENOENT);
        g_assert_cmpint(xmpp_mam_parse_result(no_id, &r), ==, -EBADMSG);
        g_assert_cmpint(xmpp_mam_parse_result(empty_id, &r), ==, -EBADMSG);
        g_assert_cmpint(xmpp_mam_parse_result(no_fwd, &r), ==, -EBADMSG);
        g_assert_cmpint(xmpp_mam_parse_result(too_long, &r), ==, -EBADMSG);
}

static void test_mam_fin(void) {
        g_autoptr(XmlNode) done = parse(
                "<iq xmlns='jabber:client' type='result' id='i1'><fin xmlns='urn:xmpp:mam:2' complete='true'>"
                "<set xmlns='http://jabber.org/protocol/rsm'><first>A-1</first><last>A-9</last></set></fin></iq>");
        g_autoptr(XmlNode) more = parse(
                "<iq xmlns='jabber:client' type='result' id='i1'><fin xmlns='urn:xmpp:mam:2'>"
                "<set xmlns='http://jabber.org/protocol/rsm'><last>A-5</last></set></fin></iq>");
        g_autoptr(XmlNode) empty = parse(
                "<iq xmlns='jabber:client' type='result' id='i1'><fin xmlns='urn:xmpp:mam:2' complete='true'>"
                "<set xmlns='http://jabber.org/protocol/rsm'><count>0</count></set></fin></iq>");
        g_autoptr(XmlNode) no_fin = parse("<iq xmlns='jabber:client' type='result' id='i1'/>");
        g_autoptr(XmlNode) wrong_ns = parse(
                "<iq xmlns='jabber:client' type='result' id='i1'><fin xmlns='urn:xmpp:mam:1' complete='true'/></iq>");
        bool complete = false;
        const char *last = "unset";

        g_assert_cmpint(xmpp_mam_parse_fin(done, &complete, NULL, &last), ==, 0);
        g_assert_true(complete);
        g_assert_cmpstr(last, ==, "A-9");
        g_assert_cmpint(xmpp_mam_parse_fin(more, &complete, NULL, &last), ==, 0);
        g_assert_false(complete);
        g_assert_cmpstr(last, ==, "A-5");
        g_assert_cmpint(xmpp_mam_parse_fin(empty, &complete, NULL, &last), ==, 0);
        g_assert_true(complete);
        g_assert_null(last);

        last = "unset";
        g_assert_cmpint(xmpp_mam_parse_fin(no_fin, &complete, NULL, &last), ==, -EBADMSG);
        g_assert_cmpint(xmpp_mam_parse_fin(wrong_ns, &complete, NULL, &last), ==, -EBADMSG);
        g_assert_cmpstr(last, ==, "unset");
}

int main(int argc, char *argv[]) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/carbons/parse", test_carbons);
        g_test_add_func("/carbons/enable", test_carbons_enable);
        g_test_add_func("/forward/unwrap", test_forwarded);
        g_test_add_func("/mam/query", test_mam_query);
        g_test_add_func("/mam/result", test_mam_result);
        g_test_add_func("/mam/fin", test_mam_fin);
        return g_test_run();
}
