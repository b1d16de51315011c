/* SPDX-License-Identifier: MIT */
/* XEP-0156 host-meta: the WebSocket endpoint, and what is refused. */

#include <errno.h>
#include <string.h>
#include <glib.h>

#include "host-meta.h"

static int websocket(const char *doc, char **url) {
        *url = NULL;
        return xmpp_host_meta_websocket(doc, strlen(doc), url);
}

#define XRD_OPEN "<?xml version='1.0' encoding='utf-8'?><XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'>"
#define BOSH_LINK "<Link rel='urn:xmpp:alt-connections:xbosh' href='https://example.org/http-bind'/>"

static void test_finds_websocket(void) {
        g_autofree char *url = NULL;

        /* as Prosody's and ejabberd's modules serve it: BOSH first */
        g_assert_cmpint(websocket(XRD_OPEN BOSH_LINK
                                  "<Link rel='urn:xmpp:alt-connections:websocket' href='wss://example.org:5443/ws'/>"
                                  "</XRD>", &url), ==, 0);
        g_assert_cmpstr(url, ==, "wss://example.org:5443/ws");
}

static void test_first_usable_wins(void) {
        g_autofree char *url = NULL;

        g_assert_cmpint(websocket(XRD_OPEN
                                  /* plain text: the password would travel in clear */
                                  "<Link rel='urn:xmpp:alt-connections:websocket' href='ws://example.org/ws'/>"
                                  /* a password in the URL, no host, spaces, upper-case scheme */
                                  "<Link rel='urn:xmpp:alt-connections:websocket' href='wss://u:p@example.org/'/>"
                                  "<Link rel='urn:xmpp:alt-connections:websocket' href='wss:///ws'/>"
                                  "<Link rel='urn:xmpp:alt-connections:websocket' href='wss://example.org/a b'/>"
                                  "<Link rel='urn:xmpp:alt-connections:websocket' href='WSS://example.org/ws'/>"
                                  /* another namespace */
                                  "<Link xmlns='urn:other' rel='urn:xmpp:alt-connections:websocket' "
                                  "href='wss://evil.example/ws'/>"
                                  "<Link rel='urn:xmpp:alt-connections:websocket' href='wss://xmpp.example.org/ws'/>"
                                  "<Link rel='urn:xmpp:alt-connections:websocket' href='wss://second.example/ws'/>"
                                  "</XRD>", &url), ==, 0);
        g_assert_cmpstr(url, ==, "wss://xmpp.example.org/ws");
}

static void test_none(void) {
        char *url;

        g_assert_cmpint(websocket(XRD_OPEN "</XRD>", &url), ==, -ENOENT);
        g_assert_cmpint(websocket(XRD_OPEN BOSH_LINK "</XRD>", &url), ==, -ENOENT);
        g_assert_cmpint(websocket(XRD_OPEN "<Link rel='urn:xmpp:alt-connections:websocket'/></XRD>", &url), ==,
                        -ENOENT);
        g_assert_null(url);
}

static void test_not_a_host_meta(void) {
        g_autofree char *big = NULL;
        GString *doc;
        char *url;

        g_assert_cmpint(websocket("", &url), ==, -EBADMSG);
        g_assert_cmpint(websocket("<html><body>Not found</body></html>", &url), ==, -EBADMSG);
        g_assert_cmpint(websocket("<XRD><Link rel='urn:xmpp:alt-connections:websocket' href='wss://a.example/'/></XRD>",
                                  &url), ==, -EBADMSG);   /* no XRD namespace */
        g_assert_cmpint(websocket(XRD_OPEN "<Link", &url), ==, -EBADMSG);
        g_assert_cmpint(websocket("<!DOCTYPE x [<!ENTITY a 'wss://a.example/'>]>" XRD_OPEN "</XRD>", &url), ==,
                        -EBADMSG);
        g_assert_cmpint(websocket("{\"links\": []}", &url), ==, -EBADMSG);
        /* over the size limit */
        doc = g_string_new(XRD_OPEN);
        while (doc->len <= XMPP_HOST_META_MAX_BYTES)
                g_string_append(doc, BOSH_LINK);
        g_string_append(doc, "<Link rel='urn:xmpp:alt-connections:websocket' href='wss://a.example/'/></XRD>");
        big = g_string_free(doc, FALSE);
        g_assert_cmpint(websocket(big, &url), ==, -EBADMSG);
        g_assert_null(url);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/host-meta/finds-websocket", test_finds_websocket);
        g_test_add_func("/host-meta/first-usable-wins", test_first_usable_wins);
        g_test_add_func("/host-meta/none", test_none);
        g_test_add_func("/host-meta/not-a-host-meta", test_not_a_host_meta);
        return g_test_run();
}
