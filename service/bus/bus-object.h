/* SPDX-License-Identifier: MIT */
#pragma once

#include "manager.h"

/* The org.example.IM object: method handlers, properties and the session
 * events that become signals. */
int bus_object_add(Manager *m);
extern const SessionEvents bus_session_events;
