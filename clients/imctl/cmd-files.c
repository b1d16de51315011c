/* SPDX-License-Identifier: MIT */
/*
 * send-file: hands a file to imd (SendFile with the fd of a file imctl opened
 * itself: imd never opens a path for its callers), prints the new message's
 * id, then follows its upload until the message is sent or failed, with a
 * progress bar when stderr is a terminal.
 *
 * The match rules are in place before SendFile is called; signals that
 * arrive before its reply wait in sd-bus's queue, and are dispatched only
 * once the loop runs and the id is known, so none is missed.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib.h>

#include "loop.h"

/* send-file options in the order of the command's option table */
enum { SEND_FILE_OPT_NAME, SEND_FILE_OPT_MIME, SEND_FILE_OPT_TYPE, SEND_FILE_OPT_NO_WAIT };

#define REDRAW_USEC 100000                              /* at most ~10 redraws a second */
#define QUIET_NOTICE_USEC (2ULL * 1000000ULL)           /* no news for this long: say we wait */
/* imd emits Error and MessageStatusChanged "failed" together, in either order */
#define ERROR_RECENT_USEC 2000000
#define ERROR_LINGER_USEC (300ULL * 1000ULL)
#define MIN_BAR_WIDTH 10U

struct upload {
        struct imctl *ctx;
        sd_event *event;
        const char *conversation;
        const char *path;               /* as the user gave it, for messages */
        const char *id;                 /* SendFile's reply holds it */
        bool tty;                       /* stderr is a terminal: show progress */
        bool heard;                     /* a signal about this message arrived */
        bool line_open;                 /* a progress line is drawn, without its newline */
        bool failed;                    /* "failed" seen; waiting briefly for the Error saying why */
        bool done;                      /* the outcome is decided; ignore the rest */
        int64_t last_draw;              /* g_get_monotonic_time() */
        char *error_name, *error_message;
        int64_t error_time;
        sd_event_source *quiet, *linger;
};

/* Opens @path for SendFile: an exit code, and the fd in @ret on success. */
static int open_regular_file(const char *path, int *ret) {
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        int flags;

        /* O_NONBLOCK: opening a FIFO must not wait for a writer before we can refuse it */
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0 || fstat(fd, &st) < 0) {
                fprintf(stderr, "imctl: cannot send '%s': %s\n", path, strerror(errno));
                return IMCTL_EXIT_USAGE;
        }
        if (!S_ISREG(st.st_mode)) {
                fprintf(stderr, "imctl: cannot send '%s': %s\n", path,
                        S_ISDIR(st.st_mode) ? "it is a directory" : "not a regular file");
                return IMCTL_EXIT_USAGE;
        }
        if (st.st_size == 0) {
                fprintf(stderr, "imctl: cannot send '%s': the file is empty\n", path);
                return IMCTL_EXIT_USAGE;
        }
        /* the flag belongs to the open file, which imd shares: back to blocking reads */
        flags = fcntl(fd, F_GETFL);
        if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0) {
                fprintf(stderr, "imctl: cannot send '%s': %s\n", path, strerror(errno));
                return IMCTL_EXIT_USAGE;
        }
        *ret = fd;
        fd = -EBADF;
        return IMCTL_EXIT_OK;
}

static int append_info(sd_bus_message *m, const char *path, char **opts) {
        g_autofree char *base = NULL;
        const char *name = opts[SEND_FILE_OPT_NAME];
        int r;

        /* without --name the peer sees the real name rather than imd's default "file" */
        if (!name)
                name = base = g_path_get_basename(path);
        r = sd_bus_message_open_container(m, SD_BUS_TYPE_ARRAY, "{sv}");
        if (r >= 0)
                r = sd_bus_message_append(m, "{sv}", "name", "s", name);
        if (r >= 0 && opts[SEND_FILE_OPT_MIME])
                r = sd_bus_message_append(m, "{sv}", "mime", "s", opts[SEND_FILE_OPT_MIME]);
        if (r >= 0 && opts[SEND_FILE_OPT_TYPE])
                r = sd_bus_message_append(m, "{sv}", "type", "s", opts[SEND_FILE_OPT_TYPE]);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        return r;
}

