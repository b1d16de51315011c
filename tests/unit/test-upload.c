/* SPDX-License-Identifier: MIT */

/* XEP-0363 HTTP File Upload and the XEP-0030 lookups that find the service
 * (service/xmpp/upload.c), and the outgoing side of media in a message
 * (xmpp_media_append() in service/xmpp/media.c): built, and answers parsed,
 * friendly ones from the XEP and from Prosody and hostile ones. */

#include <errno.h>
#include <string.h>
#include <glib.h>

#include "media.h"
#include "upload.h"

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

static void test_disco_builders(void) {
        g_autoptr(XmlNode) items = xmpp_disco_items_new("montague.tld");
        g_autoptr(XmlNode) info = xmpp_disco_info_new("upload.montague.tld");
        g_autofree char *i = xml_serialize(items, NULL);
        g_autofree char *f = xml_serialize(info, NULL);

        g_assert_cmpstr(i, ==, "<iq xmlns=\"jabber:client\" type=\"get\" to=\"montague.tld\">"
                               "<query xmlns=\"http://jabber.org/protocol/disco#items\"/></iq>");
        g_assert_cmpstr(f, ==, "<iq xmlns=\"jabber:client\" type=\"get\" to=\"upload.montague.tld\">"
                               "<query xmlns=\"http://jabber.org/protocol/disco#info\"/></iq>");
}

#define ITEMS(inner) \
        "<iq xmlns='jabber:client' from='montague.tld' id='step_01' to='romeo@montague.tld/garden' type='result'>" \
        "<query xmlns='http://jabber.org/protocol/disco#items'>" inner "</query></iq>"

static void test_disco_items(void) {
        /* XEP-0363 example 2 */
        g_autoptr(XmlNode) xep = parse(ITEMS(
                "\n    <item jid='upload.montague.tld' name='HTTP File Upload' />"
                "\n    <item jid='conference.montague.tld' name='Chatroom Service' />\n  "));
        g_autoptr(XmlNode) hostile = parse(ITEMS(
                "<item jid=''/><item name='no jid'/><item jid='@upload.montague.tld'/>"
                "<item jid='bad host.montague.tld'/><item jid='a@b@c'/><item jid='upload..montague.tld'/>"
                "<item jid='-upload.montague.tld'/><item jid='montague.tld/'/>"
                "<item jid='&lt;script&gt;'/><item xmlns='urn:example:other' jid='other.montague.tld'/>"
                "<other jid='other2.montague.tld'/>"
                "<item jid='share.montague.tld' node='files'/><item jid='pubsub.montague.tld/x'/>"));
        g_autoptr(XmlNode) empty = parse(ITEMS(""));
        g_autoptr(XmlNode) no_query = parse("<iq xmlns='jabber:client' type='result' id='step_01'/>");
        g_autoptr(XmlNode) wrong_ns = parse(
                "<iq xmlns='jabber:client' type='result'><query xmlns='http://jabber.org/protocol/disco#info'>"
                "<item jid='upload.montague.tld'/></query></iq>");
        GString *many = g_string_new(ITEMS(""));
        g_auto(GStrv) jids = NULL;

        jids = xmpp_disco_parse_items(xep);
        g_assert_cmpuint(g_strv_length(jids), ==, 2);
        g_assert_cmpstr(jids[0], ==, "upload.montague.tld");
        g_assert_cmpstr(jids[1], ==, "conference.montague.tld");
        g_clear_pointer(&jids, g_strfreev);

        jids = xmpp_disco_parse_items(hostile);
        g_assert_cmpuint(g_strv_length(jids), ==, 2);
        g_assert_cmpstr(jids[0], ==, "share.montague.tld");
        g_assert_cmpstr(jids[1], ==, "pubsub.montague.tld/x");   /* as given */
        g_clear_pointer(&jids, g_strfreev);

        jids = xmpp_disco_parse_items(empty);
        g_assert_nonnull(jids);
        g_assert_null(jids[0]);
        g_clear_pointer(&jids, g_strfreev);
        jids = xmpp_disco_parse_items(no_query);
        g_assert_nonnull(jids);
        g_assert_null(jids[0]);
        g_clear_pointer(&jids, g_strfreev);
        jids = xmpp_disco_parse_items(wrong_ns);
        g_assert_nonnull(jids);
        g_assert_null(jids[0]);
        g_clear_pointer(&jids, g_strfreev);

        /* more items than are looked at: the first XMPP_DISCO_ITEMS_MAX */
        g_string_truncate(many, many->len - strlen("</query></iq>"));
        for (unsigned k = 0; k < XMPP_DISCO_ITEMS_MAX + 8; k++)
                g_string_append_printf(many, "<item jid='s%u.montague.tld'/>", k);
        g_string_append(many, "</query></iq>");
        {
                g_autoptr(XmlNode) lots = parse(many->str);
                g_autofree char *last = g_strdup_printf("s%u.montague.tld", XMPP_DISCO_ITEMS_MAX - 1);
                jids = xmpp_disco_parse_items(lots);
                g_assert_cmpuint(g_strv_length(jids), ==, XMPP_DISCO_ITEMS_MAX);
                g_assert_cmpstr(jids[0], ==, "s0.montague.tld");
                g_assert_cmpstr(jids[XMPP_DISCO_ITEMS_MAX - 1], ==, last);
                g_clear_pointer(&jids, g_strfreev);
        }
        g_string_free(many, TRUE);
}

