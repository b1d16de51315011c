/* SPDX-License-Identifier: MIT */
/*
 * The item's menu: com.canonical.dbusmenu at /MenuBar.
 *
 *   bob@example.org (2)        one per conversation, unread first, then most
 *   carol@example.org          recent; a click marks it read (MarkRead)
 *   ------------------
 *   Mark all read              MarkRead for each conversation with unread messages
 *   ------------------
 *   alice@example.org: connected    disabled: the account and NetState
 *
 * The root (id 0) has no other level. A conversation keeps its item id for as
 * long as it is listed, so a click that crosses a layout change still reaches
 * the conversation the user saw; an id that is no longer listed is an error,
 * never a different conversation. Changes are announced the cheap way when
 * possible: ItemsPropertiesUpdated when only labels or the enabled state
 * changed, LayoutUpdated with a new revision when items came or went.
 */
#include <errno.h>
#include <string.h>

#include "tray.h"

/* More would make the menu taller than a screen; imctl lists them all. */
#define MENU_MAX_CONVERSATIONS 10

enum {
        MENU_ID_ROOT = 0,
        MENU_ID_MARK_ALL = 1,
        MENU_ID_CONNECTION = 2,
        MENU_ID_SEPARATOR_1 = 3,
        MENU_ID_SEPARATOR_2 = 4,
        MENU_ID_NO_CONVERSATIONS = 5,
        MENU_ID_FIRST_CONVERSATION = 100,
};

enum entry_kind {
        ENTRY_CONVERSATION,
        ENTRY_SEPARATOR,
        ENTRY_MARK_ALL,
        ENTRY_LABEL,            /* disabled text: the connection, "No conversations" */
};

struct menu_entry {
        int32_t id;
        enum entry_kind kind;
        char *label;            /* NULL for a separator */
        bool enabled;
        char *conversation;     /* ENTRY_CONVERSATION: its JID */
};

static void entries_free(struct menu_entry *e, size_t n) {
        for (size_t i = 0; i < n; i++) {
                free(e[i].label);
                free(e[i].conversation);
        }
        free(e);
}

static const struct menu_entry *find_entry(const struct menu *menu, int32_t id) {
        for (size_t i = 0; i < menu->n_entries; i++)
                if (menu->entries[i].id == id)
                        return &menu->entries[i];
        return NULL;
}

static bool id_exists(const struct menu *menu, int32_t id) {
        return id == MENU_ID_ROOT || find_entry(menu, id);
}

/* The id a conversation had in the current menu, or a fresh one. */
static int32_t conversation_id(struct menu *menu, const char *jid) {
        for (size_t i = 0; i < menu->n_entries; i++)
                if (menu->entries[i].conversation && strcmp(menu->entries[i].conversation, jid) == 0)
                        return menu->entries[i].id;
        return menu->next_id++;
}

/* The conversations to list: unread ones first (they are why the user opens
 * the menu), each group most recent first, at most MENU_MAX_CONVERSATIONS. */
static size_t pick_conversations(const struct model *m, const struct conversation **out) {
        size_t n = 0;

        for (int pass = 0; pass < 2; pass++)
                for (size_t i = 0; i < m->n_conversations && n < MENU_MAX_CONVERSATIONS; i++) {
                        const struct conversation *c = &m->conversations[i];

                        if ((pass == 0) == (c->unread > 0))
                                out[n++] = c;
                }
        return n;
}

