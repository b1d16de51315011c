/* SPDX-License-Identifier: MIT */

/*
 * The stanza parser as the stream uses it: one stream-mode parser per
 * connection (xml_parser_new_stream(), xml_parser_feed()), fed one RFC 7395
 * WebSocket message at a time — <open/>, stanzas, <close/> — the way
 * transport.c hands complete messages to stream.c. Every tree it returns is
 * then read by the stanza parsers stream.c and stream-receive.c apply to it
 * (XEP-0313, 0280, 0297, 0363, 0424, 0308, 0444, 0066/0446), and must
 * serialise to XML that parses back to the same serialisation.
 *
 * Input: WebSocket messages separated by NUL bytes (a message cannot hold
 * one that the parser accepts: it refuses NUL as not UTF-8 it can use). A
 * framing <close/> ends the connection, an error breaks it; the next
 * messages go to a new connection's parser, as after imd reconnects. The
 * same messages go through a stream parser with small limits, and the
 * whole input is parsed as one element (xml_parse()), with the default
 * limits and with small ones.
 */

#include <errno.h>
#include <string.h>
#include <glib.h>

#include "actions.h"
#include "carbons.h"
#include "forward.h"
#include "fuzz.h"
#include "jid.h"
#include "mam.h"
#include "media.h"
#include "upload.h"
#include "xml.h"

#define NS_FRAMING "urn:ietf:params:xml:ns:xmpp-framing"
#define NS_CLIENT "jabber:client"

/* stream.c's stanza_limits */
static const XmlLimits stream_limits = {
        .max_bytes = 256 * 1024,
        .max_depth = 16,
        .max_attrs = 32,
        .max_children = 4096,
};

/* Small enough that the corpus reaches every limit, and that a stream
 * parser starts a new expat document now and then (after 4 * max_bytes). */
static const XmlLimits small_limits = {
        .max_bytes = 512,
        .max_depth = 3,
        .max_attrs = 2,
        .max_children = 3,
};

static bool is_parse_error(int r) {
        return r == -EMSGSIZE || r == -ELOOP || r == -E2BIG || r == -EPERM || r == -EBADMSG;
}

static void check_string(const char *s) {
        FUZZ_CHECK(s);
        FUZZ_CHECK(g_utf8_validate(s, -1, NULL));
}

/* What the rest of imd relies on in a received tree. */
static void check_tree(const XmlNode *n, const XmlLimits *limits, unsigned depth) {
        unsigned n_children = 0;
        const XmlNode *last = NULL;

        FUZZ_CHECK(depth <= limits->max_depth);
        check_string(n->name);
        FUZZ_CHECK(n->name[0] != 0);
        FUZZ_CHECK(!strchr(n->name, ' '));
        check_string(n->ns);
        FUZZ_CHECK(n->n_attrs <= limits->max_attrs);
        FUZZ_CHECK((n->n_attrs == 0) == (n->attrs == NULL));
        for (unsigned i = 0; i < n->n_attrs; i++) {
                check_string(n->attrs[i].name);
                check_string(n->attrs[i].value);
                FUZZ_CHECK(xml_node_attr(n, n->attrs[i].name));
        }
        if (n->text) {
                FUZZ_CHECK(strlen(n->text->str) == n->text->len);
                check_string(n->text->str);
        }
        for (const XmlNode *c = n->first_child; c; c = c->next) {
                FUZZ_CHECK(c->parent == n);
                check_tree(c, limits, depth + 1);
                last = c;
                n_children++;
        }
        FUZZ_CHECK(last == n->last_child);
        FUZZ_CHECK(n_children <= limits->max_children);
}

/* An element in the xml: namespace (<xml:foo/>) parses, but the serialiser
 * writes every element with a default namespace declaration, and that one
 * must not be declared (Namespaces in XML 1.0, §3). imd never sends a
 * received tree back, so this is left as the one known exception. */
static bool has_element_in_xml_ns(const XmlNode *n) {
        if (strcmp(n->ns, "http://www.w3.org/XML/1998/namespace") == 0)
                return true;
        for (const XmlNode *c = n->first_child; c; c = c->next)
                if (has_element_in_xml_ns(c))
                        return true;
        return false;
}

