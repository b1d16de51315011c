/* SPDX-License-Identifier: MIT */

/*
 * XEP-0156 host-meta documents, fetched from the account's domain over
 * https but written by whoever runs that web server. Invariant: an endpoint
 * is returned only with 0, and it is a wss:// URL that the transport's own
 * URL check (GUri) takes, with a host, no user info and no byte <= space.
 *
 * Input: the document's bytes.
 */

#include <errno.h>
#include <string.h>
#include <glib.h>

#include "fuzz.h"
#include "host-meta.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *url = (char *) 0x1;
        int r = xmpp_host_meta_websocket((const char *) data, size, &url);

        if (r < 0) {
                FUZZ_CHECK(r == -ENOENT || r == -EBADMSG);
                FUZZ_CHECK(url == (char *) 0x1);        /* untouched */
                return 0;
        }
        FUZZ_CHECK(r == 0 && url && g_str_has_prefix(url, "wss://"));
        for (const char *p = url; *p; p++)
                FUZZ_CHECK((unsigned char) *p > ' ' && *p != 0x7f);
        {
                g_autoptr(GUri) uri = g_uri_parse(url, G_URI_FLAGS_NONE, NULL);
                FUZZ_CHECK(uri && g_uri_get_host(uri) && *g_uri_get_host(uri) && !g_uri_get_userinfo(uri));
        }
        g_free(url);
        return 0;
}
