/* SPDX-License-Identifier: MIT */

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>
#include <expat.h>

#include "xml.h"

/* Expat reports qualified names as "URI<sep>local". A space can never occur in
 * a local name, so splitting at the last space is unambiguous. */
#define NS_SEP ' '
#define XML_NS_URI "http://www.w3.org/XML/1998/namespace"

const XmlLimits xml_default_limits = {
        .max_bytes = 256 * 1024,
        .max_depth = 32,
        .max_attrs = 64,
        .max_children = 10000,
};

/* Enough for the default depth without touching the heap. */
#define CHILD_COUNT_STACK 64

/* The tree may take this many times max_bytes of memory. Without a bound,
 * an element in a long default namespace costs a copy of the namespace per
 * child: 256 KiB of input made 4 GiB of nodes. Real stanzas need 2-6 times
 * their size; a guess at malloc's overhead is counted per allocation. */
#define TREE_BYTES_FACTOR 16
#define ALLOC_OVERHEAD 16

/* Stream mode: expat keeps every distinct element and attribute name of a
 * document (and the pool blocks behind them) until the document ends, so
 * one document per connection would grow by every new name a peer invents
 * (95 MiB after 5 MB of stanzas with unique names). A fresh document after
 * this much input bounds that; not a multiple of max_bytes, which may be
 * large for the few stanzas that need it (2 MiB for a stream). */
#define STREAM_ROTATE_BYTES (1024 * 1024)

typedef struct ParseCtx {
        XML_Parser expat;
        const XmlLimits *limits;
        XmlNode *root, *cur;
        unsigned depth;         /* of the element being built; the stream root is not counted */
        unsigned *n_children;   /* indexed by depth: children seen so far */
        size_t tree_bytes;      /* memory the tree takes so far (roughly) */
        int error;              /* first reason we stopped expat, 0 if none */
        bool stream;            /* elements are children of a synthetic stream root */
        bool in_stream_root;    /* stream mode: the synthetic root has been opened */
        bool complete;          /* stream mode: root closed during this feed; head_only: root seen */
        bool head_only;         /* stop after the root's start tag (xml_parse_head()) */
} ParseCtx;

struct XmlParser {
        XML_Parser expat;
        XmlLimits limits;
        unsigned long hash_salt;
        bool used;      /* expat needs a reset before the second document */
        bool broken;    /* stream mode: an error left expat mid-document */
        size_t fed;     /* stream mode: bytes parsed by this expat document */
        ParseCtx ctx;   /* stream mode: lives as long as the document */
        unsigned *n_children;
};

static void parse_fail(ParseCtx *ctx, int error) {
        if (ctx->error == 0)
                ctx->error = error;
        /* Stopping from inside a handler is the only way to make expat
         * return before it reaches the end of the input. */
        XML_StopParser(ctx->expat, XML_FALSE);
}

/* Counts bytes against the tree's memory bound; false (and expat stopped)
 * once it is spent. */
static bool tree_charge(ParseCtx *ctx, size_t bytes) {
        size_t max = ctx->limits->max_tree_bytes                         ? ctx->limits->max_tree_bytes
                     : ctx->limits->max_bytes > SIZE_MAX / TREE_BYTES_FACTOR ? SIZE_MAX
                                                                             : ctx->limits->max_bytes * TREE_BYTES_FACTOR;

        if (bytes > max - ctx->tree_bytes) {
                parse_fail(ctx, -EMSGSIZE);
                return false;
        }
        ctx->tree_bytes += bytes;
        return true;
}

static XmlNode *node_new_take(char *name, char *ns) {
        XmlNode *n = g_new0(XmlNode, 1);
        n->name = name;
        n->ns = ns;
        return n;
}

/* the attribute array right after a packed node must be aligned */
G_STATIC_ASSERT(sizeof(XmlNode) % G_ALIGNOF(XmlAttr) == 0);

/* A received element in one allocation: the node, its attribute array and
 * every string (local name, namespace NS of NS_LEN bytes, attribute names
 * and values). A stanza's tree then costs a few allocations instead of a
 * few dozen; xml_node_set_attr() unpacks a node before changing it. */
