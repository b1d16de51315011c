/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The object's voice-message methods. A recording belongs to the client
 * that started it: only that bus connection may stop or cancel it, and the
 * recording is cancelled when the connection leaves the bus.
 */

#include <systemd/sd-bus.h>

#include "manager.h"

int bus_method_start_recording(sd_bus_message *m, void *userdata, sd_bus_error *error);
int bus_method_stop_recording(sd_bus_message *m, void *userdata, sd_bus_error *error);
int bus_method_cancel_recording(sd_bus_message *m, void *userdata, sd_bus_error *error);
/* Stops watching the owner of the last recording (imd is stopping). */
void bus_voice_forget_owner(Manager *mgr);
