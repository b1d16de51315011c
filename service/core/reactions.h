/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The reactions to one message (XEP-0444), kept in the history as a JSON
 * object {"sender JID": ["emoji", ...]} in first-reaction order. Each sender
 * sends its whole set every time, so an update replaces that sender's list.
 */

#include <stddef.h>

/* The reactions after sender's set became reactions[0..n) (n == 0: none).
 * current is NULL or such an object (anything else counts as none). Returns
 * the new JSON, or NULL when nobody reacts any more. */
char *reactions_update(const char *current, const char *sender, const char *const *reactions, size_t n);
