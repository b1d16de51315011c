/* SPDX-License-Identifier: MIT */

#include <errno.h>
#include <string.h>
#include <glib.h>

#include "xml.h"

#define NS_CLIENT "jabber:client"
#define NS_FRAMING "urn:ietf:params:xml:ns:xmpp-framing"
#define NS_STREAM "http://etherx.jabber.org/streams"
#define XML_LANG "http://www.w3.org/XML/1998/namespace lang"

static int parse_str(const char *s, const XmlLimits *limits, XmlNode **ret) {
        return xml_parse(s, strlen(s), limits, ret);
}

static XmlNode *parse_ok(const char *s) {
        XmlNode *n = NULL;

        g_assert_cmpint(parse_str(s, NULL, &n), ==, 0);
        g_assert_nonnull(n);
        return n;
}

static int parse_err(const char *s, const XmlLimits *limits) {
        XmlNode *n = (XmlNode *) 0x1;
        int r = parse_str(s, limits, &n);

        g_assert_cmpint(r, <, 0);
        g_assert_true(n == (XmlNode *) 0x1);   /* untouched on failure */
        return r;
}

static void assert_roundtrip(const char *in, const char *expected) {
        g_autoptr(XmlNode) n = parse_ok(in);
        size_t len = 0;
        g_autofree char *out = xml_serialize(n, &len);

        g_assert_cmpstr(out, ==, expected ? expected : in);
        g_assert_cmpuint(len, ==, strlen(out));
}

static void test_open(void) {
        g_autoptr(XmlNode) n = parse_ok("<open xmlns=\"" NS_FRAMING "\" to=\"localhost\" version=\"1.0\"/>");

        g_assert_cmpstr(n->name, ==, "open");
        g_assert_cmpstr(n->ns, ==, NS_FRAMING);
        g_assert_cmpuint(n->n_attrs, ==, 2);
        g_assert_cmpstr(xml_node_attr(n, "to"), ==, "localhost");
        g_assert_cmpstr(xml_node_attr(n, "version"), ==, "1.0");
        g_assert_null(xml_node_attr(n, "from"));
        g_assert_cmpstr(xml_node_text(n), ==, "");
        g_assert_null(n->first_child);
        g_assert_null(n->parent);
}

static void test_prefixed_features(void) {
        g_autoptr(XmlNode) n = parse_ok(
                "<stream:features xmlns:stream=\"" NS_STREAM "\">"
                "<mechanisms xmlns=\"urn:ietf:params:xml:ns:xmpp-sasl\">"
                "<mechanism>SCRAM-SHA-1</mechanism><mechanism>SCRAM-SHA-256</mechanism>"
                "</mechanisms></stream:features>");
        XmlNode *mechs, *m;
        g_autofree char *out = NULL;

        g_assert_cmpstr(n->name, ==, "features");
        g_assert_cmpstr(n->ns, ==, NS_STREAM);
        mechs = xml_node_child(n, "mechanisms", "urn:ietf:params:xml:ns:xmpp-sasl");
        g_assert_nonnull(mechs);
        g_assert_true(mechs->parent == n);
        m = mechs->first_child;
        g_assert_cmpstr(xml_node_text(m), ==, "SCRAM-SHA-1");
        g_assert_cmpstr(m->ns, ==, "urn:ietf:params:xml:ns:xmpp-sasl");       /* inherited */
        g_assert_cmpstr(xml_node_text(m->next), ==, "SCRAM-SHA-256");
        g_assert_true(mechs->last_child == m->next);
        g_assert_null(m->next->next);

        /* Prefixes are not kept; the default namespace says the same. */
        out = xml_serialize(n, NULL);
        g_assert_cmpstr(out, ==,
                        "<features xmlns=\"" NS_STREAM "\">"
                        "<mechanisms xmlns=\"urn:ietf:params:xml:ns:xmpp-sasl\">"
                        "<mechanism>SCRAM-SHA-1</mechanism><mechanism>SCRAM-SHA-256</mechanism>"
                        "</mechanisms></features>");
}

static void test_roundtrip(void) {
        assert_roundtrip("<message xmlns=\"" NS_CLIENT "\" to=\"juliet@example.com\" type=\"chat\">"
                         "<body>Wherefore art thou?</body></message>", NULL);
        assert_roundtrip("<a xmlns=\"x\"/>", NULL);
        assert_roundtrip("<a/>", NULL);
        /* Escaping of all five in attributes, quotes left as they are in text;
         * byte-exact emoji (4-byte UTF-8 and a ZWJ sequence). */
        assert_roundtrip("<message xmlns=\"" NS_CLIENT "\" id=\"&lt;&gt;&amp;&apos;&quot;\">"
                         "<body>&lt;b&gt; &amp; &apos;q&apos; &quot;dq&quot; "
                         "\xf0\x9f\x98\x80\xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9 \xc3\xa9</body></message>",
                         "<message xmlns=\"" NS_CLIENT "\" id=\"&lt;&gt;&amp;&apos;&quot;\">"
                         "<body>&lt;b&gt; &amp; 'q' \"dq\" "
                         "\xf0\x9f\x98\x80\xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9 \xc3\xa9</body></message>");
        /* Equivalent spellings come out canonical. */
        assert_roundtrip("<a xmlns='x' b='1' c=\"'\"><![CDATA[<&>]]>&#x1F600;</a >",
                         "<a xmlns=\"x\" b=\"1\" c=\"&apos;\">&lt;&amp;&gt;\xf0\x9f\x98\x80</a>");
        /* Whitespace in attributes survives a second parse. */
        assert_roundtrip("<a v=\"&#9;&#10;&#13;\">line1\nline2\r\n</a>",
                         "<a v=\"&#9;&#10;&#13;\">line1\nline2\n</a>");
        assert_roundtrip("<a>&#13;</a>", "<a>&#13;</a>");
}

