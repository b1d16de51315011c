/* SPDX-License-Identifier: MIT */

/*
 * The D-Bus argument checks of service/bus/bus-args.c on hostile arguments:
 * the string and JID checkers on any bytes, and bus_read_message_ref() and
 * bus_read_options() on method calls built from the input. Whatever sd-bus
 * lets a caller send can be built here: any signature, nested variants and
 * containers, unknown and repeated keys, values of the wrong type. The
 * messages are built and sealed on a bus object that is started on one end
 * of a socketpair and never used to send anything.
 *
 * Input: one byte picks the check, the rest is its argument:
 *   0 bus_parse_user_jid()   1 bus_check_text()
 *   2 bus_check_optional_text() (next byte picks the maximum)
 *   3 bus_read_message_ref() 4 bus_read_options() with Login's keys
 *   5 bus_read_options() with SendFile's keys and one of each other type
 * For 3-5 the rest describes the message (see append_args()).
 */

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <glib.h>
#include <systemd/sd-bus.h>

#include "bus-args.h"
#include "fuzz.h"
#include "jid.h"

#define IM_ERROR_PREFIX "org.example.IM.Error."
#define _cleanup_(f) __attribute__((cleanup(f)))
#define MAX_DEPTH 4             /* of nested containers in a built message */
#define MAX_ITEMS 8             /* in one built array */

typedef struct Reader {
        const uint8_t *p, *end;
} Reader;

static uint8_t read_byte(Reader *r) {
        return r->p < r->end ? *r->p++ : 0;
}

static void read_bytes(Reader *r, void *out, size_t n) {
        for (size_t i = 0; i < n; i++)
                ((uint8_t *) out)[i] = read_byte(r);
}

/* A D-Bus string: a length byte, then that many bytes, made valid UTF-8
 * without NUL (sd-bus refuses anything else, as it would on the wire). */
static char *read_string(Reader *r) {
        size_t len = read_byte(r), avail = (size_t) (r->end - r->p);
        g_autofree char *raw = NULL;

        if (len > avail)
                len = avail;
        raw = g_strndup((const char *) r->p, len);      /* stops at a NUL */
        r->p += len;
        return g_utf8_make_valid(raw, -1);
}

/* Keys the checks know, so that the interesting ones come up often. */
static const char *const known_keys[] = {
        "websocket_url", "ca_file", "name", "mime", "type", "width", "height",
        "duration_ms", "flag", "count", "offset", "",
};

static int append_value(sd_bus_message *m, Reader *r, const char *type, unsigned depth);

/* One complete type, chosen by the input; containers only while not too deep. */
static const char *pick_type(Reader *r, unsigned depth) {
        static const char *const basic[] = { "s", "u", "b", "x", "t", "i", "y", "d", "o", "g", "n", "q" };
        static const char *const containers[] = { "a{sv}", "as", "ay", "v", "(ss)", "a{ss}", "aa{sv}" };
        uint8_t b = read_byte(r);

        if (depth < MAX_DEPTH && b >= 128)
                return containers[(b - 128) % G_N_ELEMENTS(containers)];
        return basic[b % G_N_ELEMENTS(basic)];
}

static int append_dict_sv(sd_bus_message *m, Reader *r, unsigned depth) {
        unsigned n = read_byte(r) % MAX_ITEMS;
        int k;

        k = sd_bus_message_open_container(m, 'a', "{sv}");
        if (k < 0)
                return k;
        for (unsigned i = 0; i < n; i++) {
                g_autofree char *key = NULL;
                uint8_t b = read_byte(r);

                if (b < G_N_ELEMENTS(known_keys) * 16)
                        key = g_strdup(known_keys[b % G_N_ELEMENTS(known_keys)]);
                else
                        key = read_string(r);
                if ((k = sd_bus_message_open_container(m, 'e', "sv")) < 0 ||
                    (k = sd_bus_message_append_basic(m, 's', key)) < 0 ||
                    (k = append_value(m, r, "v", depth + 1)) < 0 ||
                    (k = sd_bus_message_close_container(m)) < 0)
                        return k;
        }
        return sd_bus_message_close_container(m);
}

