/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * A remembered login (Login's "remember" option): the SCRAM keys of the
 * last successful login (scram.h: ClientKey, ServerKey, salt, iteration
 * count; never the password or SaltedPassword) and where to connect, in
 * DIR/credentials, DIR being the account's data directory.
 *
 * The file is a GKeyFile, group [login]: mechanism, salt, iterations,
 * client_key, server_key (base64), websocket_url, ca_file (may be absent).
 * It is written atomically (a 0600 temporary, fsync, rename, fsync of the
 * directory) and is always mode 0600, whatever the umask. A file that is
 * not a regular file of our own with no permission for group or others is
 * never read: the keys log in as the user, so one that others could read,
 * or plant, is not trusted.
 */

#include "scram.h"

#define CREDENTIALS_FILE "credentials"

typedef struct Credentials {
        ScramKeys *keys;
        char *url;              /* ws:// or wss:// */
        char *ca_file;          /* NULL: the system's CAs */
} Credentials;

void credentials_free(Credentials *c);

/* 0, or negative errno (the old file, if any, stays). */
int credentials_save(const char *dir, const ScramKeys *keys, const char *url, const char *ca_file);
/* -ENOENT none; -EPERM not a regular file of ours, or group / others have
 * some permission on it (a symbolic link: -ELOOP); -EBADMSG malformed;
 * else negative errno. */
int credentials_load(const char *dir, Credentials **ret);
/* 0 also when there was none. */
int credentials_remove(const char *dir);