/* serialise(parse(serialise(tree))) == serialise(tree): what imd writes of a
 * received tree is well-formed and means the same. */
static void check_roundtrip(const XmlNode *n, const XmlLimits *limits) {
        g_autofree char *once = NULL, *twice = NULL;
        g_autoptr(XmlNode) again = NULL;
        XmlLimits big = *limits;
        size_t len = 0, len2 = 0;
        int r;

        once = xml_serialize(n, &len);
        FUZZ_CHECK(once && strlen(once) == len);
        if (has_element_in_xml_ns(n))
                return;
        /* Escaping and namespace declarations make the text longer, not the tree bigger. */
        big.max_bytes = MAX(len, big.max_bytes);
        r = xml_parse(once, len, &big, &again);
        if (r != 0)
                fprintf(stderr, "serialised tree does not parse (%d): %s\n", r, once);
        FUZZ_CHECK(r == 0);
        twice = xml_serialize(again, &len2);
        if (len != len2 || strcmp(once, twice) != 0)
                fprintf(stderr, "serialisation changed:\n  %s\n  %s\n", once, twice);
        FUZZ_CHECK(len == len2 && strcmp(once, twice) == 0);
}

static void check_media(const XmlNode *msg) {
        XmppMedia media;

        memset(&media, 0xa5, sizeof media);
        xmpp_media_parse(msg, &media);
        if (!media.url)
                return;
        FUZZ_CHECK(xmpp_media_url_usable(media.url));
        FUZZ_CHECK(!media.mime || g_utf8_validate(media.mime, -1, NULL));
        FUZZ_CHECK(!media.name || g_utf8_validate(media.name, -1, NULL));
        FUZZ_CHECK(media.size >= -1);
}

/* A chat message's contents, as stream-receive.c's handle_chat() reads them. */
static void check_chat(const XmlNode *msg) {
        const char *reactions[XMPP_REACTIONS_MAX + 1];
        const char *target;
        size_t n = 0;

        check_media(msg);
        target = xmpp_reactions_parse(msg, reactions, &n);
        if (target) {
                check_string(target);
                FUZZ_CHECK(n <= XMPP_REACTIONS_MAX);
                for (size_t i = 0; i < n; i++) {
                        FUZZ_CHECK(xmpp_reaction_valid(reactions[i]));
                        for (size_t j = 0; j < i; j++)
                                FUZZ_CHECK(strcmp(reactions[i], reactions[j]) != 0);
                }
        }
        target = xmpp_retract_target(msg);
        FUZZ_CHECK(!target || (*target && strlen(target) <= 256));
        target = xmpp_correction_target(msg);
        FUZZ_CHECK(!target || (*target && strlen(target) <= 256));
}

static void check_message(const XmlNode *msg) {
        XmppMamResult result;
        const XmlNode *inner = NULL;
        bool sent = false;
        int r;

        r = xmpp_mam_parse_result(msg, &result);
        FUZZ_CHECK(r == 0 || r == -ENOENT || r == -EBADMSG);
        if (r == 0) {
                FUZZ_CHECK(result.id && *result.id && strlen(result.id) <= XMPP_MAM_ID_MAX);
                FUZZ_CHECK(result.message && strcmp(result.message->name, "message") == 0);
                check_chat(result.message);
        }
        r = xmpp_carbons_parse(msg, &sent, &inner);
        FUZZ_CHECK(r == 0 || r == -ENOENT || r == -EBADMSG);
        if (r == 0) {
                FUZZ_CHECK(inner && strcmp(inner->name, "message") == 0);
                check_chat(inner);
        }
        for (const XmlNode *c = msg->first_child; c; c = c->next) {
                const XmlNode *fwd_msg = NULL;
                const char *stamp = NULL;

                if (xmpp_forwarded_unwrap(c, &fwd_msg, &stamp) == 0)
                        FUZZ_CHECK(fwd_msg && strcmp(fwd_msg->name, "message") == 0);
        }
        check_chat(msg);
}