static int append_value(sd_bus_message *m, Reader *r, const char *type, unsigned depth) {
        union {
                uint8_t y;
                int16_t n;
                uint16_t q;
                int32_t i;
                uint32_t u;
                int64_t x;
                uint64_t t;
                double d;
        } v;
        int k;

        if (strcmp(type, "a{sv}") == 0)
                return append_dict_sv(m, r, depth);
        if (strcmp(type, "v") == 0) {
                const char *inner = pick_type(r, depth);

                if ((k = sd_bus_message_open_container(m, 'v', inner)) < 0 ||
                    (k = append_value(m, r, inner, depth + 1)) < 0)
                        return k;
                return sd_bus_message_close_container(m);
        }
        if (type[0] == 'a') {
                const char *elem = type + 1;
                unsigned n = read_byte(r) % MAX_ITEMS;

                if ((k = sd_bus_message_open_container(m, 'a', elem)) < 0)
                        return k;
                for (unsigned i = 0; i < n; i++) {
                        if (strcmp(elem, "{ss}") == 0) {
                                g_autofree char *key = read_string(r), *value = read_string(r);

                                k = sd_bus_message_append(m, "{ss}", key, value);
                        } else
                                k = append_value(m, r, elem, depth + 1);
                        if (k < 0)
                                return k;
                }
                return sd_bus_message_close_container(m);
        }
        if (strcmp(type, "(ss)") == 0) {
                g_autofree char *a = read_string(r), *b = read_string(r);

                return sd_bus_message_append(m, "(ss)", a, b);
        }

        switch (type[0]) {
        case 's': {
                g_autofree char *s = read_string(r);
                return sd_bus_message_append_basic(m, 's', s);
        }
        case 'o':
                return sd_bus_message_append_basic(m, 'o', read_byte(r) & 1 ? "/org/example/IM" : "/");
        case 'g':
                return sd_bus_message_append_basic(m, 'g', read_byte(r) & 1 ? "a{sv}" : "");
        case 'b':
                v.i = read_byte(r) & 1;
                return sd_bus_message_append_basic(m, 'b', &v.i);
        case 'y':
        case 'n':
        case 'q':
        case 'i':
        case 'u':
        case 'x':
        case 't':
        case 'd':
                memset(&v, 0, sizeof v);
                read_bytes(r, &v, type[0] == 'y' ? 1 : type[0] == 'n' || type[0] == 'q' ? 2 :
                                  type[0] == 'i' || type[0] == 'u' ? 4 : 8);
                return sd_bus_message_append_basic(m, type[0], &v);
        default:
                FUZZ_CHECK(!"type without a builder");
        }
        return -EINVAL;
}

/* The method's arguments: with a first byte below 128 the signature the
 * method expects (natural), else up to three arguments of any type. */
static int append_args(sd_bus_message *m, Reader *r, const char *natural) {
        uint8_t b = read_byte(r);
        int k;

        if (b < 128) {
                if (strcmp(natural, "ss") == 0) {
                        g_autofree char *a = read_string(r), *c = read_string(r);
                        return sd_bus_message_append(m, "ss", a, c);
                }
                return append_value(m, r, natural, 0);
        }
        for (unsigned i = 0; i < 1u + b % 3; i++)
                if ((k = append_value(m, r, pick_type(r, 0), 0)) < 0)
                        return k;
        return 0;
}

static sd_bus *fuzz_bus(void) {
        static sd_bus *bus;
        int fds[2];

        if (bus)
                return bus;
        /* sd-bus builds messages only on a bus that has been started; one end
         * of a socketpair is enough (the other end is never read). */
        FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds) == 0);
        FUZZ_CHECK(sd_bus_new(&bus) >= 0);
        FUZZ_CHECK(sd_bus_set_fd(bus, fds[0], fds[0]) >= 0);
        FUZZ_CHECK(sd_bus_start(bus) >= 0);
        return bus;
}

/* A call carrying the arguments the input describes, sealed and ready to
 * read; NULL when sd-bus refused to build it. */
static sd_bus_message *build_call(Reader *r, const char *natural) {
        static uint64_t cookie;
        sd_bus_message *m = NULL;

        FUZZ_CHECK(sd_bus_message_new_method_call(fuzz_bus(), &m, "org.example.IM", "/org/example/IM",
                                                  "org.example.IM", "Fuzz") >= 0);
        if (append_args(m, r, natural) < 0 || sd_bus_message_seal(m, ++cookie, 0) < 0 ||
            sd_bus_message_rewind(m, true) < 0)
                return sd_bus_message_unref(m);
        return m;
}

/* Errors go back to the caller: one of ours, with a text sd-bus can send. */
static void check_error(const sd_bus_error *e, bool required) {
        if (!sd_bus_error_is_set(e)) {
                FUZZ_CHECK(!required);
                return;
        }
        FUZZ_CHECK(g_str_has_prefix(e->name, IM_ERROR_PREFIX));
        FUZZ_CHECK(e->message && g_utf8_validate(e->message, -1, NULL));
}

static void check_normalised_user_jid(const char *jid) {
        g_autofree char *again = jid_normalize_bare(jid);

        FUZZ_CHECK(jid_is_valid_user_bare(jid));
        FUZZ_CHECK(again && strcmp(again, jid) == 0);
}

static bool xml_safe_utf8(const char *s) {
        if (!g_utf8_validate(s, -1, NULL))
                return false;
        for (const char *p = s; *p; p = g_utf8_next_char(p)) {
                gunichar c = g_utf8_get_char(p);

                if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0xfffe || c == 0xffff)
                        return false;
        }
        return true;
}

