/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * System mode (imd --system): who may use imd. The bus policy
 * (policy/org.example.IM.conf) already lets only one group talk to imd, but a
 * loose or broken policy must not open it: imd checks every method call
 * itself, from the credentials dbus-daemon took of the caller's socket when it
 * connected (never augmented from /proc, which a caller could race), and
 * refuses everyone else with NotAllowed. Allowed: root, imd's own uid, and
 * members of the group.
 */

#include <stdbool.h>
#include <sys/types.h>

#include "manager.h"

/* Installs the check on m->bus for members of group GID. */
int bus_auth_install(Manager *m, gid_t gid);
void bus_auth_free(Manager *m);