/* A received node keeps its strings in its own allocation; changing its
 * attributes or adding children must still work, and free cleanly (ASan). */
static void test_change_parsed(void) {
        g_autoptr(XmlNode) n = parse_ok("<message xmlns=\"" NS_CLIENT "\" to=\"a@b\" id=\"1\" type=\"chat\">"
                                        "<body>hi</body></message>");
        g_autofree char *out = NULL;

        g_assert_true(n->packed);
        xml_node_set_attr(n, "id", "two");              /* replaces */
        xml_node_set_attr(n, "to", NULL);               /* removes */
        xml_node_set_attr(n, "from", "c@d/r");          /* adds */
        g_assert_false(n->packed);
        xml_node_set_text(xml_node_add_child(n, "x", "urn:x"), "y");
        xml_node_set_attr(n->first_child, "xml:lang", NULL);   /* nothing to remove: unpacked anyway */
        g_assert_cmpstr(n->name, ==, "message");
        g_assert_cmpstr(n->first_child->name, ==, "body");
        out = xml_serialize(n, NULL);
        g_assert_cmpstr(out, ==, "<message xmlns=\"" NS_CLIENT "\" id=\"two\" type=\"chat\" from=\"c@d/r\">"
                                 "<body>hi</body><x xmlns=\"urn:x\">y</x></message>");
}

/* The start tag of a stanza too big, too deep or too wide to parse whole. */
static void test_parse_head(void) {
        static const XmlLimits small = { .max_bytes = 1 << 20, .max_depth = 1, .max_attrs = 4, .max_children = 0 };
        static const XmlLimits stanza = { .max_bytes = 256 * 1024, .max_depth = 16, .max_attrs = 32,
                                          .max_children = 4096 };
        g_autoptr(GString) big = g_string_new("<iq xmlns='" NS_CLIENT "' type='result' id='r1' from='a@b'>"
                                              "<query xmlns='jabber:iq:roster'>");
        g_autoptr(XmlNode) head = NULL, whole = NULL;
        XmlNode *none = NULL;

        for (int i = 0; i < 5000; i++)
                g_string_append_printf(big, "<item jid='c%d@b' name='Contact %d'/>", i, i);
        g_string_append(big, "</query></iq>");
        /* too many children for a stanza, fine for its head */
        g_assert_cmpint(xml_parse(big->str, big->len, &stanza, &none), ==, -E2BIG);
        g_assert_cmpint(xml_parse_head(big->str, big->len, &small, &head), ==, 0);
        g_assert_cmpstr(head->name, ==, "iq");
        g_assert_cmpstr(head->ns, ==, NS_CLIENT);
        g_assert_cmpstr(xml_node_attr(head, "id"), ==, "r1");
        g_assert_cmpstr(xml_node_attr(head, "type"), ==, "result");
        g_assert_null(head->first_child);
        g_assert_null(head->text);

        /* a deep one, and one not even closed: the head is all that is read */
        g_clear_pointer(&head, xml_node_free);
        g_assert_cmpint(xml_parse_head("<m id='d'><a><a><a><a></a></a></a></a></m>", 42, &small, &head), ==, 0);
        g_assert_cmpstr(xml_node_attr(head, "id"), ==, "d");
        g_clear_pointer(&head, xml_node_free);
        g_assert_cmpint(xml_parse_head("<m id='o'><a>", 13, &small, &head), ==, 0);

        /* prefixes in what follows the start tag (a body's text, a child's
         * declaration, a child with 40 prefixed attributes) are not the head's */
        g_clear_pointer(&head, xml_node_free);
        {
                g_autoptr(GString) prefixed = g_string_new("<iq xmlns='" NS_CLIENT "' type='get' id='p'>"
                                                           "<q xmlns='urn:x' xmlns:p='urn:p'><body>xmlns:</body><x");
                for (int i = 0; i < 40; i++)
                        g_string_append_printf(prefixed, " p:a%d='1'", i);
                g_string_append(prefixed, "/></q></iq>");
                g_assert_cmpint(xml_parse_head(prefixed->str, prefixed->len, &small, &head), ==, 0);
                g_assert_cmpstr(xml_node_attr(head, "id"), ==, "p");
                /* but its own prefixed attributes count */
                g_assert_cmpint(xml_parse_head("<m xmlns:p='urn:p' p:a='1' p:b='2' p:c='3' p:d='4' p:e='5'/>", 60,
                                               &small, &none), ==, -E2BIG);
        }

        /* the head's own limits and rules still hold */
        g_assert_cmpint(xml_parse_head("<m a='1' b='2' c='3' d='4' e='5'/>", 34, &small, &none), ==, -E2BIG);
        g_assert_cmpint(xml_parse_head("<!DOCTYPE m><m/>", 16, &small, &none), ==, -EPERM);
        g_assert_cmpint(xml_parse_head("<m a='1' a='2'/>", 16, &small, &none), ==, -EBADMSG);
        g_assert_cmpint(xml_parse_head("<m \xff/>", 6, &small, &none), ==, -EBADMSG);
        g_assert_cmpint(xml_parse_head(big->str, big->len, &(XmlLimits) { .max_bytes = 100, .max_depth = 1 }, &none),
                        ==, -EMSGSIZE);
        g_assert_null(none);

        /* and the whole, with limits that allow it */
        g_assert_cmpint(xml_parse(big->str, big->len,
                                  &(XmlLimits) { .max_bytes = 1 << 20, .max_depth = 4, .max_attrs = 4,
                                                 .max_children = 8192 }, &whole), ==, 0);
        g_assert_cmpstr(xml_node_attr(whole->first_child->last_child, "jid"), ==, "c4999@b");
}

