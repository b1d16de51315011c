-- Test-only fault injection for imd's integration tests: holds every roster
-- get for test_delay_roster seconds before mod_roster answers it, and logs
-- it, so that a test can act in the part of a login between resource
-- binding (carbons and XEP-0198 already enabled) and imd's initial presence.
local delay = module:get_option_number("test_delay_roster", 2);

module:hook("iq/self/jabber:iq:roster:query", function (event)
	if event.test_delayed or event.stanza.attr.type ~= "get" then
		return; -- second time round, or a roster set: mod_roster answers
	end
	event.test_delayed = true;
	module:log("info", "holding roster get iq=%s from %s for %gs",
		event.stanza.attr.id, event.origin.full_jid or "?", delay);
	module:add_timer(delay, function ()
		module:fire_event("iq/self/jabber:iq:roster:query", event);
	end);
	return true;
end, 1000);