static void check_iq(const XmlNode *iq) {
        g_auto(GStrv) items = NULL;
        XmppUploadSlot slot;
        const char *first = NULL, *last = NULL;
        bool complete = false;
        uint64_t max = 0;
        int r;

        r = xmpp_mam_parse_fin(iq, &complete, &first, &last);
        FUZZ_CHECK(r == 0 || r == -EBADMSG);
        items = xmpp_disco_parse_items(iq);
        FUZZ_CHECK(items && g_strv_length(items) <= XMPP_DISCO_ITEMS_MAX);
        for (char **i = items; *i; i++) {
                Jid j = { 0 };

                FUZZ_CHECK(jid_parse(*i, &j) == 0);
                jid_clear(&j);
        }
        (void) xmpp_upload_parse_service(iq, &max);
        memset(&slot, 0, sizeof slot);
        r = xmpp_upload_parse_slot(iq, &slot);
        FUZZ_CHECK(r == 0 || r == -EPROTO);
        if (r == 0) {
                FUZZ_CHECK(slot.put_url && slot.get_url);
                FUZZ_CHECK(slot.n_headers <= XMPP_UPLOAD_HEADERS_MAX);
                for (size_t i = 0; i < slot.n_headers; i++)
                        FUZZ_CHECK(!strpbrk(slot.header_values[i], "\r\n"));
                xmpp_upload_slot_clear(&slot);
        }
        r = xmpp_upload_parse_error(iq, &max);
        FUZZ_CHECK(r == -EMSGSIZE || r == -EDQUOT || r == -EPERM || r == -EIO);
}

static void check_element(const XmlNode *n, const XmlLimits *limits) {
        check_tree(n, limits, 1);
        check_roundtrip(n, limits);
        if (strcmp(n->ns, NS_CLIENT) != 0)
                return;
        if (strcmp(n->name, "message") == 0)
                check_message(n);
        else if (strcmp(n->name, "iq") == 0)
                check_iq(n);
}

static XmlParser *connection_new(const XmlLimits *limits) {
        XmlParser *p = xml_parser_new_stream(limits);

        FUZZ_CHECK(p);
        return p;
}

static void run_stream(const uint8_t *data, size_t size, const XmlLimits *limits) {
        g_autoptr(XmlParser) parser = connection_new(limits);
        const char *p = (const char *) data, *end = p + size;

        while (p <= end) {
                const char *nul = memchr(p, 0, end - p);
                size_t len = (nul ? nul : end) - p;
                g_autoptr(XmlNode) node = NULL;
                int r;

                r = xml_parser_feed(parser, p, len, &node);
                if (r < 0) {
                        g_autoptr(XmlNode) after = NULL;

                        FUZZ_CHECK(is_parse_error(r));
                        FUZZ_CHECK(!node);
                        /* The stream ends here; a parser left unusable must
                         * still cope with being fed (and freed). */
                        (void) xml_parser_feed(parser, "<a/>", 4, &after);
                        xml_parser_free(parser);
                        parser = connection_new(limits);
                } else {
                        FUZZ_CHECK(node);
                        check_element(node, limits);
                        if (strcmp(node->ns, NS_FRAMING) == 0 && strcmp(node->name, "close") == 0) {
                                xml_parser_free(parser);
                                parser = connection_new(limits);
                        }
                }
                p += len + 1;
        }
}

static void run_one_element(const uint8_t *data, size_t size, const XmlLimits *limits) {
        XmlNode *node = (XmlNode *) 0x1;
        int r;

        r = xml_parse((const char *) data, size, limits, &node);
        if (r < 0) {
                FUZZ_CHECK(is_parse_error(r));
                FUZZ_CHECK(node == (XmlNode *) 0x1);    /* untouched on failure */
                return;
        }
        FUZZ_CHECK(node && node != (XmlNode *) 0x1);
        check_element(node, limits);
        xml_node_free(node);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        run_stream(data, size, &stream_limits);
        run_stream(data, size, &small_limits);
        run_one_element(data, size, &xml_default_limits);
        run_one_element(data, size, &small_limits);
        return 0;
}