static void test_namespaces(void) {
        g_autoptr(XmlNode) n = parse_ok(
                "<iq xmlns=\"" NS_CLIENT "\" type=\"set\" id=\"1\">"
                "<bind xmlns=\"urn:ietf:params:xml:ns:xmpp-bind\"><resource>r</resource></bind>"
                "<x xmlns=\"\"/><p:y xmlns:p=\"" NS_CLIENT "\"/></iq>");
        XmlNode *bind = xml_node_child(n, "bind", NULL);
        g_autofree char *out = NULL;

        g_assert_nonnull(bind);
        g_assert_cmpstr(bind->ns, ==, "urn:ietf:params:xml:ns:xmpp-bind");
        g_assert_cmpstr(bind->first_child->ns, ==, "urn:ietf:params:xml:ns:xmpp-bind");
        g_assert_cmpstr(xml_node_child_text(bind, "resource", "urn:ietf:params:xml:ns:xmpp-bind"), ==, "r");
        g_assert_null(xml_node_child_text(bind, "resource", NS_CLIENT));
        g_assert_null(xml_node_child_text(bind, "nothere", NULL));
        g_assert_cmpstr(xml_node_child(n, "x", NULL)->ns, ==, "");
        g_assert_cmpstr(xml_node_child(n, "y", NULL)->ns, ==, NS_CLIENT);

        out = xml_serialize(n, NULL);
        g_assert_cmpstr(out, ==,
                        "<iq xmlns=\"" NS_CLIENT "\" type=\"set\" id=\"1\">"
                        "<bind xmlns=\"urn:ietf:params:xml:ns:xmpp-bind\"><resource>r</resource></bind>"
                        "<x xmlns=\"\"/><y/></iq>");
}

static void test_child_lookup(void) {
        g_autoptr(XmlNode) n = parse_ok(
                "<message xmlns=\"" NS_CLIENT "\">"
                "<body>plain</body>"
                "<x xmlns=\"jabber:x:oob\"><url>u1</url></x>"
                "<x xmlns=\"jabber:x:data\"/>"
                "<body xmlns=\"urn:other\">other</body></message>");

        g_assert_cmpstr(xml_node_child(n, "x", "jabber:x:data")->ns, ==, "jabber:x:data");
        g_assert_cmpstr(xml_node_child(n, "x", NULL)->ns, ==, "jabber:x:oob");
        g_assert_cmpstr(xml_node_child_text(n, "body", "urn:other"), ==, "other");
        g_assert_cmpstr(xml_node_child_text(n, "body", NS_CLIENT), ==, "plain");
        g_assert_cmpstr(xml_node_child_text(xml_node_child(n, "x", "jabber:x:oob"), "url", NULL), ==, "u1");
        g_assert_cmpstr(xml_node_child_text(n, "x", "jabber:x:data"), ==, "");
        g_assert_null(xml_node_child(n, "x", "jabber:x:nope"));
        g_assert_null(xml_node_child(NULL, "x", NULL));
        g_assert_cmpstr(xml_node_text(NULL), ==, "");
}

static void test_mixed_content(void) {
        g_autoptr(XmlNode) n = parse_ok("<p>one <b>two</b> three&amp;<i/>four</p>");
        g_autofree char *out = xml_serialize(n, NULL);

        g_assert_cmpstr(xml_node_text(n), ==, "one  three&four");
        g_assert_cmpstr(xml_node_child_text(n, "b", NULL), ==, "two");
        /* The text run is written before the children (documented loss of order). */
        g_assert_cmpstr(out, ==, "<p>one  three&amp;four<b>two</b><i/></p>");
}

static void test_xml_lang(void) {
        g_autoptr(XmlNode) n = parse_ok("<message xmlns=\"" NS_CLIENT "\" xml:lang=\"en\">"
                                        "<body xml:lang=\"de\">Hallo</body></message>");
        g_autofree char *out = NULL;

        g_assert_cmpstr(xml_node_attr(n, XML_LANG), ==, "en");
        g_assert_null(xml_node_attr(n, "lang"));
        g_assert_cmpstr(xml_node_attr(n->first_child, XML_LANG), ==, "de");
        out = xml_serialize(n, NULL);
        g_assert_cmpstr(out, ==, "<message xmlns=\"" NS_CLIENT "\" xml:lang=\"en\">"
                                 "<body xml:lang=\"de\">Hallo</body></message>");
}

