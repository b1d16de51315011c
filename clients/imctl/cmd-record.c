/* SPDX-License-Identifier: MIT */
/*
 * record: a voice message. StartRecording, then either keys on the terminal
 * (Enter: StopRecording; c, Esc or Ctrl-C: CancelRecording) under a line on
 * stderr with the elapsed time and the microphone's level, or, with
 * --duration, StopRecording after that long, which needs no terminal.
 *
 * The recording belongs to this process's bus connection and imd cancels it
 * when the connection goes, so a crash or kill -9 loses only the recording.
 * SIGINT, SIGTERM and SIGHUP cancel it explicitly. The terminal is raw only
 * while the event loop runs, and every way out of the loop (keys, signals,
 * the daemon leaving, errors) returns to cmd_record(), which restores it.
 *
 * Exit 0 only when a voice message was sent and its id printed (also when it
 * reached imd's maximum length and imd sent it by itself); non-zero when
 * nothing was sent, whatever the reason, so that a script's
 * `id=$(imctl record ...)` can rely on the id: 1 when cancelled, too short or
 * failed, else the code of the daemon's error (4 no microphone, ...).
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <glib.h>

#include "loop.h"

/* record options in the order of the command's option table */
enum { RECORD_OPT_DURATION };

#define REDRAW_USEC 100000ULL                   /* ~10 redraws a second, as RecordingLevel comes */
#define REDRAW_ACCURACY_USEC 10000ULL
#define DURATION_ACCURACY_USEC 1000ULL          /* sd-event's default would be 250 ms */
/* imd emits Error just before RecordingStopped "failed"; allow the other order too */
#define ERROR_RECENT_USEC 2000000
#define ERROR_LINGER_USEC (300ULL * 1000ULL)
/* waiting longer for CancelRecording is pointless: leaving cancels the recording too */
#define CANCEL_TIMEOUT_USEC (5ULL * 1000000ULL)
#define METER_FLOOR_DB (-60.0)
#define MIN_BAR_WIDTH 10U

#define KEY_CTRL_C 0x03
#define KEY_ESC 0x1b
#define KEY_CTRL_BACKSLASH 0x1c

enum record_state {
        RECORD_RUNNING,         /* waiting for a key, the --duration timer or a signal */
        RECORD_STOPPING,        /* StopRecording sent: its reply decides */
        RECORD_CANCELLING,      /* CancelRecording sent: its reply decides */
        RECORD_DONE,            /* the outcome is decided; ignore the rest */
};

struct recording {
        struct imctl *ctx;
        sd_event *event;
        const char *conversation;
        uint64_t duration_usec;         /* --duration; 0: until a key */
        bool interactive;               /* keys come from the terminal on stdin */
        bool meter;                     /* stderr is a terminal: draw the level line */
        enum record_state state;
        /* imd's unique name and the serial of its StartRecording reply: signals
         * sent before that reply (someone else's recording) are not ours */
        char *owner;
        uint64_t start_cookie;
        int64_t started;                /* g_get_monotonic_time() at the reply */
        int64_t ended;                  /* ... when we asked to stop or cancel; 0: not yet */
        double peak;                    /* the last RecordingLevel */
        bool line_open;                 /* a meter line is drawn, without its newline */
        bool failed;                    /* "failed" seen; waiting briefly for the Error saying why */
        char *error_name, *error_message;
        int64_t error_time;
        char *id;                       /* the voice message sent */
        struct termios saved_termios;
        bool termios_saved;
        sd_event_source *input, *redraw, *stop_timer, *linger;
        sd_bus_slot *call;              /* the one StopRecording or CancelRecording */
};

/* -- the level line ------------------------------------------------------------------------- */

static void format_elapsed(uint64_t usec, char buf[static 24]) {
        uint64_t tenths = usec / 100000;

        g_snprintf(buf, 24, "%" PRIu64 ":%02" PRIu64 ".%" PRIu64, tenths / 600, tenths / 10 % 60,
                   tenths % 10);
}

static double peak_db(double peak) {
        if (!(peak > 0))                /* also NaN */
                return METER_FLOOR_DB;
        return MAX(20 * log10(MIN(peak, 1.0)), METER_FLOOR_DB);
}