#define INFO(inner) \
        "<iq xmlns='jabber:client' from='upload.montague.tld' id='step_02' to='romeo@montague.tld/garden' " \
        "type='result'><query xmlns='http://jabber.org/protocol/disco#info'>" inner "</query></iq>"
#define IDENTITY "<identity category='store' type='file' name='HTTP File Upload'/>"
#define FEATURE "<feature var='urn:xmpp:http:upload:0'/>"
#define FORM(form_type, max) \
        "<x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' type='hidden'><value>" form_type \
        "</value></field><field var='max-file-size'><value>" max "</value></field></x>"

static void test_service(void) {
        /* XEP-0363 example 4: 5 MiB */
        g_autoptr(XmlNode) xep = parse(INFO(
                "\n    <identity category='store'\n              type='file'\n              name='HTTP File Upload' />"
                "\n    <feature var='urn:xmpp:http:upload:0' />"
                "\n    <x type='result' xmlns='jabber:x:data'>"
                "\n      <field var='FORM_TYPE' type='hidden'>"
                "\n        <value>urn:xmpp:http:upload:0</value>\n      </field>"
                "\n      <field var='max-file-size'>\n        <value>5242880</value>\n      </field>"
                "\n    </x>\n  "));
        /* Prosody 0.12 mod_http_file_share with its default 10 MiB limit */
        g_autoptr(XmlNode) prosody = parse(
                "<iq xmlns='jabber:client' type='result' id='lx7' from='share.example.org' to='juliet@example.org/imd'>"
                "<query xmlns='http://jabber.org/protocol/disco#info'>"
                "<identity type='file' name='HTTP File Upload' category='store'/>"
                "<feature var='http://jabber.org/protocol/disco#info'/>"
                "<feature var='http://jabber.org/protocol/disco#items'/>"
                "<feature var='urn:xmpp:http:upload:0'/>"
                "<x xmlns='jabber:x:data' type='result'>"
                "<field type='hidden' var='FORM_TYPE'><value>urn:xmpp:http:upload:0</value></field>"
                "<field type='text-single' var='max-file-size'>"
                "<validate xmlns='http://jabber.org/protocol/xdata-validate' datatype='xs:integer'/>"
                "<value>10485760</value></field></x></query></iq>");
        /* prosody-modules' mod_http_upload: the legacy form too, first */
        g_autoptr(XmlNode) legacy_first = parse(INFO(
                IDENTITY "<feature var='urn:xmpp:http:upload'/>" FEATURE
                FORM("urn:xmpp:http:upload", "1") FORM("urn:xmpp:http:upload:0", "104857600")));
        g_autoptr(XmlNode) legacy_only = parse(INFO(
                IDENTITY "<feature var='urn:xmpp:http:upload'/>" FORM("urn:xmpp:http:upload", "1000")));
        g_autoptr(XmlNode) no_form = parse(INFO(IDENTITY FEATURE));
        g_autoptr(XmlNode) form_only = parse(INFO(IDENTITY FORM("urn:xmpp:http:upload:0", "5242880")));
        g_autoptr(XmlNode) other_form = parse(INFO(FEATURE FORM("urn:example:other", "5242880")));
        g_autoptr(XmlNode) no_form_type = parse(INFO(
                FEATURE "<x xmlns='jabber:x:data' type='result'><field var='max-file-size'><value>7</value></field></x>"));
        g_autoptr(XmlNode) muc = parse(INFO(
                "<identity category='conference' type='text' name='Chatrooms'/>"
                "<feature var='http://jabber.org/protocol/muc'/>"));
        g_autoptr(XmlNode) feature_wrong_ns = parse(INFO("<feature xmlns='urn:example:x' var='urn:xmpp:http:upload:0'/>"));
        g_autoptr(XmlNode) items_not_info = parse(
                "<iq xmlns='jabber:client' type='result'><query xmlns='http://jabber.org/protocol/disco#items'>"
                FEATURE "</query></iq>");
        g_autoptr(XmlNode) no_query = parse("<iq xmlns='jabber:client' type='result'/>");
        static const char *const bad_max[] = {
                "", "ten", "-1", "0", "1e6", "0x10", " 100", "100 ", "100.5", "18446744073709551616",
        };
        uint64_t max = 42;

        g_assert_true(xmpp_upload_parse_service(xep, &max));
        g_assert_cmpuint(max, ==, 5242880);
        max = 42;
        g_assert_true(xmpp_upload_parse_service(prosody, &max));
        g_assert_cmpuint(max, ==, 10485760);
        max = 42;
        g_assert_true(xmpp_upload_parse_service(legacy_first, &max));
        g_assert_cmpuint(max, ==, 104857600);
        max = 42;
        g_assert_true(xmpp_upload_parse_service(no_form, &max));
        g_assert_cmpuint(max, ==, 0);
        max = 42;
        g_assert_true(xmpp_upload_parse_service(other_form, &max));
        g_assert_cmpuint(max, ==, 0);
        max = 42;
        g_assert_true(xmpp_upload_parse_service(no_form_type, &max));
        g_assert_cmpuint(max, ==, 0);

        /* not a service: whatever the form says, max 0 */
        max = 42;
        g_assert_false(xmpp_upload_parse_service(form_only, &max));
        g_assert_cmpuint(max, ==, 0);
        max = 42;
        g_assert_false(xmpp_upload_parse_service(legacy_only, &max));
        g_assert_cmpuint(max, ==, 0);
        max = 42;
        g_assert_false(xmpp_upload_parse_service(muc, &max));
        g_assert_cmpuint(max, ==, 0);
        max = 42;
        g_assert_false(xmpp_upload_parse_service(feature_wrong_ns, &max));
        g_assert_cmpuint(max, ==, 0);
        max = 42;
        g_assert_false(xmpp_upload_parse_service(items_not_info, &max));
        g_assert_cmpuint(max, ==, 0);
        max = 42;
        g_assert_false(xmpp_upload_parse_service(no_query, &max));
        g_assert_cmpuint(max, ==, 0);

        /* a limit that is not a positive decimal number is no limit */
        for (size_t k = 0; k < G_N_ELEMENTS(bad_max); k++) {
                g_autofree char *xml = g_strdup_printf(INFO(IDENTITY FEATURE FORM("urn:xmpp:http:upload:0", "%s")),
                                                       bad_max[k]);
                g_autoptr(XmlNode) n = parse(xml);
                max = 42;
                g_assert_true(xmpp_upload_parse_service(n, &max));
                g_assert_cmpuint(max, ==, 0);
        }
        {
                g_autoptr(XmlNode) n = parse(INFO(FEATURE FORM("urn:xmpp:http:upload:0", "18446744073709551615")));
                g_assert_true(xmpp_upload_parse_service(n, &max));
                g_assert_cmpuint(max, ==, G_MAXUINT64);
        }
}