static void test_namespaced_attr(void) {
        g_autoptr(XmlNode) n = parse_ok("<a xmlns:q=\"urn:q\" q:b=\"1\" c=\"2\"/>");
        g_autofree char *out = NULL;
        g_autoptr(XmlNode) again = NULL;

        g_assert_cmpstr(xml_node_attr(n, "urn:q b"), ==, "1");
        out = xml_serialize(n, NULL);
        g_assert_cmpstr(out, ==, "<a xmlns:ns0=\"urn:q\" ns0:b=\"1\" c=\"2\"/>");
        again = parse_ok(out);
        g_assert_cmpstr(xml_node_attr(again, "urn:q b"), ==, "1");
}

static void test_build(void) {
        g_autoptr(XmlNode) m = xml_node_new("message", NS_CLIENT);
        XmlNode *body, *x;
        g_autofree char *out = NULL;
        size_t len;

        xml_node_set_attr(xml_node_set_attr(m, "to", "romeo@example.net"), "type", "normal");
        xml_node_set_attr(m, "type", "chat");                   /* replaces */
        xml_node_set_attr(m, "id", "gone");
        xml_node_set_attr(m, "id", NULL);                       /* removes */
        xml_node_set_attr(m, XML_LANG, "en");
        body = xml_node_add_child(m, "body", NULL);
        xml_node_set_text(body, "a<b & \"c\" 'd' \xf0\x9f\x98\x80");
        x = xml_node_add_child(m, "markable", "urn:xmpp:chat-markers:0");
        g_assert_cmpstr(body->ns, ==, NS_CLIENT);
        g_assert_cmpstr(x->ns, ==, "urn:xmpp:chat-markers:0");
        g_assert_cmpuint(m->n_attrs, ==, 3);

        out = xml_serialize(m, &len);
        g_assert_cmpstr(out, ==,
                        "<message xmlns=\"" NS_CLIENT "\" to=\"romeo@example.net\" type=\"chat\" xml:lang=\"en\">"
                        "<body>a&lt;b &amp; \"c\" 'd' \xf0\x9f\x98\x80</body>"
                        "<markable xmlns=\"urn:xmpp:chat-markers:0\"/></message>");
        g_assert_cmpuint(len, ==, strlen(out));

        /* A child leaving every namespace must undeclare the default one. */
        xml_node_add_child(x, "plain", "");
        xml_node_set_text(body, NULL);
        g_clear_pointer(&out, g_free);
        out = xml_serialize(body, NULL);
        g_assert_cmpstr(out, ==, "<body xmlns=\"" NS_CLIENT "\"/>");
        g_clear_pointer(&out, g_free);
        out = xml_serialize(x, NULL);
        g_assert_cmpstr(out, ==, "<markable xmlns=\"urn:xmpp:chat-markers:0\"><plain xmlns=\"\"/></markable>");

        xml_node_free(NULL);
}

static void test_escape_unsafe_chars(void) {
        g_autoptr(GString) s = g_string_new(NULL);
        g_autoptr(XmlNode) n = xml_node_new("body", NS_CLIENT);
        g_autofree char *out = NULL;
        g_autoptr(XmlNode) back = NULL;

        /* Characters XML 1.0 cannot carry become U+FFFD, so what we send is
         * always well-formed, whatever text a frontend passed in. */
        xml_escape_append(s, "a\x01" "b\xef\xbf\xbe" "c\xef\xbf\xbd" "d\t\n", -1);
        g_assert_cmpstr(s->str, ==, "a\xef\xbf\xbd" "b\xef\xbf\xbd" "c\xef\xbf\xbd" "d&#9;&#10;");
        g_string_truncate(s, 0);
        xml_escape_append(s, "<&>x", 2);
        g_assert_cmpstr(s->str, ==, "&lt;&amp;");

        xml_node_set_text(n, "bell\x07 nul-free \x1b[0m");
        out = xml_serialize(n, NULL);
        g_assert_cmpint(parse_str(out, NULL, &back), ==, 0);
        g_assert_cmpstr(xml_node_text(back), ==, "bell\xef\xbf\xbd nul-free \xef\xbf\xbd[0m");
}

