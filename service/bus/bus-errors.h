/* SPDX-License-Identifier: MIT */
#pragma once

#include <systemd/sd-bus.h>

#define IM_ERROR_PREFIX "org.example.IM.Error."

/* The one place negative errno values become org.example.IM.Error.* names. */
const char *bus_error_name_from_errno(int error);
/* The generic text of that error, naming nothing of the user's ("Cannot
 * reach the server"), for where the detailed text must not go. */
const char *bus_error_text_from_errno(int error);
/* Reply to m with the error for errno, with message as its text (NULL: a
 * default text for that error). Returns the result of sd_bus_reply_method_error. */
int bus_reply_errno(sd_bus_message *m, int error, const char *message);
/* Fill ret_error (for sd-bus method handlers' sd_bus_error*). Returns -error-ish <0. */
int bus_set_errno(sd_bus_error *ret_error, int error, const char *format, ...) __attribute__((format(printf, 3, 4)));
