/* SPDX-License-Identifier: MIT */

#include <errno.h>
#include <string.h>
#include <glib.h>

#include "sm.h"

typedef struct Unacked {
        uint32_t seq;           /* its number in the outbound count */
        char *xml;
        size_t len;
        char *message_id, *to;
} Unacked;

struct XmppSm {
        bool enabled;           /* counting outbound */
        bool local;             /* ... for ourselves: the server does not */
        bool inbound;           /* counting inbound */
        char *resume_id;
        unsigned max_seconds;
        uint32_t sent;          /* outbound stanzas counted */
        uint32_t acked;         /* the server's last h */
        GQueue unacked;         /* of Unacked*, oldest first */
        uint32_t received;      /* inbound stanzas counted */
        uint32_t first_deferred; /* 1-based seq of the oldest uncommitted message; 0 if none */
        bool have_deferred;
};

static void unacked_free(Unacked *u) {
        g_free(u->xml);
        g_free(u->message_id);
        g_free(u->to);
        g_free(u);
}

XmppSm *xmpp_sm_new(void) {
        XmppSm *sm = g_new0(XmppSm, 1);
        g_queue_init(&sm->unacked);
        return sm;
}

void xmpp_sm_free(XmppSm *sm) {
        if (!sm)
                return;
        g_queue_clear_full(&sm->unacked, (GDestroyNotify) unacked_free);
        g_free(sm->resume_id);
        g_free(sm);
}

void xmpp_sm_start(XmppSm *sm) {
        xmpp_sm_clear_unacked(sm);
        sm->enabled = true;
        sm->local = false;
        sm->inbound = false;
        g_clear_pointer(&sm->resume_id, g_free);
        sm->sent = sm->acked = sm->received = 0;
        sm->have_deferred = false;
}

void xmpp_sm_enabled(XmppSm *sm, const char *id, unsigned max_seconds) {
        sm->inbound = true;
        g_free(sm->resume_id);
        sm->resume_id = id && *id ? g_strdup(id) : NULL;
        sm->max_seconds = max_seconds;
        sm->received = 0;
        sm->have_deferred = false;
}

void xmpp_sm_stop(XmppSm *sm) {
        xmpp_sm_clear_unacked(sm);
        sm->enabled = sm->inbound = sm->local = false;
        g_clear_pointer(&sm->resume_id, g_free);
}

void xmpp_sm_start_local(XmppSm *sm) {
        xmpp_sm_start(sm);
        sm->local = true;
}

bool xmpp_sm_is_enabled(const XmppSm *sm) {
        return sm->enabled;
}

bool xmpp_sm_is_local(const XmppSm *sm) {
        return sm->local;
}

uint32_t xmpp_sm_n_sent(const XmppSm *sm) {
        return sm->sent;
}

const char *xmpp_sm_resume_id(const XmppSm *sm) {
        return sm->resume_id;
}

void xmpp_sm_sent(XmppSm *sm, const char *xml, size_t len, const char *message_id, const char *to) {
        Unacked *u;

        /* Locally, only what the layer above wants to hear of counts: nothing
         * is ever resent from here (there is no resume), and keeping every
         * marker and keepalive ping until the next message would grow
         * without bound in a session that only reads. */
        if (!sm->enabled || (sm->local && !message_id))
                return;
        u = g_new0(Unacked, 1);
        u->seq = ++sm->sent;
        u->xml = g_memdup2(xml, len);
        u->len = len;
        u->message_id = g_strdup(message_id);
        u->to = g_strdup(to);
        g_queue_push_tail(&sm->unacked, u);
}

int xmpp_sm_ack(XmppSm *sm, uint32_t h, XmppSmAckedFunc acked, void *userdata) {
        uint32_t newly = h - sm->acked;         /* modulo 2^32 */
        Unacked *u;

        if (!sm->enabled)
                return -EPROTO;
        if (newly > sm->sent - sm->acked)
                return -EPROTO;
        for (uint32_t i = 0; i < newly && (u = g_queue_pop_head(&sm->unacked)); i++) {
                if (u->message_id && acked)
                        acked(u->message_id, u->to, userdata);
                unacked_free(u);
        }
        sm->acked = h;
        return 0;
}

void xmpp_sm_foreach_unacked(const XmppSm *sm, XmppSmStanzaFunc func, void *userdata) {
        for (GList *l = sm->unacked.head; l; l = l->next) {
                Unacked *u = l->data;
                func(u->xml, u->len, userdata);
        }
}

void xmpp_sm_foreach_unacked_message(const XmppSm *sm, XmppSmAckedFunc func, void *userdata) {
        for (GList *l = sm->unacked.head; l; l = l->next) {
                Unacked *u = l->data;
                if (u->message_id)
                        func(u->message_id, u->to, userdata);
        }
}

bool xmpp_sm_is_unacked_message(const XmppSm *sm, const char *message_id) {
        for (GList *l = sm->unacked.head; l; l = l->next) {
                Unacked *u = l->data;
                if (u->message_id && strcmp(u->message_id, message_id) == 0)
                        return true;
        }
        return false;
}

size_t xmpp_sm_n_unacked(const XmppSm *sm) {
        return sm->unacked.length;
}

void xmpp_sm_clear_unacked(XmppSm *sm) {
        g_queue_clear_full(&sm->unacked, (GDestroyNotify) unacked_free);
        g_queue_init(&sm->unacked);
}

void xmpp_sm_received(XmppSm *sm, bool deferred) {
        if (!sm->inbound)
                return;
        sm->received++;
        if (deferred && !sm->have_deferred) {
                sm->have_deferred = true;
                sm->first_deferred = sm->received;
        }
}

void xmpp_sm_committed(XmppSm *sm) {
        sm->have_deferred = false;
}

uint32_t xmpp_sm_handled(const XmppSm *sm) {
        return sm->have_deferred ? sm->first_deferred - 1 : sm->received;
}

uint32_t xmpp_sm_rewind_to_handled(XmppSm *sm) {
        sm->received = xmpp_sm_handled(sm);
        sm->have_deferred = false;
        return sm->received;
}

bool xmpp_sm_has_uncommitted(const XmppSm *sm) {
        return sm->have_deferred;
}