static int build(struct menu *menu, struct menu_entry **ret, size_t *ret_n) {
        const struct model *m = &menu->tray->model;
        const struct conversation *picked[MENU_MAX_CONVERSATIONS];
        size_t n_picked = pick_conversations(m, picked), n = 0;
        struct menu_entry *e;

        e = calloc(n_picked + 5, sizeof(*e));
        if (!e)
                return -ENOMEM;
        for (size_t i = 0; i < n_picked; i++) {
                e[n] = (struct menu_entry) {
                        .id = conversation_id(menu, picked[i]->id),
                        .kind = ENTRY_CONVERSATION,
                        .label = text_conversation_label(picked[i]),
                        .enabled = true,
                        .conversation = strdup(picked[i]->id),
                };
                if (!e[n].label || !e[n++].conversation)
                        goto oom;
        }
        if (n_picked == 0) {
                e[n] = (struct menu_entry) { .id = MENU_ID_NO_CONVERSATIONS, .kind = ENTRY_LABEL,
                                             .label = strdup("No conversations") };
                if (!e[n++].label)
                        goto oom;
        }
        e[n++] = (struct menu_entry) { .id = MENU_ID_SEPARATOR_1, .kind = ENTRY_SEPARATOR };
        e[n] = (struct menu_entry) { .id = MENU_ID_MARK_ALL, .kind = ENTRY_MARK_ALL,
                                     .label = strdup("Mark all read"),
                                     .enabled = m->running && m->unread_total > 0 };
        if (!e[n++].label)
                goto oom;
        e[n++] = (struct menu_entry) { .id = MENU_ID_SEPARATOR_2, .kind = ENTRY_SEPARATOR };
        e[n] = (struct menu_entry) { .id = MENU_ID_CONNECTION, .kind = ENTRY_LABEL,
                                     .label = text_connection(m) };
        if (!e[n++].label)
                goto oom;
        *ret = e;
        *ret_n = n;
        return 0;
oom:
        entries_free(e, n_picked + 5);
        return -ENOMEM;
}

static bool wants(char **names, const char *name) {
        if (!names || !names[0])
                return true;    /* no names: every property */
        for (char **p = names; *p; p++)
                if (strcmp(*p, name) == 0)
                        return true;
        return false;
}

/* An item's a{sv}; @e NULL is the root. */
static int append_properties(sd_bus_message *reply, const struct menu_entry *e, char **names) {
        int r;

        r = sd_bus_message_open_container(reply, SD_BUS_TYPE_ARRAY, "{sv}");
        if (r < 0)
                return r;
        if (!e) {
                if (wants(names, "children-display"))
                        r = sd_bus_message_append(reply, "{sv}", "children-display", "s", "submenu");
        } else if (e->kind == ENTRY_SEPARATOR) {
                if (wants(names, "type"))
                        r = sd_bus_message_append(reply, "{sv}", "type", "s", "separator");
        } else {
                if (wants(names, "label"))
                        r = sd_bus_message_append(reply, "{sv}", "label", "s", e->label);
                if (r >= 0 && wants(names, "enabled"))
                        r = sd_bus_message_append(reply, "{sv}", "enabled", "b", e->enabled);
        }
        if (r < 0)
                return r;
        return sd_bus_message_close_container(reply);
}

/* (ia{sv}av); @e NULL is the root, with its children unless @depth is 0. */
static int append_layout(sd_bus_message *reply, const struct menu *menu, const struct menu_entry *e,
                         int32_t depth, char **names) {
        int r;

        r = sd_bus_message_open_container(reply, SD_BUS_TYPE_STRUCT, "ia{sv}av");
        if (r >= 0)
                r = sd_bus_message_append(reply, "i", e ? e->id : MENU_ID_ROOT);
        if (r >= 0)
                r = append_properties(reply, e, names);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, SD_BUS_TYPE_ARRAY, "v");
        for (size_t i = 0; r >= 0 && !e && depth != 0 && i < menu->n_entries; i++) {
                r = sd_bus_message_open_container(reply, SD_BUS_TYPE_VARIANT, "(ia{sv}av)");
                if (r >= 0)
                        r = append_layout(reply, menu, &menu->entries[i], 0, names);
                if (r >= 0)
                        r = sd_bus_message_close_container(reply);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        return r;
}

static int no_such_item(sd_bus_error *ret_error, int32_t id) {
        return sd_bus_error_setf(ret_error, SD_BUS_ERROR_INVALID_ARGS, "No menu item with id %d", id);
}

static void strv_free(char **v) {
        for (char **p = v; p && *p; p++)
                free(*p);
        free(v);
}

