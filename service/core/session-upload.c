/* SPDX-License-Identifier: MIT */
/*
 * Sending files for the Session (SendFile): the caller's file is copied into
 * the account's outbox directory first, so that from the moment the caller
 * has an id nothing depends on the caller, the connection or imd staying
 * alive; then the message is stored "pending" with that copy as its path and
 * no URL. Uploading it takes the server's XEP-0363 service (found by service
 * discovery, once per connection; one that timed out is asked again only
 * for the next SendFile or ResendMessage, and the uploads waiting for it
 * fail), a slot, and an HTTP PUT; only once the
 * server has the whole file does the message get its URL and go out like
 * any other. An upload whose connection was refused or broke is tried
 * again by itself, spaced like reconnects; one the server refused, or that
 * failed UPLOAD_ATTEMPTS times, makes the message "failed". It never goes
 * out with a URL that leads nowhere.
 */

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <glib.h>
#include <glib/gstdio.h>

#include "http.h"
#include "image-size.h"
#include "media-type.h"
#include "session-private.h"
#include "upload.h"

#define OUTBOX_DIR "outbox"
#define PART_SUFFIX ".part"
/* Image dimensions are read from this much of the start of the file. */
#define SNIFF_BYTES (64 * 1024)
#define COPY_BUFFER (128 * 1024)
/* copy_file_range() at most this much at a time, so that a logout stops a
 * copy soon. */
#define COPY_CHUNK (G_GUINT64_CONSTANT(64) << 20)
/* The largest file SendFile takes whatever the server says (public
 * services allow 10 to 100 MiB; none takes this much). */
#define MAX_FILE_BYTES (G_GUINT64_CONSTANT(4) << 30)
/* What the outbox of an account may hold for uploads ([media] max_outbox). */
#define DEFAULT_MAX_OUTBOX (G_GUINT64_CONSTANT(1) << 30)
/* TransferProgress at most this often. */
#define PROGRESS_INTERVAL_US (100 * 1000)
/* Attempts in all at an upload whose connection fails (refused, reset, cut
 * off: a Wi-Fi hand-over, a restarting proxy), before the message becomes
 * "failed" and waits for ResendMessage. */
#define UPLOAD_ATTEMPTS 3

/* A SendFile call from its start to its reply. The copy runs in a thread of
 * its own: only the fields marked so are its, until it hands the request
 * back to the loop. */
typedef struct FileRequest {
        Session *session;               /* NULL: the session is gone (imd stops) */
        bool abandoned;                 /* logout: the copy is thrown away (s->abandoned_copies) */
        char *conversation, *id, *name, *mime, *type;
        uint32_t width, height, duration_ms;
        uint64_t size;                  /* from fstat(): the copy must have just this many bytes */
        bool copying;                   /* a thread has it */
        gint cancelled;                 /* atomic: the thread may stop (logout, the end) */
        SessionSendFileCallback callback;
        void *userdata;
        /* the thread's */
        int src;                        /* the caller's file (our dup) */
        char *dir, *path;               /* outbox; the copy in it */
        int error;
        uint64_t copied;
        uint32_t image_width, image_height;
} FileRequest;

/* An accepted file on its way to the server. */
typedef struct Upload {
        Session *session;
        char *conversation, *id, *path, *name, *mime;
        uint64_t size;
        unsigned slot_iq;               /* the slot request is out */
        XmppHttp *http;                 /* the PUT is running */
        int fd;                         /* the copy, read by the PUT */
        char *get_url;
        int64_t progress_at_us;
        unsigned attempts;              /* PUTs whose connection failed */
        Backoff retry;                  /* the delays between them */
        guint retry_timer;              /* the next attempt waits for it */
} Upload;

static void file_request_free(FileRequest *req) {
        if (req->src >= 0)
                close(req->src);
        g_free(req->conversation);
        g_free(req->id);
        g_free(req->name);
        g_free(req->mime);
        g_free(req->type);
        g_free(req->dir);
        g_free(req->path);
        g_free(req);
}

static void upload_free(Upload *u) {
        if (u->session && u->slot_iq)
                xmpp_stream_cancel_iq(u->session->stream, u->slot_iq);
        xmpp_http_cancel(u->http);
        g_clear_handle_id(&u->retry_timer, g_source_remove);
        if (u->fd >= 0)
                close(u->fd);
        g_free(u->conversation);
        g_free(u->id);
        g_free(u->path);
        g_free(u->name);
        g_free(u->mime);
        g_free(u->get_url);
        g_free(u);
}

bool session_upload_waiting(const StoreMessage *m) {
        return m->direction == STORE_DIRECTION_OUT && !m->url && m->path && m->type &&
               strcmp(m->type, "text") != 0 && strcmp(m->type, "custom") != 0;
}

static char *outbox_dir(Session *s) {
        return g_build_filename(s->data_dir, s->account, OUTBOX_DIR, NULL);
}

/* Whether a copy of this process is being written to outbox/<name> (or
 * its .part): a SendFile's, or one a logout abandoned, which removes its
 * own file once done. */
