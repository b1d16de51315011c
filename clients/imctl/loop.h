/* SPDX-License-Identifier: MIT */
#pragma once

#include <systemd/sd-event.h>

#include "imctl.h"

int loop_new(struct imctl *ctx, sd_event **ret);
/* as loop_new(), but SIGINT and SIGTERM call @handler instead of ending the loop */
int loop_new_with_signal_handler(struct imctl *ctx, sd_event_signal_handler_t handler, void *userdata,
                                 sd_event **ret);
int loop_run(struct imctl *ctx, sd_event *e);
