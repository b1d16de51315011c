/* SPDX-License-Identifier: MIT */
/*
 * Colour: decided once in main(), for stdout and stderr separately, since
 * either may be a terminal while the other is a pipe. By default a stream is
 * coloured only when it is a terminal and NO_COLOR is unset or empty
 * (no-color.org). --color=always forces colour onto a pipe, but NO_COLOR
 * still wins: the issue asks for no colour "ever" with it, and a user who
 * set it in their environment should not have to audit every script's
 * flags. --color=never turns it off. JSON is never coloured.
 *
 * The choice lives in this file rather than in struct imctl: it is a fact
 * about the process's terminals, and every error printer needs it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "imctl.h"

static bool color_stdout, color_stderr;

static const char *const sequences[] = {
        [COLOR_RESET]    = "\033[0m",
        [COLOR_DIM]      = "\033[2m",
        [COLOR_BOLD]     = "\033[1m",
        [COLOR_INCOMING] = "\033[1;36m",
        [COLOR_OUTGOING] = "\033[1;32m",
        [COLOR_UNREAD]   = "\033[1;33m",
        [COLOR_GOOD]     = "\033[32m",
        [COLOR_WARN]     = "\033[33m",
        [COLOR_BAD]      = "\033[1;31m",
};

bool color_parse_mode(const char *s, enum imctl_color_mode *ret) {
        if (strcmp(s, "auto") == 0)
                *ret = IMCTL_COLOR_AUTO;
        else if (strcmp(s, "always") == 0)
                *ret = IMCTL_COLOR_ALWAYS;
        else if (strcmp(s, "never") == 0)
                *ret = IMCTL_COLOR_NEVER;
        else
                return false;
        return true;
}

static bool no_color_requested(void) {
        const char *v = getenv("NO_COLOR"), *term = getenv("TERM");

        /* TERM=dumb: a terminal that cannot show escape sequences */
        return (v && v[0]) || (term && strcmp(term, "dumb") == 0);
}

void color_init(enum imctl_color_mode mode) {
        const char *no_color = getenv("NO_COLOR");

        if (no_color && no_color[0]) {
                color_stdout = color_stderr = false;
                return;
        }
        switch (mode) {
        case IMCTL_COLOR_ALWAYS:
                color_stdout = color_stderr = true;
                return;
        case IMCTL_COLOR_NEVER:
                color_stdout = color_stderr = false;
                return;
        case IMCTL_COLOR_AUTO:
                break;
        }
        if (no_color_requested()) {
                color_stdout = color_stderr = false;
                return;
        }
        color_stdout = isatty(STDOUT_FILENO);
        color_stderr = isatty(STDERR_FILENO);
}

const char *color_out(enum imctl_color c) {
        return color_stdout ? sequences[c] : "";
}

const char *color_err(enum imctl_color c) {
        return color_stderr ? sequences[c] : "";
}
