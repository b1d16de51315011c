-- Test-only: advertises XEP-0478 stream limits, which Prosody 0.12 does not,
-- after authentication: max-bytes is test_stream_limits_max_bytes (default:
-- the c2s_stanza_size_limit the server enforces).
local max_bytes = module:get_option_number("test_stream_limits_max_bytes",
	module:get_option_number("c2s_stanza_size_limit", 1024 * 256));

module:hook("stream-features", function (event)
	if event.origin.type == "c2s_unauthed" then
		return; -- not authenticated yet
	end
	event.features:tag("limits", { xmlns = "urn:xmpp:stream-limits:0" })
		:tag("max-bytes"):text(string.format("%d", max_bytes)):up()
		:up();
end);
