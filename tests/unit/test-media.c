/* SPDX-License-Identifier: MIT */

/* Media in received messages: service/xmpp/media.c (what the stanza says,
 * checked for form) and service/core/media-type.c (what kind of file it is). */

#include <string.h>
#include <glib.h>

#include "media-type.h"
#include "media.h"

static XmlNode *parse(const char *xml) {
        XmlNode *node = NULL;
        g_assert_cmpint(xml_parse(xml, strlen(xml), NULL, &node), ==, 0);
        return node;
}

#define OOB(url) "<x xmlns='jabber:x:oob'><url>" url "</url></x>"
#define MSG(inner) "<message xmlns='jabber:client' type='chat'>" inner "</message>"
#define META(fields) "<file xmlns='urn:xmpp:file:metadata:0'>" fields "</file>"

static void test_parse(void) {
        static const char *const bad_urls[] = {
                MSG(OOB("javascript:alert(1)")), MSG(OOB("file:///etc/passwd")), MSG(OOB("ftp://x/y")),
                MSG(OOB("https://x/a b")), MSG(OOB("")), MSG("<x xmlns='jabber:x:oob'/>"),
                MSG("<x xmlns='urn:other'><url>https://x/y</url></x>"),
        };
        XmppMedia m;

        for (size_t i = 0; i < G_N_ELEMENTS(bad_urls); i++) {
                g_autoptr(XmlNode) n = parse(bad_urls[i]);
                xmpp_media_parse(n, &m);
                g_assert_null(m.url);
        }
        {
                g_autoptr(XmlNode) n = parse(MSG(OOB("HTTPS://x/p.png")));
                xmpp_media_parse(n, &m);
                g_assert_cmpstr(m.url, ==, "HTTPS://x/p.png");
                g_assert_null(m.mime);
                g_assert_cmpint(m.size, ==, -1);
        }
        {
                g_autoptr(XmlNode) n = parse(MSG(OOB("https://x/v") "<file-sharing xmlns='urn:xmpp:sfs:0'>" META(
                        "<media-type>video/mp4</media-type><name>v.mp4</name><size>99</size>"
                        "<width>10</width><height>20</height><length>3000</length>") "</file-sharing>"));
                xmpp_media_parse(n, &m);
                g_assert_cmpstr(m.mime, ==, "video/mp4");
                g_assert_cmpstr(m.name, ==, "v.mp4");
                g_assert_cmpint(m.size, ==, 99);
                g_assert_cmpuint(m.width, ==, 10);
                g_assert_cmpuint(m.height, ==, 20);
                g_assert_cmpuint(m.duration_ms, ==, 3000);
        }
        {
                g_autoptr(XmlNode) n = parse(MSG(OOB("https://x/v") META(
                        "<media-type>not a type</media-type><size>-1</size><width>99999999999</width>"
                        "<length>x</length><name></name>")));
                xmpp_media_parse(n, &m);
                g_assert_nonnull(m.url);
                g_assert_null(m.mime);
                g_assert_null(m.name);
                g_assert_cmpint(m.size, ==, -1);
                g_assert_cmpuint(m.width, ==, 0);
                g_assert_cmpuint(m.duration_ms, ==, 0);
        }
        {
                GString *long_url = g_string_new("https://x/");
                while (long_url->len <= XMPP_MEDIA_URL_MAX)
                        g_string_append(long_url, "aaaaaaaaaa");
                g_autofree char *xml = g_strdup_printf(MSG("<x xmlns='jabber:x:oob'><url>%s</url></x>"), long_url->str);
                g_autoptr(XmlNode) n = parse(xml);
                g_string_free(long_url, TRUE);
                xmpp_media_parse(n, &m);
                g_assert_null(m.url);
        }
}

static void test_describe(void) {
        g_autofree char *mime = NULL, *name = NULL;

        g_assert_cmpstr(media_describe("https://x/a/My%20Photo.JPG?s=1#f", NULL, NULL, &mime, &name), ==, "image");
        g_assert_cmpstr(mime, ==, "image/jpeg");
        g_assert_cmpstr(name, ==, "My Photo.JPG");
        g_clear_pointer(&mime, g_free);
        g_clear_pointer(&name, g_free);

        /* the sender's type wins; its name is kept as given */
        g_assert_cmpstr(media_describe("https://x/a.png", "AUDIO/Ogg", "../../etc/passwd", &mime, &name), ==, "audio");
        g_assert_cmpstr(mime, ==, "audio/ogg");
        g_assert_cmpstr(name, ==, "../../etc/passwd");
        g_clear_pointer(&mime, g_free);
        g_clear_pointer(&name, g_free);

        /* nothing to go by */
        g_assert_cmpstr(media_describe("https://x/", NULL, NULL, &mime, &name), ==, "file");
        g_assert_cmpstr(mime, ==, "application/octet-stream");
        g_assert_cmpstr(name, ==, "file");
        g_clear_pointer(&mime, g_free);
        g_clear_pointer(&name, g_free);
        g_assert_cmpstr(media_describe("https://x/%2F%00bad", NULL, NULL, &mime, &name), ==, "file");
        g_assert_cmpstr(name, ==, "file");
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/media/parse", test_parse);
        g_test_add_func("/media/describe", test_describe);
        return g_test_run();
}
