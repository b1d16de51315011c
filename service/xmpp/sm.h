/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * XEP-0198 stream management bookkeeping, without I/O: what we sent and the
 * server has not acknowledged yet, and how many received stanzas we have
 * handled. The stream feeds it; it outlives a broken connection so that the
 * next one can resume (or, failing that, tell which messages never made it).
 *
 * Counters are modulo 2^32 as the XEP requires.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct XmppSm XmppSm;

XmppSm *xmpp_sm_new(void);
void xmpp_sm_free(XmppSm *sm);          /* NULL is fine */

/* We sent <enable/>: outbound stanzas count from here, from zero; whatever a
 * previous session left unacknowledged is forgotten. */
void xmpp_sm_start(XmppSm *sm);
/* The server answered <enabled/>: inbound stanzas count from here. id is the
 * resumption id (NULL if the server does not offer resumption). */
void xmpp_sm_enabled(XmppSm *sm, const char *id, unsigned max_seconds);
/* The server refused (<enable/> or a resume), or a new connection does not
 * offer to resume: nothing is counted, nothing is in flight. */
void xmpp_sm_stop(XmppSm *sm);
/* A session without XEP-0198: outbound chat messages (those sent with a
 * message_id; other stanzas are not counted) are counted here alone, from
 * zero, and the layer that owns the stream acknowledges them itself (with
 * xmpp_sm_ack() and a count from xmpp_sm_n_sent()) when the server answers an
 * IQ sent after them: RFC 6120 §10.1 has a server handle the stanzas of a
 * stream in the order they came. Nothing can be resumed. */
void xmpp_sm_start_local(XmppSm *sm);
bool xmpp_sm_is_enabled(const XmppSm *sm);      /* counting outbound */
bool xmpp_sm_is_local(const XmppSm *sm);        /* ... without the server */
uint32_t xmpp_sm_n_sent(const XmppSm *sm);      /* outbound stanzas counted (see above) */
const char *xmpp_sm_resume_id(const XmppSm *sm);        /* NULL: cannot resume */

/* An outbound stanza (serialised) was sent. message_id/to: set for a chat
 * message, so its acknowledgement can be reported. */
void xmpp_sm_sent(XmppSm *sm, const char *xml, size_t len, const char *message_id, const char *to);

/* The server's <a h/> (or <resumed h/>): drops what it acknowledged and calls
 * acked() for every chat message among it, oldest first. -EPROTO if h
 * acknowledges more than was sent (the count then stays unchanged). */
typedef void (*XmppSmAckedFunc)(const char *message_id, const char *to, void *userdata);
int xmpp_sm_ack(XmppSm *sm, uint32_t h, XmppSmAckedFunc acked, void *userdata);

/* Still unacknowledged, oldest first: for resending after a resume. */
typedef void (*XmppSmStanzaFunc)(const char *xml, size_t len, void *userdata);
void xmpp_sm_foreach_unacked(const XmppSm *sm, XmppSmStanzaFunc func, void *userdata);
/* The chat messages among them (sent with a message_id), oldest first. */
void xmpp_sm_foreach_unacked_message(const XmppSm *sm, XmppSmAckedFunc func, void *userdata);
bool xmpp_sm_is_unacked_message(const XmppSm *sm, const char *message_id);
size_t xmpp_sm_n_unacked(const XmppSm *sm);
/* A new session replaces the old one: forget what was in flight. */
void xmpp_sm_clear_unacked(XmppSm *sm);

/* Inbound: a stanza arrived. deferred: it is a message the layer above still
 * has to store; it only counts as handled after xmpp_sm_committed(). */
void xmpp_sm_received(XmppSm *sm, bool deferred);
void xmpp_sm_committed(XmppSm *sm);
uint32_t xmpp_sm_handled(const XmppSm *sm);    /* the h we may report */
/* We ask to resume with xmpp_sm_handled(), which it returns: the server sends
 * again everything after that, so the inbound count goes back there (what was
 * received but never stored comes again and is counted once). */
uint32_t xmpp_sm_rewind_to_handled(XmppSm *sm);
bool xmpp_sm_has_uncommitted(const XmppSm *sm);
