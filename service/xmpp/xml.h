/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * A small namespace-aware element tree for XMPP stanzas.
 *
 * RFC 7395 frames exactly one top-level element per WebSocket message, so the
 * parser takes one complete element at a time (no streaming across calls).
 * Input is untrusted: the parser enforces the limits below and refuses
 * restricted XML (RFC 6120 §11.1: no DOCTYPE, entity declarations, comments or
 * processing instructions).
 */

#include <stdbool.h>
#include <stddef.h>
#include <glib.h>

typedef struct XmlLimits {
        size_t max_bytes;      /* size of one element, serialised */
        unsigned max_depth;    /* nesting depth; the top element is depth 1 */
        unsigned max_attrs;    /* attributes on one element */
        unsigned max_children; /* direct children of one element */
        size_t max_tree_bytes; /* memory its tree may take; 0: 16 times max_bytes */
} XmlLimits;

/* Defaults matching Prosody's own stanza limit (256 KiB). */
extern const XmlLimits xml_default_limits;

typedef struct XmlAttr {
        char *name;   /* local name; namespaced attributes as "NS-URI local" (e.g. xml:lang ->
                         "http://www.w3.org/XML/1998/namespace lang") */
        char *value;
} XmlAttr;

typedef struct XmlNode XmlNode;
struct XmlNode {
        char *name;          /* local name */
        char *ns;            /* namespace URI, never NULL ("" when none) */
        XmlAttr *attrs;      /* n_attrs entries */
        unsigned n_attrs;
        GString *text;       /* character data directly inside this element, concatenated */
        XmlNode *parent;
        XmlNode *first_child, *last_child;
        XmlNode *next;       /* next sibling */
        bool packed;         /* name, ns and attrs share the node's allocation (parsed nodes) */
};

/* Parse one complete element. Returns 0 and the tree in *ret, or:
 * -EMSGSIZE  data longer than limits->max_bytes, or a tree that would take
 *            more than 16 times that in memory (a long namespace copied
 *            into every node)
 * -ELOOP     nesting deeper than max_depth
 * -E2BIG     too many attributes or children
 * -EPERM     restricted XML (DOCTYPE, markup declaration, entity reference
 *            other than the predefined ones, comment, PI)
 * -EBADMSG   not well-formed, or not valid UTF-8
 * -ENOMEM
 * limits NULL means xml_default_limits. *ret is written only on success. */
int xml_parse(const char *data, size_t len, const XmlLimits *limits, XmlNode **ret);

/* The root element's start tag alone (its name, namespace and attributes; no
 * children, no text), from a document too large or too deep to parse whole
 * (the rest is not even checked for well-formedness): enough to answer a
 * stanza that had to be dropped. Limits and errors as for xml_parse(). */
int xml_parse_head(const char *data, size_t len, const XmlLimits *limits, XmlNode **ret);

/* The same with a parser kept across calls, which saves creating an expat
 * parser per stanza (one per connection; not thread-safe). limits NULL means
 * xml_default_limits; they are copied. xml_parser_new() returns NULL only when
 * out of memory. */
typedef struct XmlParser XmlParser;
XmlParser *xml_parser_new(const XmlLimits *limits);
void xml_parser_free(XmlParser *p);                /* NULL is fine */
G_DEFINE_AUTOPTR_CLEANUP_FUNC(XmlParser, xml_parser_free)
int xml_parser_parse(XmlParser *p, const char *data, size_t len, XmlNode **ret);

/* Stream mode, for a connection: one expat document whose (synthetic) root
 * holds every element fed, so no per-element reset or prolog (a new document
 * is started every few max_bytes of input, which bounds the names expat
 * keeps). Each feed must be exactly one complete element (RFC 7395 framing),
 * else -EBADMSG. Same limits and errors as xml_parser_parse(). After a limit
 * error (-EMSGSIZE, -ELOOP, -E2BIG) the parser goes on with the next element:
 * every message stands alone, so a stream need not end over one that is too
 * big. Any other error leaves it unusable (the stream must end). */
XmlParser *xml_parser_new_stream(const XmlLimits *limits);
int xml_parser_feed(XmlParser *p, const char *data, size_t len, XmlNode **ret);

XmlNode *xml_node_new(const char *name, const char *ns);
void xml_node_free(XmlNode *node);            /* frees the subtree; NULL is fine */
G_DEFINE_AUTOPTR_CLEANUP_FUNC(XmlNode, xml_node_free)

/* Appends a new child; ns NULL inherits the parent's namespace. Returns the child. */
XmlNode *xml_node_add_child(XmlNode *parent, const char *name, const char *ns);
/* Replaces an existing attribute of that name; value NULL removes it.
 * Returns node, for chaining. */
XmlNode *xml_node_set_attr(XmlNode *node, const char *name, const char *value);
XmlNode *xml_node_set_text(XmlNode *node, const char *text);

const char *xml_node_attr(const XmlNode *node, const char *name);     /* NULL if absent */
/* First child with that local name and namespace (ns NULL: any namespace). */
XmlNode *xml_node_child(const XmlNode *node, const char *name, const char *ns);
const char *xml_node_text(const XmlNode *node);                         /* "" if none */
/* Text of the first matching child, or NULL if there is no such child. */
const char *xml_node_child_text(const XmlNode *node, const char *name, const char *ns);

/* Serialise: xmlns='...' is written on the top element and wherever a child's
 * namespace differs from its parent's. Text and attribute values are escaped
 * (& < > ' "). Returns a newly allocated NUL-terminated string; *len if non-NULL.
 *
 * Element prefixes are not kept: every element is written with a default
 * namespace declaration. Attributes in the xml namespace come out as xml:NAME;
 * other namespaced attributes get a prefix nsN declared on their own element.
 * Attributes named xmlns or xmlns:* are skipped (declarations are the
 * serialiser's job). An element's text is written as one run before its
 * children, so interleaving of mixed content is not preserved (XMPP does not
 * use mixed content). Strings must be valid UTF-8; characters XML 1.0 cannot
 * carry (C0 controls other than tab/LF/CR, U+FFFE, U+FFFF) become U+FFFD so the
 * output is always well-formed. */
char *xml_serialize(const XmlNode *node, size_t *len);
/* Escapes for use in attribute values or text (tab, LF and CR as character
 * references too); len -1 means NUL-terminated. */
void xml_escape_append(GString *out, const char *text, gssize len);
