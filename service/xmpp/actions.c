/* SPDX-License-Identifier: MIT */

#include <string.h>
#include <glib.h>

#include "actions.h"

#define NS_CLIENT "jabber:client"
#define NS_SID    "urn:xmpp:sid:0"
#define NS_HINTS  "urn:xmpp:hints"
#define NS_MARKERS "urn:xmpp:chat-markers:0"
#define MAX_ID_LEN 256

XmlNode *xmpp_chat_stanza_new(const char *to, const char *stanza_id) {
        XmlNode *msg = xml_node_new("message", NS_CLIENT);

        xml_node_set_attr(msg, "type", "chat");
        xml_node_set_attr(msg, "to", to);
        xml_node_set_attr(msg, "id", stanza_id);
        return msg;
}

XmlNode *xmpp_retract_new(const char *to, const char *stanza_id, const char *target_id) {
        XmlNode *msg = xmpp_chat_stanza_new(to, stanza_id);

        xml_node_set_attr(xml_node_add_child(msg, "retract", NS_RETRACT), "id", target_id);
        xml_node_set_attr(xml_node_add_child(msg, "fallback", NS_FALLBACK), "for", NS_RETRACT);
        xml_node_set_text(xml_node_add_child(msg, "body", NULL),
                          "/me retracted a previous message, but it's unsupported by your client.");
        xml_node_add_child(msg, "store", NS_HINTS);
        return msg;
}

XmlNode *xmpp_correction_new(const char *to, const char *stanza_id, const char *target_id, const char *text) {
        XmlNode *msg = xmpp_chat_stanza_new(to, stanza_id);

        xml_node_set_text(xml_node_add_child(msg, "body", NULL), text);
        xml_node_set_attr(xml_node_add_child(msg, "replace", NS_CORRECT), "id", target_id);
        xml_node_set_attr(xml_node_add_child(msg, "origin-id", NS_SID), "id", stanza_id);
        return msg;
}

XmlNode *xmpp_displayed_new(const char *to, const char *stanza_id, const char *target_id) {
        XmlNode *msg = xmpp_chat_stanza_new(to, stanza_id);

        xml_node_set_attr(xml_node_add_child(msg, "displayed", NS_MARKERS), "id", target_id);
        xml_node_add_child(msg, "store", NS_HINTS);
        return msg;
}

XmlNode *xmpp_reactions_new(const char *to, const char *stanza_id, const char *target_id,
                            const char *const *reactions, size_t n_reactions) {
        XmlNode *msg = xmpp_chat_stanza_new(to, stanza_id);
        XmlNode *set = xml_node_add_child(msg, "reactions", NS_REACTIONS);

        xml_node_set_attr(set, "id", target_id);
        for (size_t i = 0; i < n_reactions; i++)
                xml_node_set_text(xml_node_add_child(set, "reaction", NULL), reactions[i]);
        xml_node_add_child(msg, "store", NS_HINTS);
        return msg;
}

bool xmpp_reaction_valid(const char *r) {
        size_t len = r ? strlen(r) : 0;

        if (len == 0 || len > XMPP_REACTION_MAX_BYTES || !g_utf8_validate(r, (gssize) len, NULL))
                return false;
        for (const char *p = r; *p; p = g_utf8_next_char(p)) {
                gunichar c = g_utf8_get_char(p);
                if (g_unichar_isspace(c) || g_unichar_iscntrl(c))
                        return false;
        }
        return true;
}

static const char *valid_id(const char *id) {
        return id && *id && strlen(id) <= MAX_ID_LEN ? id : NULL;
}

const char *xmpp_retract_target(const XmlNode *message) {
        const XmlNode *retract = xml_node_child(message, "retract", NS_RETRACT);
        const XmlNode *apply_to;

        if (retract)
                return valid_id(xml_node_attr(retract, "id"));
        apply_to = xml_node_child(message, "apply-to", NS_FASTEN);
        if (apply_to && xml_node_child(apply_to, "retract", NS_RETRACT_V0))
                return valid_id(xml_node_attr(apply_to, "id"));
        return NULL;
}

const char *xmpp_reactions_parse(const XmlNode *message, const char **ret_reactions, size_t *ret_n) {
        const XmlNode *set = xml_node_child(message, "reactions", NS_REACTIONS);
        const char *id;
        size_t n = 0;

        if (!set || !(id = valid_id(xml_node_attr(set, "id"))))
                return NULL;
        for (const XmlNode *c = set->first_child; c && n < XMPP_REACTIONS_MAX; c = c->next) {
                const char *text = xml_node_text(c);
                bool seen = false;

                if (strcmp(c->name, "reaction") != 0 || strcmp(c->ns, NS_REACTIONS) != 0 ||
                    !xmpp_reaction_valid(text))
                        continue;
                for (size_t i = 0; i < n && !seen; i++)
                        seen = strcmp(ret_reactions[i], text) == 0;
                if (!seen)
                        ret_reactions[n++] = text;
        }
        *ret_n = n;
        return id;
}

const char *xmpp_correction_target(const XmlNode *message) {
        const XmlNode *replace = xml_node_child(message, "replace", NS_CORRECT);
        return replace ? valid_id(xml_node_attr(replace, "id")) : NULL;
}