static void test_slot_request(void) {
        /* XEP-0363 example 5 */
        g_autoptr(XmlNode) xep = xmpp_upload_slot_request_new("upload.montague.tld", "très cool.jpg", 23456, "image/jpeg");
        g_autoptr(XmlNode) no_mime = xmpp_upload_slot_request_new("upload.montague.tld", "notes", 0, NULL);
        g_autoptr(XmlNode) nasty = xmpp_upload_slot_request_new("upload.montague.tld", "a&b <c>'\".txt", G_MAXUINT64,
                                                                "text/plain");
        g_autoptr(XmlNode) back = round_trip(nasty);
        g_autofree char *x = xml_serialize(xep, NULL);
        g_autofree char *n = xml_serialize(no_mime, NULL);
        g_autofree char *s = xml_serialize(nasty, NULL);
        const XmlNode *request = xml_node_child(back, "request", NS_UPLOAD);

        g_assert_cmpstr(x, ==, "<iq xmlns=\"jabber:client\" type=\"get\" to=\"upload.montague.tld\">"
                               "<request xmlns=\"urn:xmpp:http:upload:0\" filename=\"très cool.jpg\" size=\"23456\" "
                               "content-type=\"image/jpeg\"/></iq>");
        g_assert_cmpstr(n, ==, "<iq xmlns=\"jabber:client\" type=\"get\" to=\"upload.montague.tld\">"
                               "<request xmlns=\"urn:xmpp:http:upload:0\" filename=\"notes\" size=\"0\"/></iq>");
        g_assert_cmpstr(s, ==, "<iq xmlns=\"jabber:client\" type=\"get\" to=\"upload.montague.tld\">"
                               "<request xmlns=\"urn:xmpp:http:upload:0\" filename=\"a&amp;b &lt;c&gt;&apos;&quot;.txt\" "
                               "size=\"18446744073709551615\" content-type=\"text/plain\"/></iq>");

        /* what the service reads */
        g_assert_cmpstr(back->name, ==, "iq");
        g_assert_cmpstr(xml_node_attr(back, "type"), ==, "get");
        g_assert_cmpstr(xml_node_attr(back, "to"), ==, "upload.montague.tld");
        g_assert_nonnull(request);
        g_assert_cmpstr(xml_node_attr(request, "filename"), ==, "a&b <c>'\".txt");
        g_assert_cmpstr(xml_node_attr(request, "size"), ==, "18446744073709551615");
        g_assert_cmpstr(xml_node_attr(request, "content-type"), ==, "text/plain");
        g_assert_null(xml_node_attr(xml_node_child(no_mime, "request", NS_UPLOAD), "content-type"));
}

#define SLOT(put_url, headers, get_url) \
        "<iq xmlns='jabber:client' from='upload.montague.tld' id='step_03' to='romeo@montague.tld/garden' " \
        "type='result'><slot xmlns='urn:xmpp:http:upload:0'><put url='" put_url "'>" headers "</put>" \
        "<get url='" get_url "'/></slot></iq>"
#define PUT_URL "https://upload.montague.tld/4a771ac1-f0b2-4a4a-9700-f2a26fa2bb67/tr%C3%A8s%20cool.jpg"
#define GET_URL "https://download.montague.tld/4a771ac1-f0b2-4a4a-9700-f2a26fa2bb67/tr%C3%A8s%20cool.jpg"
/* for format strings */
#define PLAIN_GET_URL "https://download.montague.tld/g.jpg"

