/* SPDX-License-Identifier: MIT */

/* SASL for XmppStream: SCRAM-SHA-256, SCRAM-SHA-1, PLAIN only inside TLS;
 * or SCRAM with the keys of an earlier login, in its own mechanism only. */

#include <errno.h>
#include <string.h>
#include <glib.h>

#include "stream-private.h"

static SaslMech choose_mechanism(XmppStream *s, const XmlNode *mechanisms) {
        bool sha256 = false, sha1 = false, plain = false;

        for (const XmlNode *m = mechanisms->first_child; m; m = m->next) {
                const char *name = xml_node_text(m);
                if (strcmp(m->name, "mechanism") != 0)
                        continue;
                sha256 |= strcmp(name, "SCRAM-SHA-256") == 0;
                sha1 |= strcmp(name, "SCRAM-SHA-1") == 0;
                plain |= strcmp(name, "PLAIN") == 0;
        }
        /* Keys are made for one hash: no other mechanism can use them. */
        if (s->keys)
                return s->keys->hash == SCRAM_SHA256 ? (sha256 ? MECH_SCRAM_SHA256 : MECH_NONE)
                                                     : (sha1 ? MECH_SCRAM_SHA1 : MECH_NONE);
        if (sha256)
                return MECH_SCRAM_SHA256;
        if (sha1)
                return MECH_SCRAM_SHA1;
        /* PLAIN sends the password itself: only inside TLS, and only when SCRAM is
         * not offered; and not when the login is to be remembered, which PLAIN
         * could only do by storing the password. */
        if (plain && xmpp_transport_is_tls(s->transport) && !s->need_scram_keys)
                return MECH_PLAIN;
        return MECH_NONE;
}

static void send_sasl(XmppStream *s, const char *element, const char *mechanism, const char *payload, size_t len) {
        g_autoptr(XmlNode) node = xml_node_new(element, NS_SASL);
        g_autofree char *b64 = len ? g_base64_encode((const guchar *) payload, len) : g_strdup("=");

        if (mechanism)
                xml_node_set_attr(node, "mechanism", mechanism);
        xml_node_set_text(node, b64);
        stream_send_node(s, node);
}

void stream_start_auth(XmppStream *s, const XmlNode *mechanisms) {
        s->mech = choose_mechanism(s, mechanisms);
        switch (s->mech) {
        case MECH_SCRAM_SHA256:
        case MECH_SCRAM_SHA1: {
                ScramHash hash = s->mech == MECH_SCRAM_SHA256 ? SCRAM_SHA256 : SCRAM_SHA1;
                g_autofree char *first = NULL;

                s->scram = s->keys ? scram_client_new_from_keys(s->keys, s->local, NULL)
                                   : scram_client_new(hash, s->local, s->password, NULL);
                if (!s->scram || scram_client_first(s->scram, &first) < 0)
                        return stream_fail(s, -EACCES, "the user name or password cannot be used with SCRAM");
                send_sasl(s, "auth", scram_mechanism_name(hash), first, strlen(first));
                break;
        }
        case MECH_PLAIN: {
                size_t ll = strlen(s->local), pl = strlen(s->password);
                g_autofree char *msg = g_malloc(ll + pl + 2);
                msg[0] = '\0';
                memcpy(msg + 1, s->local, ll);
                msg[1 + ll] = '\0';
                memcpy(msg + 2 + ll, s->password, pl);
                send_sasl(s, "auth", "PLAIN", msg, ll + pl + 2);
                explicit_bzero(msg, ll + pl + 2);
                break;
        }
        case MECH_NONE:
                if (s->keys)
                        return stream_fail(s, -EACCES, s->keys->hash == SCRAM_SHA256
                                           ? "the server no longer offers SCRAM-SHA-256, which the keys are for"
                                           : "the server no longer offers SCRAM-SHA-1, which the keys are for");
                if (s->need_scram_keys)
                        return stream_fail(s, -ENOTSUP, "the server offers no SCRAM mechanism: a login with PLAIN "
                                           "cannot be remembered without storing the password");
                return stream_fail(s, -ENOTSUP, xmpp_transport_is_tls(s->transport)
                                   ? "the server offers no supported SASL mechanism"
                                   : "the server offers no SCRAM mechanism, and PLAIN is refused without TLS");
        }
        s->phase = PHASE_SASL;
}

/* The salted password takes up to SCRAM_MAX_ITERATIONS HMACs, which the server
 * chooses: up to seconds of CPU. It runs in a thread of its own so that the
 * main loop (D-Bus, other connections) never waits for it. Only the main
 * thread touches job->stream; the worker only computes. */
typedef struct ScramJob {
        XmppStream *stream;     /* NULL once the stream is gone */
        ScramClient *scram;
        char *challenge;
        size_t len;
        char *final;
        int result;
} ScramJob;

static void scram_job_free(ScramJob *job) {
        scram_client_free(job->scram);
        g_free(job->challenge);
        if (job->final) {
                explicit_bzero(job->final, strlen(job->final));
                g_free(job->final);
        }
        g_free(job);
}

