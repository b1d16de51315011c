/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Custom messages (TIM's custom element, XEP-0335 on the wire): the data is a
 * JSON document, checked with json-c whether it comes from a D-Bus caller or
 * from the network.
 */

#include <stdbool.h>

/* The most bytes of JSON a custom message may carry, and the deepest nesting. */
#define CUSTOM_DATA_MAX 65536
#define CUSTOM_DATA_MAX_DEPTH 32

/* data is one complete JSON value (object, array, string, number, true, false
 * or null) of at most CUSTOM_DATA_MAX bytes and CUSTOM_DATA_MAX_DEPTH levels,
 * with nothing but white space after it. */
bool custom_data_valid(const char *data);