static void test_slot(void) {
        /* XEP-0363 example 6, with the third allowed header */
        g_autoptr(XmlNode) xep = parse(
                "<iq from='upload.montague.tld'\n    id='step_03'\n    to='romeo@montague.tld/garden'\n"
                "    type='result' xmlns='jabber:client'>\n"
                "  <slot xmlns='urn:xmpp:http:upload:0'>\n"
                "    <put url='" PUT_URL "'>\n"
                "      <header name='Authorization'>Basic Base64String==</header>\n"
                "      <header name='Cookie'>foo=bar; user=romeo</header>\n"
                "      <header name='Expires'>Tue, 03 Dec 2024 23:42:05 GMT</header>\n"
                "    </put>\n"
                "    <get url='" GET_URL "' />\n"
                "  </slot>\n</iq>");
        /* Prosody 0.12 mod_http_file_share: <get/> first, a bearer token */
        g_autoptr(XmlNode) prosody = parse(
                "<iq xmlns='jabber:client' type='result' id='u1' from='share.example.org' to='juliet@example.org/imd'>"
                "<slot xmlns='urn:xmpp:http:upload:0'>"
                "<get url='https://share.example.org/file_share/Lp3XbSGnTi2fF8x1/cat.png'/>"
                "<put url='https://share.example.org/file_share/Lp3XbSGnTi2fF8x1/cat.png'>"
                "<header name='Authorization'>Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJqdWxpZXQifQ.c2ln</header>"
                "</put></slot></iq>");
        g_autoptr(XmlNode) bare = parse(SLOT("http://upload.example/p", "", "HTTP://upload.example/g"));
        g_autoptr(XmlNode) lower_case = parse(SLOT(PUT_URL, "<header name='cookie'>a=b</header>", GET_URL));
        XmppUploadSlot s = { 0 };

        g_assert_cmpint(xmpp_upload_parse_slot(xep, &s), ==, 0);
        g_assert_cmpstr(s.put_url, ==, PUT_URL);
        g_assert_cmpstr(s.get_url, ==, GET_URL);
        g_assert_cmpuint(s.n_headers, ==, 3);
        g_assert_cmpstr(s.header_names[0], ==, "Authorization");
        g_assert_cmpstr(s.header_values[0], ==, "Basic Base64String==");
        g_assert_cmpstr(s.header_names[1], ==, "Cookie");
        g_assert_cmpstr(s.header_values[1], ==, "foo=bar; user=romeo");
        g_assert_cmpstr(s.header_names[2], ==, "Expires");
        g_assert_cmpstr(s.header_values[2], ==, "Tue, 03 Dec 2024 23:42:05 GMT");
        xmpp_upload_slot_clear(&s);
        g_assert_null(s.put_url);
        g_assert_cmpuint(s.n_headers, ==, 0);

        g_assert_cmpint(xmpp_upload_parse_slot(prosody, &s), ==, 0);
        g_assert_cmpstr(s.put_url, ==, "https://share.example.org/file_share/Lp3XbSGnTi2fF8x1/cat.png");
        g_assert_cmpstr(s.get_url, ==, "https://share.example.org/file_share/Lp3XbSGnTi2fF8x1/cat.png");
        g_assert_cmpuint(s.n_headers, ==, 1);
        g_assert_cmpstr(s.header_names[0], ==, "Authorization");
        g_assert_cmpstr(s.header_values[0], ==, "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJqdWxpZXQifQ.c2ln");
        xmpp_upload_slot_clear(&s);

        g_assert_cmpint(xmpp_upload_parse_slot(bare, &s), ==, 0);
        g_assert_cmpstr(s.put_url, ==, "http://upload.example/p");
        g_assert_cmpstr(s.get_url, ==, "HTTP://upload.example/g");
        g_assert_cmpuint(s.n_headers, ==, 0);
        xmpp_upload_slot_clear(&s);

        g_assert_cmpint(xmpp_upload_parse_slot(lower_case, &s), ==, 0);
        g_assert_cmpuint(s.n_headers, ==, 1);
        g_assert_cmpstr(s.header_names[0], ==, "cookie");
        g_assert_cmpstr(s.header_values[0], ==, "a=b");
        xmpp_upload_slot_clear(&s);
}

