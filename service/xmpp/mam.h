/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * XEP-0313 message archive management of our own archive, paged with XEP-0059
 * result set management: building the query, parsing the results and the
 * <fin/> that ends a page. Parsing only; whether a result answers a query we
 * sent, from our own archive, is the stream's to check.
 */

#include <stdbool.h>
#include <stdint.h>

#include "xml.h"

#define NS_MAM "urn:xmpp:mam:2"
#define NS_RSM "http://jabber.org/protocol/rsm"

/* Archive ids longer than this are refused (Prosody's are UUIDs). */
#define XMPP_MAM_ID_MAX 256

typedef enum XmppMamQueryKind {
        XMPP_MAM_AFTER,         /* up to max messages after after_id (NULL: from the start), oldest first */
        XMPP_MAM_NEWEST,        /* only the newest message: RSM <max>1</max><before/> */
        XMPP_MAM_BEFORE,        /* one conversation, up to max messages before an id (xmpp_mam_query_before_new) */
} XmppMamQueryKind;

/* <iq type='set' id=iq_id><query xmlns='urn:xmpp:mam:2' queryid=query_id>
 * with an RSM <set/>. after_id and max are used by XMPP_MAM_AFTER only. */
XmlNode *xmpp_mam_query_new(const char *iq_id, const char *query_id, XmppMamQueryKind kind, const char *after_id,
                            unsigned max);

/* The same for paging back through one conversation: messages with `with`
 * (a bare JID), the last max of them before archive id before_id, or (NULL)
 * of the whole archive, then only those up to end_ms (Unix ms; 0: no limit). */
XmlNode *xmpp_mam_query_before_new(const char *iq_id, const char *query_id, const char *with, const char *before_id,
                                   int64_t end_ms, unsigned max);

typedef struct XmppMamResult {
        const char *query_id;   /* as the server gave it; NULL if absent */
        const char *id;         /* archive id: non-empty, at most XMPP_MAM_ID_MAX bytes */
        const char *stamp;      /* XEP-0203 stamp of the archived copy; NULL if none */
        const XmlNode *message; /* the archived <message/> */
} XmppMamResult;

/* A <message/> carrying <result xmlns='urn:xmpp:mam:2'/>: 0 and *ret.
 * -ENOENT if message carries no result; -EBADMSG if the result is malformed
 * (no valid id, no forwarded message). *ret is written only on success. */
int xmpp_mam_parse_result(const XmlNode *message, XmppMamResult *ret);

/* The <fin/> of the <iq type='result'/> that ends a page: whether the archive
 * has nothing more in the direction of the query (complete='true'), and the
 * archive ids of the page's first and last message (RSM <first/>, <last/>;
 * NULL for an empty page). -EBADMSG if there is no fin or an id is unusable.
 * Out-parameters are written only on success. */
int xmpp_mam_parse_fin(const XmlNode *iq, bool *ret_complete, const char **ret_first, const char **ret_last);
