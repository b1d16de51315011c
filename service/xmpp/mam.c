/* SPDX-License-Identifier: MIT */

#include <errno.h>
#include <string.h>
#include <glib.h>

#include "forward.h"
#include "mam.h"

#define NS_CLIENT "jabber:client"

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
        }
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

int xmpp_mam_parse_fin(const XmlNode *iq, bool *ret_complete, const char **ret_last) {
        const XmlNode *fin = xml_node_child(iq, "fin", NS_MAM);
        const XmlNode *set;
        const char *complete, *last = NULL;

        if (!fin)
                return -EBADMSG;
        set = xml_node_child(fin, "set", NS_RSM);
        if (set) {
                last = xml_node_child_text(set, "last", NS_RSM);
                if (last && !*last)
                        last = NULL;
                if (last && !archive_id_valid(last))
                        return -EBADMSG;
        }
        complete = xml_node_attr(fin, "complete");
        *ret_complete = complete && (strcmp(complete, "true") == 0 || strcmp(complete, "1") == 0);
        *ret_last = last;
        return 0;
}
