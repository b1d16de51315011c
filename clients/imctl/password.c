/* SPDX-License-Identifier: MIT */
/*
 * The login password: the first line of stdin for scripts, or a prompt with
 * echo off when stdin is a terminal. Never taken from the command line,
 * where other users could see it in the process list.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "imctl.h"

static void strip_newline(char *s) {
        size_t n = strlen(s);

        while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
                s[--n] = '\0';
}

static int read_line(FILE *f, char **ret) {
        char *line = NULL;
        size_t size = 0;
        ssize_t n;

        n = getline(&line, &size, f);
        if (n < 0) {
                int e = ferror(f) ? errno : 0;

                free(line);
                return e ? -e : -ENODATA;
        }
        strip_newline(line);
        *ret = line;
        return 0;
}

static int prompt_tty(char **ret) {
        struct termios old, noecho;
        FILE *tty;
        int r;

        tty = fopen("/dev/tty", "r+e");
        if (!tty)
                return -errno;

        if (tcgetattr(fileno(tty), &old) < 0) {
                r = -errno;
                fclose(tty);
                return r;
        }
        noecho = old;
        noecho.c_lflag &= ~(tcflag_t) ECHO;
        noecho.c_lflag |= ECHONL;

        fputs("Password: ", tty);
        fflush(tty);
        if (tcsetattr(fileno(tty), TCSAFLUSH, &noecho) < 0) {
                r = -errno;
                fclose(tty);
                return r;
        }
        r = read_line(tty, ret);
        (void) tcsetattr(fileno(tty), TCSAFLUSH, &old);
        fclose(tty);
        return r;
}

int password_read(char **ret) {
        if (isatty(STDIN_FILENO))
                return prompt_tty(ret);
        return read_line(stdin, ret);
}