static XmlNode *node_new_packed(const char *local, const char *ns, size_t ns_len, const XML_Char **atts,
                                unsigned n_attrs) {
        size_t local_len = strlen(local), size = sizeof(XmlNode) + n_attrs * sizeof(XmlAttr) + local_len + ns_len + 2;
        XmlNode *n;
        char *p;

        for (unsigned i = 0; i < 2 * n_attrs; i++)
                size += strlen(atts[i]) + 1;
        n = g_malloc(size);
        *n = (XmlNode) { .packed = true, .n_attrs = n_attrs };
        n->attrs = n_attrs > 0 ? (XmlAttr *) (n + 1) : NULL;
        p = (char *) (n + 1) + n_attrs * sizeof(XmlAttr);
        n->name = memcpy(p, local, local_len + 1);
        p += local_len + 1;
        n->ns = memcpy(p, ns, ns_len);
        p[ns_len] = 0;
        p += ns_len + 1;
        for (unsigned i = 0; i < 2 * n_attrs; i++) {
                size_t len = strlen(atts[i]) + 1;
                char *copy = memcpy(p, atts[i], len);
                if (i % 2 == 0)
                        n->attrs[i / 2].name = copy;
                else
                        n->attrs[i / 2].value = copy;
                p += len;
        }
        return n;
}

/* Gives a packed node's strings allocations of their own, so they can be
 * replaced and freed one by one. */
static void node_unpack(XmlNode *n) {
        XmlAttr *attrs = NULL;

        if (!n->packed)
                return;
        if (n->n_attrs > 0) {
                attrs = g_new(XmlAttr, n->n_attrs);
                for (unsigned i = 0; i < n->n_attrs; i++)
                        attrs[i] = (XmlAttr) { g_strdup(n->attrs[i].name), g_strdup(n->attrs[i].value) };
        }
        n->attrs = attrs;
        n->name = g_strdup(n->name);
        n->ns = g_strdup(n->ns);
        n->packed = false;
}

static void node_append(XmlNode *parent, XmlNode *child) {
        child->parent = parent;
        if (parent->last_child)
                parent->last_child->next = child;
        else
                parent->first_child = child;
        parent->last_child = child;
}

static void XMLCALL on_start(void *userdata, const XML_Char *qname, const XML_Char **atts) {
        ParseCtx *ctx = userdata;
        const char *sep;
        unsigned n_attrs = 0;
        size_t cost;
        XmlNode *n;

        if (ctx->error != 0)
                return;
        if (ctx->stream && !ctx->in_stream_root) {
                ctx->in_stream_root = true;
                return;
        }
        if (ctx->stream && !ctx->cur && ctx->root)
                return parse_fail(ctx, -EBADMSG);       /* a second element in one message */

        if (ctx->depth >= ctx->limits->max_depth)
                return parse_fail(ctx, -ELOOP);
        if (ctx->cur && ++ctx->n_children[ctx->depth - 1] > ctx->limits->max_children)
                return parse_fail(ctx, -E2BIG);

        while (atts[n_attrs * 2])
                n_attrs++;
        if (n_attrs > ctx->limits->max_attrs)
                return parse_fail(ctx, -E2BIG);

        /* Before anything is copied: qname holds the whole namespace URI. */
        cost = sizeof(XmlNode) + strlen(qname) + 2 + 3 * ALLOC_OVERHEAD;
        if (n_attrs > 0)
                cost += ALLOC_OVERHEAD;
        for (unsigned i = 0; i < n_attrs; i++)
                cost += sizeof(XmlAttr) + strlen(atts[i * 2]) + strlen(atts[i * 2 + 1]) + 2 + 2 * ALLOC_OVERHEAD;
        if (!tree_charge(ctx, cost))
                return;

        sep = strrchr(qname, NS_SEP);
        n = node_new_packed(sep ? sep + 1 : qname, qname, sep ? (size_t) (sep - qname) : 0, atts, n_attrs);

        if (ctx->cur)
                node_append(ctx->cur, n);
        else {
                ctx->root = n;
                if (ctx->head_only) {
                        ctx->complete = true;
                        XML_StopParser(ctx->expat, XML_FALSE);
                        return;
                }
        }
        ctx->cur = n;
        ctx->n_children[ctx->depth] = 0;
        ctx->depth++;
}

