/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * XEP-0363 HTTP File Upload: finding the server's upload service (XEP-0030
 * service discovery) and asking it for a slot, a PUT URL to upload a file to
 * and the GET URL it will then be found at. Builders and parsers only: the
 * requests go out through xmpp_stream_send_iq(). Answers are untrusted like
 * every stanza: URLs must be http(s), headers are the three the XEP allows.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "xml.h"

#define NS_DISCO_INFO "http://jabber.org/protocol/disco#info"
#define NS_DISCO_ITEMS "http://jabber.org/protocol/disco#items"
#define NS_UPLOAD "urn:xmpp:http:upload:0"
#define NS_DATA_FORMS "jabber:x:data"

/* At most this many JIDs of a disco#items answer are kept (and asked). */
#define XMPP_DISCO_ITEMS_MAX 32
#define XMPP_UPLOAD_HEADERS_MAX 3

XmlNode *xmpp_disco_items_new(const char *to);
XmlNode *xmpp_disco_info_new(const char *to);
/* The JIDs (valid, as given) of a disco#items result, NULL-terminated; an
 * empty list if there are none. */
char **xmpp_disco_parse_items(const XmlNode *reply);
/* Whether a disco#info result describes an XEP-0363 service; *ret_max its
 * max-file-size (0 when it advertises none). */
bool xmpp_upload_parse_service(const XmlNode *reply, uint64_t *ret_max);

/* <iq type='get'> asking service for a slot for a file. */
XmlNode *xmpp_upload_slot_request_new(const char *service, const char *name, uint64_t size, const char *mime);

typedef struct XmppUploadSlot {
        char *put_url, *get_url;
        /* what the PUT must carry: Authorization, Cookie or Expires */
        char *header_names[XMPP_UPLOAD_HEADERS_MAX];
        char *header_values[XMPP_UPLOAD_HEADERS_MAX];
        size_t n_headers;
} XmppUploadSlot;

/* The slot of a result: 0, or -EPROTO when it is malformed (no URLs, URLs
 * that are not http(s)). Headers other than the three, repeated ones and
 * values with a line break (which would smuggle in headers of the service's
 * choosing) are dropped. *ret is filled only on success;
 * xmpp_upload_slot_clear() it after. */
int xmpp_upload_parse_slot(const XmlNode *reply, XmppUploadSlot *ret);
void xmpp_upload_slot_clear(XmppUploadSlot *slot);

/* Why the service refused a slot: -EMSGSIZE the file is too large (*ret_max,
 * if not NULL: the limit it gives, else 0), -EDQUOT over a quota
 * (resource-constraint), -EPERM not allowed (forbidden, not-allowed), -EIO
 * anything else. */
int xmpp_upload_parse_error(const XmlNode *reply, uint64_t *ret_max);
