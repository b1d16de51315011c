/* SPDX-License-Identifier: MIT */
/*
 * The login password: the first line of stdin for scripts, or a prompt with
 * echo off when stdin is a terminal. Never taken from the command line,
 * where other users could see it in the process list.
 *
 * While echo is off, the signals that end or stop imctl are blocked and read
 * from a signalfd next to the terminal: the terminal is restored before one
 * takes effect, with no handler and no global state. After a stop (Ctrl-Z)
 * and `fg`, the prompt starts again.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
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

/* A line on the terminal is at most this long in canonical mode (Linux's
 * N_TTY_BUF_SIZE less the newline); more cannot be typed. */
#define TTY_LINE_MAX 4096

/* Signals that end or stop imctl at the prompt: each must give the terminal
 * its echo back first (Ctrl-C, or Ctrl-Z, left it off for the shell). */
static const int prompt_signals[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP };

/* One line from the terminal @fd, unless a signal of @sfd (a signalfd of
 * prompt_signals, blocked) comes first: then *ret_signal is its number. */
static int read_tty_line(int fd, int sfd, char **ret, int *ret_signal) {
        _cleanup_free_ char *line = malloc(TTY_LINE_MAX + 1);
        size_t len = 0;

        if (!line)
                return -ENOMEM;
        for (;;) {
                struct pollfd p[2] = { { .fd = fd, .events = POLLIN }, { .fd = sfd, .events = POLLIN } };
                struct signalfd_siginfo si;
                ssize_t n;

                if (poll(p, 2, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (p[1].revents) {
                        explicit_bzero(line, len);
                        if (read(sfd, &si, sizeof si) != (ssize_t) sizeof si)
                                return -EIO;
                        *ret_signal = (int) si.ssi_signo;
                        return -EINTR;
                }
                n = read(fd, line + len, TTY_LINE_MAX - len);
                if (n < 0 && (errno == EINTR || errno == EAGAIN))
                        continue;
                if (n < 0) {
                        explicit_bzero(line, len);
                        return -errno;
                }
                len += (size_t) n;
                /* canonical mode: a read ends at the newline, or at EOF (n == 0, or Ctrl-D) */
                if (n == 0 || len == TTY_LINE_MAX || memchr(line + len - n, '\n', (size_t) n))
                        break;
        }
        if (len == 0)
                return -ENODATA;
        line[len] = '\0';
        strip_newline(line);
        *ret = TAKE_PTR(line);
        return 0;
}

/* Blocks prompt_signals and returns a signalfd for them; @old gets the mask
 * before. Not those imctl was started ignoring (`imctl login &` in a script
 * without job control ignores SIGINT and SIGQUIT): blocked, they would
 * still reach the signalfd and end the prompt, for nothing. */
static int block_prompt_signals(sigset_t *old) {
        sigset_t mask;
        int sfd;

        sigemptyset(&mask);
        for (size_t i = 0; i < sizeof prompt_signals / sizeof prompt_signals[0]; i++) {
                struct sigaction sa;
                if (sigaction(prompt_signals[i], NULL, &sa) == 0 && sa.sa_handler == SIG_IGN)
                        continue;
                sigaddset(&mask, prompt_signals[i]);
        }
        if (sigprocmask(SIG_BLOCK, &mask, old) < 0)
                return -errno;
        sfd = signalfd(-1, &mask, SFD_CLOEXEC);
        if (sfd < 0) {
                int r = -errno;

                (void) sigprocmask(SIG_SETMASK, old, NULL);
                return r;
        }
        return sfd;
}

/* The signal, once the terminal is restored, as if it had come unblocked:
 * its default action (or the disposition imctl was started with) applies. */
static void deliver_again(int sig, const sigset_t *old) {
        (void) sigprocmask(SIG_SETMASK, old, NULL);
        (void) raise(sig);
}

static int prompt_with_echo_off(FILE *tty, int sfd, char **ret, int *ret_signal) {
        struct termios old, noecho;
        int r;

        if (tcgetattr(fileno(tty), &old) < 0)
                return -errno;
        noecho = old;
        noecho.c_lflag &= ~(tcflag_t) ECHO;
        noecho.c_lflag |= ECHONL;

        fputs("Password: ", tty);
        fflush(tty);
        if (tcsetattr(fileno(tty), TCSAFLUSH, &noecho) < 0)
                return -errno;
        r = read_tty_line(fileno(tty), sfd, ret, ret_signal);
        (void) tcsetattr(fileno(tty), TCSAFLUSH, &old);
        /* ECHONL did not get to end the line */
        if (*ret_signal) {
                fputc('\n', tty);
                fflush(tty);
        }
        return r;
}

/* Stops imctl as SIGTSTP would have, the terminal restored; returns once
 * it is continued (at once if its process group is orphaned: the kernel
 * discards stop signals there). */
static void stop_here(void) {
        sigset_t tstp;

        sigemptyset(&tstp);
        sigaddset(&tstp, SIGTSTP);
        (void) sigprocmask(SIG_UNBLOCK, &tstp, NULL);
        (void) raise(SIGTSTP);
        (void) sigprocmask(SIG_BLOCK, &tstp, NULL);
}

static int prompt_tty(char **ret) {
        sigset_t old_mask;
        int sfd, sig, r;
        FILE *tty;

        tty = fopen("/dev/tty", "r+e");
        if (!tty)
                return -errno;
        sfd = block_prompt_signals(&old_mask);
        if (sfd < 0) {
                fclose(tty);
                return sfd;
        }
        for (;;) {
                sig = 0;
                r = prompt_with_echo_off(tty, sfd, ret, &sig);
                if (sig != SIGTSTP)
                        break;
                /* what was typed went with the line discipline's flush */
                stop_here();
        }
        fclose(tty);
        close(sfd);
        if (sig)
                deliver_again(sig, &old_mask);
        else
                (void) sigprocmask(SIG_SETMASK, &old_mask, NULL);
        return r;
}

int password_read(char **ret) {
        if (isatty(STDIN_FILENO))
                return prompt_tty(ret);
        return read_line(stdin, ret);
}
