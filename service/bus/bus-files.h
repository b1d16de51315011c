/* SPDX-License-Identifier: MIT */
#pragma once

/* The object's methods for files: SendFile, ResendMessage, FetchMedia. */

#include <systemd/sd-bus.h>

int bus_method_send_file(sd_bus_message *m, void *userdata, sd_bus_error *error);
int bus_method_resend_message(sd_bus_message *m, void *userdata, sd_bus_error *error);
int bus_method_fetch_media(sd_bus_message *m, void *userdata, sd_bus_error *error);