static const char *running_hint(const struct recording *rec) {
        return rec->interactive ? "Enter: send  c/Esc: cancel" : "Ctrl-C: cancel";
}

static const char *meter_hint(const struct recording *rec) {
        switch (rec->state) {
        case RECORD_RUNNING:
                return running_hint(rec);
        case RECORD_STOPPING:
                return "sending…";
        case RECORD_CANCELLING:
                return "cancelling…";
        case RECORD_DONE:
                break;
        }
        return "";
}

/* "0:03.4 [##########----------] -12 dB  Enter: send  c/Esc: cancel", as wide as the terminal */
static void draw_meter(struct recording *rec) {
        g_autoptr(GString) line = g_string_new(NULL);
        /* the last column stays empty: writing there makes some terminals wrap */
        size_t width = output_terminal_columns() - 1;
        const char *hint = meter_hint(rec);
        double db = peak_db(rec->peak);
        int64_t now = rec->ended ? rec->ended : g_get_monotonic_time();
        char elapsed[24], total[24], level[16];
        /* laid out for the longest hint, so that the bar keeps its width when the hint changes */
        size_t level_len, hint_room = 2 + strlen(running_hint(rec)), bar = 0;

        format_elapsed((uint64_t) (now - rec->started), elapsed);
        if (rec->duration_usec) {
                format_elapsed(rec->duration_usec, total);
                g_string_printf(line, "%s / %s", elapsed, total);
        } else
                g_string_printf(line, "%s", elapsed);
        g_snprintf(level, sizeof level, " %3d dB", (int) lround(db));
        level_len = strlen(level);

        /* narrow terminal: the hint goes first, then the bar (" [" "]" around it) */
        if (line->len + 3 + MIN_BAR_WIDTH + level_len + hint_room > width)
                hint_room = 0;
        if (line->len + 3 + MIN_BAR_WIDTH + level_len + hint_room <= width)
                bar = width - line->len - 3 - level_len - hint_room;
        if (bar > 0) {
                size_t fill = (size_t) ((db - METER_FLOOR_DB) / -METER_FLOOR_DB * (double) bar + 0.5);

                g_string_append(line, " [");
                for (size_t i = 0; i < bar; i++)
                        g_string_append_c(line, i < fill ? '#' : '-');
                g_string_append_c(line, ']');
        }
        g_string_append(line, level);
        if (hint_room)
                g_string_append_printf(line, "  %s", hint);

        /* the same width every time, so that nothing of a longer line stays;
         * the hints' "…" is one column in three bytes */
        if (g_utf8_strlen(line->str, -1) > (glong) width)
                g_string_truncate(line,
                                  (gsize) (g_utf8_offset_to_pointer(line->str, (glong) width) - line->str));
        for (glong n = g_utf8_strlen(line->str, -1); n < (glong) width; n++)
                g_string_append_c(line, ' ');
        fprintf(stderr, "\r%s", line->str);
        rec->line_open = true;
}

static void end_meter(struct recording *rec) {
        if (!rec->line_open)
                return;
        fprintf(stderr, "\r%*s\r", (int) (output_terminal_columns() - 1), "");
        rec->line_open = false;
}