static void test_slot_refused(void) {
        static const char *const bad[] = {
                SLOT("ftp://upload.montague.tld/f.jpg", "", GET_URL),
                SLOT(PUT_URL, "", "ftp://download.montague.tld/f.jpg"),
                SLOT("javascript:alert(1)", "", GET_URL),
                SLOT(PUT_URL, "", "javascript:alert(document.cookie)"),
                SLOT("file:///etc/passwd", "", GET_URL),
                SLOT(PUT_URL, "", "file:///home/juliet/.ssh/id_ed25519"),
                SLOT(PUT_URL, "", "data:text/html,&lt;b&gt;x&lt;/b&gt;"),
                SLOT(PUT_URL, "", "xmpp:juliet@example.org"),
                SLOT(PUT_URL, "", "//download.montague.tld/f.jpg"),
                SLOT(PUT_URL, "", " https://download.montague.tld/f.jpg"),
                SLOT("https://upload.montague.tld/a b.jpg", "", GET_URL),
                SLOT(PUT_URL, "", "https://download.montague.tld/a b.jpg"),
                /* a literal newline in an attribute reaches us as a space */
                SLOT("https://upload.montague.tld/a\nb.jpg", "", GET_URL),
                SLOT("https://upload.montague.tld/a&#10;b.jpg", "", GET_URL),
                SLOT(PUT_URL, "", "https://download.montague.tld/a&#13;&#10;Host: evil.example"),
                SLOT(PUT_URL, "", "https://download.montague.tld/a&#9;b"),
                SLOT(PUT_URL, "", "https://download.montague.tld/a\x7f" "b"),
                SLOT("", "", GET_URL),
                SLOT(PUT_URL, "", ""),
                /* no <get/>, no <put/>, no url */
                "<iq xmlns='jabber:client' type='result'><slot xmlns='urn:xmpp:http:upload:0'>"
                "<put url='" PUT_URL "'><header name='Authorization'>Basic x</header></put></slot></iq>",
                "<iq xmlns='jabber:client' type='result'><slot xmlns='urn:xmpp:http:upload:0'>"
                "<get url='" GET_URL "'/></slot></iq>",
                "<iq xmlns='jabber:client' type='result'><slot xmlns='urn:xmpp:http:upload:0'>"
                "<put/><get url='" GET_URL "'/></slot></iq>",
                "<iq xmlns='jabber:client' type='result'><slot xmlns='urn:xmpp:http:upload:0'>"
                "<put url='" PUT_URL "'/><get/></slot></iq>",
                "<iq xmlns='jabber:client' type='result'><slot xmlns='urn:xmpp:http:upload:0'>"
                "<put url='" PUT_URL "'/><get xmlns='urn:example:x' url='" GET_URL "'/></slot></iq>",
                "<iq xmlns='jabber:client' type='result'><slot xmlns='urn:xmpp:http:upload'>"
                "<put url='" PUT_URL "'/><get url='" GET_URL "'/></slot></iq>",
                "<iq xmlns='jabber:client' type='result'><put xmlns='urn:xmpp:http:upload:0' url='" PUT_URL "'/>"
                "<get xmlns='urn:xmpp:http:upload:0' url='" GET_URL "'/></iq>",
                "<iq xmlns='jabber:client' type='result'/>",
        };
        static char sentinel[] = "untouched";

        for (size_t k = 0; k < G_N_ELEMENTS(bad); k++) {
                g_autoptr(XmlNode) n = parse(bad[k]);
                XmppUploadSlot s = { .put_url = sentinel, .n_headers = 7 };
                g_assert_cmpint(xmpp_upload_parse_slot(n, &s), ==, -EPROTO);
                g_assert_true(s.put_url == sentinel);    /* written only on success */
                g_assert_null(s.get_url);
                g_assert_cmpuint(s.n_headers, ==, 7);
        }
        {
                /* one byte over the limit */
                GString *url = g_string_new("https://upload.montague.tld/");
                g_autofree char *xml = NULL;
                g_autoptr(XmlNode) n = NULL;
                XmppUploadSlot s = { .put_url = sentinel };

                while (url->len < XMPP_MEDIA_URL_MAX)
                        g_string_append_c(url, 'a');
                xml = g_strdup_printf(SLOT("%s", "", PLAIN_GET_URL), url->str);
                n = parse(xml);
                g_assert_cmpint(xmpp_upload_parse_slot(n, &s), ==, 0);
                g_assert_cmpuint(strlen(s.put_url), ==, XMPP_MEDIA_URL_MAX);
                xmpp_upload_slot_clear(&s);

                g_clear_pointer(&n, xml_node_free);
                g_clear_pointer(&xml, g_free);
                g_string_append_c(url, 'a');
                xml = g_strdup_printf(SLOT("%s", "", PLAIN_GET_URL), url->str);
                n = parse(xml);
                s = (XmppUploadSlot) { .put_url = sentinel };
                g_assert_cmpint(xmpp_upload_parse_slot(n, &s), ==, -EPROTO);
                g_assert_true(s.put_url == sentinel);
                g_string_free(url, TRUE);
        }
}

