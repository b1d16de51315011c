/* SPDX-License-Identifier: MIT */

#include <errno.h>
#include <string.h>

#include "carbons.h"
#include "forward.h"

#define NS_CLIENT "jabber:client"

XmlNode *xmpp_carbons_enable_new(const char *iq_id) {
        XmlNode *iq = xml_node_new("iq", NS_CLIENT);

        xml_node_set_attr(iq, "type", "set");
        xml_node_set_attr(iq, "id", iq_id);
        xml_node_add_child(iq, "enable", NS_CARBONS);
        return iq;
}

int xmpp_carbons_parse(const XmlNode *message, bool *ret_sent, const XmlNode **ret_inner) {
        const XmlNode *received = xml_node_child(message, "received", NS_CARBONS);
        const XmlNode *sent = xml_node_child(message, "sent", NS_CARBONS);
        const XmlNode *wrapper = received ? received : sent;
        const XmlNode *inner = NULL;
        const char *stamp;

        if (!wrapper)
                return -ENOENT;
        if (received && sent)
                return -EBADMSG;
        if (xmpp_forwarded_unwrap(xml_node_child(wrapper, "forwarded", NS_FORWARD), &inner, &stamp) < 0)
                return -EBADMSG;
        *ret_sent = wrapper == sent;
        *ret_inner = inner;
        return 0;
}