/* A line on stderr, below (instead of) the meter. */
static void say(struct recording *rec, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(struct recording *rec, const char *fmt, ...) {
        va_list ap;

        end_meter(rec);
        fputs("imctl: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
}

/* -- outcomes --------------------------------------------------------------------------------- */

static void finish(struct recording *rec, int code) {
        rec->state = RECORD_DONE;
        end_meter(rec);
        sd_event_exit(rec->event, code);
}

/* cmd_record() prints the id once the terminal is restored */
static void finish_sent(struct recording *rec, const char *id) {
        g_free(rec->id);
        rec->id = g_strdup(id);
        finish(rec, IMCTL_EXIT_OK);
}

static void report_failure(struct recording *rec) {
        if (rec->error_message)
                say(rec, "the recording failed: %s (%s)", rec->error_message, rec->error_name);
        else
                say(rec, "the recording failed");
        finish(rec, IMCTL_EXIT_BUS);
}

static int on_stop_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct recording *rec = userdata;
        const char *id;

        /* "failed" came first: the Error signal, not this reply, says why */
        if (rec->state == RECORD_DONE || rec->failed)
                return 0;
        if (sd_bus_message_is_method_error(m, NULL)) {
                end_meter(rec);
                /* TooShort, or NotFound when the recording ended meanwhile */
                finish(rec, imctl_bus_failure(sd_bus_message_get_error(m), -EIO));
        } else if (sd_bus_message_read(m, "s", &id) <= 0) {
                say(rec, "unexpected reply to StopRecording");
                finish(rec, IMCTL_EXIT_BUS);
        } else
                finish_sent(rec, id);
        return 0;
}

static int on_cancel_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct recording *rec = userdata;

        if (rec->state == RECORD_DONE || rec->failed)
                return 0;
        if (sd_bus_message_is_method_error(m, NULL)) {
                end_meter(rec);
                imctl_print_bus_error(sd_bus_message_get_error(m), -EIO);
                /* a timeout: imd drops the recording when we leave, which is now */
                if (sd_bus_error_has_name(sd_bus_message_get_error(m), SD_BUS_ERROR_NO_REPLY))
                        say(rec, "cancelled by leaving; nothing was sent");
        } else
                say(rec, "cancelled; nothing was sent");
        finish(rec, IMCTL_EXIT_BUS);
        return 0;
}

/* StopRecording or CancelRecording, asynchronously: the meter goes on meanwhile. */
static void end_recording(struct recording *rec, const char *member, sd_bus_message_handler_t callback,
                          uint64_t timeout_usec, enum record_state next) {
        _cleanup_message_ sd_bus_message *m = NULL;
        int r;

        if (rec->state != RECORD_RUNNING)
                return;
        r = sd_bus_message_new_method_call(rec->ctx->bus, &m, IM_SERVICE, IM_PATH, IM_INTERFACE, member);
        if (r >= 0)
                r = sd_bus_call_async(rec->ctx->bus, &rec->call, m, callback, rec, timeout_usec);
        if (r < 0) {
                /* leaving cancels the recording anyway */
                say(rec, "cannot call %s: %s", member, strerror(-r));
                finish(rec, IMCTL_EXIT_BUS);
                return;
        }
        rec->state = next;
        rec->ended = g_get_monotonic_time();
        if (rec->meter)
                draw_meter(rec);
}

static void stop(struct recording *rec) {
        end_recording(rec, "StopRecording", on_stop_reply, rec->ctx->timeout_usec, RECORD_STOPPING);
}

static void cancel(struct recording *rec) {
        uint64_t timeout_usec = rec->ctx->timeout_usec ? rec->ctx->timeout_usec : CANCEL_TIMEOUT_USEC;

        end_recording(rec, "CancelRecording", on_cancel_reply, timeout_usec, RECORD_CANCELLING);
}

/* -- signals of imd --------------------------------------------------------------------------- */

static bool is_ours(struct recording *rec, sd_bus_message *m) {
        const char *sender = sd_bus_message_get_sender(m);
        uint64_t cookie;

        if (rec->state == RECORD_DONE || !rec->owner || !sender || strcmp(sender, rec->owner) != 0)
                return false;
        /* one sender's messages arrive in the order it sent them */
        return sd_bus_message_get_cookie(m, &cookie) >= 0 && cookie > rec->start_cookie;
}

static int on_level(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct recording *rec = userdata;
        double peak;

        if (is_ours(rec, m) && sd_bus_message_read(m, "d", &peak) > 0)
                rec->peak = peak;
        return 0;
}

static int on_linger_over(sd_event_source *s, uint64_t usec, void *userdata) {
        struct recording *rec = userdata;

        if (rec->state != RECORD_DONE)
                report_failure(rec);
        return 0;
}

static void stopped_failed(struct recording *rec) {
        int r;

        if (rec->failed)
                return;
        if (rec->error_message && g_get_monotonic_time() - rec->error_time <= ERROR_RECENT_USEC) {
                report_failure(rec);
                return;
        }
        rec->failed = true;
        r = sd_event_add_time_relative(rec->event, &rec->linger, CLOCK_MONOTONIC, ERROR_LINGER_USEC, 0,
                                       on_linger_over, rec);
        if (r < 0)
                report_failure(rec);
}