static void test_slot_headers(void) {
        /* older revisions of XEP-0363 had a Host header in the slot example */
        g_autoptr(XmlNode) not_allowed = parse(SLOT(PUT_URL,
                "<header name='Authorization'>Basic Base64String==</header>"
                "<header name='Host'>montague.tld</header>"
                "<header name='X-Evil'>1</header>"
                "<header name='Content-Type'>text/html</header>"
                "<header name='Content-Length'>0</header>"
                "<header name='Transfer-Encoding'>chunked</header>"
                "<header name='Authorization '>Basic padded</header>"
                "<header name='Cookie&#13;&#10;X-Evil'>1</header>"
                "<header>no name</header>"
                "<header xmlns='urn:example:x' name='Cookie'>other namespace</header>"
                "<cookie name='Cookie'>not a header</cookie>", GET_URL));
        g_autoptr(XmlNode) smuggling = parse(SLOT(PUT_URL,
                "<header name='Authorization'>Basic x&#13;&#10;Host: evil.example</header>"
                "<header name='Cookie'>a=b&#10;X-Evil: 1</header>"
                "<header name='Expires'>Tue, 03 Dec 2024&#13;23:42:05 GMT</header>"
                "<header name='Cookie'>tab&#9;inside</header>"
                "<header name='Cookie'>del \x7f</header>"
                "<header name='Cookie'>c=d</header>", GET_URL));
        g_autoptr(XmlNode) too_many = parse(SLOT(PUT_URL,
                "<header name='Authorization'>Basic one</header>"
                "<header name='X-Evil'>dropped, not counted</header>"
                "<header name='Cookie'>two=2</header>"
                "<header name='Expires'>Tue, 03 Dec 2024 23:42:05 GMT</header>"
                "<header name='Cookie'>four=4</header>"
                "<header name='Authorization'>Basic five</header>", GET_URL));
        g_autofree char *long_value = g_strnfill(4097, 'v');
        g_autofree char *long_xml = g_strdup_printf(SLOT("https://upload.montague.tld/p.jpg",
                "<header name='Cookie'>%s</header><header name='Authorization'>%.4096s</header>", PLAIN_GET_URL),
                long_value, long_value);
        g_autoptr(XmlNode) long_values = parse(long_xml);
        XmppUploadSlot s = { 0 };

        g_assert_cmpint(xmpp_upload_parse_slot(not_allowed, &s), ==, 0);
        g_assert_cmpuint(s.n_headers, ==, 1);
        g_assert_cmpstr(s.header_names[0], ==, "Authorization");
        g_assert_cmpstr(s.header_values[0], ==, "Basic Base64String==");
        g_assert_null(s.header_names[1]);
        xmpp_upload_slot_clear(&s);

        /* a line break (or any control character) drops the header, not the slot */
        g_assert_cmpint(xmpp_upload_parse_slot(smuggling, &s), ==, 0);
        g_assert_cmpstr(s.put_url, ==, PUT_URL);
        g_assert_cmpuint(s.n_headers, ==, 1);
        g_assert_cmpstr(s.header_names[0], ==, "Cookie");
        g_assert_cmpstr(s.header_values[0], ==, "c=d");
        xmpp_upload_slot_clear(&s);

        g_assert_cmpint(xmpp_upload_parse_slot(too_many, &s), ==, 0);
        g_assert_cmpuint(s.n_headers, ==, XMPP_UPLOAD_HEADERS_MAX);
        g_assert_cmpstr(s.header_names[0], ==, "Authorization");
        g_assert_cmpstr(s.header_values[0], ==, "Basic one");
        g_assert_cmpstr(s.header_names[1], ==, "Cookie");
        g_assert_cmpstr(s.header_values[1], ==, "two=2");
        g_assert_cmpstr(s.header_names[2], ==, "Expires");
        g_assert_cmpstr(s.header_values[2], ==, "Tue, 03 Dec 2024 23:42:05 GMT");
        xmpp_upload_slot_clear(&s);

        g_assert_cmpint(xmpp_upload_parse_slot(long_values, &s), ==, 0);
        g_assert_cmpuint(s.n_headers, ==, 1);
        g_assert_cmpstr(s.header_names[0], ==, "Authorization");
        g_assert_cmpuint(strlen(s.header_values[0]), ==, 4096);
        xmpp_upload_slot_clear(&s);

        /* one of each at most: three Authorization values must not crowd out the rest */
        {
                g_autoptr(XmlNode) repeated = parse(SLOT(PUT_URL,
                        "<header name='Authorization'>Basic one</header>"
                        "<header name='authorization'>Basic two</header>"
                        "<header name='AUTHORIZATION'>Basic three</header>"
                        "<header name='Cookie'>c=1</header>", GET_URL));
                g_assert_cmpint(xmpp_upload_parse_slot(repeated, &s), ==, 0);
                g_assert_cmpuint(s.n_headers, ==, 2);
                g_assert_cmpstr(s.header_values[0], ==, "Basic one");
                g_assert_cmpstr(s.header_names[1], ==, "Cookie");
                xmpp_upload_slot_clear(&s);
        }

        xmpp_upload_slot_clear(&s);     /* twice is fine */
}

static void test_url_characters(void) {
        /* white space and controls beyond ASCII too: NEL, NBSP, LINE SEPARATOR, a BOM; and no UTF-8 */
        static const char *const refused[] = {
                "https://x/\xc2\x85" "a", "https://x/\xc2\xa0" "a", "https://x/\xe2\x80\xa8" "a",
                "https://x/\xef\xbb\xbf" "a", "https://x/\xff", "https://x/a b",
        };

        for (size_t i = 0; i < G_N_ELEMENTS(refused); i++)
                g_assert_false(xmpp_media_url_usable(refused[i]));
        g_assert_true(xmpp_media_url_usable("https://x/tr%C3%A8s"));
        g_assert_true(xmpp_media_url_usable("https://x/tr\xc3\xa8s"));    /* an IRI */
}

#define ERROR_IQ(error) \
        "<iq xmlns='jabber:client' from='upload.montague.tld' id='step_03' to='romeo@montague.tld/garden' " \
        "type='error'><request xmlns='urn:xmpp:http:upload:0' filename='très cool.jpg' size='23456' " \
        "content-type='image/jpeg'/>" error "</iq>"
#define TOO_LARGE(max) \
        "<error type='modify'><not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>" \
        "<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>File too large.</text>" \
        "<file-too-large xmlns='urn:xmpp:http:upload:0'><max-file-size>" max "</max-file-size>" \
        "</file-too-large></error>"

