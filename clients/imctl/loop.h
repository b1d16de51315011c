/* SPDX-License-Identifier: MIT */
#pragma once

#include <systemd/sd-event.h>

#include "imctl.h"

int loop_new(struct imctl *ctx, sd_event **ret);
int loop_run(struct imctl *ctx, sd_event *e);