static void test_limits(void) {
        XmlLimits l = { .max_bytes = 64, .max_depth = 3, .max_attrs = 2, .max_children = 3 };
        g_autoptr(XmlNode) n = NULL;
        g_autoptr(GString) big = g_string_new("<a>");

        g_assert_cmpint(parse_err("<a><b><c><d/></c></b></a>", &l), ==, -ELOOP);
        g_assert_cmpint(parse_str("<a><b><c/></b></a>", &l, &n), ==, 0);
        g_clear_pointer(&n, xml_node_free);

        g_assert_cmpint(parse_err("<a x='1' y='2' z='3'/>", &l), ==, -E2BIG);
        g_assert_cmpint(parse_str("<a x='1' y='2'/>", &l, &n), ==, 0);
        g_clear_pointer(&n, xml_node_free);

        g_assert_cmpint(parse_err("<a><b/><b/><b/><b/></a>", &l), ==, -E2BIG);
        g_assert_cmpint(parse_str("<a><b/><b/><b/><c><b/><b/><b/></c></a>", &l, &n), ==, -E2BIG);
        l.max_bytes = 1024;
        g_assert_cmpint(parse_str("<a><b/><b/><b/></a>", &l, &n), ==, 0);
        g_clear_pointer(&n, xml_node_free);
        l.max_bytes = 64;

        while (big->len < 65)
                g_string_append(big, "x");
        g_string_append(big, "</a>");
        g_assert_cmpint(parse_err(big->str, &l), ==, -EMSGSIZE);

        /* Defaults: 256 KiB, and deep nesting is refused without recursion trouble. */
        g_string_truncate(big, 0);
        for (int i = 0; i < 10000; i++)
                g_string_append(big, "<a>");
        g_assert_cmpint(parse_err(big->str, NULL), ==, -ELOOP);
        g_string_truncate(big, 0);
        g_string_append(big, "<a>");
        while (big->len <= 256 * 1024)
                g_string_append(big, "0123456789abcdef");
        g_string_append(big, "</a>");
        g_assert_cmpint(parse_err(big->str, NULL), ==, -EMSGSIZE);
        g_assert_cmpuint(xml_default_limits.max_bytes, ==, 256 * 1024);
}

static void test_restricted(void) {
        static const char *const cases[] = {
                "<!DOCTYPE a><a/>",
                "<!DOCTYPE a SYSTEM \"file:///etc/passwd\"><a/>",
                "<!DOCTYPE a [<!ENTITY e \"x\">]><a>&e;</a>",
                "<!DOCTYPE a [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><a>&e;</a>",
                "<!DOCTYPE lolz [<!ENTITY lol \"lol\">"
                "<!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">"
                "<!ENTITY lol2 \"&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;\">"
                "<!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">"
                "<!ENTITY lol4 \"&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;\">"
                "<!ENTITY lol5 \"&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;\">"
                "<!ENTITY lol6 \"&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;\">"
                "<!ENTITY lol7 \"&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;\">"
                "<!ENTITY lol8 \"&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;\">"
                "<!ENTITY lol9 \"&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;\">"
                "]><lolz>&lol9;</lolz>",
                "<a><!-- comment --></a>",
                "<!-- comment --><a/>",
                "<a/><!-- trailing -->",
                "<a><?pi data?></a>",
                "<?pi data?><a/>",
                /* RFC 6120 §11.1: entity references but the predefined ones */
                "<a>&undefined;</a>",
                "<a x='&e;'/>",
        };

        for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
                g_test_message("restricted #%zu", i);
                g_assert_cmpint(parse_err(cases[i], NULL), ==, -EPERM);
        }
}

static void test_malformed(void) {
        static const struct {
                const char *data;
                size_t len;
        } cases[] = {
                { "", 0 },
                { "   ", 3 },
                { "<a>", 3 },
                { "<a></b>", 7 },
                { "<a/><b/>", 8 },
                { "text", 4 },
                { "<a x='1' x='2'/>", 16 },
                { "<p:a/>", 6 },                        /* unbound prefix */
                { "<a>\xff</a>", 8 },                   /* invalid UTF-8 */
                { "<a>\xc3</a>", 8 },
                { "<a>\xed\xa0\x80</a>", 10 },          /* UTF-16 surrogate */
                { "<a>\x01</a>", 8 },                   /* not an XML character */
                { "<a>&#1;</a>", 11 },
                { "<a>x\0y</a>", 10 },                  /* embedded NUL */
                /* ... also where the ASCII check goes eight bytes at a time */
                { "<a>0123456789a\0cdefghijklmn</a>", 31 },
                { "<a>0123\0</a>", 12 },
                { "<a>0123456789abcdef\xff</a>", 24 },
                { "<a>0123456789abcdef\xed\xa0\x80</a>", 26 },
                { "<a x='<'/>", 10 },
                /* A declared encoding must not switch the charset. */
                { "<?xml version='1.0' encoding='ISO-8859-1'?><a>\xe9</a>", 51 },
        };

        for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
                XmlNode *n = (XmlNode *) 0x1;

                g_test_message("malformed #%zu", i);
                g_assert_cmpint(xml_parse(cases[i].data, cases[i].len, NULL, &n), ==, -EBADMSG);
                g_assert_true(n == (XmlNode *) 0x1);
        }
}

static void test_xml_decl(void) {
        /* Allowed by XML and harmless; the encoding is pinned to UTF-8. */
        g_autoptr(XmlNode) n = parse_ok("<?xml version='1.0' encoding='UTF-8'?><a>\xc3\xa9</a>");

        g_assert_cmpstr(xml_node_text(n), ==, "\xc3\xa9");
}