static void XMLCALL on_end(void *userdata, const XML_Char *qname) {
        ParseCtx *ctx = userdata;

        if (ctx->error != 0 || !ctx->cur)
                return;
        ctx->cur = ctx->cur->parent;
        ctx->depth--;
        if (!ctx->cur)
                ctx->complete = true;
}

static void XMLCALL on_text(void *userdata, const XML_Char *s, int len) {
        ParseCtx *ctx = userdata;

        if (ctx->error != 0)
                return;
        if (!ctx->cur) {
                /* Between stream-mode elements only whitespace may appear. */
                for (int i = 0; i < len; i++)
                        if (!g_ascii_isspace(s[i]))
                                return parse_fail(ctx, -EBADMSG);
                return;
        }
        if (!tree_charge(ctx, (size_t) len + (ctx->cur->text ? 0 : sizeof(GString) + 2 * ALLOC_OVERHEAD)))
                return;
        if (!ctx->cur->text)
                ctx->cur->text = g_string_new_len(s, len);
        else
                g_string_append_len(ctx->cur->text, s, len);
}

static void XMLCALL on_comment(void *userdata, const XML_Char *data) {
        parse_fail(userdata, -EPERM);
}

static void XMLCALL on_pi(void *userdata, const XML_Char *target, const XML_Char *data) {
        parse_fail(userdata, -EPERM);
}

static void XMLCALL on_doctype(void *userdata, const XML_Char *name, const XML_Char *sysid,
                               const XML_Char *pubid, int has_internal_subset) {
        parse_fail(userdata, -EPERM);
}

static void XMLCALL on_entity_decl(void *userdata, const XML_Char *name, int is_param,
                                   const XML_Char *value, int value_len, const XML_Char *base,
                                   const XML_Char *sysid, const XML_Char *pubid,
                                   const XML_Char *notation) {
        parse_fail(userdata, -EPERM);
}

static void XMLCALL on_skipped_entity(void *userdata, const XML_Char *name, int is_param) {
        parse_fail(userdata, -EPERM);
}

/* g_utf8_validate_len(), with the ASCII start of the text (a chat stanza
 * usually is ASCII up to its body) checked eight bytes at a time: GLib goes
 * byte by byte, and this check cost 8 % of parsing a stanza. NUL is refused,
 * as GLib refuses it. */
static bool valid_utf8(const char *data, size_t len) {
        const uint64_t high = UINT64_C(0x8080808080808080), ones = UINT64_C(0x0101010101010101);
        size_t i = 0;

        for (; i + 8 <= len; i += 8) {
                uint64_t w;

                memcpy(&w, data + i, 8);
                if (w & high)
                        break;          /* not ASCII: GLib takes it from here */
                if ((w - ones) & ~w & high)
                        return false;   /* a NUL byte */
        }
        return g_utf8_validate_len(data + i, len - i, NULL);
}

/* Markup declarations (<!DOCTYPE, <!ENTITY, ...) other than CDATA sections
 * and comments. Inside an element (stream mode) expat calls them a syntax
 * error, not a DOCTYPE, and no handler sees them. */
static bool has_markup_decl(const char *data, size_t len) {
        const char *p = data, *end = data + len;

        while ((p = memmem(p, (size_t) (end - p), "<!", 2))) {
                p += 2;
                if ((size_t) (end - p) >= 7 && memcmp(p, "[CDATA[", 7) == 0)
                        continue;
                return true;
        }
        return false;
}

