/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * XEP-0297 stanza forwarding: the wrapper that both XEP-0280 carbons and
 * XEP-0313 archive results put around a message. Parsing only; whether the
 * wrapper's sender may speak for the message inside is the caller's to check.
 */

#include "xml.h"

#define NS_FORWARD "urn:xmpp:forward:0"

/* The one <message xmlns='jabber:client'/> inside forwarded (an element
 * <forwarded xmlns='urn:xmpp:forward:0'/>), and the stamp of its XEP-0203
 * <delay/> (NULL if none). -EBADMSG if forwarded is not such an element or
 * does not hold exactly one message. Out-parameters are written on success. */
int xmpp_forwarded_unwrap(const XmlNode *forwarded, const XmlNode **ret_message, const char **ret_stamp);
