/* SPDX-License-Identifier: MIT */
/*
 * The model's list of conversations: merged from imd's dictionaries, most
 * recent first, and bounded. Pure (no bus), so that tests/unit-style tests
 * run it directly (test-conversations.c).
 *
 * At most MODEL_MAX_CONVERSATIONS are kept, whatever imd sends. The menu
 * lists unread conversations first, then the most recent ones; so when the
 * list is full, the one given up for a new one is the least recent of those
 * without unread messages, or, if every one has some, the least recent of
 * all, and a new one that would be given up itself is not taken.
 */
#include <errno.h>
#include <string.h>

#include "tray.h"

static void conversation_clear(struct conversation *c) {
        free(c->id);
        free(c->name);
        *c = (struct conversation) { 0 };
}

void conversations_clear(struct model *m) {
        for (size_t i = 0; i < m->n_conversations; i++)
                conversation_clear(&m->conversations[i]);
        free(m->conversations);
        m->conversations = NULL;
        m->n_conversations = 0;
}

struct conversation *conversations_find(const struct model *m, const char *id) {
        for (size_t i = 0; i < m->n_conversations; i++)
                if (strcmp(m->conversations[i].id, id) == 0)
                        return &m->conversations[i];
        return NULL;
}

static int compare_recent_first(const void *a, const void *b) {
        const struct conversation *x = a, *y = b;

        if (x->time != y->time)
                return x->time > y->time ? -1 : 1;
        return strcmp(x->id, y->id);
}

/* < 0: @x is worth keeping more than @y (unread first, then the more recent). */
static int compare_keep(bool x_unread, int64_t x_time, bool y_unread, int64_t y_time) {
        if (x_unread != y_unread)
                return x_unread ? -1 : 1;
        if (x_time != y_time)
                return x_time > y_time ? -1 : 1;
        return 0;
}

static struct conversation *least_worth_keeping(struct model *m) {
        struct conversation *worst = NULL;

        for (size_t i = 0; i < m->n_conversations; i++) {
                struct conversation *c = &m->conversations[i];

                if (!worst || compare_keep(c->unread > 0, c->time, worst->unread > 0, worst->time) > 0)
                        worst = c;
        }
        return worst;
}

int conversations_merge(struct model *m, const struct conversation_fields *f) {
        struct conversation *c;
        char *name;

        if (!f->id || !f->id[0])
                return 0;       /* not one the tray could name or mark read */
        c = conversations_find(m, f->id);
        if (!c && m->n_conversations >= MODEL_MAX_CONVERSATIONS) {
                struct conversation *worst = least_worth_keeping(m);

                if (compare_keep(f->unread > 0, f->time, worst->unread > 0, worst->time) >= 0)
                        return 0;
                conversation_clear(worst);
                worst->id = strdup(f->id);
                if (!worst->id) {
                        /* the slot must not stay without an id: give it up */
                        *worst = m->conversations[--m->n_conversations];
                        return -ENOMEM;
                }
                c = worst;
        }
        if (!c) {
                struct conversation *a = realloc(m->conversations, (m->n_conversations + 1) * sizeof(*a));

                if (!a)
                        return -ENOMEM;
                m->conversations = a;
                c = &a[m->n_conversations];
                *c = (struct conversation) { .id = strdup(f->id) };
                if (!c->id)
                        return -ENOMEM;
                m->n_conversations++;
        }
        if (!c->name || strcmp(c->name, f->name) != 0) {
                name = strdup(f->name);
                if (!name)
                        return -ENOMEM;
                free(c->name);
                c->name = name;
        }
        c->unread = f->unread;
        c->time = f->time;
        return 0;
}

void conversations_sort(struct model *m) {
        if (m->n_conversations > 1)     /* qsort(NULL, 0, ...) is undefined */
                qsort(m->conversations, m->n_conversations, sizeof(*m->conversations), compare_recent_first);
}
