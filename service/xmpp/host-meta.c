/* SPDX-License-Identifier: MIT */

#include <errno.h>
#include <string.h>
#include <glib.h>

#include "host-meta.h"
#include "xml.h"

/* Longer is no endpoint anyone types or serves. */
#define MAX_URL_BYTES 2048

static const XmlLimits host_meta_limits = {
        .max_bytes = XMPP_HOST_META_MAX_BYTES,
        .max_depth = 8,
        .max_attrs = 16,
        .max_children = 256,
};

/* wss://host[:port][/path], nothing else: no user info (a password in a
 * URL), no spaces or control characters, a host. */
static bool usable_websocket_url(const char *href) {
        g_autoptr(GUri) uri = NULL;
        size_t len = strlen(href);

        /* as written: the transport takes the scheme in lower case only */
        if (len > MAX_URL_BYTES || !g_str_has_prefix(href, "wss://"))
                return false;
        for (size_t i = 0; i < len; i++)
                if ((unsigned char) href[i] <= ' ' || href[i] == 0x7f)
                        return false;
        uri = g_uri_parse(href, G_URI_FLAGS_NONE, NULL);
        return uri && g_uri_get_host(uri) && *g_uri_get_host(uri) && !g_uri_get_userinfo(uri);
}

int xmpp_host_meta_websocket(const char *data, size_t len, char **ret_url) {
        g_autoptr(XmlNode) root = NULL;

        if (xml_parse(data, len, &host_meta_limits, &root) < 0 || strcmp(root->name, "XRD") != 0 ||
            strcmp(root->ns, NS_XRD) != 0)
                return -EBADMSG;
        for (const XmlNode *link = root->first_child; link; link = link->next) {
                const char *rel, *href;

                if (strcmp(link->name, "Link") != 0 || strcmp(link->ns, NS_XRD) != 0)
                        continue;
                rel = xml_node_attr(link, "rel");
                href = xml_node_attr(link, "href");
                if (rel && href && strcmp(rel, XMPP_ALT_WEBSOCKET) == 0 && usable_websocket_url(href)) {
                        *ret_url = g_strdup(href);
                        return 0;
                }
        }
        return -ENOENT;
}
