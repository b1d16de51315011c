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
#define NS_URL_DATA "http://jabber.org/protocol/url-data"

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

/* http:// or https://, at most XMPP_MEDIA_URL_MAX bytes of UTF-8, no white
 * space, control, separator or format characters (ASCII or not). */
bool xmpp_media_url_usable(const char *url);
/* type/subtype made of RFC 6838 restricted names, at most 255 bytes. */
bool xmpp_media_mime_usable(const char *mime);
/* 1 to XMPP_MEDIA_NAME_MAX bytes of UTF-8 without control characters. */
bool xmpp_media_name_usable(const char *name);

/* Adds m (url set) to an outgoing message: XEP-0066 out-of-band data, which
 * every client reads, and an XEP-0447 <file-sharing/> with the XEP-0446
 * metadata that is known (mime, name NULL; size -1; width, height,
 * duration_ms 0: unknown) and the URL as its source. */
void xmpp_media_append(XmlNode *message, const XmppMedia *m);
