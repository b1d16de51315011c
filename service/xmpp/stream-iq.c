/* SPDX-License-Identifier: MIT */
/*
 * IQ requests of the layer above (service discovery, upload slots): each
 * gets a fresh id and waits for its answer, which only counts when it comes
 * from the entity asked. The session's own setup IQs (bind, roster) and the
 * archive queries keep their own, stricter bookkeeping in stream.c (and
 * stream-send.c, which starts the queries).
 */

#include <errno.h>
#include <string.h>
#include <glib.h>

#include "jid.h"
#include "stream-private.h"

/* An entity that has not answered by then will not: the request ends with
 * -ETIMEDOUT rather than waiting for the end of the connection. */
#define IQ_TIMEOUT_S 60

typedef struct PendingIq {
        XmppStream *stream;
        unsigned handle;
        guint timeout;
        char *id;
        char *to;               /* normalised; NULL: our server */
        XmppIqCallback callback;
        void *userdata;
        GDestroyNotify free_userdata;   /* when callback will not run */
} PendingIq;

static void pending_iq_free(PendingIq *p) {
        if (p->timeout)
                g_source_remove(p->timeout);
        g_free(p->id);
        g_free(p->to);
        g_free(p);
}

static void pending_iq_drop(PendingIq *p) {
        if (p->free_userdata)
                p->free_userdata(p->userdata);
        pending_iq_free(p);
}


/* An answer from `from` (the attribute, maybe NULL) for a request to p->to. */
static bool answered_by_addressee(XmppStream *s, const PendingIq *p, const char *from) {
        g_autofree char *bare = NULL;

        if (!p->to) {
                /* our server: no from, its domain, or our own bare JID */
                if (!from)
                        return true;
                bare = jid_normalize_bare(from);
                return bare && (strcmp(bare, s->domain) == 0 || strcmp(bare, s->jid) == 0);
        }
        if (!from)
                /* our server answers for itself without one (RFC 6120 §8.1.2.1) */
                return strcmp(p->to, s->domain) == 0;
        if (strchr(p->to, '/'))
                return strcmp(from, p->to) == 0;
        return jid_bare_equal(from, p->to) && !strchr(from, '/');
}

static gboolean on_iq_timeout(gpointer userdata) {
        PendingIq *p = userdata;
        XmppStream *s = p->stream;
        guint i;

        p->timeout = 0;
        if (!s->iqs || !g_ptr_array_find(s->iqs, p, &i))
                return G_SOURCE_REMOVE;
        g_ptr_array_steal_index(s->iqs, i);
        g_debug("xmpp: %s did not answer IQ %s", p->to ? p->to : "the server", p->id);
        p->callback(-ETIMEDOUT, NULL, p->userdata);
        pending_iq_free(p);
        return G_SOURCE_REMOVE;
}

int xmpp_stream_send_iq(XmppStream *s, XmlNode *iq, XmppIqCallback callback, void *userdata,
                        GDestroyNotify free_userdata, unsigned *ret_handle) {
        /* the stanza is ours from here, whatever happens: freed on return */
        g_autoptr(XmlNode) owned = iq;
        const char *to = xml_node_attr(owned, "to");
        PendingIq *p;

        if (s->phase != PHASE_READY)
                return -ENOTCONN;
        p = g_new0(PendingIq, 1);
        if (to) {
                p->to = strchr(to, '/') ? g_strdup(to) : jid_normalize_bare(to);
                if (!p->to) {
                        pending_iq_free(p);
                        return -EINVAL;
                }
        }
        p->handle = ++s->next_iq_handle ? s->next_iq_handle : ++s->next_iq_handle;
        p->id = xmpp_new_id();
        p->callback = callback;
        p->userdata = userdata;
        p->free_userdata = free_userdata;
        p->stream = s;
        p->timeout = g_timeout_add_seconds(IQ_TIMEOUT_S, on_iq_timeout, p);
        xml_node_set_attr(owned, "id", p->id);
        if (!s->iqs)
                s->iqs = g_ptr_array_new_with_free_func((GDestroyNotify) pending_iq_drop);
        g_ptr_array_add(s->iqs, p);
        stream_send_node(s, owned);
        if (ret_handle)
                *ret_handle = p->handle;
        return 0;
}

static bool cancel_in(GPtrArray *iqs, unsigned handle) {
        for (guint i = 0; iqs && i < iqs->len; i++)
                if (((PendingIq *) g_ptr_array_index(iqs, i))->handle == handle) {
                        pending_iq_drop(g_ptr_array_steal_index(iqs, i));
                        return true;
                }
        return false;
}

void xmpp_stream_cancel_iq(XmppStream *s, unsigned handle) {
        if (!s || handle == 0)
                return;
        if (!cancel_in(s->iqs, handle))
                cancel_in(s->iqs_failing, handle);
}

bool stream_iq_handle_reply(XmppStream *s, const XmlNode *iq) {
        const char *id = xml_node_attr(iq, "id");
        const char *type = xml_node_attr(iq, "type");

        if (!s->iqs || !id)
                return false;
        for (guint i = 0; i < s->iqs->len; i++) {
                PendingIq *p = g_ptr_array_index(s->iqs, i);
                if (strcmp(p->id, id) != 0)
                        continue;
                if (!answered_by_addressee(s, p, xml_node_attr(iq, "from"))) {
                        g_debug("xmpp: ignoring an answer to %s from %s", p->to ? p->to : "the server",
                                xml_node_attr(iq, "from"));
                        return true;
                }
                p = g_ptr_array_steal_index(s->iqs, i);
                p->callback(strcmp(type, "result") == 0 ? 0 : -EREMOTEIO, iq, p->userdata);
                pending_iq_free(p);
                return true;
        }
        return false;
}

void stream_iq_fail_all(XmppStream *s) {
        /* each callback may send (and fail) new requests, or cancel others of
         * these: new ones go to a new array, cancelled ones leave this one */
        s->iqs_failing = g_steal_pointer(&s->iqs);
        while (s->iqs_failing && s->iqs_failing->len > 0) {
                PendingIq *p = g_ptr_array_steal_index(s->iqs_failing, 0);
                p->callback(-ECONNRESET, NULL, p->userdata);
                pending_iq_free(p);
        }
        g_clear_pointer(&s->iqs_failing, g_ptr_array_unref);
}

void stream_iq_forget_all(XmppStream *s) {
        g_clear_pointer(&s->iqs, g_ptr_array_unref);
}