static int on_stopped(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct recording *rec = userdata;
        const char *conversation, *id, *reason;

        if (!is_ours(rec, m) || sd_bus_message_read(m, "sss", &conversation, &id, &reason) <= 0)
                return 0;

        if (strcmp(reason, "maximum") == 0) {
                say(rec, "the recording reached its maximum length; imd sent it");
                finish_sent(rec, id);
                return 0;
        }
        if (strcmp(reason, "failed") == 0) {
                stopped_failed(rec);
                return 0;
        }
        /* the end we asked for: our call's reply has the id or the daemon's message */
        if (rec->state == RECORD_STOPPING &&
            (strcmp(reason, "sent") == 0 || strcmp(reason, "too-short") == 0))
                return 0;
        if (rec->state == RECORD_CANCELLING && strcmp(reason, "cancelled") == 0)
                return 0;

        /* an end we did not ask for */
        if (id[0]) {
                say(rec, "the recording ended (%s); imd sent it", reason);
                finish_sent(rec, id);
                return 0;
        }
        if (strcmp(reason, "owner-left") == 0)
                say(rec, "imd took this client for gone and dropped the recording; nothing was sent");
        else if (strcmp(reason, "cancelled") == 0)
                say(rec, "the recording was cancelled (not by imctl); nothing was sent");
        else if (strcmp(reason, "too-short") == 0)
                say(rec, "the recording was too short; nothing was sent");
        else
                say(rec, "the recording ended (%s); nothing was sent", reason);
        finish(rec, IMCTL_EXIT_BUS);
        return 0;
}

/* The Error signal names no recording: the one next to "failed" says why. */
static int on_error(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct recording *rec = userdata;
        const char *name, *message;

        if (!is_ours(rec, m) || sd_bus_message_read(m, "ss", &name, &message) <= 0)
                return 0;
        g_free(rec->error_name);
        g_free(rec->error_message);
        rec->error_name = g_strdup(name);
        rec->error_message = g_strdup(message);
        rec->error_time = g_get_monotonic_time();
        if (rec->failed)
                report_failure(rec);
        return 0;
}

static int on_daemon_lost(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct recording *rec = userdata;

        if (rec->state == RECORD_DONE || !imctl_name_owner_lost(m))
                return 0;
        say(rec, "imd left the bus; the recording is lost");
        finish(rec, IMCTL_EXIT_BUS);
        return 0;
}

/* -- keys, timers and signals ------------------------------------------------------------------ */

/* @i is at an ESC followed by more bytes: the index of the sequence's last byte. */
static size_t skip_escape_sequence(const unsigned char *buf, size_t n, size_t i) {
        i++;
        if (buf[i] == 'O' && i + 1 < n)         /* SS3: F1-F4, keypad */
                return i + 1;
        if (buf[i] != '[')                      /* Alt+key */
                return i;
        /* CSI: parameter and intermediate bytes, then one final byte */
        while (i + 1 < n && !(buf[i + 1] >= 0x40 && buf[i + 1] <= 0x7e))
                i++;
        return i + 1 < n ? i + 1 : i;
}

static void handle_keys(struct recording *rec, const unsigned char *buf, size_t n) {
        for (size_t i = 0; i < n && rec->state == RECORD_RUNNING; i++) {
                switch (buf[i]) {
                case '\r':
                case '\n':
                        stop(rec);
                        break;
                case 'c':
                case 'C':
                case KEY_CTRL_C:
                case KEY_CTRL_BACKSLASH:
                        cancel(rec);
                        break;
                case KEY_ESC:
                        /* a lone Esc is the key; arrows and the like arrive as one sequence */
                        if (i + 1 == n)
                                cancel(rec);
                        else
                                i = skip_escape_sequence(buf, n, i);
                        break;
                default:
                        break;
                }
        }
}

static int on_stdin(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct recording *rec = userdata;
        unsigned char buf[64];
        ssize_t n;

        n = read(STDIN_FILENO, buf, sizeof buf);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return 0;
        if (n <= 0) {
                /* the terminal went away (SIGHUP usually says so too) */
                sd_event_source_set_enabled(s, SD_EVENT_OFF);
                cancel(rec);
                return 0;
        }
        handle_keys(rec, buf, (size_t) n);
        return 0;
}

static int on_duration_over(sd_event_source *s, uint64_t usec, void *userdata) {
        stop(userdata);
        return 0;
}