static bool copy_in_flight(Session *s, const char *dir, const char *name) {
        GPtrArray *lists[] = { s->file_requests, s->abandoned_copies };

        for (size_t l = 0; l < G_N_ELEMENTS(lists); l++)
                for (guint i = 0; lists[l] && i < lists[l]->len; i++) {
                        const FileRequest *req = g_ptr_array_index(lists[l], i);
                        size_t n = strlen(req->id);
                        if (req->copying && g_strcmp0(req->dir, dir) == 0 && strncmp(name, req->id, n) == 0 &&
                            (name[n] == '\0' || strcmp(name + n, PART_SUFFIX) == 0))
                                return true;
                }
        return false;
}

/* What the history says of outbox/<name>. */
typedef enum CopyState {
        COPY_UNNAMED,           /* no message keeps it */
        COPY_WAITING,           /* its message waits for the upload: pending, or failed (for ResendMessage) */
        COPY_SENT,              /* its message went out and the copy stayed here (the cache is on another file system) */
} CopyState;

/* outbox/<name> under whatever spelling of the data directory */
static bool names_copy(const StoreMessage *m, const char *name) {
        g_autofree char *base = g_path_get_basename(m->path);
        g_autofree char *parent = g_path_get_dirname(m->path);
        g_autofree char *parent_base = g_path_get_basename(parent);

        return strcmp(base, name) == 0 && strcmp(parent_base, OUTBOX_DIR) == 0;
}

/* A CopyState, or -errno if the history cannot say. A message revoked
 * before it went out does not keep its copy, which was on its way out
 * (session_upload_drop()). */
static int copy_state(Session *s, const char *name) {
        g_autoptr(GPtrArray) named = NULL;
        int r = store_list_own_files(s->store, name, &named);
        CopyState state = COPY_UNNAMED;

        if (r < 0)
                return r;
        for (guint i = 0; i < named->len; i++) {
                const StoreMessage *m = g_ptr_array_index(named, i);
                if (!names_copy(m, name))
                        continue;
                if (m->url)
                        return COPY_SENT;
                if (!m->revoked)
                        state = COPY_WAITING;
        }
        return state;
}

/* Whether a message of the outbox names path as its file: -errno if the
 * history cannot say. (A move is cut short only while its message is
 * pending, and so in the outbox.) */
static int outbox_names(Session *s, const char *path) {
        g_autoptr(GPtrArray) unsent = NULL;
        int r = store_list_unsent(s->store, &unsent);

        if (r < 0)
                return r;
        for (guint i = 0; i < unsent->len; i++)
                if (g_strcmp0(((StoreMessage *) g_ptr_array_index(unsent, i))->path, path) == 0)
                        return 1;
        return 0;
}

/* A copy with a second name in the cache: a crash cut its move there
 * short (nothing else links it). The history names one of the two, and
 * the other goes; if the history cannot say, both stay. */
static void finish_move_to_cache(Session *s, const char *path, const struct stat *st) {
        g_autofree char *other = session_media_find_link(s, st);
        int named;

        if (!other)
                return;
        named = outbox_names(s, path);
        if (named < 0)
                return;
        g_debug("session: %s was moving to %s; the history names the %s one", path, other,
                named ? "old" : "new");
        (void) unlink(named ? other : path);
}

/* What a kill or a stop left behind is found here, not by its age: no copy
 * of this process writes it, so nobody ever will. */
void session_clean_outbox(Session *s) {
        g_autofree char *dir = outbox_dir(s);
        g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
        const char *name;

        while (d && (name = g_dir_read_name(d))) {
                g_autofree char *path = g_build_filename(dir, name, NULL);
                struct stat st;
                if (lstat(path, &st) < 0 || !S_ISREG(st.st_mode) || copy_in_flight(s, dir, name))
                        continue;
                if (g_str_has_suffix(name, PART_SUFFIX)) {
                        /* cut off: its SendFile was never answered */
                        g_debug("session: removing %s, a copy cut off", path);
                        (void) unlink(path);
                } else if (st.st_nlink > 1)
                        finish_move_to_cache(s, path, &st);
                else if (copy_state(s, name) == COPY_UNNAMED) {
                        /* whole, but killed or stopped before the history
                         * named it (up to 4 GiB no one would ever remove) */
                        g_debug("session: removing %s, which no message names", path);
                        (void) unlink(path);
                }
        }
}

/* --- the copy (in a thread) --- */

/* Copies at most max bytes (pread: from offset 0 whatever the caller's
 * offset), until *cancelled. */
static int copy_plain(int src, int dst, uint64_t max, uint64_t *copied, gint *cancelled) {
        g_autofree char *buffer = g_malloc(COPY_BUFFER);

        while (*copied < max) {
                if (g_atomic_int_get(cancelled))
                        return -ECANCELED;
                ssize_t n = pread(src, buffer, (size_t) MIN((uint64_t) COPY_BUFFER, max - *copied),
                                  (off_t) *copied);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        return 0;
                for (ssize_t done = 0; done < n;) {
                        ssize_t w = write(dst, buffer + done, (size_t) (n - done));
                        if (w < 0 && errno == EINTR)
                                continue;
                        if (w < 0)
                                return -errno;
                        done += w;
                }
                *copied += (uint64_t) n;
        }
        return 0;
}