static int map_expat_error(enum XML_Error e, const char *data, size_t len) {
        if (e == XML_ERROR_NO_MEMORY)
                return -ENOMEM;
        /* RFC 6120 §11.1: entity references other than the predefined ones,
         * and DTDs, are restricted XML, not merely malformed. */
        if (e == XML_ERROR_UNDEFINED_ENTITY || has_markup_decl(data, len))
                return -EPERM;
        return -EBADMSG;
}

/* With namespaces, expat writes out every prefixed attribute's name with
 * the whole namespace URI, for all attributes of an element at once, before
 * any handler may refuse them: 256 KiB of input made 66 MiB (then expat gave
 * up). So an element with prefixes is first counted by a parser that leaves
 * names alone. Rare in XMPP (xml:lang needs no declaration), so the second
 * pass costs nothing for ordinary stanzas. */
typedef struct PrecheckCtx {
        XML_Parser expat;
        const XmlLimits *limits;
        unsigned depth;
        int error;
        bool head_only;         /* only the root's start tag will be parsed */
} PrecheckCtx;

static void XMLCALL precheck_start(void *userdata, const XML_Char *name, const XML_Char **atts) {
        PrecheckCtx *ctx = userdata;
        unsigned n = 0;

        if (++ctx->depth > ctx->limits->max_depth)
                ctx->error = -ELOOP;
        for (size_t i = 0; !ctx->error && atts[i]; i += 2)
                /* declarations are not attributes in the namespace-aware pass */
                if (strncmp(atts[i], "xmlns", 5) != 0 || (atts[i][5] != 0 && atts[i][5] != ':'))
                        if (++n > ctx->limits->max_attrs)
                                ctx->error = -E2BIG;
        if (ctx->error || ctx->head_only)
                XML_StopParser(ctx->expat, XML_FALSE);
}

static void XMLCALL precheck_doctype(void *userdata, const XML_Char *name, const XML_Char *sysid,
                                     const XML_Char *pubid, int has_internal_subset) {
        PrecheckCtx *ctx = userdata;
        /* refused by the real pass; never expand its entities here */
        XML_StopParser(ctx->expat, XML_FALSE);
}

static void XMLCALL precheck_end(void *userdata, const XML_Char *name) {
        PrecheckCtx *ctx = userdata;
        ctx->depth--;
}

static int precheck_prefixes(const XmlLimits *limits, const char *data, size_t len, bool head_only) {
        PrecheckCtx ctx = { .limits = limits, .head_only = head_only };

        if (!memmem(data, len, "xmlns:", 6))
                return 0;
        ctx.expat = XML_ParserCreate("UTF-8");
        if (!ctx.expat)
                return -ENOMEM;
        XML_SetUserData(ctx.expat, &ctx);
        XML_SetElementHandler(ctx.expat, precheck_start, precheck_end);
        XML_SetStartDoctypeDeclHandler(ctx.expat, precheck_doctype);
        /* Other errors are the real pass's to find and name. */
        (void) XML_Parse(ctx.expat, data, (int) len, XML_TRUE);
        XML_ParserFree(ctx.expat);
        return ctx.error;
}

static int setup_expat(XML_Parser p, ParseCtx *ctx) {
        XML_SetUserData(p, ctx);
        XML_SetElementHandler(p, on_start, on_end);
        XML_SetCharacterDataHandler(p, on_text);
        XML_SetCommentHandler(p, on_comment);
        XML_SetProcessingInstructionHandler(p, on_pi);
        XML_SetStartDoctypeDeclHandler(p, on_doctype);
        XML_SetEntityDeclHandler(p, on_entity_decl);
        XML_SetSkippedEntityHandler(p, on_skipped_entity);
        if (!XML_SetParamEntityParsing(p, XML_PARAM_ENTITY_PARSING_NEVER))
                return -EINVAL;
        return 0;
}

