/* SPDX-License-Identifier: MIT */
/*
 * Files travel as file descriptors, never as paths imd would open for the
 * caller (with its own rights, not the caller's): SendFile takes one,
 * FetchMedia hands one back.
 */

#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <glib.h>

#include "bus-args.h"
#include "bus-errors.h"
#include "bus-files.h"
#include "manager.h"
#include "media.h"

typedef struct FileInfo {
        char *name, *mime, *type;
        uint32_t width, height, duration_ms;
} FileInfo;

static void file_info_clear(FileInfo *i) {
        g_free(i->name);
        g_free(i->mime);
        g_free(i->type);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(FileInfo, file_info_clear)

static int read_info(sd_bus_message *m, FileInfo *info, sd_bus_error *error) {
        static const BusOption keys[] = {
                { "name", 's', offsetof(FileInfo, name) },
                { "mime", 's', offsetof(FileInfo, mime) },
                { "type", 's', offsetof(FileInfo, type) },
                { "width", 'u', offsetof(FileInfo, width) },
                { "height", 'u', offsetof(FileInfo, height) },
                { "duration_ms", 'u', offsetof(FileInfo, duration_ms) },
        };

        return bus_read_options(m, keys, G_N_ELEMENTS(keys), info, "info", error);
}

static int check_info(FileInfo *info, sd_bus_error *error) {
        static const char *const types[] = { "image", "video", "audio", "file" };
        bool known = false;

        /* the peer's client may well use the name as one: none that climbs */
        if (info->name && (!xmpp_media_name_usable(info->name) || strchr(info->name, '/') ||
                           strcmp(info->name, ".") == 0 || strcmp(info->name, "..") == 0))
                return bus_set_errno(error, -EINVAL, "info 'name' must be a file name of 1 to %d bytes, "
                                     "without '/' or control characters", XMPP_MEDIA_NAME_MAX);
        if (info->mime) {
                if (!xmpp_media_mime_usable(info->mime))
                        return bus_set_errno(error, -EINVAL, "info 'mime' must be a media type like image/png");
                g_autofree char *lower = g_ascii_strdown(info->mime, -1);
                g_free(info->mime);
                info->mime = g_steal_pointer(&lower);
        }
        for (size_t i = 0; info->type && i < G_N_ELEMENTS(types); i++)
                known |= strcmp(info->type, types[i]) == 0;
        if (info->type && !known)
                return bus_set_errno(error, -EINVAL, "info 'type' must be image, video, audio or file");
        if ((info->width == 0) != (info->height == 0))
                return bus_set_errno(error, -EINVAL, "info 'width' and 'height' go together");
        return 0;
}

static int check_file(int fd, sd_bus_error *error) {
        struct stat st;
        int flags = fcntl(fd, F_GETFL);

        if (flags < 0 || fstat(fd, &st) < 0)
                return bus_set_errno(error, -EINVAL, "Cannot use the file descriptor: %s", g_strerror(errno));
        if ((flags & O_ACCMODE) == O_WRONLY || (flags & O_PATH))
                return bus_set_errno(error, -EINVAL, "The file descriptor must be open for reading");
        if (!S_ISREG(st.st_mode))
                return bus_set_errno(error, -EINVAL, "The file descriptor must be a regular file (or memfd), "
                                     "open for reading");
        if (st.st_size == 0)
                return bus_set_errno(error, -EINVAL, "The file is empty");
        return 0;
}

/* What a SendFile caller is told, now or later: *error may become the errno
 * whose name fits better. */
static const char *send_file_error(int *error) {
        switch (*error) {
        case -ENOTCONN:
                return "Not logged in: call Login first (and wait for it to succeed)";
        case -EMSGSIZE:
                return "The file is larger than the server's upload service takes (or than 4 GiB)";
        case -ENOTSUP:
                return "The server has no upload service (XEP-0363)";
        case -ETIMEDOUT:
                return "The server did not answer the search for its upload service within a minute; "
                       "nothing was kept (the next SendFile asks again)";
        case -ECANCELED:
                return "Logged out before the file was taken";
        case -EBUSY:
                return "imd is already taking " G_STRINGIFY(SESSION_MAX_FILE_REQUESTS) " files (SendFile calls not "
                       "answered yet); try again once one of them is answered";
        case -ESTALE:
                *error = -EINVAL;
                return "The file changed while imd was copying it";
        default:
                return "Cannot take the file";
        }
}

static void on_file_sent(int error, const char *id, void *userdata) {
        sd_bus_message *call = userdata;

        if (error == 0)
                (void) sd_bus_reply_method_return(call, "s", id);
        else {
                const char *text = send_file_error(&error);
                bus_reply_errno(call, error, text);
        }
        sd_bus_message_unref(call);
}

int bus_method_send_file(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Manager *mgr = userdata;
        g_autofree char *conversation = NULL;
        g_auto(FileInfo) info = { 0 };
        const char *conv_arg, *text;
        int fd, r;

        r = sd_bus_message_read(m, "sh", &conv_arg, &fd);
        if (r < 0)
                return r;
        r = read_info(m, &info, error);
        if (r < 0)
                return r;
        conversation = bus_parse_user_jid(conv_arg, "conversation", error);
        if (!conversation)
                return -EINVAL;
        if ((r = check_info(&info, error)) < 0 || (r = check_file(fd, error)) < 0)
                return r;

        r = session_send_file(mgr->session, conversation, fd, &(SessionFileInfo) {
                                      .name = info.name, .mime = info.mime, .type = info.type,
                                      .width = info.width, .height = info.height,
                                      .duration_ms = info.duration_ms },
                              on_file_sent, sd_bus_message_ref(m));
        if (r == 0)
                return 1;       /* answered by on_file_sent(), once the file is imd's */
        sd_bus_message_unref(m);
        if (r == -EDQUOT)
                return bus_set_errno(error, r, "imd's outbox is full: the files waiting there to be uploaded "
                                     "(failed ones included) and this one would be over %" G_GUINT64_FORMAT
                                     " bytes ([media] max_outbox); wait for uploads to finish, or revoke failed ones",
                                     session_max_outbox_bytes(mgr->session));
        text = send_file_error(&r);
        return bus_set_errno(error, r, "%s", text);
}

int bus_method_resend_message(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Manager *mgr = userdata;
        g_autofree char *conversation = NULL;
        const char *id = NULL;         /* set by bus_read_message_ref() */
        int r;

        r = bus_read_message_ref(m, &conversation, &id, error);
        if (r < 0)
                return r;
        r = session_resend_message(mgr->session, conversation, id);
        switch (r) {
        case 0:
                return sd_bus_reply_method_return(m, NULL);
        case -ENOTCONN:
                return bus_set_errno(error, r, "No account's history is open: call Login first");
        case -ENOENT:
                return bus_set_errno(error, r, "No message %s in the conversation with %s (or its file is gone)",
                                     id, conversation);
        case -EPERM:
                return bus_set_errno(error, r, "Message %s is not a failed message of yours", id);
        case -EMSGSIZE:
                return bus_set_errno(error, r, "Message %s is larger than the %zu bytes the server takes", id,
                                     session_max_stanza_bytes(mgr->session));
        default:
                return bus_set_errno(error, r, "Cannot send the message again: %s", g_strerror(-r));
        }
}

static void on_media_fetched(int error, int fd, const char *detail, void *userdata) {
        sd_bus_message *call = userdata;

        switch (error) {
        case 0:
                (void) sd_bus_reply_method_return(call, "h", fd);       /* sd-bus dups it */
                break;
        case -EMSGSIZE:
                bus_reply_errno(call, error, "The file is larger than allowed ([media] max_download, or the "
                                "size its sender gave)");
                break;
        case -ENOENT:
                bus_reply_errno(call, error, "The file is gone from the server");
                break;
        case -ECANCELED:
                bus_reply_errno(call, error, "The download was stopped (logout)");
                break;
        default:
                if (detail) {
                        g_autofree char *text = g_strdup_printf("Cannot download the file: %s", detail);
                        bus_reply_errno(call, error, text);
                } else
                        bus_reply_errno(call, error, "Cannot download the file");
                break;
        }
        sd_bus_message_unref(call);
}

int bus_method_fetch_media(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Manager *mgr = userdata;
        g_autofree char *conversation = NULL;
        const char *id = NULL;         /* set by bus_read_message_ref() */
        int r;

        r = bus_read_message_ref(m, &conversation, &id, error);
        if (r < 0)
                return r;
        r = session_fetch_media(mgr->session, conversation, id, on_media_fetched, sd_bus_message_ref(m));
        if (r < 0)
                sd_bus_message_unref(m);
        switch (r) {
        case 0:
                return 1;       /* answered by on_media_fetched(), now or later */
        case -ENOTCONN:
                return bus_set_errno(error, r, "No account's history is open: call Login first");
        case -ENOENT:
                return bus_set_errno(error, r, "No message %s in the conversation with %s", id, conversation);
        case -ENOMEDIUM:
                return bus_set_errno(error, -ENOENT, "Message %s carries no file", id);
        case -EPERM:
                return bus_set_errno(error, r, "imd only downloads over https");
        case -EINVAL:
                return bus_set_errno(error, r, "The message's URL is not usable");
        default:
                return bus_set_errno(error, r, "Cannot download the file: %s", g_strerror(-r));
        }
}

