/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Messages that act on an earlier message rather than being one: XEP-0424
 * retraction, XEP-0308 correction and XEP-0444 reactions. Building them and recognising them; who
 * may act on which message is the layer above's to check (only its sender).
 * And the XEP-0333 displayed marker we send, which the layer above keeps
 * and sends again like them until the server has it.
 */

#include <stdbool.h>
#include <stddef.h>

#include "xml.h"

#define NS_RETRACT      "urn:xmpp:message-retract:1"
#define NS_RETRACT_V0   "urn:xmpp:message-retract:0"
#define NS_FASTEN       "urn:xmpp:fasten:0"
#define NS_CORRECT      "urn:xmpp:message-correct:0"
#define NS_FALLBACK     "urn:xmpp:fallback:0"
#define NS_REACTIONS    "urn:xmpp:reactions:0"

/* The most reactions one sender's <reactions/> may carry, and the longest
 * reaction in bytes (an emoji with modifiers and joiners, not a text). */
#define XMPP_REACTIONS_MAX 16
#define XMPP_REACTION_MAX_BYTES 64

/* <message type='chat' to=to id=stanza_id/>: what every stanza of a
 * one-to-one chat starts from. */
XmlNode *xmpp_chat_stanza_new(const char *to, const char *stanza_id);

/* <message type='chat'> retracting our message target_id (its origin-id), with
 * a fallback body for clients without XEP-0424 and a store hint so that the
 * archive keeps the retraction (other devices, later catch-ups). */
XmlNode *xmpp_retract_new(const char *to, const char *stanza_id, const char *target_id);
/* <message type='chat'> with the new text and <replace id=target_id/>. */
XmlNode *xmpp_correction_new(const char *to, const char *stanza_id, const char *target_id, const char *text);

/* <message type='chat'> with <displayed id=target_id/> (XEP-0333: we have
 * read the peer's message target_id and every earlier one), with a store
 * hint: it has no body, and the archive should keep it for other devices. */
XmlNode *xmpp_displayed_new(const char *to, const char *stanza_id, const char *target_id);

/* <message type='chat'> with our whole set of reactions to target_id (none:
 * we took them all back), with a store hint. */
XmlNode *xmpp_reactions_new(const char *to, const char *stanza_id, const char *target_id,
                            const char *const *reactions, size_t n_reactions);
/* The id of the message that message reacts to (NULL as below); *ret_reactions
 * gets the reactions (pointers into message; distinct, each non-empty, at
 * most XMPP_REACTION_MAX_BYTES, without white space or control characters;
 * others are skipped), at most XMPP_REACTIONS_MAX of them, *ret_n their count. */
const char *xmpp_reactions_parse(const XmlNode *message, const char **ret_reactions, size_t *ret_n);
/* A reaction we would send or accept (see above). */
bool xmpp_reaction_valid(const char *reaction);

/* The id of the message that message retracts (XEP-0424 version 1, or the
 * version 0 <apply-to/> form many clients still send); NULL if it retracts
 * nothing or the id is empty or longer than 256 bytes. */
const char *xmpp_retract_target(const XmlNode *message);
/* The id of the message that message corrects; NULL as above. */
const char *xmpp_correction_target(const XmlNode *message);
