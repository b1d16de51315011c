/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * :shortcode: names for emoji, from the Unicode emoji data set (Debian's
 * unicode-data: emoji-test.txt). A shortcode is the emoji's CLDR name in lower
 * case with every run of other characters made one "_": 👍 is :thumbs_up:,
 * 😂 :face_with_tears_of_joy:, 👋🏽 :waving_hand_medium_skin_tone:.
 */

#include <glib.h>

#ifndef IMCTL_EMOJI_DATA
#define IMCTL_EMOJI_DATA "/usr/share/unicode/emoji/emoji-test.txt"
#endif

typedef struct EmojiTable EmojiTable;

/* Loads the data set (path NULL: $IMCTL_EMOJI_DATA, else the built-in path).
 * NULL with *error set if it cannot be read. */
EmojiTable *emoji_table_load(const char *path, GError **error);
void emoji_table_free(EmojiTable *t);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(EmojiTable, emoji_table_free)

/* The emoji of a shortcode (without the colons), or NULL. */
const char *emoji_lookup(const EmojiTable *t, const char *name);
/* text with every :known_name: replaced by its emoji; unknown ones stay. */
char *emoji_expand(const EmojiTable *t, const char *text);
/* Every (name, emoji) pair in the data set's order, as a NULL-terminated
 * array of alternating name and emoji; owned by the table. */
const char *const *emoji_list(const EmojiTable *t);

/* Expands text if it may hold a shortcode; when the data set is missing the
 * text is returned unchanged (with a warning on stderr, once). */
char *emoji_expand_text(const char *text);
