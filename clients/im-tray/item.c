/* SPDX-License-Identifier: MIT */
/*
 * The StatusNotifierItem at /StatusNotifierItem, and its registration with the
 * StatusNotifierWatcher.
 *
 * The watcher forgets every item when it restarts, and may start after us
 * (a panel that comes up late): so the item registers whenever
 * org.kde.StatusNotifierWatcher gets an owner, not only at start. It registers
 * with its well-known bus name; a watcher given a bus name looks for the item
 * at /StatusNotifierItem.
 *
 * Hosts re-read properties when told: NewStatus carries the status, NewIcon and
 * NewToolTip only say "read again". Each is sent only for a real change.
 */
#include <errno.h>
#include <string.h>

#include "tray.h"

#define ITEM_ID        "im-tray"
#define ITEM_TITLE     "Instant messages"
#define ITEM_CATEGORY  "Communications"
/* the icon while there are unread messages (Status NeedsAttention) */
#define ITEM_ATTENTION_ICON "mail-unread"

static int append_no_pixmaps(sd_bus_message *reply) {
        int r;

        r = sd_bus_message_open_container(reply, SD_BUS_TYPE_ARRAY, "(iiay)");
        if (r < 0)
                return r;
        return sd_bus_message_close_container(reply);
}

static int get_string(sd_bus *bus, const char *path, const char *interface, const char *property,
                      sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        struct item *item = userdata;
        const char *v = "";

        if (strcmp(property, "Category") == 0)
                v = ITEM_CATEGORY;
        else if (strcmp(property, "Id") == 0)
                v = ITEM_ID;
        else if (strcmp(property, "Title") == 0)
                v = ITEM_TITLE;
        else if (strcmp(property, "Status") == 0)
                v = text_status_name(item->status);
        else if (strcmp(property, "IconName") == 0)
                v = item->icon_name;
        else if (strcmp(property, "AttentionIconName") == 0)
                v = ITEM_ATTENTION_ICON;
        /* OverlayIconName, AttentionMovieName, IconThemePath: none */
        return sd_bus_message_append(reply, "s", v);
}

static int get_pixmaps(sd_bus *bus, const char *path, const char *interface, const char *property,
                       sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        return append_no_pixmaps(reply);    /* icons by name only */
}

static int get_tooltip(sd_bus *bus, const char *path, const char *interface, const char *property,
                       sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        struct item *item = userdata;
        int r;

        r = sd_bus_message_open_container(reply, SD_BUS_TYPE_STRUCT, "sa(iiay)ss");
        if (r >= 0)
                r = sd_bus_message_append(reply, "s", item->icon_name);
        if (r >= 0)
                r = append_no_pixmaps(reply);
        if (r >= 0)
                r = sd_bus_message_append(reply, "ss", item->tooltip_title, item->tooltip_text);
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        return r;
}

static int get_window_id(sd_bus *bus, const char *path, const char *interface, const char *property,
                         sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        return sd_bus_message_append(reply, "i", 0);        /* no window */
}

static int get_item_is_menu(sd_bus *bus, const char *path, const char *interface, const char *property,
                            sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        return sd_bus_message_append(reply, "b", 1);        /* no window: a click shows the menu */
}

static int get_menu(sd_bus *bus, const char *path, const char *interface, const char *property,
                    sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        return sd_bus_message_append(reply, "o", MENU_PATH);
}

/* Activate, SecondaryActivate, ContextMenu, Scroll: the tray has no window to
 * raise and its menu is the dbusmenu one, so these succeed and do nothing. */
static int method_nothing(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        return sd_bus_reply_method_return(m, NULL);
}