XmlParser *xml_parser_new(const XmlLimits *limits) {
        XmlParser *p = g_new0(XmlParser, 1);

        p->limits = limits ? *limits : xml_default_limits;
        /* The encoding argument overrides any encoding="" in the input, so a
         * peer cannot switch us to a charset g_utf8_validate() did not check. */
        p->expat = XML_ParserCreateNS("UTF-8", NS_SEP);
        if (!p->expat) {
                g_free(p);
                return NULL;
        }
        /* Expat draws a fresh salt (a getrandom() call) for every document
         * after a reset; one per parser protects its hash tables as well and
         * costs one system call per connection instead of one per stanza. */
        if (getrandom(&p->hash_salt, sizeof p->hash_salt, GRND_NONBLOCK) != sizeof p->hash_salt)
                p->hash_salt = (unsigned long) g_random_int() << 32 ^ g_random_int();
        return p;
}

void xml_parser_free(XmlParser *p) {
        if (!p)
                return;
        XML_ParserFree(p->expat);
        xml_node_free(p->ctx.root);
        g_free(p->n_children);
        g_free(p);
}

/* Stream mode: a new document (a fresh expat parser after the first) whose
 * synthetic root is open. */
static int stream_begin(XmlParser *p) {
        if (p->used) {
                XML_ParserFree(p->expat);
                p->expat = XML_ParserCreateNS("UTF-8", NS_SEP);
                if (!p->expat) {
                        p->broken = true;
                        return -ENOMEM;
                }
        }
        p->ctx = (ParseCtx) {
                .expat = p->expat,
                .limits = &p->limits,
                .n_children = p->n_children,
                .stream = true,
        };
        XML_SetHashSalt(p->expat, p->hash_salt);
        p->used = true;
        p->fed = 0;
        if (setup_expat(p->expat, &p->ctx) < 0 ||
            XML_Parse(p->expat, "<stream>", 8, XML_FALSE) != XML_STATUS_OK) {
                p->broken = true;
                return -ENOMEM;
        }
        return 0;
}

XmlParser *xml_parser_new_stream(const XmlLimits *limits) {
        XmlParser *p = xml_parser_new(limits);

        if (!p)
                return NULL;
        p->n_children = g_new0(unsigned, p->limits.max_depth + 1);
        if (stream_begin(p) < 0) {
                xml_parser_free(p);
                return NULL;
        }
        return p;
}

int xml_parser_feed(XmlParser *p, const char *data, size_t len, XmlNode **ret) {
        ParseCtx *ctx = &p->ctx;
        enum XML_Status st;
        int r;

        g_return_val_if_fail(ctx->stream && ret, -EINVAL);

        if (p->broken)
                return -EBADMSG;
        if (len > p->limits.max_bytes || len > INT_MAX)
                return -EMSGSIZE;
        if (!data || !valid_utf8(data, len)) {
                p->broken = true;
                return -EBADMSG;
        }
        r = precheck_prefixes(&p->limits, data, len, false);
        if (r < 0)
                return r;       /* expat has not seen it: the parser goes on */
        if (p->fed > STREAM_ROTATE_BYTES) {
                r = stream_begin(p);
                if (r < 0)
                        return r;
        }
        p->fed += len;

        ctx->root = ctx->cur = NULL;
        ctx->depth = 0;
        ctx->tree_bytes = 0;
        ctx->complete = false;
        st = XML_Parse(p->expat, data, (int) len, XML_FALSE);
        if (ctx->error == 0 && st != XML_STATUS_OK)
                ctx->error = map_expat_error(XML_GetErrorCode(p->expat), data, len);
        /* RFC 7395 §3.3.3: every message is exactly one complete element. */
        if (ctx->error == 0 && (!ctx->complete || ctx->cur))
                ctx->error = -EBADMSG;
        if (ctx->error != 0) {
                r = ctx->error;
                xml_node_free(g_steal_pointer(&ctx->root));
                ctx->cur = NULL;
                /* Each message stands alone (RFC 7395): after one that was
                 * merely too big, a new document takes the next. */
                if (r == -EMSGSIZE || r == -ELOOP || r == -E2BIG)
                        (void) stream_begin(p);
                else
                        p->broken = true;
                return r;
        }
        *ret = g_steal_pointer(&ctx->root);
        return 0;
}


