/* SPDX-License-Identifier: MIT */
/*
 * What the tray shows for a model: status, icon names and the texts of the
 * tooltip and the menu. Pure functions, so the item and the menu always agree.
 */
#include <stdio.h>
#include <string.h>

#include "tray.h"

/* A conversation name longer than this is cut: a menu is not the place for it. */
#define LABEL_NAME_MAX 64

/* No session: imd is not running, or nobody is logged in. Account keeps the
 * last account after a logout, so "disconnected" while not Ready says it.
 * Reconnecting after a network drop (Ready false, NetState "connecting") is
 * still a session, with its unread messages. */
static bool no_session(const struct model *m) {
        const char *state = m->net_state && m->net_state[0] ? m->net_state : "disconnected";

        return !m->running || !m->account || !m->account[0] ||
               (!m->ready && strcmp(state, "disconnected") == 0);
}

/* Passive tells hosts to hide the item: nothing to show without a session. */
enum tray_status text_status(const struct model *m) {
        if (no_session(m))
                return TRAY_STATUS_PASSIVE;
        return m->unread_total > 0 ? TRAY_STATUS_NEEDS_ATTENTION : TRAY_STATUS_ACTIVE;
}

const char *text_status_name(enum tray_status s) {
        switch (s) {
        case TRAY_STATUS_PASSIVE:
                return "Passive";
        case TRAY_STATUS_ACTIVE:
                return "Active";
        case TRAY_STATUS_NEEDS_ATTENTION:
                return "NeedsAttention";
        }
        return "Passive";
}

/* Icon Naming Specification names, present in every icon theme. */
const char *text_icon_name(const struct model *m) {
        if (no_session(m))
                return "user-offline";
        if (m->ready && m->net_state && strcmp(m->net_state, "connected") == 0)
                return "user-available";
        return "user-away";     /* logged in, connection being (re-)established */
}

char *text_unread_summary(const struct model *m) {
        char *s = NULL;

        if (m->unread_total == 0)
                return strdup("No unread messages");
        if (asprintf(&s, "%u unread message%s", m->unread_total, m->unread_total == 1 ? "" : "s") < 0)
                return NULL;
        return s;
}

/* NetState verbatim ("connected", "connecting", "disconnected"), with the account. */
char *text_connection(const struct model *m) {
        const char *state = m->net_state && m->net_state[0] ? m->net_state : "disconnected";
        char *s = NULL;

        if (!m->running)
                return strdup("imd is not running");
        if (no_session(m))
                return strdup("Not logged in");
        if (asprintf(&s, "%s: %s", m->account, state) < 0)
                return NULL;
        return s;
}

/* Length of at most @max bytes of @s, not splitting a UTF-8 sequence. */
static size_t utf8_prefix(const char *s, size_t max) {
        size_t n = strlen(s);

        if (n <= max)
                return n;
        n = max;
        while (n > 0 && ((unsigned char) s[n] & 0xC0) == 0x80)
                n--;
        return n;
}

/* "Name (3)"; "_" doubled: dbusmenu labels take "_x" as a mnemonic. */
char *text_conversation_label(const struct conversation *c) {
        const char *name = c->name && c->name[0] ? c->name : c->id;
        size_t n = utf8_prefix(name, LABEL_NAME_MAX);
        bool cut = strlen(name) > n;
        char *label, *p;
        int len;

        /* worst case every byte doubled, "...", " (4294967295)" */
        label = malloc(2 * n + 3 + 16);
        if (!label)
                return NULL;
        p = label;
        for (size_t i = 0; i < n; i++) {
                if (name[i] == '_')
                        *p++ = '_';
                *p++ = name[i];
        }
        if (cut) {
                memcpy(p, "...", 3);
                p += 3;
        }
        *p = '\0';
        if (c->unread > 0) {
                len = snprintf(p, 16, " (%u)", c->unread);
                if (len < 0 || len >= 16) {
                        free(label);
                        return NULL;
                }
        }
        return label;
}
