/* SPDX-License-Identifier: MIT */

#include <errno.h>
#include <string.h>

#include "forward.h"

#define NS_CLIENT "jabber:client"
#define NS_DELAY  "urn:xmpp:delay"

int xmpp_forwarded_unwrap(const XmlNode *forwarded, const XmlNode **ret_message, const char **ret_stamp) {
        const XmlNode *message = NULL, *delay;

        if (!forwarded || strcmp(forwarded->name, "forwarded") != 0 || strcmp(forwarded->ns, NS_FORWARD) != 0)
                return -EBADMSG;
        for (const XmlNode *c = forwarded->first_child; c; c = c->next) {
                if (strcmp(c->name, "message") != 0 || strcmp(c->ns, NS_CLIENT) != 0)
                        continue;
                /* Two messages in one wrapper: which one is meant is anyone's guess. */
                if (message)
                        return -EBADMSG;
                message = c;
        }
        if (!message)
                return -EBADMSG;
        delay = xml_node_child(forwarded, "delay", NS_DELAY);
        *ret_message = message;
        *ret_stamp = delay ? xml_node_attr(delay, "stamp") : NULL;
        return 0;
}