static void fuzz_user_jid(const char *s) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        g_autofree char *jid = bus_parse_user_jid(s, "conversation", &e);

        if (jid)
                check_normalised_user_jid(jid);
        check_error(&e, !jid);
        FUZZ_CHECK((jid == NULL) == (sd_bus_error_is_set(&e) != 0));
}

static void fuzz_text(const char *s, size_t len) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        int r = bus_check_text(s, &e);

        FUZZ_CHECK(r <= 0);
        check_error(&e, r < 0);
        if (r == 0)
                FUZZ_CHECK(len > 0 && len <= TEXT_MAX_BYTES && xml_safe_utf8(s));
}

static void fuzz_optional_text(const char *s, size_t len, uint8_t which) {
        static const size_t maxima[] = { 0, 1, 16, ID_MAX_BYTES, TEXT_MAX_BYTES };
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        size_t max = maxima[which % G_N_ELEMENTS(maxima)];
        int r = bus_check_optional_text(s, "description", max, &e);

        FUZZ_CHECK(r <= 0);
        check_error(&e, r < 0);
        if (r == 0)
                FUZZ_CHECK(len <= max && xml_safe_utf8(s));
}

static void fuzz_message_ref(Reader *rd) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = build_call(rd, "ss");
        g_autofree char *conversation = NULL;   /* as the handlers hold it */
        const char *id = NULL;
        int r;

        if (!m)
                return;
        r = bus_read_message_ref(m, &conversation, &id, &e);
        if (r < 0) {
                check_error(&e, false);
                return;
        }
        FUZZ_CHECK(r == 0 && conversation && id);
        check_normalised_user_jid(conversation);
        FUZZ_CHECK(*id && strlen(id) <= ID_MAX_BYTES && g_utf8_validate(id, -1, NULL));
        FUZZ_CHECK(!sd_bus_error_is_set(&e));
}

/* Fields of every type bus_read_options() fills ('b' is an int, as sd-bus
 * reads it). */
typedef struct Options {
        char *websocket_url, *ca_file, *name, *mime, *type;
        uint32_t width, height, duration_ms;
        int flag;
        uint64_t count;
        int64_t offset;
} Options;

static const BusOption login_keys[] = {
        { "websocket_url", 's', offsetof(Options, websocket_url) },
        { "ca_file", 's', offsetof(Options, ca_file) },
};

static const BusOption file_keys[] = {
        { "name", 's', offsetof(Options, name) },
        { "mime", 's', offsetof(Options, mime) },
        { "type", 's', offsetof(Options, type) },
        { "width", 'u', offsetof(Options, width) },
        { "height", 'u', offsetof(Options, height) },
        { "duration_ms", 'u', offsetof(Options, duration_ms) },
        { "flag", 'b', offsetof(Options, flag) },
        { "count", 't', offsetof(Options, count) },
        { "offset", 'x', offsetof(Options, offset) },
};

static void fuzz_options(Reader *rd, const BusOption *keys, size_t n) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = build_call(rd, "a{sv}");
        Options o = { 0 };
        int r;

        if (!m)
                return;
        r = bus_read_options(m, keys, n, &o, "option", &e);
        if (r < 0)
                check_error(&e, false);
        else
                FUZZ_CHECK(!sd_bus_error_is_set(&e));
        FUZZ_CHECK(o.flag == 0 || o.flag == 1);
        char *strings[] = { o.websocket_url, o.ca_file, o.name, o.mime, o.type };
        for (size_t i = 0; i < G_N_ELEMENTS(strings); i++) {
                FUZZ_CHECK(!strings[i] || g_utf8_validate(strings[i], -1, NULL));
                g_free(strings[i]);     /* the handlers' cleanup, success or not */
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        Reader rd = { data + 1, data + size };
        g_autofree char *s = NULL;

        if (size == 0)
                return 0;
        switch (data[0] % 6) {
        case 0:
        case 1:
                /* As a D-Bus string would arrive, but any bytes up to a NUL. */
                s = g_strndup((const char *) data + 1, size - 1);
                if (data[0] % 6 == 0)
                        fuzz_user_jid(s);
                else
                        fuzz_text(s, strlen(s));
                break;
        case 2:
                s = g_strndup((const char *) data + 1 + (size > 1), size - 1 - (size > 1));
                fuzz_optional_text(s, strlen(s), size > 1 ? data[1] : 0);
                break;
        case 3:
                fuzz_message_ref(&rd);
                break;
        case 4:
                fuzz_options(&rd, login_keys, G_N_ELEMENTS(login_keys));
                break;
        case 5:
                fuzz_options(&rd, file_keys, G_N_ELEMENTS(file_keys));
                break;
        }
        return 0;
}