static const sd_bus_vtable item_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Category", "s", get_string, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Id", "s", get_string, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Title", "s", get_string, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Status", "s", get_string, 0, 0),
        SD_BUS_PROPERTY("WindowId", "i", get_window_id, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("IconThemePath", "s", get_string, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("IconName", "s", get_string, 0, 0),
        SD_BUS_PROPERTY("IconPixmap", "a(iiay)", get_pixmaps, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("OverlayIconName", "s", get_string, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("OverlayIconPixmap", "a(iiay)", get_pixmaps, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("AttentionIconName", "s", get_string, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("AttentionIconPixmap", "a(iiay)", get_pixmaps, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("AttentionMovieName", "s", get_string, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("ToolTip", "(sa(iiay)ss)", get_tooltip, 0, 0),
        SD_BUS_PROPERTY("ItemIsMenu", "b", get_item_is_menu, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Menu", "o", get_menu, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_METHOD_WITH_ARGS("ContextMenu", SD_BUS_ARGS("i", x, "i", y), SD_BUS_NO_RESULT,
                                method_nothing, 0),
        SD_BUS_METHOD_WITH_ARGS("Activate", SD_BUS_ARGS("i", x, "i", y), SD_BUS_NO_RESULT,
                                method_nothing, 0),
        SD_BUS_METHOD_WITH_ARGS("SecondaryActivate", SD_BUS_ARGS("i", x, "i", y), SD_BUS_NO_RESULT,
                                method_nothing, 0),
        SD_BUS_METHOD_WITH_ARGS("Scroll", SD_BUS_ARGS("i", delta, "s", orientation), SD_BUS_NO_RESULT,
                                method_nothing, 0),
        SD_BUS_SIGNAL("NewTitle", NULL, 0),
        SD_BUS_SIGNAL("NewIcon", NULL, 0),
        SD_BUS_SIGNAL("NewAttentionIcon", NULL, 0),
        SD_BUS_SIGNAL("NewOverlayIcon", NULL, 0),
        SD_BUS_SIGNAL("NewToolTip", NULL, 0),
        SD_BUS_SIGNAL_WITH_ARGS("NewStatus", SD_BUS_ARGS("s", status), 0),
        SD_BUS_VTABLE_END,
};

static int on_registered(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        struct item *item = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);

        item->register_slot = sd_bus_slot_unref(item->register_slot);
        if (!e) {
                tray_log("registered with the StatusNotifierWatcher as %s", item->tray->bus_name);
                item->waiting_logged = false;
                return 0;
        }
        if (sd_bus_error_has_name(e, SD_BUS_ERROR_SERVICE_UNKNOWN) ||
            sd_bus_error_has_name(e, SD_BUS_ERROR_NAME_HAS_NO_OWNER)) {
                /* NameOwnerChanged registers us once a watcher comes */
                if (!item->waiting_logged)
                        tray_log("no StatusNotifierWatcher on the bus yet, waiting for one");
                item->waiting_logged = true;
                return 0;
        }
        tray_log("the StatusNotifierWatcher refused the item: %s", e->message ? e->message : e->name);
        return 0;
}

int item_register(struct item *item) {
        sd_bus *bus = item->tray->bus;

        /* a register in flight went to a watcher that may be gone: ask the new one */
        item->register_slot = sd_bus_slot_unref(item->register_slot);
        return sd_bus_call_method_async(bus, &item->register_slot, SNI_WATCHER_SERVICE, SNI_WATCHER_PATH,
                                        SNI_WATCHER_INTERFACE, "RegisterStatusNotifierItem",
                                        on_registered, item, "s", item->tray->bus_name);
}

static int on_watcher_owner_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct item *item = userdata;
        const char *name, *old_owner, *new_owner;
        int r;

        if (!sent_by_bus(m) || sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0 ||
            strcmp(name, SNI_WATCHER_SERVICE) != 0 || !new_owner[0])
                return 0;
        r = item_register(item);
        if (r < 0)
                tray_log("cannot register with the new StatusNotifierWatcher: %s", strerror(-r));
        return 0;
}

/* The out-parameters are written only on success. */
static int item_compute(struct item *item, enum tray_status *status, char **icon, char **title, char **text) {
        const struct model *m = &item->tray->model;
        char *i = strdup(text_icon_name(m)), *t = text_unread_summary(m), *x = text_connection(m);

        if (!i || !t || !x) {
                free(i);
                free(t);
                free(x);
                return -ENOMEM;
        }
        *status = text_status(m);
        *icon = i;
        *title = t;
        *text = x;
        return 0;
}

int item_init(struct item *item, struct tray *tray) {
        int r;

        *item = (struct item) { .tray = tray };
        r = item_compute(item, &item->status, &item->icon_name, &item->tooltip_title, &item->tooltip_text);
        if (r < 0)
                return r;
        r = sd_bus_add_object_vtable(tray->bus, &item->vtable_slot, SNI_PATH, SNI_INTERFACE, item_vtable, item);
        if (r < 0)
                return r;
        return sd_bus_add_match(tray->bus, &item->watcher_match_slot,
                                "type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',"
                                "interface='org.freedesktop.DBus',member='NameOwnerChanged',"
                                "arg0='" SNI_WATCHER_SERVICE "'",
                                on_watcher_owner_changed, item);
}

void item_done(struct item *item) {
        item->register_slot = sd_bus_slot_unref(item->register_slot);
        item->watcher_match_slot = sd_bus_slot_unref(item->watcher_match_slot);
        item->vtable_slot = sd_bus_slot_unref(item->vtable_slot);
        free(item->icon_name);
        free(item->tooltip_title);
        free(item->tooltip_text);
        item->icon_name = item->tooltip_title = item->tooltip_text = NULL;
}

static void emit(struct item *item, const char *member, const char *status) {
        int r;

        if (status)
                r = sd_bus_emit_signal(item->tray->bus, SNI_PATH, SNI_INTERFACE, member, "s", status);
        else
                r = sd_bus_emit_signal(item->tray->bus, SNI_PATH, SNI_INTERFACE, member, NULL);
        if (r < 0)
                tray_log("cannot emit %s: %s", member, strerror(-r));
}

static bool replace(char **dst, char *s) {
        bool changed = strcmp(*dst, s) != 0;

        free(*dst);
        *dst = s;
        return changed;
}

/* Takes what the model now says; tells hosts what changed. */
void item_update(struct item *item) {
        enum tray_status status;
        char *icon, *title, *text;
        bool icon_changed, tooltip_changed;

        if (item_compute(item, &status, &icon, &title, &text) < 0) {
                tray_log("out of memory");
                return;
        }
        icon_changed = replace(&item->icon_name, icon);
        tooltip_changed = replace(&item->tooltip_title, title);
        tooltip_changed = replace(&item->tooltip_text, text) || tooltip_changed;
        if (icon_changed)
                emit(item, "NewIcon", NULL);
        if (icon_changed || tooltip_changed)
                emit(item, "NewToolTip", NULL);     /* the tooltip shows the icon too */
        if (status != item->status) {
                item->status = status;
                emit(item, "NewStatus", text_status_name(status));
        }
}