static void test_parser_reuse(void) {
        g_autoptr(XmlParser) p = xml_parser_new(NULL);
        XmlNode *n = NULL;

        g_assert_nonnull(p);
        for (int i = 0; i < 3; i++) {
                g_autofree char *s = g_strdup_printf("<m xmlns='%s' n='%d'><body>%d</body></m>", NS_CLIENT, i, i);
                g_autofree char *want = g_strdup_printf("%d", i);

                g_assert_cmpint(xml_parser_parse(p, s, strlen(s), &n), ==, 0);
                g_assert_cmpstr(xml_node_child_text(n, "body", NS_CLIENT), ==, want);
                g_clear_pointer(&n, xml_node_free);

                /* An error in between leaves the parser usable. */
                g_assert_cmpint(xml_parser_parse(p, "<a><!--x--></a>", 15, &n), ==, -EPERM);
                g_assert_cmpint(xml_parser_parse(p, "<a>", 3, &n), ==, -EBADMSG);
                g_assert_null(n);
        }
        xml_parser_free(NULL);
}

/* Stream mode: one expat document per connection, one element per feed. */
static void test_stream_feed(void) {
        static const XmlLimits limits = { .max_bytes = 4096, .max_depth = 3, .max_attrs = 4, .max_children = 8 };
        g_autoptr(XmlParser) p = xml_parser_new_stream(&limits);
        const char *open = "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>";
        const char *features = "<stream:features xmlns:stream='http://etherx.jabber.org/streams'>"
                               "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/></stream:features>";
        XmlNode *n = NULL;

        g_assert_nonnull(p);
        g_assert_cmpint(xml_parser_feed(p, open, strlen(open), &n), ==, 0);
        g_assert_cmpstr(n->name, ==, "open");
        g_assert_cmpstr(n->ns, ==, "urn:ietf:params:xml:ns:xmpp-framing");
        g_assert_cmpstr(xml_node_attr(n, "to"), ==, "localhost");
        g_clear_pointer(&n, xml_node_free);

        g_assert_cmpint(xml_parser_feed(p, features, strlen(features), &n), ==, 0);
        g_assert_cmpstr(n->name, ==, "features");
        g_assert_nonnull(xml_node_child(n, "mechanisms", "urn:ietf:params:xml:ns:xmpp-sasl"));
        g_clear_pointer(&n, xml_node_free);

        for (int i = 0; i < 100; i++) {
                g_autofree char *m = g_strdup_printf("<message xmlns='jabber:client' id='%d'><body>&lt;%d&gt; \xf0\x9f\x98\x80</body></message>", i, i);
                g_autofree char *want = g_strdup_printf("<%d> \xf0\x9f\x98\x80", i);
                g_assert_cmpint(xml_parser_feed(p, m, strlen(m), &n), ==, 0);
                g_assert_cmpstr(xml_node_child_text(n, "body", "jabber:client"), ==, want);
                /* namespaces of earlier elements do not leak into this one */
                g_assert_cmpstr(n->ns, ==, "jabber:client");
                g_clear_pointer(&n, xml_node_free);
        }
        xml_parser_free(g_steal_pointer(&p));

        /* each message must be exactly one complete element; errors are final,
         * but for limits: the element is dropped and the stream goes on */
        static const char *const bad[] = {
                "<a/><b/>",                     /* two elements */
                "<a>",                          /* incomplete */
                "text",                         /* no element */
                "<a/>tail",                     /* trailing text */
                "<a><b><c><d/></c></b></a>",    /* too deep */
                "<a><!-- c --></a>",            /* restricted XML */
                "<a><?pi x?></a>",
                "</stream>",                    /* closing the synthetic root */
        };
        static const int want[] = { -EBADMSG, -EBADMSG, -EBADMSG, -EBADMSG, -ELOOP, -EPERM, -EPERM, -EBADMSG };
        for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
                g_autoptr(XmlParser) q = xml_parser_new_stream(&limits);
                g_test_message("bad #%zu", i);
                g_assert_cmpint(xml_parser_feed(q, bad[i], strlen(bad[i]), &n), ==, want[i]);
                g_assert_null(n);
                g_assert_cmpint(xml_parser_feed(q, "<a/>", 4, &n), ==, want[i] == -ELOOP ? 0 : -EBADMSG);
                g_clear_pointer(&n, xml_node_free);
        }
        /* whitespace around the element is fine (some servers send a newline) */
        {
                g_autoptr(XmlParser) q = xml_parser_new_stream(&limits);
                g_assert_cmpint(xml_parser_feed(q, " <a/>\n", 6, &n), ==, 0);
                g_clear_pointer(&n, xml_node_free);
        }
}

static const XmlLimits stanza_limits = { .max_bytes = 256 * 1024, .max_depth = 16, .max_attrs = 32,
                                         .max_children = 4096 };

/* One message on a fresh stream parser; a limit error must leave the stream
 * usable (the next message parses), any other must not. */
static int feed_one(const char *data, size_t len) {
        g_autoptr(XmlParser) p = xml_parser_new_stream(&stanza_limits);
        const char *next = "<message xmlns='jabber:client'><body>next</body></message>";
        XmlNode *n = NULL;
        int r = xml_parser_feed(p, data, len, &n), r2;

        g_clear_pointer(&n, xml_node_free);
        r2 = xml_parser_feed(p, next, strlen(next), &n);
        if (r == 0 || r == -EMSGSIZE || r == -ELOOP || r == -E2BIG) {
                g_assert_cmpint(r2, ==, 0);
                g_assert_cmpstr(xml_node_child_text(n, "body", "jabber:client"), ==, "next");
        } else
                g_assert_cmpint(r2, ==, -EBADMSG);
        xml_node_free(n);
        return r;
}