static void format_bytes(uint64_t n, char buf[static 16]) {
        static const char units[][4] = { "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
        double v = (double) n / 1024;
        size_t u = 0;

        if (n < 1024) {
                g_snprintf(buf, 16, "%" PRIu64 " B", n);
                return;
        }
        while (v >= 1024 && u + 1 < G_N_ELEMENTS(units)) {
                v /= 1024;
                u++;
        }
        g_snprintf(buf, 16, "%.1f %s", v, units[u]);
}

/* "\r 42% 1.2 MiB / 3.0 MiB [########-----------]", as wide as the terminal */
static void draw_progress(struct upload *u, uint64_t done, uint64_t total) {
        g_autoptr(GString) line = g_string_new(NULL);
        /* the last column stays empty: writing there makes some terminals wrap */
        size_t width = output_terminal_columns() - 1;
        char d[16], t[16];
        unsigned percent;

        if (done > total)
                done = total;
        percent = done == total ? 100 : MIN((unsigned) ((double) done * 100 / (double) total), 99U);
        format_bytes(done, d);
        format_bytes(total, t);
        g_string_printf(line, "%3u%% %s / %s", percent, d, t);
        if (line->len + 3 + MIN_BAR_WIDTH <= width) {
                size_t bar = width - line->len - 3;
                size_t fill = total ? (size_t) ((double) done / (double) total * (double) bar) : bar;

                g_string_append(line, " [");
                for (size_t i = 0; i < bar; i++)
                        g_string_append_c(line, i < fill ? '#' : '-');
                g_string_append_c(line, ']');
        }
        /* the same width every time, so that nothing of a longer line stays */
        if (line->len > width)
                g_string_truncate(line, width);
        while (line->len < width)
                g_string_append_c(line, ' ');
        fprintf(stderr, "\r%s", line->str);
        u->line_open = true;
        u->last_draw = g_get_monotonic_time();
}

static void end_progress_line(struct upload *u) {
        if (u->line_open)
                fputc('\n', stderr);
        u->line_open = false;
}

static void finish(struct upload *u, int code) {
        u->done = true;
        end_progress_line(u);
        sd_event_exit(u->event, code);
}

static void report_failure(struct upload *u) {
        end_progress_line(u);
        if (u->error_message)
                fprintf(stderr, "imctl: sending '%s' failed: %s (%s)\n", u->path, u->error_message,
                        u->error_name);
        else
                fprintf(stderr, "imctl: sending '%s' failed\n", u->path);
        fprintf(stderr, "imctl: 'imctl resend %s %s' tries again\n", u->conversation, u->id);
        finish(u, IMCTL_EXIT_BUS);
}

/* Signals are dispatched only after SendFile replied, so u->id is set. */
static bool is_this_message(struct upload *u, const char *id) {
        if (u->done || strcmp(id, u->id) != 0)
                return false;
        u->heard = true;
        return true;
}

static int on_transfer_progress(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct upload *u = userdata;
        const char *conversation, *id;
        uint64_t done, total;

        if (!imctl_from_daemon(u->ctx, m) || sd_bus_message_read(m, "sstt", &conversation, &id, &done, &total) < 0)
                return 0;
        if (!is_this_message(u, id) || !u->tty)
                return 0;
        if (done < total && u->line_open && g_get_monotonic_time() - u->last_draw < REDRAW_USEC)
                return 0;
        draw_progress(u, done, total);
        return 0;
}

static int on_linger_over(sd_event_source *s, uint64_t usec, void *userdata) {
        struct upload *u = userdata;

        if (!u->done)
                report_failure(u);
        return 0;
}

static int on_status_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct upload *u = userdata;
        const char *conversation, *id, *status;
        int r;

        if (!imctl_from_daemon(u->ctx, m) || sd_bus_message_read(m, "sss", &conversation, &id, &status) < 0)
                return 0;
        if (!is_this_message(u, id))
                return 0;
        if (strcmp(status, "sent") == 0 || strcmp(status, "delivered") == 0 ||
            strcmp(status, "read") == 0) {
                finish(u, IMCTL_EXIT_OK);
                return 0;
        }
        /* "pending" (someone called ResendMessage) and statuses added later: keep waiting */
        if (strcmp(status, "failed") != 0 || u->failed)
                return 0;
        if (u->error_message && g_get_monotonic_time() - u->error_time <= ERROR_RECENT_USEC) {
                report_failure(u);
                return 0;
        }
        u->failed = true;
        r = sd_event_add_time_relative(u->event, &u->linger, CLOCK_MONOTONIC, ERROR_LINGER_USEC, 0,
                                       on_linger_over, u);
        if (r < 0)
                report_failure(u);
        return 0;
}

/* The Error signal names no message: the one just before or after "failed" says why. */
static int on_error(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct upload *u = userdata;
        const char *name, *message;

        if (u->done || !imctl_from_daemon(u->ctx, m) || sd_bus_message_read(m, "ss", &name, &message) < 0)
                return 0;
        g_free(u->error_name);
        g_free(u->error_message);
        u->error_name = g_strdup(name);
        u->error_message = g_strdup(message);
        u->error_time = g_get_monotonic_time();
        if (u->failed)
                report_failure(u);
        return 0;
}