static int on_redraw(sd_event_source *s, uint64_t usec, void *userdata) {
        struct recording *rec = userdata;

        if (rec->state == RECORD_DONE)
                return 0;
        draw_meter(rec);
        /* on failure the line merely stops moving */
        if (sd_event_source_set_time_relative(s, REDRAW_USEC) >= 0)
                sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        return 0;
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        struct recording *rec = userdata;

        switch (rec->state) {
        case RECORD_RUNNING:
                cancel(rec);
                break;
        case RECORD_STOPPING:
                /* leaving now cancels the recording unless imd already took the stop */
                say(rec, "interrupted; 'imctl history %s' shows whether the voice message was sent",
                    rec->conversation);
                finish(rec, IMCTL_EXIT_BUS);
                break;
        case RECORD_CANCELLING:
                /* imd is slow to answer: leaving cancels the recording as well */
                say(rec, "cancelled; nothing was sent");
                finish(rec, IMCTL_EXIT_BUS);
                break;
        case RECORD_DONE:
                break;
        }
        return 0;
}

/* -- setup ------------------------------------------------------------------------------------ */

static int terminal_raw(struct recording *rec) {
        struct termios raw;

        if (tcgetattr(STDIN_FILENO, &rec->saved_termios) < 0)
                return -errno;
        rec->termios_saved = true;
        raw = rec->saved_termios;
        /* keys one at a time, unechoed; Ctrl-C and Ctrl-Z arrive as bytes rather than
         * signals, so that imctl is never stopped while the terminal is raw */
        raw.c_lflag &= ~(tcflag_t) (ICANON | ECHO | ISIG | IEXTEN);
        raw.c_iflag &= ~(tcflag_t) IXON;
        raw.c_cc[VMIN] = 1;
        raw.c_cc[VTIME] = 0;
        /* TCSAFLUSH: keys typed while the microphone started do not count */
        if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &raw) < 0)
                return -errno;
        return 0;
}

static void terminal_restore(struct recording *rec) {
        if (!rec->termios_saved)
                return;
        (void) tcsetattr(STDIN_FILENO, TCSADRAIN, &rec->saved_termios);
        rec->termios_saved = false;
}

/* Event loop, signals and match rules, all before StartRecording: no signal of ours is missed. */
static int prepare(struct recording *rec) {
        sd_bus *bus = rec->ctx->bus;
        sigset_t mask;
        int r;

        r = loop_new_with_signal_handler(rec->ctx, on_signal, rec, &rec->event);
        if (r != 0)
                return r;
        /* the terminal closing cancels too */
        sigemptyset(&mask);
        sigaddset(&mask, SIGHUP);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return imctl_print_errno("cannot block signals", -errno);
        r = sd_event_add_signal(rec->event, NULL, SIGHUP, on_signal, rec);
        if (r < 0)
                return imctl_print_errno("cannot watch signals", r);

        r = sd_bus_match_signal(bus, NULL, IM_SERVICE, IM_PATH, IM_INTERFACE, "RecordingLevel",
                                on_level, rec);
        if (r >= 0)
                r = sd_bus_match_signal(bus, NULL, IM_SERVICE, IM_PATH, IM_INTERFACE, "RecordingStopped",
                                        on_stopped, rec);
        if (r >= 0)
                r = sd_bus_match_signal(bus, NULL, IM_SERVICE, IM_PATH, IM_INTERFACE, "Error",
                                        on_error, rec);
        if (r < 0)
                return imctl_print_errno("cannot subscribe to signals", r);
        return imctl_watch_daemon(rec->ctx, on_daemon_lost, rec);
}

/* Before the loop runs: leaving would cancel too, but say so to imd explicitly. */
static void cancel_now(struct recording *rec) {
        (void) sd_bus_call_method(rec->ctx->bus, IM_SERVICE, IM_PATH, IM_INTERFACE, "CancelRecording",
                                  NULL, NULL, NULL);
}

