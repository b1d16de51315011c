/* SPDX-License-Identifier: MIT */

/* Messages acting on earlier ones (service/xmpp/actions.c): XEP-0424
 * retraction, XEP-0308 correction, XEP-0444 reactions; built and recognised.
 * And the XEP-0333 displayed marker we send. */

#include <string.h>
#include <glib.h>

#include "actions.h"

static XmlNode *parse(const char *xml) {
        XmlNode *node = NULL;
        g_assert_cmpint(xml_parse(xml, strlen(xml), NULL, &node), ==, 0);
        return node;
}

/* Serialised and parsed again, as the peer would see it. */
static XmlNode *round_trip(const XmlNode *node) {
        g_autofree char *xml = xml_serialize(node, NULL);
        return parse(xml);
}

#define MSG(inner) "<message xmlns='jabber:client' from='bob@x/a' type='chat'>" inner "</message>"

static void test_retract(void) {
        g_autoptr(XmlNode) built = xmpp_retract_new("bob@x", "s1", "orig-1");
        g_autoptr(XmlNode) back = round_trip(built);
        g_autoptr(XmlNode) v0 = parse(MSG("<apply-to xmlns='urn:xmpp:fasten:0' id='orig-0'>"
                                          "<retract xmlns='urn:xmpp:message-retract:0'/></apply-to>"));
        g_autoptr(XmlNode) empty = parse(MSG("<retract xmlns='urn:xmpp:message-retract:1' id=''/>"));
        g_autoptr(XmlNode) other = parse(MSG("<retract xmlns='urn:example:other' id='x'/><body>hi</body>"));
        g_autoptr(XmlNode) apply_other = parse(MSG("<apply-to xmlns='urn:xmpp:fasten:0' id='x'><other/></apply-to>"));

        g_assert_cmpstr(xmpp_retract_target(back), ==, "orig-1");
        g_assert_nonnull(xml_node_child(back, "store", "urn:xmpp:hints"));
        g_assert_nonnull(xml_node_child(back, "fallback", NS_FALLBACK));
        g_assert_cmpstr(xmpp_retract_target(v0), ==, "orig-0");
        g_assert_null(xmpp_retract_target(empty));
        g_assert_null(xmpp_retract_target(other));
        g_assert_null(xmpp_retract_target(apply_other));
        g_assert_null(xmpp_correction_target(back));
}

static void test_correction(void) {
        g_autoptr(XmlNode) built = xmpp_correction_new("bob@x", "s2", "orig-2", "fixed <text> & more");
        g_autoptr(XmlNode) back = round_trip(built);
        g_autofree char *long_id = g_strnfill(257, 'a');
        g_autofree char *xml = g_strdup_printf(MSG("<replace xmlns='urn:xmpp:message-correct:0' id='%s'/>"), long_id);
        g_autoptr(XmlNode) too_long = parse(xml);

        g_assert_cmpstr(xmpp_correction_target(back), ==, "orig-2");
        g_assert_cmpstr(xml_node_child_text(back, "body", "jabber:client"), ==, "fixed <text> & more");
        g_assert_null(xmpp_correction_target(too_long));
        g_assert_null(xmpp_retract_target(back));
}

static void test_displayed(void) {
        g_autoptr(XmlNode) built = xmpp_displayed_new("bob@x", "s4", "theirs-4");
        g_autoptr(XmlNode) back = round_trip(built);
        const XmlNode *marker = xml_node_child(back, "displayed", "urn:xmpp:chat-markers:0");

        g_assert_cmpstr(xml_node_attr(back, "to"), ==, "bob@x");
        g_assert_cmpstr(xml_node_attr(back, "id"), ==, "s4");
        g_assert_cmpstr(xml_node_attr(back, "type"), ==, "chat");
        g_assert_nonnull(marker);
        g_assert_cmpstr(xml_node_attr(marker, "id"), ==, "theirs-4");
        /* no body: without the hint the archive would not keep it */
        g_assert_nonnull(xml_node_child(back, "store", "urn:xmpp:hints"));
        g_assert_null(xml_node_child(back, "body", "jabber:client"));
        g_assert_null(xmpp_retract_target(back));
        g_assert_null(xmpp_correction_target(back));
}

static void test_reactions(void) {
        const char *const mine[] = { "👍", "❤️" };
        g_autoptr(XmlNode) built = xmpp_reactions_new("bob@x", "s3", "orig-3", mine, 2);
        g_autoptr(XmlNode) back = round_trip(built);
        g_autoptr(XmlNode) none_built = xmpp_reactions_new("bob@x", "s4", "orig-4", NULL, 0);
        g_autoptr(XmlNode) none = round_trip(none_built);
        g_autoptr(XmlNode) messy = parse(MSG(
                "<reactions xmlns='urn:xmpp:reactions:0' id='m'><reaction>🎉</reaction><reaction>🎉</reaction>"
                "<reaction></reaction><reaction>two words</reaction><other>x</other>"
                "<reaction xmlns='urn:example:x'>😮</reaction><reaction>😮</reaction></reactions>"));
        GString *many = g_string_new("<message xmlns='jabber:client' type='chat'>"
                                     "<reactions xmlns='urn:xmpp:reactions:0' id='lots'>");
        const char *got[XMPP_REACTIONS_MAX];
        size_t n = 99;

        g_assert_cmpstr(xmpp_reactions_parse(back, got, &n), ==, "orig-3");
        g_assert_cmpuint(n, ==, 2);
        g_assert_cmpstr(got[0], ==, "👍");
        g_assert_cmpstr(got[1], ==, "❤️");
        g_assert_cmpstr(xmpp_reactions_parse(none, got, &n), ==, "orig-4");
        g_assert_cmpuint(n, ==, 0);
        g_assert_cmpstr(xmpp_reactions_parse(messy, got, &n), ==, "m");
        g_assert_cmpuint(n, ==, 2);
        g_assert_cmpstr(got[0], ==, "🎉");
        g_assert_cmpstr(got[1], ==, "😮");

        /* at most XMPP_REACTIONS_MAX are taken */
        for (int i = 0; i < 40; i++) {
                char e[8];
                int len = g_unichar_to_utf8(0x1F600 + i, e);
                g_string_append_printf(many, "<reaction>%.*s</reaction>", len, e);
        }
        g_string_append(many, "</reactions></message>");
        g_autoptr(XmlNode) lots = parse(many->str);
        g_string_free(many, TRUE);
        g_assert_nonnull(xmpp_reactions_parse(lots, got, &n));
        g_assert_cmpuint(n, ==, XMPP_REACTIONS_MAX);

        g_assert_true(xmpp_reaction_valid("👋🏽"));
        g_assert_false(xmpp_reaction_valid(""));
        g_assert_false(xmpp_reaction_valid("a b"));
        g_assert_false(xmpp_reaction_valid("\x01"));
        g_assert_false(xmpp_reaction_valid("\xff"));
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/actions/retract", test_retract);
        g_test_add_func("/actions/correction", test_correction);
        g_test_add_func("/actions/reactions", test_reactions);
        g_test_add_func("/actions/displayed", test_displayed);
        return g_test_run();
}