static int parse_document(XmlParser *p, const char *data, size_t len, bool head_only, XmlNode **ret) {
        unsigned stack[CHILD_COUNT_STACK];
        g_autofree unsigned *heap = NULL;
        ParseCtx ctx = {
                .expat = p->expat,
                .limits = &p->limits,
                .head_only = head_only,
        };
        enum XML_Status st;
        int r;

        g_return_val_if_fail(ret, -EINVAL);

        if (len > p->limits.max_bytes || len > INT_MAX)
                return -EMSGSIZE;
        if (!data && len > 0)
                return -EINVAL;
        /* Also rejects NUL bytes, which expat would report less precisely. */
        if (!valid_utf8(data ? data : "", len))
                return -EBADMSG;
        if (p->limits.max_depth == 0)
                return -ELOOP;
        r = precheck_prefixes(&p->limits, data ? data : "", len, head_only);
        if (r < 0)
                return r;

        if (p->limits.max_depth <= CHILD_COUNT_STACK)
                ctx.n_children = stack;
        else
                ctx.n_children = heap = g_new(unsigned, p->limits.max_depth);

        if (p->used && !XML_ParserReset(p->expat, "UTF-8"))
                return -ENOMEM;
        p->used = true;
        XML_SetHashSalt(p->expat, p->hash_salt);
        r = setup_expat(p->expat, &ctx);
        if (r < 0)
                return r;

        st = XML_Parse(p->expat, data ? data : "", (int) len, XML_TRUE);
        if (ctx.error != 0)
                r = ctx.error;
        else if (head_only && ctx.complete)
                r = 0;          /* stopped on purpose, after the start tag */
        else if (st != XML_STATUS_OK)
                r = map_expat_error(XML_GetErrorCode(p->expat), data ? data : "", len);
        else if (!ctx.root || ctx.cur)
                r = -EBADMSG;   /* cannot happen with a final XML_Parse(); be safe */
        else
                r = 0;

        if (r < 0) {
                xml_node_free(ctx.root);
                return r;
        }
        *ret = ctx.root;
        return 0;
}

int xml_parser_parse(XmlParser *p, const char *data, size_t len, XmlNode **ret) {
        return parse_document(p, data, len, false, ret);
}

int xml_parse_head(const char *data, size_t len, const XmlLimits *limits, XmlNode **ret) {
        g_autoptr(XmlParser) p = NULL;

        if (len > (limits ? limits : &xml_default_limits)->max_bytes)
                return -EMSGSIZE;
        p = xml_parser_new(limits);
        if (!p)
                return -ENOMEM;
        return parse_document(p, data, len, true, ret);
}

int xml_parse(const char *data, size_t len, const XmlLimits *limits, XmlNode **ret) {
        XmlParser *p;
        int r;

        /* Checked here too so oversized input costs no parser allocation. */
        if (len > (limits ? limits : &xml_default_limits)->max_bytes)
                return -EMSGSIZE;

        p = xml_parser_new(limits);
        if (!p)
                return -ENOMEM;
        r = xml_parser_parse(p, data, len, ret);
        xml_parser_free(p);
        return r;
}

XmlNode *xml_node_new(const char *name, const char *ns) {
        g_return_val_if_fail(name, NULL);
        return node_new_take(g_strdup(name), g_strdup(ns ? ns : ""));
}

void xml_node_free(XmlNode *node) {
        XmlNode *c, *next;

        if (!node)
                return;
        /* Recursion depth is bounded by the parse limits for received trees. */
        for (c = node->first_child; c; c = next) {
                next = c->next;
                xml_node_free(c);
        }
        if (node->text)
                g_string_free(node->text, TRUE);
        if (!node->packed) {
                for (unsigned i = 0; i < node->n_attrs; i++) {
                        g_free(node->attrs[i].name);
                        g_free(node->attrs[i].value);
                }
                g_free(node->attrs);
                g_free(node->name);
                g_free(node->ns);
        }
        g_free(node);
}

