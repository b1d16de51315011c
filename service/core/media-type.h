/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * What kind of file a received media message carries. The sender's media
 * type when it gave a usable one, else a guess from the file name; the name is the sender's, else the last part
 * of the URL's path. Both are for showing only: no file is ever named by them.
 * The guess comes from shared-mime-info's globs2 file (by extension).
 */

/* mime, name: the sender's (NULL if none). *ret_mime, *ret_name: never NULL
 * (application/octet-stream, "file" when nothing better is known). Returns
 * the message type: "image", "video", "audio" or "file". */
const char *media_describe(const char *url, const char *mime, const char *name, char **ret_mime, char **ret_name);
