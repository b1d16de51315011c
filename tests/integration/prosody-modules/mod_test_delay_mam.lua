-- Test-only fault injection for imd's integration tests: holds every archive
-- query (XEP-0313) for test_delay_mam seconds before mod_mam answers it, so
-- that a test can act while imd's query is in flight (forge its answer, say).
local delay = module:get_option_number("test_delay_mam", 2);

module:hook("iq-set/self/urn:xmpp:mam:2:query", function (event)
	if event.test_delayed then
		return; -- second time round: mod_mam answers
	end
	event.test_delayed = true;
	local query = event.stanza:get_child("query", "urn:xmpp:mam:2");
	module:log("info", "holding archive query iq=%s queryid=%s for %gs",
		event.stanza.attr.id, query and query.attr.queryid or "", delay);
	module:add_timer(delay, function ()
		module:fire_event("iq-set/self/urn:xmpp:mam:2:query", event);
	end);
	return true;
end, 1000);
