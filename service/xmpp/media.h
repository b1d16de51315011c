/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Media in a chat message: the URL of a file the sender uploaded (XEP-0066
 * out-of-band data, as XEP-0363 clients send it) and what the sender says of
 * it (XEP-0446 file metadata, alone or in an XEP-0447 <file-sharing/>).
 * Everything here is the sender's claim, checked only for form: the URL is
 * http(s) and short, numbers are numbers, the media type looks like one.
 */

#include <stdbool.h>
#include <stdint.h>

#include "xml.h"

#define NS_OOB "jabber:x:oob"
#define NS_FILE_METADATA "urn:xmpp:file:metadata:0"
#define NS_SFS "urn:xmpp:sfs:0"

#define XMPP_MEDIA_URL_MAX 2048
#define XMPP_MEDIA_NAME_MAX 255

typedef struct XmppMedia {
        const char *url;        /* http:// or https://; NULL: no media */
        const char *mime;       /* as the sender gave it, or NULL */
        const char *name;       /* as the sender gave it, or NULL */
        int64_t size;           /* bytes; -1 unknown */
        uint32_t width, height; /* pixels; 0 unknown */
        uint32_t duration_ms;   /* 0 unknown */
} XmppMedia;

/* The media of message into *ret (url NULL when it carries none or an
 * unusable one). Strings point into message. */
void xmpp_media_parse(const XmlNode *message, XmppMedia *ret);