XmlNode *xml_node_add_child(XmlNode *parent, const char *name, const char *ns) {
        XmlNode *c;

        g_return_val_if_fail(parent, NULL);
        c = xml_node_new(name, ns ? ns : parent->ns);
        if (c)
                node_append(parent, c);
        return c;
}

XmlNode *xml_node_set_attr(XmlNode *node, const char *name, const char *value) {
        g_return_val_if_fail(node, NULL);
        g_return_val_if_fail(name, node);

        node_unpack(node);
        for (unsigned i = 0; i < node->n_attrs; i++) {
                if (!strcmp(node->attrs[i].name, name)) {
                        if (value) {
                                g_free(node->attrs[i].value);
                                node->attrs[i].value = g_strdup(value);
                                return node;
                        }
                        g_free(node->attrs[i].name);
                        g_free(node->attrs[i].value);
                        memmove(node->attrs + i, node->attrs + i + 1,
                                (node->n_attrs - i - 1) * sizeof(XmlAttr));
                        node->n_attrs--;
                        return node;
                }
        }
        if (!value)
                return node;

        node->attrs = g_renew(XmlAttr, node->attrs, node->n_attrs + 1);
        node->attrs[node->n_attrs].name = g_strdup(name);
        node->attrs[node->n_attrs].value = g_strdup(value);
        node->n_attrs++;
        return node;
}

XmlNode *xml_node_set_text(XmlNode *node, const char *text) {
        g_return_val_if_fail(node, NULL);

        if (!text || !*text) {
                if (node->text)
                        g_string_free(node->text, TRUE);
                node->text = NULL;
        } else if (node->text)
                g_string_assign(node->text, text);
        else
                node->text = g_string_new(text);
        return node;
}

const char *xml_node_attr(const XmlNode *node, const char *name) {
        if (!node || !name)
                return NULL;
        for (unsigned i = 0; i < node->n_attrs; i++)
                if (!strcmp(node->attrs[i].name, name))
                        return node->attrs[i].value;
        return NULL;
}

XmlNode *xml_node_child(const XmlNode *node, const char *name, const char *ns) {
        if (!node || !name)
                return NULL;
        for (XmlNode *c = node->first_child; c; c = c->next)
                if (!strcmp(c->name, name) && (!ns || !strcmp(c->ns, ns)))
                        return c;
        return NULL;
}

const char *xml_node_text(const XmlNode *node) {
        return node && node->text ? node->text->str : "";
}

const char *xml_node_child_text(const XmlNode *node, const char *name, const char *ns) {
        XmlNode *c = xml_node_child(node, name, ns);

        return c ? xml_node_text(c) : NULL;
}

/* What each byte needs: 0 copy as is, 1 escape, 2 not allowed in XML 1.0
 * (replaced by U+FFFD), 3 start of a 3-byte sequence worth checking for
 * U+FFFE/U+FFFF. \t \n are escaped only in attribute values (ATTR_ONLY),
 * where a parser would otherwise normalise them to spaces, and so are quotes,
 * which only end an attribute value: in text they stay one byte, not six, which
 * counts against a server's stanza limit (JSON is full of them). */
enum { C_COPY, C_ESCAPE, C_BAD, C_EF, C_ATTR_ONLY };

#define B C_BAD
#define A C_ATTR_ONLY
#define E C_ESCAPE
static const unsigned char escape_class[256] = {
        B, B, B, B, B, B, B, B, B, A, A, B, B, E, B, B,         /* 0x00 */
        B, B, B, B, B, B, B, B, B, B, B, B, B, B, B, B,         /* 0x10 */
        0, 0, A, 0, 0, 0, E, A, 0, 0, 0, 0, 0, 0, 0, 0,         /* 0x20 " & ' */
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, E, 0, E, 0,         /* 0x30 < > */
        [0xef] = C_EF,
};
#undef B
#undef A
#undef E