/* copy_file_range() lets the file system share the blocks (btrfs, XFS) or
 * copy in the kernel; where it cannot (another file system, a memfd), a
 * plain copy. */
static int copy_file(int src, int dst, uint64_t max, uint64_t *copied, gint *cancelled) {
        *copied = 0;
        while (*copied < max) {
                off_t in = (off_t) *copied;
                ssize_t n;
                if (g_atomic_int_get(cancelled))
                        return -ECANCELED;
                n = copy_file_range(src, &in, dst, NULL, (size_t) MIN(max - *copied, COPY_CHUNK), 0);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && *copied == 0 &&
                    (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP ||
                     errno == EBADF))
                        return copy_plain(src, dst, max, copied, cancelled);
                if (n < 0)
                        return -errno;
                if (n == 0)
                        return 0;
                *copied += (uint64_t) n;
        }
        return 0;
}

/* outbox/<id>.part, written, synced, renamed to outbox/<id>: a file named
 * by an id is always whole. */
static int copy_into_outbox(FileRequest *req) {
        g_autofree char *part = NULL;
        g_autofree char *sniff = NULL;
        ssize_t n;
        int fd, dir_fd, r;

        if (g_mkdir_with_parents(req->dir, 0700) < 0)
                return -errno;
        part = g_strdup_printf("%s/%s" PART_SUFFIX, req->dir, req->id);
        req->path = g_build_filename(req->dir, req->id, NULL);
        fd = open(part, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
                return -errno;
        /* the size the limits were checked against, and one byte more to
         * see whether it grew: a file that changes under the copy is not
         * the caller's to send, and must not fill the disk */
        r = copy_file(req->src, fd, req->size + 1, &req->copied, &req->cancelled);
        if (r == 0 && req->copied == 0)
                r = -ENODATA;
        else if (r == 0 && req->copied != req->size)
                r = -ESTALE;
        if (r == 0 && fsync(fd) < 0)
                r = -errno;
        if (r == 0) {
                sniff = g_malloc(SNIFF_BYTES);
                n = pread(fd, sniff, SNIFF_BYTES, 0);
                if (n > 0 && !image_size((const uint8_t *) sniff, (size_t) n, &req->image_width,
                                         &req->image_height))
                        req->image_width = req->image_height = 0;
        }
        close(fd);
        if (r == 0 && rename(part, req->path) < 0)
                r = -errno;
        if (r < 0) {
                (void) unlink(part);
                return r;
        }
        /* the rename itself must survive a power cut too */
        dir_fd = open(req->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dir_fd >= 0) {
                (void) fsync(dir_fd);
                close(dir_fd);
        }
        return 0;
}

static gboolean on_copied(gpointer userdata);

static gpointer copy_thread(gpointer userdata) {
        FileRequest *req = userdata;

        req->error = copy_into_outbox(req);
        g_idle_add(on_copied, req);
        return NULL;
}

/* --- SendFile --- */

static void request_finish(Session *s, FileRequest *req, int error, const char *id) {
        g_ptr_array_remove_fast(s->file_requests, req);
        req->callback(error, id, req->userdata);
        file_request_free(req);
}

static void request_copy(Session *s, FileRequest *req) {
        g_autoptr(GError) error = NULL;
        GThread *thread;

        req->dir = outbox_dir(s);
        req->copying = true;
        thread = g_thread_try_new("imd-copy", copy_thread, req, &error);
        if (!thread) {
                req->copying = false;
                g_debug("session: cannot start a copy: %s", error->message);
                request_finish(s, req, -EAGAIN, NULL);
                return;
        }
        g_thread_unref(thread);
}

/* What is known of the server's limit decides now; unknown (offline) means
 * the upload finds out later. */
static void request_continue(Session *s, FileRequest *req) {
        if (s->upload_state == UPLOAD_SERVICE_NONE)
                request_finish(s, req, -ENOTSUP, NULL);
        else if (s->upload_state == UPLOAD_SERVICE_SILENT)
                request_finish(s, req, -ETIMEDOUT, NULL);
        else if (s->upload_state == UPLOAD_SERVICE_FOUND && s->upload_max && req->size > s->upload_max)
                request_finish(s, req, -EMSGSIZE, NULL);
        else
                request_copy(s, req);
}

static Upload *upload_new(Session *s, const StoreMessage *m) {
        Upload *u = g_new0(Upload, 1);

        u->session = s;
        u->conversation = g_strdup(m->conversation);
        u->id = g_strdup(m->id);
        u->path = g_strdup(m->path);
        u->name = g_strdup(m->name);
        u->mime = g_strdup(m->mime);
        u->size = (uint64_t) MAX(m->size, 0);
        u->fd = -1;
        u->retry = (Backoff) { .min_ms = s->backoff.min_ms, .max_ms = s->backoff.max_ms };
        if (!s->uploads)
                s->uploads = g_ptr_array_new();
        g_ptr_array_add(s->uploads, u);
        return u;
}

static gboolean on_copied(gpointer userdata) {
        FileRequest *req = userdata;
        Session *s = req->session;
        g_autoptr(GPtrArray) added = NULL;
        g_autoptr(GHashTable) changed = NULL;
        StoreMessage m = { 0 }, *stored;
        int64_t seq;
        int r;

        req->copying = false;
        if (!s || req->abandoned) {
                /* logged out meanwhile: the caller heard so already */
                if (s)
                        g_ptr_array_remove_fast(s->abandoned_copies, req);
                if (req->error == 0)
                        (void) unlink(req->path);
                file_request_free(req);
                return G_SOURCE_REMOVE;
        }
        if (req->error < 0) {
                /* empty after all, changed meanwhile, not readable: the caller's
                 * file is the matter */
                request_finish(s, req, req->error == -ENODATA || req->error == -EBADF ? -EINVAL : req->error,
                               NULL);
                return G_SOURCE_REMOVE;
        }
        session_flush(s);
        m.id = req->id;
        m.conversation = req->conversation;
        m.sender = s->account;
        m.direction = STORE_DIRECTION_OUT;
        m.time_ms = g_get_real_time() / 1000;
        m.type = req->type;
        m.status = (char *) "pending";
        m.mime = req->mime;
        m.name = req->name;
        m.size = (int64_t) req->copied;
        /* the caller's word first: it may know better (a rotated photo) */
        m.width = req->width ? req->width : req->image_width;
        m.height = req->height ? req->height : req->image_height;
        m.duration_ms = req->duration_ms;
        m.path = req->path;
        r = store_append_message(s->store, &m, &seq);
        if (r < 0) {
                (void) unlink(req->path);
                request_finish(s, req, r == -EEXIST ? -EIO : r, NULL);
                return G_SOURCE_REMOVE;
        }
        m.seq = seq;
        stored = store_message_copy(&m);        /* m's strings are req's, which goes now */
        added = g_ptr_array_new_with_free_func((GDestroyNotify) store_message_free);
        g_ptr_array_add(added, stored);
        upload_new(s, stored);
        request_finish(s, req, 0, stored->id);

        session_schedule_indexing(s, INDEX_QUIET_MS);
        s->events.messages_added(added, s->userdata);
        changed = g_hash_table_new(g_str_hash, g_str_equal);
        g_hash_table_add(changed, stored->conversation);
        session_announce_conversations(s, changed);
        session_pump_uploads(s);
        return G_SOURCE_REMOVE;
}

/* Bytes the outbox holds for uploads: the copies whose messages wait (and
 * anything the history cannot account for), and the sizes of the copies
 * being made. The copies of files that went out do not count. */
static uint64_t outbox_bytes(Session *s) {
        g_autofree char *dir = outbox_dir(s);
        g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
        GPtrArray *lists[] = { s->file_requests, s->abandoned_copies };
        uint64_t bytes = 0;
        const char *name;

        for (size_t l = 0; l < G_N_ELEMENTS(lists); l++)
                for (guint i = 0; lists[l] && i < lists[l]->len; i++)
                        bytes += ((const FileRequest *) g_ptr_array_index(lists[l], i))->size;
        while (d && (name = g_dir_read_name(d))) {
                g_autofree char *path = g_build_filename(dir, name, NULL);
                struct stat st;
                if (lstat(path, &st) < 0 || !S_ISREG(st.st_mode) || copy_in_flight(s, dir, name) ||
                    copy_state(s, name) == COPY_SENT)
                        continue;
                bytes += (uint64_t) st.st_size;
        }
        return bytes;
}

uint64_t session_max_outbox_bytes(const Session *s) {
        return s->config.max_outbox_bytes ? s->config.max_outbox_bytes : DEFAULT_MAX_OUTBOX;
}

/* Calls not answered yet, and copies a logout abandoned that still run:
 * each holds up to three file descriptors (the call's, our dup, the copy)
 * and a thread. */
static guint requests_in_flight(const Session *s) {
        return (s->file_requests ? s->file_requests->len : 0) +
               (s->abandoned_copies ? s->abandoned_copies->len : 0);
}

static int send_file(Session *s, const char *conversation, int fd, const SessionFileInfo *info, bool counted,
                     SessionSendFileCallback callback, void *userdata) {
        FileRequest *req;
        struct stat st;

        if (!s->online_wanted || !s->store || s->login_pending)
                return -ENOTCONN;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode) || st.st_size <= 0)
                return -EINVAL;
        if (s->upload_state == UPLOAD_SERVICE_NONE)
                return -ENOTSUP;
        if (s->upload_state == UPLOAD_SERVICE_FOUND && s->upload_max && (uint64_t) st.st_size > s->upload_max)
                return -EMSGSIZE;
        /* offline, the server's limit is not known yet: no copy of a file no
         * server takes fills the disk meanwhile */
        if ((uint64_t) st.st_size > MAX_FILE_BYTES)
                return -EMSGSIZE;
        /* a caller (or many) starting SendFile after SendFile must not
         * run imd out of file descriptors: at the limit sd-bus drops the
         * bus connection, and imd can serve no one */
        if (counted && requests_in_flight(s) >= SESSION_MAX_FILE_REQUESTS)
                return -EBUSY;
        /* on a shared machine (system mode) anyone allowed in could fill
         * the disk with copies, of uploads that fail (they stay for
         * ResendMessage) or of one sparse file sent again and again */
        if (outbox_bytes(s) + (uint64_t) st.st_size > session_max_outbox_bytes(s))
                return -EDQUOT;

        req = g_new0(FileRequest, 1);
        req->src = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (req->src < 0) {
                int r = -errno;
                g_free(req);
                return r;
        }
        req->session = s;
        req->conversation = g_strdup(conversation);
        req->id = xmpp_new_id();
        req->type = g_strdup(media_describe(NULL, info->mime, info->name ? info->name : "file", &req->mime,
                                            &req->name));
        if (info->type) {
                g_free(req->type);
                req->type = g_strdup(info->type);
        }
        req->width = info->width;
        req->height = info->height;
        req->duration_ms = info->duration_ms;
        req->size = (uint64_t) st.st_size;
        req->callback = callback;
        req->userdata = userdata;
        if (!s->file_requests)
                s->file_requests = g_ptr_array_new();
        g_ptr_array_add(s->file_requests, req);

        /* online, the server's limit is known before the caller is answered */
        session_ask_upload_service_again(s);
        session_lookup_upload_service(s);
        if (s->upload_state != UPLOAD_SERVICE_LOOKING)
                request_continue(s, req);
        return 0;
}