static int on_quiet(sd_event_source *s, uint64_t usec, void *userdata) {
        struct upload *u = userdata;

        /* e.g. imd is offline: the message stays "pending" until it is back */
        if (!u->heard && !u->done)
                fprintf(stderr, "imctl: waiting for the connection…\n");
        return 0;
}

static int on_daemon_lost(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct upload *u = userdata;

        if (u->done || !imctl_name_owner_lost(m))
                return 0;
        end_progress_line(u);
        fprintf(stderr, "imctl: imd left the bus before '%s' was sent; "
                "it uploads it again after its next login\n", u->path);
        finish(u, IMCTL_EXIT_BUS);
        return 0;
}

static int subscribe(struct upload *u) {
        sd_bus *bus = u->ctx->bus;
        int r;

        r = sd_bus_match_signal(bus, NULL, IM_SERVICE, IM_PATH, IM_INTERFACE, "TransferProgress",
                                on_transfer_progress, u);
        if (r >= 0)
                r = sd_bus_match_signal(bus, NULL, IM_SERVICE, IM_PATH, IM_INTERFACE,
                                        "MessageStatusChanged", on_status_changed, u);
        if (r >= 0)
                r = sd_bus_match_signal(bus, NULL, IM_SERVICE, IM_PATH, IM_INTERFACE, "Error",
                                        on_error, u);
        if (r < 0)
                return imctl_print_errno("cannot subscribe to signals", r);
        return imctl_watch_daemon(u->ctx, on_daemon_lost, u);
}

static int call_send_file(struct upload *u, int fd, char **opts, sd_bus_message **reply) {
        _cleanup_message_ sd_bus_message *m = NULL;
        int r;

        r = imctl_new_call(u->ctx, "SendFile", &m);
        if (r != 0)
                return r;
        r = sd_bus_message_append(m, "sh", u->conversation, fd);
        if (r >= 0)
                r = append_info(m, u->path, opts);
        if (r < 0)
                return imctl_print_errno("cannot build the call", r);
        /* imd copies the whole file before it replies */
        return imctl_call(u->ctx, m, u->ctx->timeout_usec ? 0 : IMCTL_SEND_FILE_TIMEOUT_USEC, reply);
}

/* Waits for the outcome; SIGINT/SIGTERM end the wait, not the upload. */
static int wait_for_upload(struct upload *u) {
        int r;

        r = loop_new(u->ctx, &u->event);
        if (r != 0)
                return r;
        if (u->tty) {
                r = sd_event_add_time_relative(u->event, &u->quiet, CLOCK_MONOTONIC, QUIET_NOTICE_USEC, 0,
                                               on_quiet, u);
                if (r < 0)
                        return imctl_print_errno("cannot set up a timer", r);
        }
        r = loop_run(u->ctx, u->event);
        end_progress_line(u);
        if (r == IMCTL_EXIT_OK && !u->done && u->tty)
                fprintf(stderr, "imctl: stopped waiting; imd goes on with the upload\n");
        return r;
}

int cmd_send_file(struct imctl *ctx, char **args, char **opts) {
        _cleanup_message_ sd_bus_message *reply = NULL;
        _cleanup_close_ int fd = -EBADF;
        struct upload u = {
                .ctx = ctx,
                .conversation = args[0],
                .path = args[1],
                .tty = isatty(STDERR_FILENO),
        };
        bool wait = !opts[SEND_FILE_OPT_NO_WAIT];
        int r;

        /* a file we cannot send is an argument error: found before touching the bus */
        r = open_regular_file(u.path, &fd);
        if (r != 0)
                return r;
        r = imctl_open_bus(ctx);
        if (r != 0)
                return r;
        if (wait) {
                r = subscribe(&u);
                if (r != 0)
                        return r;
        }
        r = call_send_file(&u, fd, opts, &reply);
        if (r != 0)
                return r;
        if (sd_bus_message_read(reply, "s", &u.id) < 0) {
                fprintf(stderr, "imctl: unexpected reply to SendFile\n");
                return IMCTL_EXIT_BUS;
        }
        r = print_message_id(ctx, u.id);
        if (r != 0 || !wait)
                return r;

        r = wait_for_upload(&u);

        /* the bus outlives us in main(): drop our callbacks' userdata first */
        sd_bus_detach_event(ctx->bus);
        sd_event_source_unref(u.quiet);
        sd_event_source_unref(u.linger);
        sd_event_unref(u.event);
        g_free(u.error_name);
        g_free(u.error_message);
        return r;
}
