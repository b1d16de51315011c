/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * JIDs per RFC 7622: localpart@domainpart/resourcepart.
 *
 * Validation covers the structure, UTF-8, the 1023-byte limit per part, the
 * characters RFC 7622 §3.3.1 forbids in a localpart (" & ' / : < > @ and
 * spaces/controls), and a domainpart that is a plausible host name or IP
 * literal. Normalisation is NFC plus lower-casing of localpart and
 * domainpart (the UsernameCaseMapped and IDNA2008 mappings, without a full
 * PRECIS implementation — none exists in Debian's C libraries).
 */

#include <stdbool.h>

typedef struct Jid {
        char *local;    /* NULL if absent */
        char *domain;   /* never NULL after a successful parse */
        char *resource; /* NULL if absent */
} Jid;

#define JID_PART_MAX 1023

/* Parse and normalise. 0 on success (*ret filled), -EINVAL if invalid.
 * On failure *ret is left untouched. */
int jid_parse(const char *s, Jid *ret);
void jid_clear(Jid *jid);                     /* frees the parts; safe on a zeroed Jid */

char *jid_to_bare(const Jid *jid);            /* "local@domain" or "domain" */
char *jid_to_string(const Jid *jid);          /* full form */

/* Normalised bare JID of s, or NULL if s is not a valid JID. A resource in s is dropped. */
char *jid_normalize_bare(const char *s);
/* True if s is a valid JID with a localpart and no resource (an account or a peer). */
bool jid_is_valid_user_bare(const char *s);
/* Compare two JID strings by their normalised bare form; false if either is invalid. */
bool jid_bare_equal(const char *a, const char *b);
