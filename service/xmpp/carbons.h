/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * XEP-0280 message carbons: copies of what the account's other devices send
 * and receive. Building the request and unwrapping the copies; the copy is
 * only genuine when it comes from the account's own bare JID, which the
 * stream checks.
 */

#include <stdbool.h>

#include "xml.h"

#define NS_CARBONS "urn:xmpp:carbons:2"

/* <iq type='set' id=iq_id><enable xmlns='urn:xmpp:carbons:2'/></iq>. */
XmlNode *xmpp_carbons_enable_new(const char *iq_id);

/* If message carries a carbon copy (<received/> or <sent/> with a forwarded
 * message): 0, *ret_sent (true for <sent/>: our other device sent it) and the
 * forwarded message in *ret_inner. -ENOENT if message is no carbon at all;
 * -EBADMSG if it has a carbon element but no well-formed copy in it, or both
 * kinds. Out-parameters are written only on success. */
int xmpp_carbons_parse(const XmlNode *message, bool *ret_sent, const XmlNode **ret_inner);