int session_send_file(Session *s, const char *conversation, int fd, const SessionFileInfo *info,
                      SessionSendFileCallback callback, void *userdata) {
        return send_file(s, conversation, fd, info, true, callback, userdata);
}

int session_send_recording(Session *s, const char *conversation, int fd, const SessionFileInfo *info,
                           SessionSendFileCallback callback, void *userdata) {
        return send_file(s, conversation, fd, info, false, callback, userdata);
}

/* --- finding the upload service (XEP-0363 §2) --- */

static void on_service_known(Session *s) {
        /* the calls waiting for it, then the uploads */
        for (guint i = 0; s->file_requests && i < s->file_requests->len;) {
                FileRequest *req = g_ptr_array_index(s->file_requests, i);
                guint len = s->file_requests->len;
                if (req->copying) {
                        i++;
                        continue;
                }
                request_continue(s, req);
                if (s->file_requests->len == len)
                        i++;    /* still there (copying); else its place holds another */
        }
        session_pump_uploads(s);
}

static void lookup_done(Session *s, UploadServiceState state) {
        for (guint i = 0; i < s->upload_lookups->len; i++)
                xmpp_stream_cancel_iq(s->stream, g_array_index(s->upload_lookups, unsigned, i));
        g_array_set_size(s->upload_lookups, 0);
        s->upload_state = state;
        if (state == UPLOAD_SERVICE_FOUND)
                g_debug("session: upload service %s, max-file-size %" G_GUINT64_FORMAT, s->upload_service,
                        s->upload_max);
        else
                g_debug("session: %s", state == UPLOAD_SERVICE_NONE     ? "the server has no upload service"
                                       : state == UPLOAD_SERVICE_SILENT ? "service discovery timed out"
                                                                        : "upload service not known yet");
        on_service_known(s);
}

