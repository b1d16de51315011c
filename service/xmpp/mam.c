/* SPDX-License-Identifier: MIT */

#include <errno.h>
#include <string.h>
#include <glib.h>

#include "forward.h"
#include "mam.h"

#define NS_CLIENT "jabber:client"
#define NS_DATA_FORMS "jabber:x:data"

static bool archive_id_valid(const char *id) {
        return id && *id && strlen(id) <= XMPP_MAM_ID_MAX;
}

XmlNode *xmpp_mam_query_new(const char *iq_id, const char *query_id, XmppMamQueryKind kind, const char *after_id,
                            unsigned max) {
        XmlNode *iq = xml_node_new("iq", NS_CLIENT);
        XmlNode *query, *set;
        g_autofree char *max_text = NULL;

        xml_node_set_attr(iq, "type", "set");
        xml_node_set_attr(iq, "id", iq_id);
        query = xml_node_add_child(iq, "query", NS_MAM);
        xml_node_set_attr(query, "queryid", query_id);
        set = xml_node_add_child(query, "set", NS_RSM);
        switch (kind) {
        case XMPP_MAM_AFTER:
                max_text = g_strdup_printf("%u", max);
                xml_node_set_text(xml_node_add_child(set, "max", NULL), max_text);
                if (after_id)
                        xml_node_set_text(xml_node_add_child(set, "after", NULL), after_id);
                break;
        case XMPP_MAM_NEWEST:
                /* XEP-0059 §2.5: an empty <before/> asks for the last page. */
                xml_node_set_text(xml_node_add_child(set, "max", NULL), "1");
                xml_node_add_child(set, "before", NULL);
                break;
        case XMPP_MAM_BEFORE:
                break;          /* xmpp_mam_query_before_new() */
        }
        return iq;
}

static void add_field(XmlNode *form, const char *var, const char *value, const char *type) {
        XmlNode *field = xml_node_add_child(form, "field", NULL);

        xml_node_set_attr(field, "var", var);
        if (type)
                xml_node_set_attr(field, "type", type);
        xml_node_set_text(xml_node_add_child(field, "value", NULL), value);
}

XmlNode *xmpp_mam_query_before_new(const char *iq_id, const char *query_id, const char *with, const char *before_id,
                                   int64_t end_ms, unsigned max) {
        XmlNode *iq = xml_node_new("iq", NS_CLIENT);
        XmlNode *query, *form, *set;
        g_autofree char *max_text = g_strdup_printf("%u", max);

        xml_node_set_attr(iq, "type", "set");
        xml_node_set_attr(iq, "id", iq_id);
        query = xml_node_add_child(iq, "query", NS_MAM);
        xml_node_set_attr(query, "queryid", query_id);
        form = xml_node_add_child(query, "x", NS_DATA_FORMS);
        xml_node_set_attr(form, "type", "submit");
        add_field(form, "FORM_TYPE", NS_MAM, "hidden");
        add_field(form, "with", with, NULL);
        if (!before_id && end_ms > 0) {
                g_autoptr(GDateTime) t = g_date_time_new_from_unix_utc(end_ms / 1000);
                g_autofree char *stamp = t ? g_date_time_format(t, "%Y-%m-%dT%H:%M:%SZ") : NULL;
                if (stamp)
                        add_field(form, "end", stamp, NULL);
        }
        set = xml_node_add_child(query, "set", NS_RSM);
        xml_node_set_text(xml_node_add_child(set, "max", NULL), max_text);
        /* XEP-0059 §2.5: an empty <before/> asks for the last page */
        xml_node_set_text(xml_node_add_child(set, "before", NULL), before_id ? before_id : "");
        return iq;
}

int xmpp_mam_parse_result(const XmlNode *message, XmppMamResult *ret) {
        const XmlNode *result = xml_node_child(message, "result", NS_MAM);
        XmppMamResult r = { 0 };

        if (!result)
                return -ENOENT;
        r.query_id = xml_node_attr(result, "queryid");
        r.id = xml_node_attr(result, "id");
        if (!archive_id_valid(r.id))
                return -EBADMSG;
        if (xmpp_forwarded_unwrap(xml_node_child(result, "forwarded", NS_FORWARD), &r.message, &r.stamp) < 0)
                return -EBADMSG;
        *ret = r;
        return 0;
}

/* An RSM id of set: NULL if absent or empty; -EBADMSG if unusable. */
static int rsm_id(const XmlNode *set, const char *name, const char **ret) {
        const char *id = set ? xml_node_child_text(set, name, NS_RSM) : NULL;

        if (id && !*id)
                id = NULL;
        if (id && !archive_id_valid(id))
                return -EBADMSG;
        *ret = id;
        return 0;
}

int xmpp_mam_parse_fin(const XmlNode *iq, bool *ret_complete, const char **ret_first, const char **ret_last) {
        const XmlNode *fin = xml_node_child(iq, "fin", NS_MAM);
        const XmlNode *set;
        const char *complete, *first, *last;

        if (!fin)
                return -EBADMSG;
        set = xml_node_child(fin, "set", NS_RSM);
        if (rsm_id(set, "first", &first) < 0 || rsm_id(set, "last", &last) < 0)
                return -EBADMSG;
        complete = xml_node_attr(fin, "complete");
        *ret_complete = complete && (strcmp(complete, "true") == 0 || strcmp(complete, "1") == 0);
        if (ret_first)
                *ret_first = first;
        *ret_last = last;
        return 0;
}