/* What a hostile server may send as one WebSocket message. */
static void test_stream_hostile(void) {
        static const char *const restricted[] = {
                "<!DOCTYPE message><message xmlns='jabber:client'/>",
                ("<!DOCTYPE m [<!ENTITY a 'aaaaaaaaaa'><!ENTITY b '&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;'>"
                 "<!ENTITY c '&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;'>]><m xmlns='jabber:client'>&c;</m>"),
                "<message xmlns='jabber:client'><body>&c;</body></message>",
                "<message xmlns='jabber:client'><!-- hi --><body>x</body></message>",
                "<message xmlns='jabber:client'><?pi x?><body>x</body></message>",
                "<message xmlns='jabber:client'><!ENTITY a 'x'><body>x</body></message>",
        };
        g_autoptr(GString) s = g_string_new(NULL);

        for (size_t i = 0; i < G_N_ELEMENTS(restricted); i++) {
                g_test_message("restricted #%zu", i);
                g_assert_cmpint(feed_one(restricted[i], strlen(restricted[i])), ==, -EPERM);
        }
        /* CDATA is not restricted, even when it looks like a declaration */
        g_string_assign(s, "<message xmlns='jabber:client'><body><![CDATA[<!DOCTYPE x>]]></body></message>");
        g_assert_cmpint(feed_one(s->str, s->len), ==, 0);

        /* 100k-deep nesting does not fit; 50k deep is refused at depth 17 */
        g_string_truncate(s, 0);
        for (int i = 0; i < 100000; i++)
                g_string_append(s, "<a>");
        g_assert_cmpint(feed_one(s->str, s->len), ==, -EMSGSIZE);
        g_string_truncate(s, 50000 * 3);
        g_assert_cmpint(feed_one(s->str, s->len), ==, -ELOOP);

        /* 50k attributes do not fit; 20k that do are too many */
        g_string_assign(s, "<message xmlns='jabber:client'");
        for (int i = 0; i < 50000; i++)
                g_string_append_printf(s, " a%d=''", i);
        g_string_append(s, "/>");
        g_assert_cmpint(feed_one(s->str, s->len), ==, -EMSGSIZE);
        g_string_assign(s, "<message xmlns='jabber:client'");
        for (int i = 0; i < 20000; i++)
                g_string_append_printf(s, " a%d=''", i);
        g_string_append(s, "/>");
        g_assert_cmpuint(s->len, <, 256 * 1024);
        g_assert_cmpint(feed_one(s->str, s->len), ==, -E2BIG);

        /* invalid UTF-8 anywhere */
        g_string_assign(s, "<message xmlns='jabber:client'><body>caf\xc3 \xff\xfe</body></message>");
        g_assert_cmpint(feed_one(s->str, s->len), ==, -EBADMSG);
        g_string_assign(s, "<message xmlns='jabber:client' id='\xed\xa0\x80'/>");
        g_assert_cmpint(feed_one(s->str, s->len), ==, -EBADMSG);
}

/* A long default namespace is copied into every node: the tree's memory is
 * bounded, so 256 KiB cannot become gigabytes. */
static void test_tree_budget(void) {
        g_autoptr(GString) s = g_string_new("<m xmlns='urn:");
        int n = 0;

        for (int i = 0; i < 100 * 1024; i++)
                g_string_append_c(s, 'u');
        g_string_append(s, "'><c>");
        while (s->len < 250 * 1024) {
                g_string_append(s, ++n % 4000 == 0 ? "</c><c>" : "<b/>");
        }
        g_string_append(s, "</c></m>");
        g_assert_cmpint(feed_one(s->str, s->len), ==, -EMSGSIZE);
        g_assert_cmpint(parse_err(s->str, NULL), ==, -EMSGSIZE);

        /* the same shape in a short namespace is fine */
        g_string_assign(s, "<m xmlns='urn:x'><c>");
        for (n = 1; n < 30000; n++)
                g_string_append(s, n % 4000 == 0 ? "</c><c>" : "<b/>");
        g_string_append(s, "</c></m>");
        g_assert_cmpint(feed_one(s->str, s->len), ==, 0);

        /* text counts too, but a stanza of text within max_bytes is fine */
        g_string_assign(s, "<m>");
        while (s->len < 255 * 1024)
                g_string_append(s, "0123456789&amp;");
        g_string_append(s, "</m>");
        g_assert_cmpint(feed_one(s->str, s->len), ==, 0);
}

/* Prefixed attributes are expanded by expat before any handler sees them;
 * too many are refused before that. */
