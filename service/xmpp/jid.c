/* SPDX-License-Identifier: MIT */

#include <errno.h>
#include <string.h>
#include <glib.h>

#include "jid.h"

/* Raw parts longer than this cannot normalise to JID_PART_MAX bytes (NFC
 * composes, lower-casing grows a character by at most a few bytes), so they
 * are refused before any Unicode work is spent on them. */
#define RAW_PART_MAX (4 * JID_PART_MAX)
#define LABEL_MAX 63

typedef enum PartKind {
        PART_LOCAL,
        PART_DOMAIN,
        PART_RESOURCE,
} PartKind;

/* Per-character (simple) lower-casing, as PRECIS's toLowerCase(). Not
 * g_utf8_strdown(): it applies the context-dependent final-sigma rule, so
 * "Σ@x" would become "ς@x" but "Σa@x" "σa@x", and one account would have
 * two spellings. */
static char *lowercase(const char *s, size_t len) {
        GString *out = g_string_sized_new(len);

        for (const char *p = s; p < s + len; p = g_utf8_next_char(p))
                g_string_append_unichar(out, g_unichar_tolower(g_utf8_get_char(p)));
        return g_string_free(out, FALSE);
}

/* NFC, and lower-case for localpart and domainpart. NULL if s is not valid. */
static char *normalize_part(const char *s, size_t len, PartKind kind) {
        g_autofree char *lower = NULL;
        bool ascii = true;

        for (size_t i = 0; i < len; i++)
                if ((unsigned char) s[i] >= 0x80) {
                        ascii = false;
                        break;
                }

        /* Most JIDs are ASCII, where NFC is the identity. */
        if (ascii) {
                if (kind == PART_RESOURCE)
                        return g_strndup(s, len);
                return g_ascii_strdown(s, len);
        }

        switch (kind) {
        case PART_RESOURCE:
                return g_utf8_normalize(s, len, G_NORMALIZE_NFC);
        case PART_LOCAL:
        case PART_DOMAIN:
                /* Case mapping first, then NFC, as PRECIS orders them. */
                lower = lowercase(s, len);
                return g_utf8_normalize(lower, -1, G_NORMALIZE_NFC);
        }
        return NULL;
}

/* Rules for characters outside ASCII; part_chars_ok() handles ASCII. */
static bool char_ok(gunichar c, PartKind kind) {
        GUnicodeType t;

        if (g_unichar_iscntrl(c))
                return false;
        t = g_unichar_type(c);
        /* No stable case mapping or normalisation. */
        if (t == G_UNICODE_UNASSIGNED || t == G_UNICODE_SURROGATE)
                return false;
        /* Invisible in an identifier (a spoofing aid), but emoji sequences in
         * a resource need the zero-width joiner. */
        if (t == G_UNICODE_FORMAT)
                return kind == PART_RESOURCE;
        switch (kind) {
        case PART_LOCAL:
                return !g_unichar_isspace(c);
        case PART_RESOURCE:
                return true;
        case PART_DOMAIN:
                return g_unichar_isalnum(c) || g_unichar_ismark(c);
        }
        return false;
}

static bool part_chars_ok(const char *s, PartKind kind) {
        for (const char *p = s; *p; p = g_utf8_next_char(p)) {
                unsigned char b = (unsigned char) *p;

                if (b < 0x80) {
                        /* Fast path; char_ok() gives the same answer. */
                        if (b < 0x20 || b == 0x7f)
                                return false;
                        if (kind == PART_RESOURCE)
                                continue;
                        if (kind == PART_LOCAL && !strchr(" \"&'/:<>@", b))
                                continue;
                        if (kind == PART_DOMAIN && (g_ascii_isalnum(b) || b == '-' || b == '.'))
                                continue;
                        return false;
                }
                if (!char_ok(g_utf8_get_char(p), kind))
                        return false;
        }
        return true;
}

static bool is_ip_literal(const char *d, size_t len) {
        g_autofree char *inner = NULL;

        if (len < 3 || d[0] != '[' || d[len - 1] != ']')
                return false;
        inner = g_strndup(d + 1, len - 2);
        /* RFC 3986's IP-literal has no zone id ("%eth0"), which GLib would
         * take with anything after it, '@' and '[' included. */
        return strchr(inner, ':') && !strchr(inner, '%') && g_hostname_is_ip_address(inner);
}

static bool looks_like_ipv4(const char *d) {
        return d[strspn(d, "0123456789.")] == 0;
}