static void forget_lookup(Session *s, unsigned handle) {
        for (guint i = 0; i < s->upload_lookups->len; i++)
                if (g_array_index(s->upload_lookups, unsigned, i) == handle) {
                        g_array_remove_index_fast(s->upload_lookups, i);
                        return;
                }
}

typedef struct Lookup {
        Session *session;
        unsigned handle;
        char *jid;                      /* the entity asked */
} Lookup;

static void lookup_free(Lookup *l) {
        g_free(l->jid);
        g_free(l);
}

static void on_info(int error, const XmlNode *reply, void *userdata) {
        Lookup *l = userdata;
        Session *s = l->session;
        uint64_t max;

        g_autofree char *jid = g_steal_pointer(&l->jid);

        forget_lookup(s, l->handle);
        lookup_free(l);
        if (error == -ECONNRESET) {
                lookup_done(s, UPLOAD_SERVICE_UNKNOWN);
                return;
        }
        if (error == -ETIMEDOUT)
                s->upload_lookup_unsure = true;         /* it may be the one, only slow */
        if (error == 0 && xmpp_upload_parse_service(reply, &max)) {
                g_free(s->upload_service);
                /* (the stream checked that the answer comes from it) */
                s->upload_service = g_steal_pointer(&jid);
                s->upload_max = max;
                lookup_done(s, UPLOAD_SERVICE_FOUND);
                return;
        }
        if (s->upload_lookups->len == 0)
                lookup_done(s, s->upload_lookup_unsure ? UPLOAD_SERVICE_SILENT : UPLOAD_SERVICE_NONE);
}

static void ask_info(Session *s, const char *jid) {
        Lookup *info = g_new0(Lookup, 1);

        info->session = s;
        info->jid = g_strdup(jid);
        if (xmpp_stream_send_iq(s->stream, xmpp_disco_info_new(jid), on_info, info, (GDestroyNotify) lookup_free,
                                &info->handle) < 0) {
                lookup_free(info);
                return;
        }
        g_array_append_val(s->upload_lookups, info->handle);
}