static int start_recording(struct recording *rec) {
        _cleanup_error_ sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_message_ sd_bus_message *m = NULL, *reply = NULL;
        const char *owner;
        int r;

        r = imctl_new_call(rec->ctx, "StartRecording", &m);
        if (r != 0)
                return r;
        r = sd_bus_message_append(m, "s", rec->conversation);
        if (r < 0)
                return imctl_print_errno("cannot build the method call", r);
        /* imd replies once the microphone delivers, or after 3 s without one */
        if (rec->meter) {
                fputs("\rstarting the microphone…", stderr);
                rec->line_open = true;
        }
        r = sd_bus_call(rec->ctx->bus, m, rec->ctx->timeout_usec, &error, &reply);
        if (r < 0) {
                end_meter(rec);
                return imctl_bus_failure(&error, r);
        }
        rec->started = g_get_monotonic_time();
        owner = sd_bus_message_get_sender(reply);
        if (!owner || sd_bus_message_get_cookie(reply, &rec->start_cookie) < 0) {
                say(rec, "unexpected reply to StartRecording");
                cancel_now(rec);
                return IMCTL_EXIT_BUS;
        }
        rec->owner = g_strdup(owner);
        return IMCTL_EXIT_OK;
}

static int begin_failed(struct recording *rec, const char *what, int r) {
        say(rec, "%s: %s", what, strerror(-r));
        cancel_now(rec);
        return IMCTL_EXIT_BUS;
}

/* Raw terminal and the sources that end the recording or redraw it. */
static int begin(struct recording *rec) {
        int r;

        if (rec->interactive) {
                r = terminal_raw(rec);
                if (r < 0)
                        return begin_failed(rec, "cannot set up the terminal", r);
                r = sd_event_add_io(rec->event, &rec->input, STDIN_FILENO, EPOLLIN, on_stdin, rec);
                if (r < 0)
                        return begin_failed(rec, "cannot watch the terminal", r);
        }
        if (rec->duration_usec) {
                r = sd_event_add_time_relative(rec->event, &rec->stop_timer, CLOCK_MONOTONIC,
                                               rec->duration_usec, DURATION_ACCURACY_USEC,
                                               on_duration_over, rec);
                if (r < 0)
                        return begin_failed(rec, "cannot set up a timer", r);
        }
        /* at once, then every REDRAW_USEC; a meter that cannot be drawn is no reason to stop */
        if (rec->meter)
                (void) sd_event_add_time_relative(rec->event, &rec->redraw, CLOCK_MONOTONIC, 0,
                                                  REDRAW_ACCURACY_USEC, on_redraw, rec);
        return IMCTL_EXIT_OK;
}

int cmd_record(struct imctl *ctx, char **args, char **opts) {
        const char *duration = opts[RECORD_OPT_DURATION];
        struct recording rec = {
                .ctx = ctx,
                .conversation = args[0],
                .meter = isatty(STDERR_FILENO),
        };
        int r;

        /* argument errors come before anything touches the bus */
        if (duration) {
                /* the option table checked it already */
                if (!parse_seconds(duration, &rec.duration_usec))
                        return imctl_usage_error("invalid duration '%s'", duration);
        } else if (isatty(STDIN_FILENO) && isatty(STDERR_FILENO))
                rec.interactive = true;
        else
                return imctl_usage_error("record needs --duration SECONDS when stdin and stderr are "
                                         "not a terminal\nUsage: imctl record CONV [--duration SECONDS]");

        r = imctl_open_bus(ctx);
        if (r != 0)
                return r;
        r = prepare(&rec);
        if (r == 0)
                r = start_recording(&rec);
        if (r == 0)
                r = begin(&rec);
        if (r == 0)
                r = loop_run(ctx, rec.event);

        terminal_restore(&rec);
        end_meter(&rec);
        if (r == IMCTL_EXIT_OK) {
                if (rec.id)
                        r = print_message_id(ctx, rec.id);
                else
                        r = imctl_print_errno("the recording ended without an outcome", -EPROTO);
        }

        /* the bus outlives us in main(): drop our callbacks' userdata first */
        sd_bus_detach_event(ctx->bus);
        sd_bus_slot_unref(rec.call);
        sd_event_source_unref(rec.input);
        sd_event_source_unref(rec.redraw);
        sd_event_source_unref(rec.stop_timer);
        sd_event_source_unref(rec.linger);
        sd_event_unref(rec.event);
        g_free(rec.owner);
        g_free(rec.error_name);
        g_free(rec.error_message);
        g_free(rec.id);
        return r;
}