static bool domain_ok(const char *d) {
        size_t len = strlen(d);
        const char *label = d;

        if (len == 0 || len > JID_PART_MAX)
                return false;
        if (d[0] == '[')
                return is_ip_literal(d, len);
        if (looks_like_ipv4(d))
                return g_hostname_is_ip_address(d) && !strchr(d, ':');
        if (!part_chars_ok(d, PART_DOMAIN))
                return false;

        for (;;) {
                const char *dot = strchr(label, '.');
                size_t l = dot ? (size_t) (dot - label) : strlen(label);
                bool ascii = true;

                if (l == 0 || label[0] == '-' || label[l - 1] == '-')
                        return false;
                for (size_t i = 0; i < l; i++)
                        if ((unsigned char) label[i] >= 0x80)
                                ascii = false;
                /* The DNS limit binds the A-label; without an IDNA library we
                 * can only check it for labels that are ASCII already. */
                if (ascii && l > LABEL_MAX)
                        return false;
                if (!dot)
                        return true;
                label = dot + 1;
        }
}

/* Normalises and validates one part; NULL if invalid. */
static char *make_part(const char *s, size_t len, PartKind kind) {
        g_autofree char *n = NULL;
        size_t nlen;

        if (len == 0 || len > RAW_PART_MAX)
                return NULL;
        n = normalize_part(s, len, kind);
        if (!n)
                return NULL;
        nlen = strlen(n);
        if (nlen == 0 || nlen > JID_PART_MAX)
                return NULL;

        if (kind == PART_DOMAIN) {
                if (!domain_ok(n))
                        return NULL;
        } else if (!part_chars_ok(n, kind))
                return NULL;
        return g_steal_pointer(&n);
}

int jid_parse(const char *s, Jid *ret) {
        g_autofree char *local = NULL, *domain = NULL, *resource = NULL;
        const char *slash, *at, *d, *dend;
        size_t len;

        if (!s || !ret)
                return -EINVAL;
        len = strlen(s);
        if (len == 0 || len > 3 * RAW_PART_MAX + 2)
                return -EINVAL;
        if (!g_utf8_validate_len(s, len, NULL))
                return -EINVAL;

        /* RFC 7622 §3.1: the resource starts at the first '/', the localpart
         * ends at the first '@' before it. */
        slash = strchr(s, '/');
        dend = slash ? slash : s + len;
        at = memchr(s, '@', dend - s);

        if (at) {
                local = make_part(s, at - s, PART_LOCAL);
                if (!local)
                        return -EINVAL;
                d = at + 1;
        } else
                d = s;

        /* §3.2: a trailing dot is not part of the domain. */
        if (dend - d > 1 && dend[-1] == '.')
                dend--;
        domain = make_part(d, dend - d, PART_DOMAIN);
        if (!domain)
                return -EINVAL;

        if (slash) {
                resource = make_part(slash + 1, strlen(slash + 1), PART_RESOURCE);
                if (!resource)
                        return -EINVAL;
        }

        *ret = (Jid) {
                .local = g_steal_pointer(&local),
                .domain = g_steal_pointer(&domain),
                .resource = g_steal_pointer(&resource),
        };
        return 0;
}

void jid_clear(Jid *jid) {
        if (!jid)
                return;
        g_clear_pointer(&jid->local, g_free);
        g_clear_pointer(&jid->domain, g_free);
        g_clear_pointer(&jid->resource, g_free);
}

char *jid_to_bare(const Jid *jid) {
        if (!jid || !jid->domain)
                return NULL;
        if (jid->local)
                return g_strconcat(jid->local, "@", jid->domain, NULL);
        return g_strdup(jid->domain);
}

char *jid_to_string(const Jid *jid) {
        if (!jid || !jid->domain)
                return NULL;
        return g_strconcat(jid->local ? jid->local : "", jid->local ? "@" : "",
                           jid->domain,
                           jid->resource ? "/" : "", jid->resource ? jid->resource : "",
                           NULL);
}

char *jid_normalize_bare(const char *s) {
        Jid j = { 0 };
        char *r;

        if (jid_parse(s, &j) < 0)
                return NULL;
        r = jid_to_bare(&j);
        jid_clear(&j);
        return r;
}

bool jid_is_valid_user_bare(const char *s) {
        Jid j = { 0 };
        bool ok;

        if (jid_parse(s, &j) < 0)
                return false;
        ok = j.local && !j.resource;
        jid_clear(&j);
        return ok;
}

bool jid_bare_equal(const char *a, const char *b) {
        g_autofree char *na = jid_normalize_bare(a);
        g_autofree char *nb = NULL;

        if (!na)
                return false;
        nb = jid_normalize_bare(b);
        return nb && strcmp(na, nb) == 0;
}