static void test_error(void) {
        /* XEP-0363 examples 7, 8 and 9 */
        g_autoptr(XmlNode) too_large = parse(ERROR_IQ(
                "\n  <error type='modify'>"
                "\n    <not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas' />"
                "\n    <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>"
                "File too large. The maximum file size is 20000 bytes</text>"
                "\n    <file-too-large xmlns='urn:xmpp:http:upload:0'>"
                "\n      <max-file-size>20000</max-file-size>"
                "\n    </file-too-large>"
                "\n  </error>\n"));
        g_autoptr(XmlNode) quota = parse(ERROR_IQ(
                "<error type='wait'><resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-stanzas' />"
                "<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>"
                "Quota reached. You can only upload 5 files in 5 minutes</text>"
                "<retry xmlns='urn:xmpp:http:upload:0' stamp='2017-12-03T23:42:05Z' /></error>"));
        g_autoptr(XmlNode) not_allowed = parse(ERROR_IQ(
                "<error type='cancel'><not-allowed xmlns='urn:ietf:params:xml:ns:xmpp-stanzas' />"
                "<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>Only premium members are allowed to upload files</text>"
                "</error>"));
        /* Prosody 0.12 mod_http_file_share: access denied, daily quota, bad file type */
        g_autoptr(XmlNode) forbidden = parse(ERROR_IQ(
                "<error type='auth' by='share.example.org'>"
                "<forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>"));
        g_autoptr(XmlNode) daily = parse(ERROR_IQ(
                "<error type='wait' by='share.example.org'>"
                "<resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
                "<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>Daily quota reached</text></error>"));
        g_autoptr(XmlNode) file_type = parse(ERROR_IQ(
                "<error type='modify' by='share.example.org'><not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
                "<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>File type not allowed</text></error>"));
        g_autoptr(XmlNode) unavailable = parse(ERROR_IQ(
                "<error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>"));
        g_autoptr(XmlNode) wrong_ns = parse(ERROR_IQ(
                "<error type='auth'><forbidden/><resource-constraint xmlns='urn:example:x'/></error>"));
        g_autoptr(XmlNode) error_wrong_ns = parse(ERROR_IQ(
                "<error xmlns='urn:example:x'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>"));
        g_autoptr(XmlNode) no_error = parse(ERROR_IQ(""));
        g_autoptr(XmlNode) result = parse(SLOT(PUT_URL, "", GET_URL));
        g_autoptr(XmlNode) too_large_outside = parse(ERROR_IQ(
                "<file-too-large xmlns='urn:xmpp:http:upload:0'><max-file-size>1</max-file-size></file-too-large>"
                "<error type='cancel'><not-allowed xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>"));
        g_autoptr(XmlNode) no_max = parse(ERROR_IQ(
                "<error type='modify'><not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
                "<file-too-large xmlns='urn:xmpp:http:upload:0'/></error>"));
        static const char *const bad_max[] = {
                TOO_LARGE(""), TOO_LARGE("lots"), TOO_LARGE("-20000"), TOO_LARGE("0"), TOO_LARGE("20000 bytes"),
                TOO_LARGE("18446744073709551616"),
        };
        uint64_t max = 42;

        g_assert_cmpint(xmpp_upload_parse_error(too_large, &max), ==, -EMSGSIZE);
        g_assert_cmpuint(max, ==, 20000);
        g_assert_cmpint(xmpp_upload_parse_error(too_large, NULL), ==, -EMSGSIZE);
        max = 42;
        g_assert_cmpint(xmpp_upload_parse_error(no_max, &max), ==, -EMSGSIZE);
        g_assert_cmpuint(max, ==, 0);
        for (size_t k = 0; k < G_N_ELEMENTS(bad_max); k++) {
                g_autofree char *xml = g_strdup_printf(ERROR_IQ("%s"), bad_max[k]);
                g_autoptr(XmlNode) n = parse(xml);
                max = 42;
                g_assert_cmpint(xmpp_upload_parse_error(n, &max), ==, -EMSGSIZE);
                g_assert_cmpuint(max, ==, 0);
        }

        max = 42;
        g_assert_cmpint(xmpp_upload_parse_error(quota, &max), ==, -EDQUOT);
        g_assert_cmpuint(max, ==, 0);
        g_assert_cmpint(xmpp_upload_parse_error(daily, NULL), ==, -EDQUOT);
        g_assert_cmpint(xmpp_upload_parse_error(not_allowed, &max), ==, -EPERM);
        g_assert_cmpint(xmpp_upload_parse_error(forbidden, &max), ==, -EPERM);
        g_assert_cmpint(xmpp_upload_parse_error(too_large_outside, &max), ==, -EPERM);
        g_assert_cmpuint(max, ==, 0);
        g_assert_cmpint(xmpp_upload_parse_error(file_type, &max), ==, -EIO);
        g_assert_cmpint(xmpp_upload_parse_error(unavailable, &max), ==, -EIO);
        g_assert_cmpint(xmpp_upload_parse_error(wrong_ns, &max), ==, -EIO);
        g_assert_cmpint(xmpp_upload_parse_error(error_wrong_ns, &max), ==, -EIO);
        max = 42;
        g_assert_cmpint(xmpp_upload_parse_error(no_error, &max), ==, -EIO);
        g_assert_cmpuint(max, ==, 0);
        g_assert_cmpint(xmpp_upload_parse_error(result, NULL), ==, -EIO);
}

