/* SPDX-License-Identifier: MIT */

#include <errno.h>
#include <string.h>
#include <glib.h>

#include "jid.h"
#include "media.h"
#include "upload.h"

#define NS_CLIENT "jabber:client"
#define NS_STANZAS "urn:ietf:params:xml:ns:xmpp-stanzas"

static XmlNode *disco_new(const char *to, const char *ns) {
        XmlNode *iq = xml_node_new("iq", NS_CLIENT);

        xml_node_set_attr(iq, "type", "get");
        xml_node_set_attr(iq, "to", to);
        xml_node_add_child(iq, "query", ns);
        return iq;
}

XmlNode *xmpp_disco_items_new(const char *to) {
        return disco_new(to, NS_DISCO_ITEMS);
}

XmlNode *xmpp_disco_info_new(const char *to) {
        return disco_new(to, NS_DISCO_INFO);
}

char **xmpp_disco_parse_items(const XmlNode *reply) {
        const XmlNode *query = xml_node_child(reply, "query", NS_DISCO_ITEMS);
        g_autoptr(GPtrArray) jids = g_ptr_array_new_with_free_func(g_free);

        for (const XmlNode *c = query ? query->first_child : NULL; c && jids->len < XMPP_DISCO_ITEMS_MAX;
             c = c->next) {
                const char *jid = xml_node_attr(c, "jid");
                Jid parsed = { 0 };
                if (strcmp(c->name, "item") != 0 || strcmp(c->ns, NS_DISCO_ITEMS) != 0 || !jid ||
                    jid_parse(jid, &parsed) < 0)
                        continue;
                jid_clear(&parsed);
                g_ptr_array_add(jids, g_strdup(jid));
        }
        g_ptr_array_add(jids, NULL);
        return (char **) g_ptr_array_free(g_steal_pointer(&jids), false);
}

/* The value of field var of a data form (XEP-0004), or NULL. */
static const char *form_value(const XmlNode *form, const char *var) {
        for (const XmlNode *f = form->first_child; f; f = f->next)
                if (strcmp(f->name, "field") == 0 && strcmp(f->ns, NS_DATA_FORMS) == 0 &&
                    g_strcmp0(xml_node_attr(f, "var"), var) == 0)
                        return xml_node_child_text(f, "value", NS_DATA_FORMS);
        return NULL;
}

bool xmpp_upload_parse_service(const XmlNode *reply, uint64_t *ret_max) {
        const XmlNode *query = xml_node_child(reply, "query", NS_DISCO_INFO);
        bool upload = false;

        *ret_max = 0;
        if (!query)
                return false;
        for (const XmlNode *c = query->first_child; c; c = c->next) {
                if (strcmp(c->ns, NS_DISCO_INFO) == 0 && strcmp(c->name, "feature") == 0 &&
                    g_strcmp0(xml_node_attr(c, "var"), NS_UPLOAD) == 0)
                        upload = true;
                /* XEP-0128 extended information: the service's limit */
                if (strcmp(c->ns, NS_DATA_FORMS) == 0 && strcmp(c->name, "x") == 0 &&
                    g_strcmp0(form_value(c, "FORM_TYPE"), NS_UPLOAD) == 0) {
                        const char *max = form_value(c, "max-file-size");
                        guint64 v;
                        if (max && g_ascii_string_to_unsigned(max, 10, 1, G_MAXUINT64, &v, NULL))
                                *ret_max = v;
                }
        }
        if (!upload)
                *ret_max = 0;
        return upload;
}

XmlNode *xmpp_upload_slot_request_new(const char *service, const char *name, uint64_t size, const char *mime) {
        XmlNode *iq = xml_node_new("iq", NS_CLIENT);
        XmlNode *request;
        char text[24];

        xml_node_set_attr(iq, "type", "get");
        xml_node_set_attr(iq, "to", service);
        request = xml_node_add_child(iq, "request", NS_UPLOAD);
        xml_node_set_attr(request, "filename", name);
        g_snprintf(text, sizeof text, "%" G_GUINT64_FORMAT, size);
        xml_node_set_attr(request, "size", text);
        if (mime)
                xml_node_set_attr(request, "content-type", mime);
        return iq;
}