static void escape_append(GString *out, const char *text, gssize len, bool attr) {
        const unsigned char *s = (const unsigned char *) text, *end, *run;

        if (!text)
                return;
        if (len < 0)
                len = strlen(text);
        end = s + len;

        for (run = s; s < end; s++) {
                unsigned char k = escape_class[*s];
                const char *rep;

                if (k == C_COPY || (k == C_ATTR_ONLY && !attr))
                        continue;
                if (k == C_EF) {
                        if (end - s < 3 || s[1] != 0xbf || (s[2] != 0xbe && s[2] != 0xbf))
                                continue;
                        g_string_append_len(out, (const char *) run, s - run);
                        g_string_append(out, "\xef\xbf\xbd");
                        s += 2;
                        run = s + 1;
                        continue;
                }

                switch (*s) {
                case '&':  rep = "&amp;"; break;
                case '<':  rep = "&lt;"; break;
                case '>':  rep = "&gt;"; break;
                case '\'': rep = "&apos;"; break;
                case '"':  rep = "&quot;"; break;
                case '\t': rep = "&#9;"; break;
                case '\n': rep = "&#10;"; break;
                case '\r': rep = "&#13;"; break;
                default:   rep = "\xef\xbf\xbd"; break; /* control character */
                }
                g_string_append_len(out, (const char *) run, s - run);
                g_string_append(out, rep);
                run = s + 1;
        }
        g_string_append_len(out, (const char *) run, s - run);
}

void xml_escape_append(GString *out, const char *text, gssize len) {
        g_return_if_fail(out);
        /* Attribute rules are safe in text as well. */
        escape_append(out, text, len, true);
}

static void serialize_node(GString *out, const XmlNode *n, const char *parent_ns) {
        unsigned n_prefixed = 0;

        g_string_append_c(out, '<');
        g_string_append(out, n->name);
        if (parent_ns ? strcmp(parent_ns, n->ns) != 0 : n->ns[0] != 0) {
                g_string_append(out, " xmlns=\"");
                escape_append(out, n->ns, -1, true);
                g_string_append_c(out, '"');
        }

        for (unsigned i = 0; i < n->n_attrs; i++) {
                const char *name = n->attrs[i].name, *sep;

                /* Namespace declarations are the serialiser's business. */
                if (g_str_has_prefix(name, "xmlns") && (name[5] == 0 || name[5] == ':'))
                        continue;

                sep = strrchr(name, NS_SEP);
                if (sep == name)
                        name = sep + 1, sep = NULL;     /* empty URI: no namespace */
                if (!sep) {
                        g_string_append_c(out, ' ');
                        g_string_append(out, name);
                } else if ((size_t) (sep - name) == strlen(XML_NS_URI) &&
                           !strncmp(name, XML_NS_URI, sep - name)) {
                        g_string_append(out, " xml:");
                        g_string_append(out, sep + 1);
                } else {
                        /* Other namespaced attributes get a prefix declared on
                         * this element; the prefix itself carries no meaning. */
                        g_string_append_printf(out, " xmlns:ns%u=\"", n_prefixed);
                        escape_append(out, name, sep - name, true);
                        g_string_append_printf(out, "\" ns%u:%s", n_prefixed, sep + 1);
                        n_prefixed++;
                }
                g_string_append(out, "=\"");
                escape_append(out, n->attrs[i].value, -1, true);
                g_string_append_c(out, '"');
        }

        if (!n->first_child && (!n->text || n->text->len == 0)) {
                g_string_append(out, "/>");
                return;
        }
        g_string_append_c(out, '>');
        /* Mixed content is kept as one text run, written before the children. */
        if (n->text)
                escape_append(out, n->text->str, n->text->len, false);
        for (const XmlNode *c = n->first_child; c; c = c->next)
                serialize_node(out, c, n->ns);
        g_string_append(out, "</");
        g_string_append(out, n->name);
        g_string_append_c(out, '>');
}

char *xml_serialize(const XmlNode *node, size_t *len) {
        GString *out;

        g_return_val_if_fail(node, NULL);

        out = g_string_sized_new(256);
        serialize_node(out, node, NULL);
        if (len)
                *len = out->len;
        return g_string_free(out, FALSE);
}