static void test_media_append(void) {
        const XmppMedia full = {
                .url = "https://share.example.org/file_share/Lp3X/cat&dog.png", .mime = "image/png",
                .name = "a&b <c>'\".png", .size = 23456, .width = 640, .height = 480, .duration_ms = 0,
        };
        const XmppMedia url_only = { .url = "https://share.example.org/f/x.bin", .size = -1 };
        const XmppMedia audio = {
                .url = "https://share.example.org/f/voice.ogg", .mime = "audio/ogg", .size = 0, .duration_ms = 4200,
        };
        g_autoptr(XmlNode) a = parse("<message xmlns='jabber:client' to='romeo@montague.tld' type='chat' id='m1'/>");
        g_autoptr(XmlNode) b = parse("<message xmlns='jabber:client' to='romeo@montague.tld' type='chat' id='m2'>"
                                     "<body>https://share.example.org/f/x.bin</body></message>");
        g_autoptr(XmlNode) c = parse("<message xmlns='jabber:client' id='m3'/>");
        g_autofree char *fa = NULL, *fb = NULL, *fc = NULL;

        xmpp_media_append(a, &full);
        xmpp_media_append(b, &url_only);
        xmpp_media_append(c, &audio);
        fa = xml_serialize(a, NULL);
        fb = xml_serialize(b, NULL);
        fc = xml_serialize(c, NULL);

        g_assert_cmpstr(fa, ==,
                "<message xmlns=\"jabber:client\" to=\"romeo@montague.tld\" type=\"chat\" id=\"m1\">"
                "<x xmlns=\"jabber:x:oob\"><url>https://share.example.org/file_share/Lp3X/cat&amp;dog.png</url></x>"
                "<file-sharing xmlns=\"urn:xmpp:sfs:0\"><file xmlns=\"urn:xmpp:file:metadata:0\">"
                "<media-type>image/png</media-type><name>a&amp;b &lt;c&gt;'\".png</name>"
                "<size>23456</size><width>640</width><height>480</height></file>"
                "<sources><url-data xmlns=\"http://jabber.org/protocol/url-data\" "
                "target=\"https://share.example.org/file_share/Lp3X/cat&amp;dog.png\"/></sources>"
                "</file-sharing></message>");
        g_assert_cmpstr(fb, ==,
                "<message xmlns=\"jabber:client\" to=\"romeo@montague.tld\" type=\"chat\" id=\"m2\">"
                "<body>https://share.example.org/f/x.bin</body>"
                "<x xmlns=\"jabber:x:oob\"><url>https://share.example.org/f/x.bin</url></x>"
                "<file-sharing xmlns=\"urn:xmpp:sfs:0\"><file xmlns=\"urn:xmpp:file:metadata:0\"/>"
                "<sources><url-data xmlns=\"http://jabber.org/protocol/url-data\" "
                "target=\"https://share.example.org/f/x.bin\"/></sources></file-sharing></message>");
        g_assert_cmpstr(fc, ==,
                "<message xmlns=\"jabber:client\" id=\"m3\">"
                "<x xmlns=\"jabber:x:oob\"><url>https://share.example.org/f/voice.ogg</url></x>"
                "<file-sharing xmlns=\"urn:xmpp:sfs:0\"><file xmlns=\"urn:xmpp:file:metadata:0\">"
                "<media-type>audio/ogg</media-type><size>0</size><length>4200</length></file>"
                "<sources><url-data xmlns=\"http://jabber.org/protocol/url-data\" "
                "target=\"https://share.example.org/f/voice.ogg\"/></sources></file-sharing></message>");
}

static void assert_media_equal(const XmppMedia *got, const XmppMedia *want) {
        g_assert_cmpstr(got->url, ==, want->url);
        g_assert_cmpstr(got->mime, ==, want->mime);
        g_assert_cmpstr(got->name, ==, want->name);
        g_assert_cmpint(got->size, ==, want->size);
        g_assert_cmpuint(got->width, ==, want->width);
        g_assert_cmpuint(got->height, ==, want->height);
        g_assert_cmpuint(got->duration_ms, ==, want->duration_ms);
}

static void test_media_round_trip(void) {
        g_autofree char *long_name = g_strnfill(XMPP_MEDIA_NAME_MAX, 'n');
        const XmppMedia cases[] = {
                { .url = "https://download.montague.tld/4a771ac1/tr%C3%A8s%20cool.jpg", .mime = "image/jpeg",
                  .name = "très cool.jpg", .size = 23456, .width = 4032, .height = 3024 },
                { .url = "https://x.example/a?b=1&c=<2>", .mime = "application/vnd.oasis.opendocument.text",
                  .name = "a&b <c>'\".txt", .size = 0 },
                { .url = "http://x.example/v.mp4", .mime = "video/mp4", .name = "v.mp4", .size = G_MAXINT64,
                  .width = G_MAXUINT32, .height = 1, .duration_ms = G_MAXUINT32 },
                { .url = "https://x.example/voice.m4a", .mime = "audio/mp4", .name = "😀 voice.m4a", .size = 48213,
                  .duration_ms = 7350 },
                { .url = "https://x.example/unknown", .size = -1 },
                { .url = "https://x.example/long", .name = long_name, .size = 1 },
                /* one dimension known: it is still said */
                { .url = "https://x.example/w", .mime = "image/png", .size = 5, .width = 640 },
        };

        for (size_t k = 0; k < G_N_ELEMENTS(cases); k++) {
                g_autoptr(XmlNode) msg = parse("<message xmlns='jabber:client' to='romeo@montague.tld' type='chat'/>");
                g_autoptr(XmlNode) back = NULL;
                XmppMedia got;

                xmpp_media_append(msg, &cases[k]);
                memset(&got, 0xaa, sizeof got);
                xmpp_media_parse(msg, &got);
                assert_media_equal(&got, &cases[k]);

                /* and as the peer reads it */
                back = round_trip(msg);
                memset(&got, 0xaa, sizeof got);
                xmpp_media_parse(back, &got);
                assert_media_equal(&got, &cases[k]);
                g_assert_cmpstr(xml_node_attr(xml_node_child(xml_node_child(xml_node_child(back, "file-sharing", NS_SFS),
                                                                            "sources", NS_SFS),
                                                             "url-data", NS_URL_DATA),
                                              "target"),
                                ==, cases[k].url);
        }
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/upload/disco-builders", test_disco_builders);
        g_test_add_func("/upload/disco-items", test_disco_items);
        g_test_add_func("/upload/service", test_service);
        g_test_add_func("/upload/slot-request", test_slot_request);
        g_test_add_func("/upload/slot", test_slot);
        g_test_add_func("/upload/slot-refused", test_slot_refused);
        g_test_add_func("/upload/slot-headers", test_slot_headers);
        g_test_add_func("/upload/error", test_error);
        g_test_add_func("/upload/url-characters", test_url_characters);
        g_test_add_func("/upload/media-append", test_media_append);
        g_test_add_func("/upload/media-round-trip", test_media_round_trip);
        return g_test_run();
}