/* XEP-0363 §5: only these may be passed on, and none with a line break. */
static bool header_allowed(const char *name, const char *value) {
        static const char *const allowed[] = { "Authorization", "Cookie", "Expires" };
        bool known = false;

        for (size_t i = 0; i < G_N_ELEMENTS(allowed); i++)
                known |= g_ascii_strcasecmp(name, allowed[i]) == 0;
        if (!known || strlen(value) > 4096)
                return false;
        for (const char *p = value; *p; p++)
                if ((unsigned char) *p < ' ' || *p == 0x7f)
                        return false;
        return true;
}

static bool slot_has_header(const XmppUploadSlot *s, const char *name) {
        for (size_t i = 0; i < s->n_headers; i++)
                if (g_ascii_strcasecmp(s->header_names[i], name) == 0)
                        return true;
        return false;
}

int xmpp_upload_parse_slot(const XmlNode *reply, XmppUploadSlot *ret) {
        const XmlNode *slot = xml_node_child(reply, "slot", NS_UPLOAD);
        const XmlNode *put = slot ? xml_node_child(slot, "put", NS_UPLOAD) : NULL;
        const XmlNode *get = slot ? xml_node_child(slot, "get", NS_UPLOAD) : NULL;
        XmppUploadSlot s = { 0 };

        if (!put || !get || !xmpp_media_url_usable(xml_node_attr(put, "url")) ||
            !xmpp_media_url_usable(xml_node_attr(get, "url")))
                return -EPROTO;
        for (const XmlNode *h = put->first_child; h; h = h->next) {
                const char *name = xml_node_attr(h, "name");
                if (strcmp(h->name, "header") != 0 || strcmp(h->ns, NS_UPLOAD) != 0 || !name)
                        continue;
                if (!header_allowed(name, xml_node_text(h)) || slot_has_header(&s, name)) {
                        g_autofree char *shown = g_strescape(name, NULL);
                        g_debug("xmpp: dropping header %.64s of an upload slot", shown);
                        continue;
                }
                if (s.n_headers == XMPP_UPLOAD_HEADERS_MAX)
                        break;
                s.header_names[s.n_headers] = g_strdup(name);
                s.header_values[s.n_headers] = g_strdup(xml_node_text(h));
                s.n_headers++;
        }
        s.put_url = g_strdup(xml_node_attr(put, "url"));
        s.get_url = g_strdup(xml_node_attr(get, "url"));
        *ret = s;
        return 0;
}

void xmpp_upload_slot_clear(XmppUploadSlot *slot) {
        g_free(slot->put_url);
        g_free(slot->get_url);
        for (size_t i = 0; i < slot->n_headers; i++) {
                g_free(slot->header_names[i]);
                g_free(slot->header_values[i]);
        }
        *slot = (XmppUploadSlot) { 0 };
}

int xmpp_upload_parse_error(const XmlNode *reply, uint64_t *ret_max) {
        const XmlNode *error = xml_node_child(reply, "error", NS_CLIENT);
        const XmlNode *too_large = error ? xml_node_child(error, "file-too-large", NS_UPLOAD) : NULL;

        if (ret_max)
                *ret_max = 0;
        if (!error)
                return -EIO;
        if (too_large) {
                const char *max = xml_node_child_text(too_large, "max-file-size", NS_UPLOAD);
                guint64 v;
                if (ret_max && max && g_ascii_string_to_unsigned(max, 10, 1, G_MAXUINT64, &v, NULL))
                        *ret_max = v;
                return -EMSGSIZE;
        }
        if (xml_node_child(error, "resource-constraint", NS_STANZAS))
                return -EDQUOT;
        if (xml_node_child(error, "not-allowed", NS_STANZAS) || xml_node_child(error, "forbidden", NS_STANZAS))
                return -EPERM;
        return -EIO;
}