static void on_items(int error, const XmlNode *reply, void *userdata) {
        Lookup *l = userdata;
        Session *s = l->session;
        g_auto(GStrv) items = NULL;

        forget_lookup(s, l->handle);
        lookup_free(l);
        if (error < 0) {
                /* a server that did not answer is asked again for the next
                 * SendFile; asking at once would repeat for ever */
                lookup_done(s, error == -ECONNRESET  ? UPLOAD_SERVICE_UNKNOWN
                               : error == -ETIMEDOUT ? UPLOAD_SERVICE_SILENT
                                                     : UPLOAD_SERVICE_NONE);
                return;
        }
        /* the server itself may be the service too */
        s->upload_lookup_unsure = false;
        ask_info(s, strchr(s->account, '@') + 1);
        items = xmpp_disco_parse_items(reply);
        for (size_t i = 0; items[i]; i++)
                ask_info(s, items[i]);
        if (s->upload_lookups->len == 0)
                lookup_done(s, UPLOAD_SERVICE_NONE);
}

void session_lookup_upload_service(Session *s) {
        Lookup *l;
        const char *domain;

        if (s->upload_state != UPLOAD_SERVICE_UNKNOWN || !s->ready || !s->stream)
                return;
        domain = strchr(s->account, '@');
        l = g_new0(Lookup, 1);
        l->session = s;
        if (!domain || xmpp_stream_send_iq(s->stream, xmpp_disco_items_new(domain + 1), on_items, l,
                                           (GDestroyNotify) lookup_free, &l->handle) < 0) {
                lookup_free(l);
                return;
        }
        if (!s->upload_lookups)
                s->upload_lookups = g_array_new(false, false, sizeof(unsigned));
        g_array_append_val(s->upload_lookups, l->handle);
        s->upload_state = UPLOAD_SERVICE_LOOKING;
}

void session_ask_upload_service_again(Session *s) {
        if (s->upload_state == UPLOAD_SERVICE_SILENT)
                s->upload_state = UPLOAD_SERVICE_UNKNOWN;
}

void session_forget_upload_service(Session *s) {
        if (s->upload_lookups) {
                for (guint i = 0; i < s->upload_lookups->len; i++)
                        xmpp_stream_cancel_iq(s->stream, g_array_index(s->upload_lookups, unsigned, i));
                g_array_set_size(s->upload_lookups, 0);
        }
        s->upload_state = UPLOAD_SERVICE_UNKNOWN;
        g_clear_pointer(&s->upload_service, g_free);
        s->upload_max = 0;
}

/* --- uploading --- */

static void upload_remove(Session *s, Upload *u) {
        g_ptr_array_remove_fast(s->uploads, u);
        upload_free(u);
}

/* The upload failed for good: the message never goes out as it is, and
 * says so; its copy stays for ResendMessage. */
static void upload_fail(Session *s, Upload *u, int error, const char *why) {
        g_autofree char *text = g_strdup_printf("The file %s (message %s to %s) was not sent: %s", u->name, u->id,
                                                u->conversation, why);
        g_autofree char *conversation = g_strdup(u->conversation);
        g_autofree char *id = g_strdup(u->id);

        g_debug("session: %s", text);
        upload_remove(s, u);
        if (store_set_message_status(s->store, conversation, id, "failed") < 0)
                return;
        /* why first: a frontend waiting for "failed" has it when that comes */
        s->events.error(error, text, s->userdata);
        s->events.message_status_changed(conversation, id, "failed", s->userdata);
}

static void on_put_progress(uint64_t sent, uint64_t total, void *userdata) {
        Upload *u = userdata;
        Session *s = u->session;
        int64_t now = g_get_monotonic_time();

        /* the last word (done == total) waits for the server's answer */
        if (sent >= total || now - u->progress_at_us < PROGRESS_INTERVAL_US)
                return;
        u->progress_at_us = now;
        s->events.transfer_progress(u->conversation, u->id, sent, total, s->userdata);
}

/* Our copy moves to the cache directory, where received files are too (a
 * frontend shows it from there), in three steps that a crash may cut
 * anywhere: a second name in the cache (link_into_cache()), the history
 * naming it (store_set_uploaded()), the outbox name gone (unlink). Whatever
 * the history names exists at every moment; a rename before the commit
 * left it naming an outbox file that was gone, and the message "failed" at
 * the next login. A file with both names is sorted out by
 * session_clean_outbox(). NULL: the copy stays where it is (the cache is on
 * another file system). */
static char *link_into_cache(Session *s, Upload *u) {
        g_autofree char *path = NULL;
        int r = session_media_link_file(s, u->mime, u->path, &path);

        if (r < 0) {
                g_debug("session: %s stays in the outbox: %s", u->id, g_strerror(-r));
                return NULL;
        }
        return g_steal_pointer(&path);
}

static void upload_start(Session *s, Upload *u);

static gboolean on_retry(gpointer userdata) {
        Upload *u = userdata;

        u->retry_timer = 0;
        upload_start(u->session, u);    /* or on the next connection */
        return G_SOURCE_REMOVE;
}