static gboolean scram_job_done(gpointer data) {
        ScramJob *job = data;
        XmppStream *s = job->stream;

        if (s) {
                s->scram_job = NULL;
                s->scram = g_steal_pointer(&job->scram);
                if (job->result == -ESTALE)
                        stream_fail(s, -EACCES, "the server's salt or iteration count changed: a new password?");
                else if (job->result < 0)
                        stream_fail(s, -EPROTO, "invalid SCRAM challenge from the server");
                else
                        send_sasl(s, "response", NULL, job->final, strlen(job->final));
        }
        scram_job_free(job);
        return G_SOURCE_REMOVE;
}

static gpointer scram_job_run(gpointer data) {
        ScramJob *job = data;
        job->result = scram_client_final(job->scram, job->challenge, job->len, &job->final);
        g_idle_add(scram_job_done, job);
        return NULL;
}

/* g_thread_new() aborts the process when no thread can be made (out of
 * memory or of the process limit): this login attempt fails instead, and
 * is retried like a lost connection. */
static void scram_start_final(XmppStream *s, char *challenge, size_t len) {
        g_autoptr(GError) error = NULL;
        g_autofree char *text = NULL;
        ScramJob *job = g_new0(ScramJob, 1);
        GThread *thread;

        job->stream = s;
        job->scram = g_steal_pointer(&s->scram);
        job->challenge = challenge;
        job->len = len;
        s->scram_job = job;
        thread = g_thread_try_new("imd-scram", scram_job_run, job, &error);
        if (!thread) {
                s->scram_job = NULL;
                s->scram = g_steal_pointer(&job->scram);
                scram_job_free(job);
                text = g_strdup_printf("cannot start a thread for SCRAM: %s", error->message);
                stream_fail(s, -EAGAIN, text);
                return;
        }
        g_thread_unref(thread);
}

static int decode_sasl_payload(const XmlNode *node, char **ret, size_t *ret_len) {
        const char *text = xml_node_text(node);
        gsize len = 0;
        guchar *data;

        if (!*text || strcmp(text, "=") == 0) {
                *ret = g_strdup("");
                *ret_len = 0;
                return 0;
        }
        data = g_base64_decode(text, &len);
        if (!data || len == 0) {
                g_free(data);
                return -EBADMSG;
        }
        *ret = g_realloc(data, len + 1);
        (*ret)[len] = '\0';
        *ret_len = len;
        return 0;
}

void stream_handle_sasl(XmppStream *s, const XmlNode *node) {
        g_autofree char *payload = NULL;
        size_t len = 0;

        if (strcmp(node->name, "failure") == 0) {
                const XmlNode *cond = node->first_child;
                g_autofree char *text = g_strdup_printf("authentication failed (%s)", cond ? cond->name : "unknown");
                /* RFC 6120 6.5.13: the server could not check the credentials
                 * right now; they may well be good (a remembered login must
                 * survive a server's bad moment), so this is retried like a
                 * lost connection, not taken as a refusal. */
                if (cond && (strcmp(cond->name, "temporary-auth-failure") == 0 ||
                             strcmp(cond->name, "aborted") == 0))
                        return stream_fail(s, -ENETRESET, text);
                return stream_fail(s, -EACCES, text);
        }
        if (decode_sasl_payload(node, &payload, &len) < 0)
                return stream_fail(s, -EPROTO, "malformed SASL payload");

        if (strcmp(node->name, "challenge") == 0) {
                if (!s->scram || s->scram_job)
                        return stream_fail(s, -EPROTO, "unexpected SASL challenge");
                return scram_start_final(s, g_steal_pointer(&payload), len);
        }
        if (strcmp(node->name, "success") == 0) {
                /* The server proves it knows the password too; without that a
                 * man in the middle could accept any credentials. */
                if (s->scram_job)       /* before it had our proof: it cannot have checked it */
                        return stream_fail(s, -EPROTO, "SASL success before the SCRAM exchange ended");
                if (s->mech != MECH_PLAIN && (!s->scram || scram_client_verify(s->scram, payload, len) < 0))
                        return stream_fail(s, -EPROTO, "the server's SCRAM signature is invalid");
                if (s->scram) {
                        scram_keys_free(s->learned_keys);
                        s->learned_keys = NULL;
                        (void) scram_client_get_keys(s->scram, &s->learned_keys);
                }
                scram_client_free(s->scram);
                s->scram = NULL;
                if (s->password)
                        explicit_bzero(s->password, strlen(s->password));
                s->phase = PHASE_REOPENING;
                stream_send_open(s);
                return;
        }
        stream_fail(s, -EPROTO, "unexpected SASL element");
}


ScramKeys *xmpp_stream_steal_scram_keys(XmppStream *s) {
        return g_steal_pointer(&s->learned_keys);
}

void stream_sasl_forget(XmppStream *s) {
        if (s->scram_job)
                s->scram_job->stream = NULL;    /* it frees itself when done */
        s->scram_job = NULL;
}