static void test_prefixed_attrs(void) {
        g_autoptr(GString) s = g_string_new("<m xmlns='jabber:client' xmlns:p='urn:");
        g_autoptr(XmlNode) n = NULL;

        for (int i = 0; i < 60 * 1024; i++)
                g_string_append_c(s, 'u');
        g_string_append(s, "'");
        for (int i = 0; s->len < 250 * 1024; i++)
                g_string_append_printf(s, " p:a%x=''", i);
        g_string_append(s, "/>");
        g_assert_cmpint(feed_one(s->str, s->len), ==, -E2BIG);
        g_assert_cmpint(parse_err(s->str, NULL), ==, -E2BIG);

        /* declarations are not counted as attributes; a few prefixed ones are fine */
        g_string_assign(s, "<m xmlns='jabber:client'");
        for (int i = 0; i < 40; i++)
                g_string_append_printf(s, " xmlns:p%d='urn:%d'", i, i);
        for (int i = 0; i < 32; i++)
                g_string_append_printf(s, " p%d:a=''", i);
        g_string_append(s, "/>");
        g_assert_cmpint(feed_one(s->str, s->len), ==, 0);
        g_assert_cmpint(parse_str(s->str, NULL, &n), ==, 0);
        g_assert_cmpuint(n->n_attrs, ==, 32);
        g_string_insert(s, s->len - 2, " p0:b=''");
        g_assert_cmpint(feed_one(s->str, s->len), ==, -E2BIG);
}

/* Stream mode starts a new document now and then (expat keeps every name
 * it saw until the document ends); nothing of that shows. */
static void test_stream_rotation(void) {
        static const XmlLimits limits = { .max_bytes = 4096, .max_depth = 4, .max_attrs = 4, .max_children = 64 };
        g_autoptr(XmlParser) p = xml_parser_new_stream(&limits);
        XmlNode *n = NULL;

        for (int i = 0; i < 2000; i++) {
                g_autofree char *m = g_strdup_printf(
                        "<message xmlns='jabber:client' xmlns:q='urn:q' q:n%d='%d'><e%d xmlns='urn:x:%d'>%d</e%d>"
                        "<body>\xf0\x9f\x98\x80 %d</body></message>", i, i, i, i, i, i, i);
                g_autofree char *want = g_strdup_printf("\xf0\x9f\x98\x80 %d", i);
                g_autofree char *attr = g_strdup_printf("urn:q n%d", i);
                g_autofree char *e = g_strdup_printf("e%d", i);

                g_assert_cmpint(xml_parser_feed(p, m, strlen(m), &n), ==, 0);
                g_assert_cmpstr(n->ns, ==, "jabber:client");
                g_assert_cmpstr(xml_node_child_text(n, "body", "jabber:client"), ==, want);
                g_assert_nonnull(xml_node_child(n, e, NULL));
                g_assert_cmpstr(xml_node_attr(n, attr), !=, NULL);
                g_clear_pointer(&n, xml_node_free);
        }
}

/* Not a benchmark, just a guard against accidental quadratic behaviour. */
static void test_many_children(void) {
        g_autoptr(GString) s = g_string_new("<a>");
        g_autoptr(XmlNode) n = NULL;
        g_autofree char *out = NULL;
        unsigned count = 0;

        for (int i = 0; i < 10000; i++)
                g_string_append(s, "<b x=\"1\">t</b>");
        g_string_append(s, "</a>");
        g_assert_cmpint(parse_str(s->str, NULL, &n), ==, 0);
        for (XmlNode *c = n->first_child; c; c = c->next)
                count++;
        g_assert_cmpuint(count, ==, 10000);
        out = xml_serialize(n, NULL);
        g_assert_true(strcmp(out, s->str) == 0);        /* cmpstr would print 140 kB */
        g_string_insert(s, 3, "<b/>");
        g_assert_cmpint(parse_err(s->str, NULL), ==, -E2BIG);
}

int main(int argc, char *argv[]) {
        g_test_init(&argc, &argv, NULL);

        g_test_add_func("/xml/open", test_open);
        g_test_add_func("/xml/prefixed-features", test_prefixed_features);
        g_test_add_func("/xml/roundtrip", test_roundtrip);
        g_test_add_func("/xml/change-parsed", test_change_parsed);
        g_test_add_func("/xml/parse-head", test_parse_head);
        g_test_add_func("/xml/namespaces", test_namespaces);
        g_test_add_func("/xml/child-lookup", test_child_lookup);
        g_test_add_func("/xml/mixed-content", test_mixed_content);
        g_test_add_func("/xml/xml-lang", test_xml_lang);
        g_test_add_func("/xml/namespaced-attr", test_namespaced_attr);
        g_test_add_func("/xml/build", test_build);
        g_test_add_func("/xml/escape-unsafe-chars", test_escape_unsafe_chars);
        g_test_add_func("/xml/limits", test_limits);
        g_test_add_func("/xml/restricted", test_restricted);
        g_test_add_func("/xml/malformed", test_malformed);
        g_test_add_func("/xml/xml-decl", test_xml_decl);
        g_test_add_func("/xml/parser-reuse", test_parser_reuse);
        g_test_add_func("/xml/stream-feed", test_stream_feed);
        g_test_add_func("/xml/many-children", test_many_children);
        g_test_add_func("/xml/stream-hostile", test_stream_hostile);
        g_test_add_func("/xml/tree-budget", test_tree_budget);
        g_test_add_func("/xml/prefixed-attrs", test_prefixed_attrs);
        g_test_add_func("/xml/stream-rotation", test_stream_rotation);

        return g_test_run();
}