/* Whether a failed PUT gets another attempt: only when its connection
 * failed, not when the server answered no, and not forever. The next one
 * takes a new slot: the server may have kept part of the file under this
 * one's URL. */
static bool upload_retry_later(Upload *u, int error, const char *why) {
        unsigned delay;

        if ((error != -ECONNREFUSED && error != -ECONNRESET) || ++u->attempts >= UPLOAD_ATTEMPTS)
                return false;
        delay = backoff_next_ms(&u->retry, g_random_int());
        g_debug("session: the upload of %s failed (%s); attempt %u of %u in %u ms", u->id, why,
                u->attempts + 1, UPLOAD_ATTEMPTS, delay);
        g_clear_pointer(&u->get_url, g_free);
        u->retry_timer = g_timeout_add(delay, on_retry, u);
        return true;
}

/* The PUT failed: another attempt later, or "failed" now. */
static void upload_put_failed(Session *s, Upload *u, int error, const char *why) {
        g_autofree char *text = NULL;

        if (upload_retry_later(u, error, why))
                return;
        if (u->attempts > 1)
                why = text = g_strdup_printf("%s (%u attempts)", why, u->attempts);
        upload_fail(s, u, error, why);
}

static void on_put_done(int error, const char *detail, uint64_t bytes, void *userdata) {
        Upload *u = userdata;
        Session *s = u->session;
        g_autoptr(StoreMessage) m = NULL;
        g_autofree char *path = NULL;
        int r;

        (void) bytes;
        u->http = NULL;
        close(u->fd);
        u->fd = -1;
        if (error < 0) {
                upload_put_failed(s, u, error, detail ? detail : g_strerror(-error));
                return;
        }
        s->events.transfer_progress(u->conversation, u->id, u->size, u->size, s->userdata);
        path = link_into_cache(s, u);
        r = store_set_uploaded(s->store, u->conversation, u->id, u->get_url, path ? path : u->path);
        if (r < 0) {
                if (path)
                        (void) unlink(path);    /* the history still names the outbox's */
                upload_fail(s, u, r, "cannot write the message history");
                return;
        }
        if (path)
                (void) unlink(u->path);
        g_debug("session: uploaded %s for %s", u->get_url, u->id);
        /* (revoked meanwhile: it never goes out) */
        if (s->ready && s->stream && store_get_message(s->store, u->conversation, u->id, &m) >= 0 &&
            !m->revoked && session_send_stored(s, m, 0) == -EMSGSIZE)
                session_fail_too_large(s, m);   /* a server announcing a tiny limit */
        upload_remove(s, u);
}

static bool url_allowed(const Session *s, const char *url) {
        return session_media_url_allowed(s, url) == 0;
}

