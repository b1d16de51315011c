/* SPDX-License-Identifier: MIT */

#include <string.h>
#include <glib.h>

#include "media.h"

bool xmpp_media_url_usable(const char *url) {
        size_t len = url ? strlen(url) : 0;

        if (len == 0 || len > XMPP_MEDIA_URL_MAX || !g_utf8_validate(url, (gssize) len, NULL))
                return false;
        if (g_ascii_strncasecmp(url, "https://", 8) != 0 && g_ascii_strncasecmp(url, "http://", 7) != 0)
                return false;
        /* (an IRI may hold other characters, but no space or control one) */
        for (const char *p = url; *p; p = g_utf8_next_char(p)) {
                gunichar c = g_utf8_get_char(p);
                if (c <= ' ' || c == 0x7f || g_unichar_iscntrl(c) || g_unichar_isspace(c) ||
                    g_unichar_type(c) == G_UNICODE_LINE_SEPARATOR ||
                    g_unichar_type(c) == G_UNICODE_PARAGRAPH_SEPARATOR || g_unichar_type(c) == G_UNICODE_FORMAT)
                        return false;
        }
        return true;
}

/* type/subtype, RFC 6838 restricted names */
bool xmpp_media_mime_usable(const char *mime) {
        const char *slash = mime ? strchr(mime, '/') : NULL;

        if (!slash || slash == mime || !slash[1] || strlen(mime) > 255)
                return false;
        for (const char *p = mime; *p; p++)
                if (!g_ascii_isalnum(*p) && !strchr("!#$&-^_.+/", *p))
                        return false;
        return strchr(slash + 1, '/') == NULL;
}

bool xmpp_media_name_usable(const char *name) {
        size_t len = name ? strlen(name) : 0;

        if (len == 0 || len > XMPP_MEDIA_NAME_MAX || !g_utf8_validate(name, (gssize) len, NULL))
                return false;
        for (const char *p = name; *p; p = g_utf8_next_char(p))
                if (g_unichar_iscntrl(g_utf8_get_char(p)))
                        return false;
        return true;
}

static int64_t number(const XmlNode *file, const char *name, int64_t max) {
        const char *text = xml_node_child_text(file, name, NS_FILE_METADATA);
        guint64 v;

        if (!text || !g_ascii_string_to_unsigned(text, 10, 0, (guint64) max, &v, NULL))
                return -1;
        return (int64_t) v;
}

void xmpp_media_parse(const XmlNode *message, XmppMedia *ret) {
        const XmlNode *oob = xml_node_child(message, "x", NS_OOB);
        const XmlNode *sharing = xml_node_child(message, "file-sharing", NS_SFS);
        const XmlNode *file = xml_node_child(sharing ? sharing : message, "file", NS_FILE_METADATA);
        XmppMedia m = { .size = -1 };

        *ret = m;
        m.url = oob ? xml_node_child_text(oob, "url", NS_OOB) : NULL;
        if (!xmpp_media_url_usable(m.url))
                return;
        if (file) {
                int64_t v;
                m.mime = xml_node_child_text(file, "media-type", NS_FILE_METADATA);
                if (!xmpp_media_mime_usable(m.mime))
                        m.mime = NULL;
                m.name = xml_node_child_text(file, "name", NS_FILE_METADATA);
                if (!xmpp_media_name_usable(m.name))
                        m.name = NULL;
                m.size = number(file, "size", G_MAXINT64);
                m.width = (v = number(file, "width", G_MAXUINT32)) > 0 ? (uint32_t) v : 0;
                m.height = (v = number(file, "height", G_MAXUINT32)) > 0 ? (uint32_t) v : 0;
                m.duration_ms = (v = number(file, "length", G_MAXUINT32)) > 0 ? (uint32_t) v : 0;
        }
        *ret = m;
}

static void add_number(XmlNode *file, const char *name, uint64_t value) {
        char text[24];

        g_snprintf(text, sizeof text, "%" G_GUINT64_FORMAT, value);
        xml_node_set_text(xml_node_add_child(file, name, NS_FILE_METADATA), text);
}

void xmpp_media_append(XmlNode *message, const XmppMedia *m) {
        XmlNode *sharing, *file, *url_data;

        xml_node_set_text(xml_node_add_child(xml_node_add_child(message, "x", NS_OOB), "url", NS_OOB), m->url);
        sharing = xml_node_add_child(message, "file-sharing", NS_SFS);
        file = xml_node_add_child(sharing, "file", NS_FILE_METADATA);
        if (m->mime)
                xml_node_set_text(xml_node_add_child(file, "media-type", NS_FILE_METADATA), m->mime);
        if (m->name)
                xml_node_set_text(xml_node_add_child(file, "name", NS_FILE_METADATA), m->name);
        if (m->size >= 0)
                add_number(file, "size", (uint64_t) m->size);
        if (m->width > 0)
                add_number(file, "width", m->width);
        if (m->height > 0)
                add_number(file, "height", m->height);
        if (m->duration_ms > 0)
                add_number(file, "length", m->duration_ms);
        url_data = xml_node_add_child(xml_node_add_child(sharing, "sources", NS_SFS), "url-data", NS_URL_DATA);
        xml_node_set_attr(url_data, "target", m->url);
}