static int method_get_layout(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct menu *menu = userdata;
        _cleanup_message_ sd_bus_message *reply = NULL;
        char **names = NULL;
        int32_t parent, depth;
        int r;

        r = sd_bus_message_read(m, "ii", &parent, &depth);
        if (r >= 0)
                r = sd_bus_message_read_strv(m, &names);
        if (r < 0)
                return r;
        if (!id_exists(menu, parent)) {
                strv_free(names);
                return no_such_item(ret_error, parent);
        }
        r = sd_bus_message_new_method_return(m, &reply);
        if (r >= 0)
                r = sd_bus_message_append(reply, "u", menu->revision);
        if (r >= 0)
                r = append_layout(reply, menu, parent == MENU_ID_ROOT ? NULL : find_entry(menu, parent),
                                  depth, names);
        strv_free(names);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int append_group_entry(sd_bus_message *reply, const struct menu *menu, int32_t id, char **names) {
        int r;

        r = sd_bus_message_open_container(reply, SD_BUS_TYPE_STRUCT, "ia{sv}");
        if (r >= 0)
                r = sd_bus_message_append(reply, "i", id);
        if (r >= 0)
                r = append_properties(reply, id == MENU_ID_ROOT ? NULL : find_entry(menu, id), names);
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        return r;
}

static int method_get_group_properties(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct menu *menu = userdata;
        _cleanup_message_ sd_bus_message *reply = NULL;
        const int32_t *ids;
        size_t size, n_ids;
        char **names = NULL;
        int r;

        r = sd_bus_message_read_array(m, 'i', (const void **) &ids, &size);
        if (r >= 0)
                r = sd_bus_message_read_strv(m, &names);
        if (r < 0)
                return r;
        n_ids = size / sizeof(int32_t);
        r = sd_bus_message_new_method_return(m, &reply);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, SD_BUS_TYPE_ARRAY, "(ia{sv})");
        if (n_ids == 0)         /* no ids: every item */
                for (size_t i = 0; r >= 0 && i < menu->n_entries; i++)
                        r = append_group_entry(reply, menu, menu->entries[i].id, names);
        /* ids no longer listed are left out, as libdbusmenu does */
        for (size_t i = 0; r >= 0 && i < n_ids; i++)
                if (id_exists(menu, ids[i]))
                        r = append_group_entry(reply, menu, ids[i], names);
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        strv_free(names);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int method_get_property(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct menu *menu = userdata;
        const struct menu_entry *e;
        const char *name;
        int32_t id;
        int r;

        r = sd_bus_message_read(m, "is", &id, &name);
        if (r < 0)
                return r;
        if (!id_exists(menu, id))
                return no_such_item(ret_error, id);
        e = find_entry(menu, id);
        if (!e && strcmp(name, "children-display") == 0)
                return sd_bus_reply_method_return(m, "v", "s", "submenu");
        if (e && e->kind == ENTRY_SEPARATOR && strcmp(name, "type") == 0)
                return sd_bus_reply_method_return(m, "v", "s", "separator");
        if (e && e->label && strcmp(name, "label") == 0)
                return sd_bus_reply_method_return(m, "v", "s", e->label);
        if (e && e->label && strcmp(name, "enabled") == 0)
                return sd_bus_reply_method_return(m, "v", "b", e->enabled);
        return sd_bus_error_setf(ret_error, SD_BUS_ERROR_INVALID_ARGS,
                                 "Menu item %d has no property '%s'", id, name);
}

/* A click. Returns false for an id that is not listed. */
static bool handle_event(struct menu *menu, int32_t id, const char *event_id) {
        const struct menu_entry *e = find_entry(menu, id);
        int r = 0;

        if (!id_exists(menu, id))
                return false;
        if (!e || strcmp(event_id, "clicked") != 0 || !e->enabled)
                return true;    /* hovered, opened, closed; or a label: nothing to do */
        switch (e->kind) {
        case ENTRY_CONVERSATION:
                r = model_mark_read(&menu->tray->model, e->conversation);
                break;
        case ENTRY_MARK_ALL:
                r = model_mark_all_read(&menu->tray->model);
                break;
        case ENTRY_SEPARATOR:
        case ENTRY_LABEL:
                break;
        }
        if (r < 0)
                tray_log("cannot act on menu item %d: %s", id, strerror(-r));
        return true;
}

static int method_event(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct menu *menu = userdata;
        const char *event_id;
        int32_t id;
        int r;

        /* the data and timestamp say nothing the tray needs */
        r = sd_bus_message_read(m, "is", &id, &event_id);
        if (r < 0)
                return r;
        if (!handle_event(menu, id, event_id))
                return no_such_item(ret_error, id);
        return sd_bus_reply_method_return(m, NULL);
}

static int method_event_group(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct menu *menu = userdata;
        _cleanup_message_ sd_bus_message *reply = NULL;
        size_t n = 0, n_errors = 0;
        int r;

        r = sd_bus_message_new_method_return(m, &reply);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, SD_BUS_TYPE_ARRAY, "i");
        if (r >= 0)
                r = sd_bus_message_enter_container(m, SD_BUS_TYPE_ARRAY, "(isvu)");
        while (r >= 0 && (r = sd_bus_message_enter_container(m, SD_BUS_TYPE_STRUCT, "isvu")) > 0) {
                const char *event_id;
                int32_t id;

                r = sd_bus_message_read(m, "is", &id, &event_id);
                if (r >= 0)
                        r = sd_bus_message_skip(m, "vu");
                if (r >= 0)
                        r = sd_bus_message_exit_container(m);
                n++;
                if (r >= 0 && !handle_event(menu, id, event_id)) {
                        n_errors++;
                        r = sd_bus_message_append(reply, "i", id);
                }
        }
        if (r < 0)
                return r;
        if (n > 0 && n_errors == n)
                return sd_bus_error_set(ret_error, SD_BUS_ERROR_INVALID_ARGS, "No menu item with these ids");
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

/* The menu is always up to date: nothing to prepare before it is shown. */
static int method_about_to_show(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct menu *menu = userdata;
        int32_t id;
        int r;

        r = sd_bus_message_read(m, "i", &id);
        if (r < 0)
                return r;
        if (!id_exists(menu, id))
                return no_such_item(ret_error, id);
        return sd_bus_reply_method_return(m, "b", 0);
}

static int method_about_to_show_group(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct menu *menu = userdata;
        _cleanup_message_ sd_bus_message *reply = NULL;
        const int32_t *ids;
        size_t size;
        int r;

        r = sd_bus_message_read_array(m, 'i', (const void **) &ids, &size);
        if (r < 0)
                return r;
        r = sd_bus_message_new_method_return(m, &reply);
        if (r >= 0)
                r = sd_bus_message_append(reply, "ai", 0);      /* updatesNeeded: none */
        if (r >= 0)
                r = sd_bus_message_open_container(reply, SD_BUS_TYPE_ARRAY, "i");
        for (size_t i = 0; r >= 0 && i < size / sizeof(int32_t); i++)
                if (!id_exists(menu, ids[i]))
                        r = sd_bus_message_append(reply, "i", ids[i]);
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int get_version(sd_bus *bus, const char *path, const char *interface, const char *property,
                       sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        return sd_bus_message_append(reply, "u", 3);        /* libdbusmenu's protocol version */
}

static int get_string(sd_bus *bus, const char *path, const char *interface, const char *property,
                      sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        return sd_bus_message_append(reply, "s", strcmp(property, "Status") == 0 ? "normal" : "ltr");
}

static int get_icon_theme_path(sd_bus *bus, const char *path, const char *interface, const char *property,
                               sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        return sd_bus_message_append(reply, "as", 0);
}

static const sd_bus_vtable menu_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Version", "u", get_version, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("TextDirection", "s", get_string, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Status", "s", get_string, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("IconThemePath", "as", get_icon_theme_path, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_METHOD_WITH_ARGS("GetLayout",
                                SD_BUS_ARGS("i", parentId, "i", recursionDepth, "as", propertyNames),
                                SD_BUS_RESULT("u", revision, "(ia{sv}av)", layout),
                                method_get_layout, 0),
        SD_BUS_METHOD_WITH_ARGS("GetGroupProperties", SD_BUS_ARGS("ai", ids, "as", propertyNames),
                                SD_BUS_RESULT("a(ia{sv})", properties),
                                method_get_group_properties, 0),
        SD_BUS_METHOD_WITH_ARGS("GetProperty", SD_BUS_ARGS("i", id, "s", name), SD_BUS_RESULT("v", value),
                                method_get_property, 0),
        SD_BUS_METHOD_WITH_ARGS("Event", SD_BUS_ARGS("i", id, "s", eventId, "v", data, "u", timestamp),
                                SD_BUS_NO_RESULT, method_event, 0),
        SD_BUS_METHOD_WITH_ARGS("EventGroup", SD_BUS_ARGS("a(isvu)", events), SD_BUS_RESULT("ai", idErrors),
                                method_event_group, 0),
        SD_BUS_METHOD_WITH_ARGS("AboutToShow", SD_BUS_ARGS("i", id), SD_BUS_RESULT("b", needUpdate),
                                method_about_to_show, 0),
        SD_BUS_METHOD_WITH_ARGS("AboutToShowGroup", SD_BUS_ARGS("ai", ids),
                                SD_BUS_RESULT("ai", updatesNeeded, "ai", idErrors),
                                method_about_to_show_group, 0),
        SD_BUS_SIGNAL_WITH_ARGS("ItemsPropertiesUpdated",
                                SD_BUS_ARGS("a(ia{sv})", updatedProps, "a(ias)", removedProps), 0),
        SD_BUS_SIGNAL_WITH_ARGS("LayoutUpdated", SD_BUS_ARGS("u", revision, "i", parent), 0),
        SD_BUS_SIGNAL_WITH_ARGS("ItemActivationRequested", SD_BUS_ARGS("i", id, "u", timestamp), 0),
        SD_BUS_VTABLE_END,
};

int menu_init(struct menu *menu, struct tray *tray) {
        int r;

        *menu = (struct menu) { .tray = tray, .revision = 1, .next_id = MENU_ID_FIRST_CONVERSATION };
        r = build(menu, &menu->entries, &menu->n_entries);
        if (r < 0)
                return r;
        return sd_bus_add_object_vtable(tray->bus, &menu->vtable_slot, MENU_PATH, MENU_INTERFACE,
                                        menu_vtable, menu);
}

void menu_done(struct menu *menu) {
        menu->vtable_slot = sd_bus_slot_unref(menu->vtable_slot);
        entries_free(menu->entries, menu->n_entries);
        menu->entries = NULL;
        menu->n_entries = 0;
}

static bool same_layout(const struct menu_entry *a, size_t na, const struct menu_entry *b, size_t nb) {
        if (na != nb)
                return false;
        for (size_t i = 0; i < na; i++)
                if (a[i].id != b[i].id)
                        return false;
        return true;
}

static bool same_properties(const struct menu_entry *a, const struct menu_entry *b) {
        return a->enabled == b->enabled && (a->label == b->label ||
                                            (a->label && b->label && strcmp(a->label, b->label) == 0));
}

static int emit_properties_updated(struct menu *menu, const struct menu_entry *old) {
        _cleanup_message_ sd_bus_message *signal = NULL;
        bool any = false;
        int r;

        r = sd_bus_message_new_signal(menu->tray->bus, &signal, MENU_PATH, MENU_INTERFACE,
                                      "ItemsPropertiesUpdated");
        if (r >= 0)
                r = sd_bus_message_open_container(signal, SD_BUS_TYPE_ARRAY, "(ia{sv})");
        for (size_t i = 0; r >= 0 && i < menu->n_entries; i++) {
                if (same_properties(&old[i], &menu->entries[i]))
                        continue;
                any = true;
                r = append_group_entry(signal, menu, menu->entries[i].id, NULL);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(signal);
        if (r >= 0)
                r = sd_bus_message_append(signal, "a(ias)", 0);        /* nothing removed */
        if (r < 0 || !any)
                return r;
        return sd_bus_send(NULL, signal, NULL);
}

void menu_update(struct menu *menu) {
        struct menu_entry *entries, *old = menu->entries;
        size_t n, n_old = menu->n_entries;
        int r;

        r = build(menu, &entries, &n);
        if (r < 0) {
                tray_log("cannot build the menu: %s", strerror(-r));
                return;
        }
        menu->entries = entries;
        menu->n_entries = n;
        if (!same_layout(old, n_old, entries, n)) {
                menu->revision++;
                r = sd_bus_emit_signal(menu->tray->bus, MENU_PATH, MENU_INTERFACE, "LayoutUpdated", "ui",
                                       menu->revision, MENU_ID_ROOT);
        } else
                r = emit_properties_updated(menu, old);
        if (r < 0)
                tray_log("cannot announce the menu change: %s", strerror(-r));
        entries_free(old, n_old);
}