static void on_slot(int error, const XmlNode *reply, void *userdata) {
        Upload *u = userdata;
        Session *s = u->session;
        XmppUploadSlot slot = { 0 };
        XmppHttpHeader headers[XMPP_UPLOAD_HEADERS_MAX];
        uint64_t max;
        int r;

        u->slot_iq = 0;
        if (error == -ECONNRESET)
                return;         /* asked again on the next connection */
        if (error == -ETIMEDOUT) {
                upload_fail(s, u, error, "the upload service did not answer");
                return;
        }
        if (error < 0) {
                r = xmpp_upload_parse_error(reply, &max);
                if (r == -EMSGSIZE && max)
                        s->upload_max = max;
                upload_fail(s, u, r, r == -EMSGSIZE ? "the server takes no file this large"
                                     : r == -EDQUOT ? "over the server's upload quota"
                                                    : "the server refused the upload");
                return;
        }
        if (xmpp_upload_parse_slot(reply, &slot) < 0) {
                upload_fail(s, u, -EPROTO, "the server's upload slot is malformed");
                return;
        }
        /* the same rule as for downloads: nothing goes over plain http to
         * another machine, where anyone on the way could read it */
        if (!url_allowed(s, slot.put_url) || !url_allowed(s, slot.get_url)) {
                xmpp_upload_slot_clear(&slot);
                upload_fail(s, u, -EPERM, "the server's upload URL is not https");
                return;
        }
        g_free(u->get_url);
        u->get_url = g_strdup(slot.get_url);
        for (size_t i = 0; i < slot.n_headers; i++)
                headers[i] = (XmppHttpHeader) { slot.header_names[i], slot.header_values[i] };
        u->fd = open(u->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (u->fd < 0) {
                r = -errno;
                xmpp_upload_slot_clear(&slot);
                upload_fail(s, u, r, "imd's copy of the file is gone");
                return;
        }
        r = xmpp_http_put(s->transport_ctx, slot.put_url, s->ca_file, u->fd, u->size, u->mime, headers,
                          slot.n_headers, on_put_progress, on_put_done, u, &u->http);
        xmpp_upload_slot_clear(&slot);
        if (r < 0) {
                close(u->fd);
                u->fd = -1;
                /* a connection refused at once, as one refused later */
                upload_put_failed(s, u, r, g_strerror(-r));
        }
}

static void upload_start(Session *s, Upload *u) {
        XmlNode *request;

        if (u->slot_iq || u->http || u->retry_timer || !s->ready || !s->stream)
                return;
        switch (s->upload_state) {
        case UPLOAD_SERVICE_UNKNOWN:
                session_lookup_upload_service(s);
                return;
        case UPLOAD_SERVICE_LOOKING:
                return;
        case UPLOAD_SERVICE_NONE:
                upload_fail(s, u, -ENOTSUP, "the server offers no file upload (XEP-0363)");
                return;
        case UPLOAD_SERVICE_SILENT:
                upload_fail(s, u, -ETIMEDOUT, "the server did not answer the search for its upload service "
                                              "(XEP-0030 service discovery) within a minute");
                return;
        case UPLOAD_SERVICE_FOUND:
                break;
        }
        if (s->upload_max && u->size > s->upload_max) {
                upload_fail(s, u, -EMSGSIZE, "the server takes no file this large");
                return;
        }
        request = xmpp_upload_slot_request_new(s->upload_service, u->name, u->size, u->mime);
        if (xmpp_stream_send_iq(s->stream, request, on_slot, u, NULL, &u->slot_iq) < 0)
                u->slot_iq = 0;
}

void session_pump_uploads(Session *s) {
        /* upload_start() may remove (fail) the one it is given */
        for (guint i = 0; s->uploads && i < s->uploads->len;) {
                guint len = s->uploads->len;
                upload_start(s, g_ptr_array_index(s->uploads, i));
                if (s->uploads->len == len)
                        i++;
        }
}

static Upload *find_upload(Session *s, const char *conversation, const char *id) {
        for (guint i = 0; s->uploads && i < s->uploads->len; i++) {
                Upload *u = g_ptr_array_index(s->uploads, i);
                if (strcmp(u->id, id) == 0 && strcmp(u->conversation, conversation) == 0)
                        return u;
        }
        return NULL;
}

void session_upload_resume(Session *s, const StoreMessage *m) {
        if (find_upload(s, m->conversation, m->id))
                return;
        if (access(m->path, R_OK) < 0) {
                Upload *u = upload_new(s, m);
                upload_fail(s, u, -ENOENT, "imd's copy of the file is gone");
                return;
        }
        upload_new(s, m);
}

void session_upload_drop(Session *s, const StoreMessage *m) {
        g_autofree char *outbox = outbox_dir(s);
        Upload *u = find_upload(s, m->conversation, m->id);

        if (u)
                upload_remove(s, u);
        /* our copy, while it is still the outbox's (not once it is the
         * cache's copy of a file that went out) */
        if (m->path && !m->url && g_str_has_prefix(m->path, outbox) && m->path[strlen(outbox)] == '/')
                (void) unlink(m->path);
}

void session_cancel_uploads(Session *s) {
        while (s->file_requests && s->file_requests->len > 0) {
                FileRequest *req = g_ptr_array_steal_index_fast(s->file_requests, s->file_requests->len - 1);
                req->callback(-ECANCELED, NULL, req->userdata);
                if (req->copying) {
                        /* on_copied() throws the copy away */
                        g_atomic_int_set(&req->cancelled, 1);
                        req->abandoned = true;
                        if (!s->abandoned_copies)
                                s->abandoned_copies = g_ptr_array_new();
                        g_ptr_array_add(s->abandoned_copies, req);
                } else
                        file_request_free(req);
        }
        while (s->uploads && s->uploads->len > 0)
                /* the messages stay "pending": the next login uploads them */
                upload_free(g_ptr_array_steal_index_fast(s->uploads, s->uploads->len - 1));
        session_forget_upload_service(s);
}

void session_disown_copies(Session *s) {
        for (guint i = 0; s->abandoned_copies && i < s->abandoned_copies->len; i++)
                ((FileRequest *) g_ptr_array_index(s->abandoned_copies, i))->session = NULL;
        g_clear_pointer(&s->abandoned_copies, g_ptr_array_unref);
}

int session_resend_message(Session *s, const char *conversation, const char *id) {
        g_autoptr(StoreMessage) m = NULL;
        int r;

        if (!s->store)
                return -ENOTCONN;
        session_flush(s);
        r = store_get_message(s->store, conversation, id, &m);
        if (r < 0)
                return r;
        if (m->direction != STORE_DIRECTION_OUT || g_strcmp0(m->status, "failed") != 0 || m->revoked)
                return -EPERM;
        if (session_upload_waiting(m) && access(m->path, R_OK) < 0)
                return -ENOENT;         /* nothing left to send */
        /* the server it failed on takes less: it would only fail again */
        if (!session_upload_waiting(m) && session_check_stanza_size(s, m) < 0)
                return -EMSGSIZE;
        r = store_set_message_status(s->store, conversation, id, "pending");
        if (r < 0)
                return r;
        s->events.message_status_changed(conversation, id, "pending", s->userdata);
        if (session_upload_waiting(m)) {
                session_ask_upload_service_again(s);
                upload_new(s, m);
                session_pump_uploads(s);
        } else if (s->ready && s->stream)
                session_send_stored(s, m, 0);
        return 0;
}
